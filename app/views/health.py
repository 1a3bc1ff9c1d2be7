"""Health dashboard: why a model is (un)healthy, beyond its accuracy.

* This trial (the best by default): the six metrics with what each means, a plain-language
  diagnosis, dead units and weight-update rates per layer, training vs validation curves with the
  overfitting gap marked, where the model goes wrong (confusion matrix, per-class accuracy, the
  misclassified test examples, from ``insight.npz``), and the trial's files.
* Whole study: hyperparameter importance, accuracy vs health (Pareto front in pareto mode),
  parallel coordinates, and every trial's reported values (pruned ones visible).
* Compare: any number of trials side by side (curves overlaid, differences highlighted).

Tabs track which one is open, so only the visible tab's charts are computed.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import streamlit as st

from app import PAGE_VIEWER
from app import figures as FIG
from app import format as FMT
from app import inside as INSIDE
from app import widgets as W
from app import state
from app.views.experiment import render_knob_experiment
from core import artifacts
from core import insight as INS
from core.config import ConfigError, StudyConfig
from core.diagnosis import diagnose
from core.health import COMPOSITE_HELP
from core.shift import DESCRIPTION as SHIFT_DESCRIPTION
from core.study import FINISHED, TrialRecord, best_record

MIN_IMPORTANCE_TRIALS = 5  # fANOVA on fewer complete trials says more about noise than about the params



# Why a compared trial has no health figures (health is measured when a trial trains to its end).
_NOT_MEASURED = {
    "PRUNED": "pruned before its last epoch, so its health was not measured",
    "FAIL": "failed, so its health was not measured",
    "RUNNING": "still running: its health is measured when it finishes",
}

def _num_classes(config: StudyConfig | None) -> int | None:
    if config is None:
        return None
    try:
        from core.datasets import get_info

        return get_info(config.dataset).num_classes
    except ConfigError:
        return None


def render_trial(rec: TrialRecord, records: list[TrialRecord], name: str, config: StudyConfig | None,
                 best: TrialRecord | None) -> None:
    """One trial's health, most actionable first."""
    res = rec.result
    assert res is not None  # only trials with a result are offered
    head = f"### Trial #{rec.number} {FMT.state_badge(rec.state)}"
    if best is not None and rec.number == best.number:
        head += " :orange-badge[:material/trophy: best]"
    st.markdown(head)
    st.caption(FMT.key_params(rec, FMT.tuned_names(config, [rec])))
    if rec.state == "FAIL":
        st.subheader("Why it failed")
        W.render_failure(rec, key=f"health-fail-{rec.number}", full=True)
    c = st.columns(5)
    c[0].metric("Validation accuracy", FMT.fmt_pct(res.val_accuracy), help="What the study optimised (validation split).")
    c[1].metric("Test accuracy", FMT.fmt_pct(res.test_accuracy),
                help="Measured once on data the study never optimised on: the honest estimate.")
    c[2].metric("Shifted accuracy", FMT.fmt_pct(res.shifted_accuracy), help=SHIFT_DESCRIPTION)
    c[3].metric("Health score", FMT.fmt_score(res.health_score), help=COMPOSITE_HELP)
    c[4].metric("Parameters", FMT.fmt_count(res.param_count))
    noise = FMT.noise_text(res.val_accuracy, res.val_samples)
    if noise:
        st.caption(f"Validation accuracy {FMT.fmt_pct(res.val_accuracy)} {noise}: trials closer than this "
                   "are a tie, whatever their order.")

    st.subheader("Diagnosis")
    W.render_findings(diagnose(res, _num_classes(config)))

    st.subheader("Six health metrics")
    W.render_health_metrics(res, FMT.metric_medians(records))

    st.subheader("Layers")
    dead_fig, grad_fig = FIG.make_layer_figures(res)
    left, right = st.columns(2)
    with left:
        if dead_fig is not None:
            st.plotly_chart(dead_fig, key="dead-units")
        else:
            st.caption("No per-layer firing data for this trial.")
    with right:
        if grad_fig is not None:
            st.plotly_chart(grad_fig, key="grad-norms")
        else:
            st.caption("No weight-update figures for this trial (trained before they were measured).")

    st.subheader("Training vs validation")
    if res.history:
        left, right = st.columns(2)
        left.plotly_chart(FIG.make_curves_figure(res, "accuracy"), key="curves-accuracy")
        right.plotly_chart(FIG.make_curves_figure(res, "loss"), key="curves-loss")
        st.caption("The shaded band between the lines is the train/validation gap: wide means overfitting.")
    else:
        st.caption("No per-epoch history for this trial.")

    render_errors(rec, name)

    st.subheader("Files")
    W.render_trial_downloads(rec, name, key=f"health-dl-{rec.number}", horizontal=True)
    W.nav_link(PAGE_VIEWER, "See this model in 3D", ":material/view_in_ar:")
    render_knob_experiment(name, rec, config)


GALLERY_COLUMNS = 4
IMAGE_PX = 84  # gallery images are scaled up to about this width (nearest neighbour: pixels stay pixels)
MAX_WORDS = 60  # a text in the gallery is cut after this many words


def example_caption(ins: INS.Insight, ex: INS.Example) -> str:
    """'true 3 → predicted 9 (87 %)' for one example."""
    name = lambda c: ins.class_names[c] if 0 <= c < len(ins.class_names) else str(c)  # noqa: E731
    return f"{name(ex.true)} → {name(ex.predicted)} ({100 * ex.confidence:.0f} %)"


def render_errors(rec: TrialRecord, name: str) -> None:
    """Where the model goes wrong on the test split: confusion matrix, per-class accuracy, and the
    misclassified examples, each with a way into the 3D viewer."""
    st.subheader("Where the model goes wrong")
    ins = INSIDE.insight_of(rec)
    if ins is None:
        why = ("it did not finish training" if rec.state != "COMPLETE"
               else "it was trained before these were recorded, or its insight.npz file is gone")
        st.caption(f"No confusion matrix or misclassified examples for trial #{rec.number}: {why}.")
        return
    n_test = int(ins.confusion.sum())
    wrong_total = n_test - int(np.trace(ins.confusion))
    st.caption(f"On the {n_test} test samples the study never optimised on: {wrong_total} misclassified.")
    left, right = st.columns(2)
    left.plotly_chart(FIG.make_confusion_figure(ins.confusion, ins.class_names), key=f"confusion-{rec.number}")
    totals = ins.confusion.sum(axis=1)
    accs = ins.class_accuracy
    margins = [FMT.accuracy_margin(a, int(t)) for a, t in zip(accs, totals)]
    right.plotly_chart(FIG.make_class_accuracy_figure(accs, margins, ins.class_names), key=f"class-acc-{rec.number}")
    table = pd.DataFrame({
        "class": ins.class_names,
        "test samples": [int(t) for t in totals],
        "correct": [int(ins.confusion[i, i]) for i in range(len(totals))],
        "accuracy": [None if a is None else round(100 * a, 1) for a in accs],
        "± (95 %)": [None if m is None else round(m, 1) for m in margins],
    })
    with st.expander("Per-class test accuracy, with each class's sample count"):
        st.dataframe(table, hide_index=True, width="stretch", key=f"class-table-{rec.number}",
                     column_config={"accuracy": st.column_config.NumberColumn("accuracy (%)", format="%.1f")})
        st.caption("± is the 95 % Wilson margin for that class's sample count: a class with few samples can look "
                   "much better or worse than it is.")
    render_misclassified(ins, rec, name)
    c1, c2 = st.columns(2)
    for col, made, label, mime in ((c1, artifacts.insight_json(name, rec.result), "Errors (JSON)", "application/json"),
                                   (c2, artifacts.insight_csv(name, rec.result), "Per-class accuracy (CSV)", "text/csv")):
        if made is not None:
            col.download_button(label, data=made[1], file_name=made[0], mime=mime, on_click="ignore",
                                key=f"dl-errors-{mime}-{rec.number}", icon=":material/download:", width="stretch")


def render_misclassified(ins: INS.Insight, rec: TrialRecord, name: str) -> None:
    """The kept misclassified test examples, most confident mistakes first, each with "Look inside"."""
    wrong = [e for e in ins.examples if e.role == "misclassified"]
    what = "texts" if ins.kind == "text" else "images"
    if not wrong:
        st.caption("No test example was misclassified.")
        return
    st.markdown(f"**Misclassified test {what}**, the most confident mistakes first (true → predicted, confidence)")
    for start in range(0, len(wrong), GALLERY_COLUMNS):
        cols = st.columns(GALLERY_COLUMNS)
        for col, ex in zip(cols, wrong[start:start + GALLERY_COLUMNS]):
            with col.container(border=True, key=f"wrong-{rec.number}-{ex.index}"):
                caption = example_caption(ins, ex)
                if ex.image is not None:
                    st.image(INSIDE.enlarged(ex.image, IMAGE_PX), caption=caption, output_format="PNG")
                else:
                    words = ex.words or []
                    text = " ".join(words[:MAX_WORDS]) + (" …" if len(words) > MAX_WORDS else "")
                    st.markdown(f"> {text}" if text else "> (empty text)")
                    st.caption(caption)
                if st.button("Look inside", key=f"inside-{rec.number}-{ex.index}", icon=":material/view_in_ar:",
                             help="Open this example in the 3D viewer: each layer's output for it."):
                    INSIDE.look_inside(name, rec.number, ex.index)


def render_study(records: list[TrialRecord], name: str, config: StudyConfig | None, best: TrialRecord | None) -> None:
    """Study-wide views: what mattered, and how accuracy and health trade off."""
    n_complete = sum(1 for r in records if r.state == "COMPLETE")
    st.subheader("Which hyperparameters mattered")
    if n_complete < MIN_IMPORTANCE_TRIALS:
        st.info(f"Importance needs at least {MIN_IMPORTANCE_TRIALS} complete trials; this study has {n_complete}.")
    else:
        try:
            method, imps = W.param_importances(state.storage_url(), name, n_complete,
                                               config.mode if config else "simple")
        except Exception as exc:  # noqa: BLE001 - e.g. every trial used the same value of each param
            st.info(f"Importance could not be measured yet: {FMT.plain(exc)}")
        else:
            if imps:
                st.plotly_chart(FIG.make_importance_figure(imps), key="importance")
                st.caption(f"{method}: how much of the objective's variation each hyperparameter explains "
                           f"(over {n_complete} complete trials).")
    st.plotly_chart(FIG.make_health_scatter(records, config, best), key="acc-health")
    if config is not None and config.mode == "pareto":
        st.caption("Large orange points on the dashed staircase: the Pareto front, the trials no other trial beats on "
                   "both accuracy and health. Every trial below and left of the staircase is beaten on both by a "
                   "front trial. The star is the trial ranked best by the blend.")
    par = FIG.make_parallel_figure(records, config)
    if par is not None:
        st.plotly_chart(par, key="parallel")
        st.caption("Each line is a trial, coloured by its objective: follow the bright lines to see which values win.")
    inter = FIG.make_intermediate_figure(records)
    st.subheader("Reported values per epoch")
    if inter is not None:
        st.plotly_chart(inter, key="intermediate")
        st.caption("What the pruner saw: dotted orange lines are trials it stopped early.")
    else:
        st.caption("No per-epoch reports (pareto studies are not pruned, so they report none).")


MAX_COMPARED = 10  # one colour each in the overlay; more lines than that no one can follow
DEFAULT_COMPARED = 3


def _style_compare(df: pd.DataFrame):
    """Rows where the trials differ are tinted; the leading trial's cell of such a row is bold."""

    def row_style(row: pd.Series) -> list[str]:
        base = "background-color: rgba(250, 176, 5, 0.18)" if row["differs"] else ""
        return [base + ("; font-weight: 700" if row["best"] and c == row["best"] else "") for c in row.index]

    return df.style.apply(row_style, axis=1)


def render_compare(candidates: list[TrialRecord], name: str, config: StudyConfig | None, best: TrialRecord | None,
                   records: list[TrialRecord]) -> None:
    """Any number of trials side by side: curves overlaid on shared axes, every field in a table
    with the fields where they differ highlighted."""
    usable = [r for r in candidates if r.result is not None]
    if len(usable) < 2:
        st.info("Comparing needs two finished trials with results.")
        return
    numbers = [r.number for r in usable]
    by_number = {r.number: r for r in usable}
    stored = state.compared_trials(name)
    if stored is None:  # nothing picked yet: the best few
        stored = [n for n in FMT.top_trials(records, config, DEFAULT_COMPARED) if n in by_number]
        stored = stored if len(stored) >= 2 else numbers[:2]
    picked = [n for n in stored if n in by_number][:MAX_COMPARED]
    key = f"cmp-pick-{name}"
    st.session_state[key] = picked  # the one pick: the gallery's picks and the top N land here too

    def _top() -> None:
        n = int(st.session_state[f"cmp-topn-{name}"])
        if 2 <= n <= MAX_COMPARED:
            state.compare_trials(name, [t for t in FMT.top_trials(records, config, n) if t in by_number])
        else:
            st.session_state[f"cmp-topn-bad-{name}"] = True

    left, mid, right = st.columns([6, 1, 2], vertical_alignment="bottom")
    mid.number_input("Top N", value=min(DEFAULT_COMPARED, len(numbers)), step=1, key=f"cmp-topn-{name}")
    right.button("Pick the top N", key=f"cmp-top-{name}", icon=":material/leaderboard:", width="stretch",
                 on_click=_top, help="The N best complete trials by the study's objective.")
    if st.session_state.pop(f"cmp-topn-bad-{name}", False):
        st.warning(f"Top N: choose from 2 to {MAX_COMPARED} trials.")
    chosen = left.multiselect("Trials to compare", numbers, key=key, max_selections=MAX_COMPARED,
                              format_func=lambda n: FMT.trial_label(by_number[n], best),
                              on_change=lambda: state.compare_trials(name, st.session_state[key]),
                              help="Add trials from the gallery, pick here, or take the top N.")
    if len(chosen) < 2:
        st.info("Pick at least two trials to compare.")
        return
    recs = [by_number[n] for n in chosen]
    rows = FMT.compare_rows(recs, config)
    df = pd.DataFrame(rows)
    n_diff = int(df["differs"].sum())
    st.caption(f"{len(recs)} trials; the {n_diff} highlighted row{'s' if n_diff != 1 else ''} differ, "
               "and the leading trial of a row where more (or fewer, for parameters and time) is better is in bold.")
    st.dataframe(_style_compare(df), hide_index=True, width="stretch",
                 column_config={"differs": None, "best": st.column_config.TextColumn("leads")})
    render_compare_classes(recs, config)
    acc = FIG.make_compare_curves_figure(recs, "accuracy")
    st.plotly_chart(acc, key="cmp-curves-accuracy")
    st.plotly_chart(FIG.make_compare_curves_figure(recs, "loss"), key="cmp-curves-loss")
    for rec in recs:
        if rec.result is None or rec.health_score is None:  # nothing was measured: say so, never "healthy"
            st.caption(f"#{rec.number}: " + _NOT_MEASURED.get(rec.state, "health was not measured"))
            continue
        findings = diagnose(rec.result)
        worst = [f for f in findings if f.severity in ("critical", "warning")]
        st.caption(f"#{rec.number}: " + ("; ".join(FMT.plain(f.title) for f in worst) if worst else "no health problems found"))


def render_compare_classes(recs: list[TrialRecord], config: StudyConfig | None) -> None:
    """Per-class accuracy of the compared trials side by side: validation recall (recorded by every
    complete trial since it was added) or the test split's (from the trial's insight file)."""
    st.markdown("**Accuracy per class**")
    split = st.radio("Per-class accuracy on", ["validation", "test"], horizontal=True, key="cmp-class-split",
                     help="Validation: the split the study optimised on. Test: from the trial's insight file, on data "
                          "the study never optimised on. Older trials may lack either.")
    series: dict[str, list[float | None]] = {}
    missing: list[int] = []
    for r in recs:
        if split == "validation":
            accs = list(r.result.class_accuracy) if r.result is not None and r.result.class_accuracy else None
        else:
            ins = INSIDE.insight_of(r)
            accs = ins.class_accuracy if ins is not None else None
        if accs is None:
            missing.append(r.number)
        else:
            series[f"#{r.number}"] = accs
    n_classes = max((len(v) for v in series.values()), default=0)
    names: list[str] = [str(i) for i in range(n_classes)]
    if config is not None:
        try:
            from core.datasets import get_info

            known = [str(n) for n in get_info(config.dataset).class_names]
            names = known[:n_classes] if len(known) >= n_classes else names
        except ConfigError:
            pass
    series = {k: (list(v) + [None] * n_classes)[:n_classes] for k, v in series.items()}
    if series:
        st.plotly_chart(FIG.make_compare_class_figure(series, names, split), key="cmp-class-acc")
        st.dataframe(pd.DataFrame({"class": names, **{k: [None if a is None else round(100 * a, 1) for a in v]
                                                    for k, v in series.items()}}),
                     hide_index=True, width="stretch", key="cmp-class-table")
    if missing:
        why = "recorded before per-class accuracy was" if split == "validation" else "no insight file"
        st.caption(f"No {split}-split per-class figures for " + ", ".join(f"#{n}" for n in missing) + f" ({why}).")


def main() -> None:
    st.title("Model health")
    summary = W.pick_study("health-study")
    if summary is None:
        return
    name = summary.name
    records = W.read_records_or_note(name)
    if records is None:
        return
    config = summary.config
    W.follow_study(name, records, summary, "the trial list and the study's charts")
    best = best_record(records, config)
    candidates = [r for r in records if r.result is not None and r.state in FINISHED]
    if not candidates:
        st.info("No trial has finished yet. Health is measured when a trial completes; watch the Trials screen.")
        return
    numbers = [r.number for r in candidates]
    by_number = {r.number: r for r in candidates}
    sel = state.selected_trial(name)
    default = sel if sel in by_number else best.number if best is not None else numbers[-1]
    chosen = st.selectbox("Trial", numbers, index=numbers.index(default), key=f"health-trial-{name}",
                          format_func=lambda n: FMT.trial_label(by_number[n], best),
                          help="The best trial (by the study's mode) is chosen unless you pick another.")
    state.select_trial(name, chosen)
    t_trial, t_study, t_cmp = st.tabs(["This trial", "Whole study", "Compare"], key="health-tab", on_change="rerun")
    with t_trial:
        if t_trial.open:
            render_trial(by_number[chosen], records, name, config, best)
    with t_study:
        if t_study.open:
            render_study(records, name, config, best)
    with t_cmp:
        if t_cmp.open:
            render_compare(candidates, name, config, best, records)


main()
