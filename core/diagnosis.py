"""Plain-language findings for one trial: what went wrong (or right) and what to try next.

:func:`diagnose` reads a :class:`~core.config.TrialResult` (its per-epoch history, the six
health metrics and the per-layer figures) and returns :class:`Finding` objects a learner can
act on, e.g. "loss diverged at epoch 3: lower the learning rate" or "38% of dense_1 never
fires: try leaky_relu or a lower learning rate".  Pure Python: no numpy, no Keras, no
Streamlit, so the health dashboard, the CLI and tests can all call it cheaply.

Thresholds are module constants with the reason for each value, so the text and the tests
agree on one number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from core import health as H
from core.config import TrialResult

__all__ = ["Finding", "SEVERITIES", "diagnose", "diagnose_many"]

# Most urgent first: the order findings are shown in.
SEVERITIES = ("critical", "warning", "info", "good")

# Share of a layer's units that never fire before we speak up: a few dead ReLUs are normal,
# a fifth is capacity paid for and wasted; half is a layer that has largely stopped learning.
DEAD_WARN = 0.20
DEAD_CRITICAL = 0.50
# Train minus validation accuracy, the gap convergence_quality scores (core.health.gap_score): a
# warning where it starts costing 10 % of the gap score, critical where it costs half.
GAP_WARN = H.GAP_OK + 0.1 * (H.GAP_ZERO - H.GAP_OK)
GAP_CRITICAL = H.GAP_OK + 0.5 * (H.GAP_ZERO - H.GAP_OK)
# A layer whose gradient score (core.health.layer_gradient_scores) is below this is worth a finding.
GRADIENT_SCORE_LOW = 0.5
# Parameter efficiency below this (and a model of real size) means the accuracy was bought
# with far more parameters than it needed.
EFFICIENCY_LOW = 0.35
OVERSIZED_MIN_PARAMS = 50_000
# Training stability below this means the training loss jumped around rather than fell.
STABILITY_LOW = 0.5
# Accuracy consistency below this means some classes are served far worse than sampling noise explains.
CONSISTENCY_LOW = 0.7
# Validation loss still falling by more than this fraction over the last epoch: more epochs may pay.
STILL_IMPROVING = 0.03


@dataclass(frozen=True)
class Finding:
    """One observation about a trial.

    Attributes:
        severity: "critical" (the model is broken), "warning" (it works, but something costs
            accuracy or health), "info" (worth knowing) or "good" (nothing to fix).
        title: one line, the headline a card shows.
        detail: the evidence behind it, in numbers from this trial.
        suggestion: what to change next, in the app's hyperparameter names.
        layer: the layer concerned, when the finding is about one layer.
        metric: the health metric it explains, when there is one (a METRIC_INFO key).
    """

    severity: str
    title: str
    detail: str
    suggestion: str
    layer: str | None = None
    metric: str | None = None

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity) if self.severity in SEVERITIES else len(SEVERITIES)


# --------------------------------------------------------------------------- helpers


def _num(v: Any) -> float | None:
    """A finite float, or None for missing/NaN/Inf (JSON stores NaN as None)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _series(result: TrialResult, key: str) -> list[float | None]:
    return [_num(v) for v in (result.history or {}).get(key, []) or []]


def _last(values: Sequence[float | None]) -> float | None:
    for v in reversed(values):
        if v is not None:
            return v
    return None


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _fmt_lr(value: Any) -> str:
    f = _num(value)
    return f"{f:.2g}" if f is not None else "its current value"


def _is_relu_family(activation: str) -> bool:
    return activation in ("relu", "")


# --------------------------------------------------------------------------- rules


def _divergence(result: TrialResult) -> list[Finding]:
    """Loss became NaN/Inf, or rose overall: the steps were too big."""
    raw = (result.history or {}).get("loss", []) or []
    losses = _series(result, "loss")
    lr = _fmt_lr(result.params.get("learning_rate"))
    # JSON keeps NaN/Inf as None, so a missing value in the loss series is where it diverged.
    bad_epoch = next((i + 1 for i, v in enumerate(losses) if v is None), None)
    error = (result.error or "").lower()
    if bad_epoch is None and ("nan" in error or "inf" in error) and "loss" in error:
        bad_epoch = len(raw) or 1
    if bad_epoch is not None:
        return [
            Finding(
                "critical",
                f"Loss diverged at epoch {bad_epoch}: lower the learning rate",
                f"The training loss became NaN/Inf at epoch {bad_epoch} with learning_rate {lr} "
                f"and optimizer {result.params.get('optimizer', 'adam')}; every weight after that is garbage.",
                "Lower learning_rate by 3-10x, turn on batch_norm, or use adam instead of sgd.",
                metric="training_stability",
            )
        ]
    finite = [v for v in losses if v is not None]
    if len(finite) >= 3 and finite[-1] > finite[0] * 1.05:
        return [
            Finding(
                "critical",
                "Training loss rose instead of falling",
                f"Loss went from {finite[0]:.3f} at epoch 1 to {finite[-1]:.3f} at epoch {len(finite)} "
                f"(learning_rate {lr}).",
                "Lower learning_rate; the optimiser is overshooting the minimum.",
                metric="training_stability",
            )
        ]
    return []


def _dead_units(result: TrialResult) -> list[Finding]:
    """Layers where many units carry no signal on held-out data, named truthfully per activation."""
    activation = str(result.params.get("activation", "relu"))
    batch_norm = result.params.get("batch_norm")
    out = []
    for layer in result.layers or []:
        dead = _num(layer.dead_fraction)
        if dead is None or dead < DEAD_WARN:
            continue
        kind = (layer.layer_type or "").lower()
        recurrent = "lstm" in kind
        act = "tanh" if recurrent else activation
        label = layer.dead_label or H.dead_label(act)
        units = f" ({round(dead * layer.units)} of {layer.units})" if layer.units else ""
        detail = f"{_pct(dead)} of {layer.name}'s units{units} {label}: they cost parameters and pass nothing on."
        if act == "relu":
            title = f"{_pct(dead)} of {layer.name} never fires"
            suggestion = "Try leaky_relu (or elu/gelu) or a lower learning_rate"
            if kind == "conv2d" and batch_norm is False:
                suggestion += "; batch_norm before the activation also keeps conv channels alive"
            suggestion += "."
        elif act in ("tanh", "sigmoid"):
            title = f"{_pct(dead)} of {layer.name} is saturated or constant"
            suggestion = ("Lower learning_rate or add dropout; saturated units recover slowly"
                          + (" (in an LSTM, fewer lstm_units or more data)." if recurrent else
                             ", and a relu-family activation does not saturate."))
        else:
            title = f"{_pct(dead)} of {layer.name} gives a constant output"
            suggestion = "Lower learning_rate, or use fewer units in this layer."
        out.append(
            Finding(
                "critical" if dead >= DEAD_CRITICAL else "warning",
                title,
                detail,
                suggestion,
                layer=layer.name,
                metric="neuron_utilization",
            )
        )
    return out


def _overfitting(result: TrialResult) -> list[Finding]:
    """Train accuracy well above validation accuracy, or validation loss turning up."""
    out = []
    # the measured train accuracy (no dropout, like validation) when there is one; else the last epoch's
    train = _num(result.train_accuracy) if result.train_accuracy is not None else _last(_series(result, "accuracy"))
    val = _num(result.val_accuracy) if result.val_accuracy is not None else _last(_series(result, "val_accuracy"))
    dropout = result.params.get("dropout")
    if train is not None and val is not None and train - val >= GAP_WARN:
        gap = train - val
        out.append(
            Finding(
                "critical" if gap >= GAP_CRITICAL else "warning",
                f"Overfitting: {100 * gap:.0f}-point gap between training and validation accuracy",
                f"Training accuracy {_pct(train)} against validation {_pct(val)} after training: the model "
                "memorises training examples instead of learning what generalises.",
                f"Raise dropout (now {dropout if dropout is not None else 'default'}), add weight_decay, "
                "use a smaller model, or train for fewer epochs.",
                metric="convergence_quality",
            )
        )
    vloss = [v for v in _series(result, "val_loss") if v is not None]
    if len(vloss) >= 3:
        best_i = min(range(len(vloss)), key=vloss.__getitem__)
        if best_i < len(vloss) - 1 and vloss[-1] > vloss[best_i] * 1.10:
            out.append(
                Finding(
                    "warning" if not out else "info",
                    f"Validation loss bottomed out at epoch {best_i + 1}",
                    f"Validation loss fell to {vloss[best_i]:.3f} at epoch {best_i + 1} and rose to {vloss[-1]:.3f} "
                    f"by epoch {len(vloss)}: later epochs made the model worse on unseen data.",
                    f"Train for about {best_i + 1} epochs, or add regularisation (dropout, weight_decay).",
                    metric="convergence_quality",
                )
            )
    return out


def _gradients(result: TrialResult) -> list[Finding]:
    """Layers whose weights barely move (stalled) or move by more than is safe (exploding)."""
    layers = [(layer, _num(layer.update_ratio), _num(layer.gradient_score)) for layer in result.layers or []]
    layers = [(layer, u, g) for layer, u, g in layers if u is not None and g is not None and g < GRADIENT_SCORE_LOW]
    out = []
    stalled = [(layer, u) for layer, u, _ in layers if u < H.UPDATE_LOW]
    exploding = [(layer, u) for layer, u, _ in layers if u > H.UPDATE_HIGH]
    lr = _fmt_lr(result.params.get("learning_rate"))
    if stalled:
        names = ", ".join(layer.name for layer, _ in stalled[:3]) + ("…" if len(stalled) > 3 else "")
        slowest = min(u for _, u in stalled)
        recurrent = any("lstm" in (layer.layer_type or "") for layer, _ in stalled)
        out.append(
            Finding(
                "critical" if len(stalled) * 2 >= len(result.layers or [1]) else "warning",
                f"Weights barely move in {names}",
                f"Per training step these layers' weights change by about {slowest:.1g} of their size "
                f"(healthy: {H.fmt_sci(H.UPDATE_LOW)} to {H.fmt_sci(H.UPDATE_HIGH)}): the gradient reaching them has vanished or the "
                f"step (learning_rate {lr}) is too small, so they hardly learn.",
                "Raise learning_rate, use adam instead of sgd, turn on batch_norm"
                + (", or fewer lstm_layers." if recurrent else ", or a relu-family activation instead of tanh."),
                layer=stalled[0][0].name,
                metric="gradient_health",
            )
        )
    if exploding:
        names = ", ".join(layer.name for layer, _ in exploding[:3]) + ("…" if len(exploding) > 3 else "")
        fastest = max(u for _, u in exploding)
        out.append(
            Finding(
                "critical" if fastest > H.UPDATE_HIGH * 10 else "warning",
                f"Exploding updates in {names}",
                f"Per training step these layers' weights change by about {fastest:.2g} of their size "
                f"(healthy: up to {H.fmt_sci(H.UPDATE_HIGH)}): steps this large overshoot.",
                "Lower learning_rate, turn on batch_norm, or use a larger batch_size.",
                layer=exploding[0][0].name,
                metric="gradient_health",
            )
        )
    return out


def _oversized(result: TrialResult, num_classes: int | None) -> list[Finding]:
    """Low efficiency because of size (a model that learned little has low efficiency for another reason)."""
    eff = _num((result.health or {}).get("parameter_efficiency"))
    acc = _num(result.val_accuracy)
    classes = num_classes or len(result.class_accuracy or []) or None
    if eff is None or acc is None or result.param_count < OVERSIZED_MIN_PARAMS or eff >= EFFICIENCY_LOW:
        return []
    gain = H.skill(acc, classes) if classes else None
    if gain is None or gain < 2 * EFFICIENCY_LOW or eff / gain > 0.5:
        return []  # not at least twice the parameter budget: the low score comes from low accuracy
    return [
        Finding(
            "warning",
            "The model is larger than its accuracy needs",
            f"{result.param_count:,} parameters for {_pct(acc)} validation accuracy: {gain / eff:.1f}x the parameter "
            f"budget the efficiency metric allows (efficiency {eff:.2f}); a smaller model would likely do as well and "
            "train faster.",
            "Use fewer filters / dense_units / lstm_units, or head=global_avg instead of flatten.",
            metric="parameter_efficiency",
        )
    ]


def _stability(result: TrialResult, already: Iterable[Finding]) -> list[Finding]:
    if any(f.metric == "training_stability" for f in already):
        return []  # divergence already explains the instability
    s = _num((result.health or {}).get("training_stability"))
    if s is None or s >= STABILITY_LOW:
        return []
    return [
        Finding(
            "warning",
            "Training loss jumps around",
            f"Training stability is {s:.2f}: many training batches had a loss far above the trend of their "
            "neighbours, or the loss rose again after falling.",
            f"Lower learning_rate (now {_fmt_lr(result.params.get('learning_rate'))}), use a larger batch_size, or turn on batch_norm.",
            metric="training_stability",
        )
    ]


def _class_names(result: TrialResult) -> tuple[str, ...]:
    try:
        from core.datasets import get_info

        return tuple(get_info(result.dataset).class_names)
    except Exception:  # noqa: BLE001 - an unknown or custom data set: fall back to class numbers
        return ()


def _consistency(result: TrialResult) -> list[Finding]:
    c = _num((result.health or {}).get("accuracy_consistency"))
    if c is None or c >= CONSISTENCY_LOW:
        return []
    recall = [_num(v) for v in (result.class_accuracy or [])]
    names = _class_names(result)
    worst = sorted((v, i) for i, v in enumerate(recall) if v is not None)[:3]
    detail = f"Accuracy consistency is {c:.2f}: the model serves some classes far worse than others, more than chance explains."
    if worst:
        label = lambda i: f"'{names[i]}'" if i < len(names) else f"class {i}"  # noqa: E731
        detail += " Worst: " + ", ".join(f"{label(i)} {_pct(v)}" for v, i in worst)
        if result.val_accuracy is not None:
            detail += f" of its validation samples right, against {_pct(result.val_accuracy)} overall."
        never = [i for v, i in worst if v == 0.0]
        if never:
            detail += f" It never gets {', '.join(label(i) for i in never)} right."
    return [
        Finding(
            "critical" if c < CONSISTENCY_LOW / 2 else "warning",
            "Some classes are served much worse than others",
            detail,
            "Check the class balance of the training data (max_samples keeps classes balanced), train longer, "
            "or use a larger model; the confusion between similar classes often needs more capacity.",
            metric="accuracy_consistency",
        )
    ]


def _underfit(result: TrialResult, num_classes: int | None) -> list[Finding]:
    acc = _num(result.val_accuracy)
    if acc is None or not num_classes or num_classes < 2:
        return []
    chance = 1.0 / num_classes
    if acc > chance + 0.5 * (1 - chance) * 0.2:  # more than 10% of the way from chance to perfect
        return []
    return [
        Finding(
            "critical",
            "Barely better than guessing",
            f"Validation accuracy {_pct(acc)} against {_pct(chance)} for a random guess among {num_classes} classes.",
            "Check the learning_rate (too low learns nothing, too high diverges), train more epochs, or use a larger model.",
            metric="convergence_quality",
        )
    ]


def _still_improving(result: TrialResult) -> list[Finding]:
    vloss = [v for v in _series(result, "val_loss") if v is not None]
    if len(vloss) < 2 or vloss[-2] <= 0:
        return []
    drop = (vloss[-2] - vloss[-1]) / vloss[-2]
    if drop < STILL_IMPROVING:
        return []
    return [
        Finding(
            "info",
            "Still improving at the last epoch",
            f"Validation loss fell {100 * drop:.0f}% in the last epoch ({vloss[-2]:.3f} → {vloss[-1]:.3f}).",
            "More epochs would probably raise accuracy; tune epochs or raise the study's epoch budget.",
            metric="convergence_quality",
        )
    ]


def _stopped(result: TrialResult) -> list[Finding]:
    if result.status != "stopped":
        return []
    return [
        Finding(
            "info",
            f"Stopped early after {result.epochs_run} epoch(s)",
            "The pruner stopped this trial (or the study was cancelled): its validation accuracy after "
            f"{result.epochs_run} epoch(s) was behind other trials at the same point.",
            "Nothing to fix: pruning saves time for more promising settings.",
        )
    ]


# --------------------------------------------------------------------------- public


def diagnose(result: TrialResult | None, num_classes: int | None = None) -> list[Finding]:
    """Findings for one trial, most urgent first.

    Args:
        result: what the trial produced; ``None`` (still running, or no record) gives no findings.
        num_classes: classes in the data set; enables the "barely better than guessing" check.

    Returns:
        A list of :class:`Finding`, sorted critical → warning → info → good. A complete trial
        with nothing to report gets one "good" finding, so a screen never shows an empty list
        without explanation.
    """
    if result is None:
        return []
    findings: list[Finding] = []
    findings += _divergence(result)
    if result.status == "failed" and not findings:
        findings.append(
            Finding(
                "critical",
                "The trial failed",
                result.error or "The trial ended with an error and produced no model.",
                "Read the error; a ConfigError names the setting to change.",
            )
        )
    findings += _stopped(result)
    if result.status != "failed":
        findings += _underfit(result, num_classes)
        findings += _dead_units(result)
        findings += _overfitting(result)
        findings += _gradients(result)
        findings += _oversized(result, num_classes)
        findings += _stability(result, findings)
        findings += _consistency(result)
        if result.status == "complete":
            findings += _still_improving(result)
    if result.status == "complete" and not any(f.severity in ("critical", "warning") for f in findings):
        score = _num(result.health_score)
        findings.append(
            Finding(
                "good",
                "No health problems found",
                (f"Health score {score:.2f}: " if score is not None else "")
                + "no dead units, stalled or exploding layers, loss spikes, overfitting or neglected classes "
                "crossed their warning thresholds.",
                "Compare it with other trials: a smaller model with the same accuracy would be even healthier.",
            )
        )
    # stable sort keeps rule order within a severity (most specific rules run first)
    return sorted(findings, key=lambda f: f.rank)


def diagnose_many(results: Iterable[TrialResult | None], num_classes: int | None = None) -> dict[int, list[Finding]]:
    """Findings per trial number, for study-wide summaries."""
    return {r.trial_number: diagnose(r, num_classes) for r in results if r is not None}

