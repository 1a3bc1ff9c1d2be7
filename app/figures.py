"""Plotly figure builders: pure functions of trial records, testable without a browser.

Each ``make_*_figure`` returns a figure (or None when there is nothing to draw); views pass it
to ``st.plotly_chart``.  Layouts never fix a pixel width, so every chart folds onto a phone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from app.format import BEST_COLOR, PLOT_COLOR, STATE_LABEL, objective_name, tuned_names
from core.config import StudyConfig, TrialResult
from core.health import METRIC_INFO
from core.study import TrialRecord, pareto_front
from core.search_space import HYPERPARAMETERS

if TYPE_CHECKING:
    import plotly.graph_objects as go

def _layout(fig: "go.Figure", title: str | None = None, height: int = 320, legend: str = "top") -> "go.Figure":
    """Shared look: title top left, legend between title and plot (or under it), no fixed width."""
    if legend == "bottom":
        leg = dict(orientation="h", yanchor="top", y=-0.22, x=0)
        margin = dict(l=10, r=10, t=60 if title else 20, b=10)
    else:
        leg = dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right")
        margin = dict(l=10, r=10, t=70 if title else 30, b=10)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top") if title else None, height=height,
                      margin=margin, legend=leg)
    return fig


def make_history_figure(records: Sequence[TrialRecord], config: StudyConfig | None) -> "go.Figure":
    """Optimisation history: each trial's objective, the best so far, pruned trials at their last report."""
    import plotly.graph_objects as go

    fig = go.Figure()
    done = [r for r in records if r.state == "COMPLETE" and r.result is not None]
    if config is not None and config.mode == "pareto":
        fig.add_scatter(x=[r.number for r in done], y=[r.val_accuracy for r in done], mode="markers",
                        name="val accuracy", marker=dict(color=PLOT_COLOR["COMPLETE"]))
        fig.add_scatter(x=[r.number for r in done], y=[r.health_score for r in done], mode="markers",
                        name="health", marker=dict(color="#7048e8", symbol="diamond"))
    else:
        ys = [r.objective(config) if config else r.val_accuracy for r in done]
        fig.add_scatter(x=[r.number for r in done], y=ys, mode="markers", name="objective",
                        marker=dict(color=PLOT_COLOR["COMPLETE"]),
                        hovertemplate="trial #%{x}<br>objective %{y:.4f}<extra></extra>")
        best_x, best_y, cur = [], [], -math.inf
        for r, y in sorted(zip(done, ys), key=lambda p: p[0].number):
            if y is not None and y > cur:
                cur = y
            best_x.append(r.number)
            best_y.append(cur)
        fig.add_scatter(x=best_x, y=best_y, mode="lines", name="best so far", line=dict(color=BEST_COLOR, shape="hv"))
    pruned = [r for r in records if r.state == "PRUNED" and r.intermediate]
    if pruned:
        fig.add_scatter(x=[r.number for r in pruned], y=[r.intermediate[max(r.intermediate)] for r in pruned],
                        mode="markers", name="pruned (last report)", marker=dict(color=PLOT_COLOR["PRUNED"], symbol="x"))
    fig.update_xaxes(title="trial", dtick=1 if len(records) <= 12 else None)
    fig.update_yaxes(title=objective_name(config))
    return _layout(fig, "Optimisation history")


def make_curves_figure(result: TrialResult, metric: str = "accuracy") -> "go.Figure":
    """Training vs validation ``metric`` ("accuracy" or "loss") per epoch.

    The band between the two lines is shaded: it is the train/validation gap, and for accuracy
    the last epoch's gap is labelled (overfitting when it is wide). For loss, the epoch with
    the lowest validation loss is starred: epochs after it made the model worse on new data.
    One figure per metric, so the two stack on a phone instead of squeezing side by side.
    """
    import plotly.graph_objects as go

    h = result.history or {}
    train, val = h.get(metric) or [], h.get(f"val_{metric}") or []
    epochs = list(range(1, max(len(train), len(val)) + 1))
    fig = go.Figure()
    fig.add_scatter(x=epochs[: len(val)], y=val, name=f"validation {metric}", mode="lines+markers",
                    line=dict(color="#1c7ed6"))
    # filled to the validation line: the shaded band is the train/validation gap
    fig.add_scatter(x=epochs[: len(train)], y=train, name=f"training {metric}", mode="lines+markers",
                    line=dict(color="#e8590c", dash="dot"), fill="tonexty" if val else None,
                    fillcolor="rgba(232,89,12,0.12)")
    t = [v for v in train if v is not None]
    v = [x for x in val if x is not None]
    if metric == "accuracy" and len(t) >= 2 and len(v) >= 2:  # one epoch says nothing about overfitting
        gap = t[-1] - v[-1]
        fig.add_annotation(x=len(v), y=(t[-1] + v[-1]) / 2, text=f"gap {100 * gap:+.1f} pts", showarrow=True,
                           arrowhead=2, ax=-60, ay=0, font=dict(color="#c92a2a" if gap >= 0.10 else "#495057"))
    if metric == "loss" and len(v) >= 2:
        best = min(range(len(v)), key=v.__getitem__)
        fig.add_scatter(x=[best + 1], y=[v[best]], mode="markers", name=f"best validation loss (epoch {best + 1})",
                        marker=dict(symbol="star", size=14, color=BEST_COLOR))
    fig.update_xaxes(title="epoch", dtick=1 if len(epochs) <= 12 else None)
    fig.update_yaxes(title=metric)
    return _layout(fig, f"Training vs validation {metric}", height=340, legend="bottom")


def make_layer_figures(result: TrialResult) -> tuple["go.Figure | None", "go.Figure | None"]:
    """Per-layer dead units (%) and relative weight updates (log scale, healthy band shaded)."""
    import plotly.graph_objects as go

    from core.diagnosis import DEAD_CRITICAL, DEAD_WARN
    from core.health import UPDATE_HIGH, UPDATE_LOW

    unit_layers = [layer for layer in result.layers or [] if layer.dead_fraction is not None]
    dead_fig = None
    if unit_layers:
        vals = [100 * layer.dead_fraction for layer in unit_layers]  # type: ignore[operator]
        colors = ["#e03131" if v >= 100 * DEAD_CRITICAL else "#f59f00" if v >= 100 * DEAD_WARN else "#2f9e44" for v in vals]
        dead_fig = go.Figure(go.Bar(x=[layer.name for layer in unit_layers], y=vals, marker_color=colors,
                                    text=[f"{v:.0f}%" for v in vals], textposition="outside",
                                    customdata=[layer.dead_label or "carry no signal" for layer in unit_layers],
                                    hovertemplate="%{x}: %{y:.1f}% of units %{customdata}<extra></extra>"))
        dead_fig.update_yaxes(title="dead units (%)", range=[0, max(100.0, max(vals) * 1.15)])
        _layout(dead_fig, "Dead units per layer", height=300)
    grad_layers = [layer for layer in result.layers or [] if layer.update_ratio is not None and layer.update_ratio > 0]
    grad_fig = None
    if grad_layers:
        vals = [layer.update_ratio for layer in grad_layers]
        colors = ["#2f9e44" if UPDATE_LOW <= v <= UPDATE_HIGH else "#e03131" for v in vals]  # type: ignore[operator]
        grad_fig = go.Figure(go.Bar(x=[layer.name for layer in grad_layers], y=vals, marker_color=colors,
                                    customdata=[layer.gradient_score for layer in grad_layers],
                                    hovertemplate="%{x}: weights moved %{y:.2g} of their size; gradient health "
                                                  "%{customdata:.2f}<extra></extra>"))
        # shapes and ranges on a log axis are given in log10 units
        lo, hi = math.log10(UPDATE_LOW), math.log10(UPDATE_HIGH)
        grad_fig.add_hrect(y0=lo, y1=hi, fillcolor="rgba(47,158,68,0.08)", line_width=0,
                           annotation_text="healthy band", annotation_position="top left")
        span = [math.log10(v) for v in vals]  # type: ignore[arg-type]
        grad_fig.update_yaxes(type="log", title="update / weight size, per step",
                              range=[min(min(span), lo) - 0.5, max(max(span), hi) + 0.5])
        _layout(grad_fig, "How far each layer's weights moved", height=300)
    return dead_fig, grad_fig


def make_health_scatter(records: Sequence[TrialRecord], config: StudyConfig | None,
                        best: TrialRecord | None) -> "go.Figure":
    """Accuracy vs health for complete trials; the Pareto front drawn in pareto mode."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and r.health_score is not None]
    fig = go.Figure()
    fig.add_scatter(x=[r.val_accuracy for r in done], y=[r.health_score for r in done], mode="markers", name="trials",
                    text=[f"#{r.number}" for r in done], marker=dict(color=PLOT_COLOR["COMPLETE"], size=9, opacity=0.75),
                    hovertemplate="%{text}<br>val %{x:.3f}<br>health %{y:.3f}<extra></extra>")
    if config is not None and config.mode == "pareto":
        front = pareto_front(records)
        # A staircase through the front (sorted by accuracy, health falling): every trial under or left of
        # it is beaten on both by a front trial; a straight segment would cut through undominated space.
        fig.add_scatter(x=[r.val_accuracy for r in front], y=[r.health_score for r in front], mode="lines+markers",
                        name="Pareto front", text=[f"#{r.number}" for r in front],
                        line=dict(color=BEST_COLOR, dash="dash", shape="vh"), marker=dict(size=12, color=BEST_COLOR),
                        hovertemplate="%{text} (front)<br>val %{x:.3f}<br>health %{y:.3f}<extra></extra>")
    if best is not None and best.val_accuracy is not None and best.health_score is not None:
        fig.add_scatter(x=[best.val_accuracy], y=[best.health_score], mode="markers", name=f"best #{best.number}",
                        marker=dict(symbol="star", size=18, color=BEST_COLOR, line=dict(color="black", width=1)))
    fig.update_xaxes(title="validation accuracy")
    fig.update_yaxes(title="health score")
    return _layout(fig, "Accuracy vs health")


def _numeric_param(records: Sequence[TrialRecord], name: str) -> tuple[list[float], dict[str, Any]]:
    """Values of one param as numbers for an axis, with tick labels for categorical ones."""
    hp = HYPERPARAMETERS.get(name)
    values = [r.params.get(name) for r in records]
    if hp is not None and hp.kind in ("categorical", "bool") or any(isinstance(v, str) for v in values):
        cats = list(hp.range_dict()["choices"]) if hp is not None else sorted({str(v) for v in values})
        cats = [c for c in cats if c in values] or sorted({str(v) for v in values})
        idx = {str(c): i for i, c in enumerate(cats)}
        return [idx.get(str(v), 0) for v in values], dict(tickvals=list(range(len(cats))), ticktext=[str(c) for c in cats])
    nums = [float(v) if v is not None else math.nan for v in values]
    if hp is not None and hp.log:
        return [math.log10(v) if v and v > 0 else math.nan for v in nums], dict(label=f"log10 {name}")
    return nums, {}


def make_parallel_figure(records: Sequence[TrialRecord], config: StudyConfig | None) -> "go.Figure | None":
    """Parallel coordinates of the tuned params, coloured by the objective."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.result is not None]
    if len(done) < 2:
        return None
    names = [n for n in tuned_names(config, done) if n in done[0].params]
    dims = []
    for n in names:
        vals, extra = _numeric_param(done, n)
        dims.append(dict(label=extra.pop("label", n), values=vals, **extra))
    obj = [r.objective(config) if config else r.val_accuracy for r in done]
    dims.append(dict(label="objective", values=obj))
    fig = go.Figure(go.Parcoords(line=dict(color=obj, colorscale="Viridis", showscale=True), dimensions=dims))
    _layout(fig, "Parallel coordinates (complete trials)", height=420)
    return fig.update_layout(margin=dict(t=110, l=40, r=40))  # axis labels sit above the plot


def make_intermediate_figure(records: Sequence[TrialRecord]) -> "go.Figure | None":
    """Reported validation accuracy per epoch for every trial; pruned ones stand out."""
    import plotly.graph_objects as go

    with_values = [r for r in records if r.intermediate]
    if not with_values:
        return None
    fig = go.Figure()
    shown: set[str] = set()
    for r in with_values:
        steps = sorted(r.intermediate)
        fig.add_scatter(x=steps, y=[r.intermediate[s] for s in steps], mode="lines+markers", name=STATE_LABEL.get(r.state, r.state),
                        legendgroup=r.state, showlegend=r.state not in shown, opacity=0.9 if r.state != "COMPLETE" else 0.45,
                        line=dict(color=PLOT_COLOR.get(r.state, "#868e96"), dash="dot" if r.state == "PRUNED" else "solid"),
                        hovertemplate=f"#{r.number}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>")
        shown.add(r.state)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="validation accuracy (reported)")
    return _layout(fig, "Intermediate values")


def make_importance_figure(importances: dict[str, float]) -> "go.Figure":
    import plotly.graph_objects as go

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h", marker_color="#1c7ed6",
                           hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_xaxes(title="importance (share of objective variance explained)")
    return _layout(fig, "Hyperparameter importance", height=max(220, 40 * len(items) + 80))


def make_param_effect_figure(records: Sequence[TrialRecord], name: str) -> "go.Figure | None":
    """One hyperparameter against validation accuracy across the study's complete trials."""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.val_accuracy is not None and name in r.params]
    if len(done) < 2:
        return None
    hp = HYPERPARAMETERS.get(name)
    fig = go.Figure()
    if hp is not None and hp.kind in ("categorical", "bool"):
        fig.add_box(x=[str(r.params[name]) for r in done], y=[r.val_accuracy for r in done], boxpoints="all",
                    marker_color="#1c7ed6", name=name)
    else:
        fig.add_scatter(x=[r.params[name] for r in done], y=[r.val_accuracy for r in done], mode="markers",
                        text=[f"#{r.number}" for r in done],
                        marker=dict(color=[r.health_score or 0 for r in done], colorscale="RdYlGn", cmin=0, cmax=1,
                                    size=10, showscale=True, colorbar=dict(title="health")),
                        hovertemplate="%{text}<br>" + name + " %{x}<br>val %{y:.3f}<extra></extra>")
        if hp is not None and hp.log:
            fig.update_xaxes(type="log")
    fig.update_xaxes(title=name)
    fig.update_yaxes(title="validation accuracy")
    return _layout(fig, f"{name} vs validation accuracy in this study", height=300)


def make_metric_effect_figure(records: Sequence[TrialRecord], metric: str, best: TrialRecord | None) -> "go.Figure | None":
    """One health metric against validation accuracy: do health and accuracy agree in this study?"""
    import plotly.graph_objects as go

    done = [r for r in records if r.state == "COMPLETE" and r.result and (r.result.health or {}).get(metric) is not None]
    if len(done) < 2:
        return None
    fig = go.Figure()
    fig.add_scatter(x=[r.result.health[metric] for r in done], y=[r.val_accuracy for r in done], mode="markers",  # type: ignore[union-attr]
                    text=[f"#{r.number}" for r in done], marker=dict(color="#1c7ed6", size=9), name="trials",
                    hovertemplate="%{text}<br>" + metric + " %{x:.3f}<br>val %{y:.3f}<extra></extra>")
    if best is not None and best.result and (best.result.health or {}).get(metric) is not None:
        fig.add_scatter(x=[best.result.health[metric]], y=[best.val_accuracy], mode="markers", name=f"best #{best.number}",
                        marker=dict(symbol="star", size=16, color=BEST_COLOR))
    fig.update_xaxes(title=METRIC_INFO[metric]["title"], range=[-0.02, 1.02])
    fig.update_yaxes(title="validation accuracy")
    return _layout(fig, f"{METRIC_INFO[metric]['title']} vs accuracy in this study", height=300)


# One colour per compared trial (Plotly's qualitative "Plotly" palette, readable on both themes).
COMPARE_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
                  "#ff97ff", "#fecb52")


def make_compare_curves_figure(recs: Sequence[TrialRecord], metric: str = "accuracy") -> "go.Figure":
    """Several trials' training (dotted) and validation (solid) ``metric`` per epoch on one pair of
    axes; accuracy in percent on a fixed 0–100 % axis, so two such figures always read alike."""
    import plotly.graph_objects as go

    fig = go.Figure()
    pct = metric == "accuracy"
    longest = 1
    for i, r in enumerate(recs):
        h = (r.result.history if r.result else None) or {}
        color = COMPARE_COLORS[i % len(COMPARE_COLORS)]
        for key, dash, what in ((f"val_{metric}", "solid", "validation"), (metric, "dot", "training")):
            ys = [v for v in (h.get(key) or [])]
            if not ys:
                continue
            longest = max(longest, len(ys))
            ys = [None if v is None else (100 * v if pct else v) for v in ys]
            fig.add_scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=f"#{r.number} {what}",
                            legendgroup=f"#{r.number}", line=dict(color=color, dash=dash),
                            hovertemplate=f"#{r.number} {what}<br>epoch %{{x}}: %{{y:.{1 if pct else 3}f}}"
                                          f"{' %' if pct else ''}<extra></extra>")
    fig.update_xaxes(title="epoch", dtick=1 if longest <= 12 else None)
    if pct:
        fig.update_yaxes(title="accuracy (%)", range=[0, 100], ticksuffix=" %")
    else:
        fig.update_yaxes(title=metric)
    return _layout(fig, f"Training (dotted) and validation (solid) {metric}", height=380, legend="bottom")


def make_sparkline_figure(curve: Sequence[float], label: str = "val accuracy") -> "go.Figure":
    """A card's small curve: validation accuracy per epoch, with an epoch axis, a % axis and a hover."""
    import plotly.graph_objects as go

    xs = list(range(1, len(curve) + 1))
    fig = go.Figure(go.Scatter(x=xs, y=[100 * v for v in curve], mode="lines+markers", line=dict(color=PLOT_COLOR["COMPLETE"]),
                               marker=dict(size=4), hovertemplate=f"epoch %{{x}}: {label} %{{y:.1f}} %<extra></extra>"))
    lo = min(100 * v for v in curve)
    fig.update_xaxes(title=None, dtick=1 if len(xs) <= 10 else None, tickfont=dict(size=9), showgrid=False)
    fig.update_yaxes(title=None, ticksuffix=" %", range=[max(0.0, lo - 5), 100], nticks=3, tickfont=dict(size=9))
    fig.update_layout(height=110, margin=dict(l=0, r=0, t=4, b=0), showlegend=False)
    return fig


# --- experiments


def make_experiment_figures(rows: Sequence[Any], knob: str) -> tuple["go.Figure | None", "go.Figure | None"]:
    """A one-knob experiment (``core.experiment.experiment_table`` rows) against the knob's value: the
    accuracies with their 95 % margins as error bars, and the health metrics.  The x axis is the knob's:
    log for log knobs, categories for choice knobs.  None for a panel with fewer than two points."""
    import plotly.graph_objects as go

    from core.experiment import ACCURACIES, fmt_knob_value
    from core.health import METRICS

    hp = HYPERPARAMETERS.get(knob)
    categorical = hp is None or hp.kind in ("categorical", "bool")
    done = [r for r in rows if r.complete]

    def xs(points: Sequence[Any]) -> list[Any]:
        return [fmt_knob_value(r.value) if categorical else r.value for r in points]

    def finish(fig: "go.Figure", title: str, y: str) -> "go.Figure":
        fig.update_xaxes(title=knob, type="category" if categorical else ("log" if hp.log else "linear"))
        fig.update_yaxes(title=y)
        # seven health lines need two legend rows: under the plot, where they cannot cover the title
        return _layout(fig, title, height=360, legend="bottom" if len(fig.data) > 4 else "top")

    acc = go.Figure()
    for key, title, _ in ACCURACIES:
        points = [r for r in done if r.accuracy.get(key) is not None]
        if len(points) < 2:
            continue
        acc.add_scatter(x=xs(points), y=[100 * r.accuracy[key] for r in points], mode="lines+markers", name=title,
                        error_y=dict(type="data", array=[r.margin.get(key) or 0 for r in points], visible=True),
                        hovertemplate=knob + " %{x}<br>" + title + " %{y:.1f} %<extra></extra>")
    health = go.Figure()
    for key in METRICS:
        points = [r for r in done if r.health.get(key) is not None]
        if len(points) < 2:
            continue
        health.add_scatter(x=xs(points), y=[r.health[key] for r in points], mode="lines+markers",
                           name=METRIC_INFO[key]["title"])
    points = [r for r in done if r.health_score is not None]
    if len(points) >= 2:
        health.add_scatter(x=xs(points), y=[r.health_score for r in points], mode="lines+markers", name="Health score",
                           line=dict(width=4, color="#212529"))
    return (finish(acc, f"Accuracy vs {knob} (bars: 95 % sampling noise)", "accuracy (%)") if acc.data else None,
            finish(health, f"Health vs {knob}", "0 = unhealthy, 1 = healthy") if health.data else None)


# --- insight


def make_confusion_figure(confusion: Any, class_names: Sequence[str], split: str = "test") -> "go.Figure":
    """Confusion matrix heatmap: rows true class, columns predicted; colour is the share of the row, text the count."""
    import plotly.graph_objects as go

    rows = [[int(v) for v in row] for row in confusion]
    totals = [sum(r) or 1 for r in rows]
    share = [[100 * v / t for v in r] for r, t in zip(rows, totals)]
    names = [str(n) for n in class_names]
    many = len(names) > 20  # counts in 100x100 cells are unreadable: hover only
    fig = go.Figure(go.Heatmap(z=share, x=names, y=names, colorscale="Blues", zmin=0, zmax=100,
                               text=None if many else rows, texttemplate=None if many else "%{text}",
                               customdata=rows, colorbar=dict(title="% of row", ticksuffix=" %"),
                               hovertemplate="true %{y}, predicted %{x}: %{customdata} samples "
                                             "(%{z:.1f} % of the true class)<extra></extra>"))
    fig.update_xaxes(title="predicted class", type="category", tickangle=-45 if len(names) > 10 else 0)
    fig.update_yaxes(title="true class", type="category", autorange="reversed")
    height = min(900, max(340, 26 * len(names) + 140))
    return _layout(fig, f"Confusion matrix ({split} split)", height=height)


def make_class_accuracy_figure(accuracies: Sequence[float | None], margins: Sequence[float | None],
                               class_names: Sequence[str], split: str = "test") -> "go.Figure":
    """Per-class accuracy (%) with its 95 % margin as an error bar; classes without samples are left out."""
    import plotly.graph_objects as go

    keep = [i for i, a in enumerate(accuracies) if a is not None]
    fig = go.Figure(go.Bar(x=[str(class_names[i]) for i in keep], y=[100 * accuracies[i] for i in keep],  # type: ignore[operator]
                           error_y=dict(type="data", array=[margins[i] or 0.0 for i in keep], visible=True),
                           marker_color=PLOT_COLOR["COMPLETE"],
                           hovertemplate="%{x}: %{y:.1f} % ± %{error_y.array:.1f}<extra></extra>"))
    fig.update_xaxes(title="class", type="category")
    fig.update_yaxes(title=f"{split} accuracy (%)", range=[0, 105], ticksuffix=" %")
    return _layout(fig, f"Accuracy per class ({split} split, 95 % margins)", height=320)


def make_compare_class_figure(series: dict[str, Sequence[float | None]], class_names: Sequence[str],
                              split: str = "validation") -> "go.Figure":
    """Per-class accuracy of several trials side by side (grouped bars, one colour per trial)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = [str(n) for n in class_names]
    for label, accs in series.items():
        fig.add_trace(go.Bar(name=label, x=names, y=[None if a is None else 100 * a for a in accs],
                             hovertemplate=f"{label}, %{{x}}: %{{y:.1f}} %<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="class", type="category")
    fig.update_yaxes(title=f"{split} accuracy (%)", range=[0, 105], ticksuffix=" %")
    return _layout(fig, f"Accuracy per class ({split} split)", height=340)
