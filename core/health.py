"""The six health metrics, the per-layer health and the composite score: one definition each.

Pure numpy on figures collected while a trial trains (``core.monitor.HealthMonitor``) and on
held-out data after it (``core.training``).  :func:`measure` takes those figures as one plain
dict, so a benchmark can keep them and re-score a trained model, and every screen that shows
health (the dashboard, the diagnosis, the 3D colours, Learn) imports its definitions from
here.  Every metric lies in [0, 1], higher is healthier; ``None`` means "could not be
measured" (it is then left out of the composite rather than guessed).

Each definition was chosen on a pathology benchmark (``bench/bench_health_validity.py``):
real models trained through ``run_trial`` with dead units, vanishing gradients, unstable
training, overfitting, bloat and class collapse against healthy controls, several seeds,
digits and Fashion-MNIST.  Its table is in bench/README.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------- the composite

# Composite weights (a weighted geometric mean, see :func:`composite`). Utilisation, efficiency and
# convergence weigh most: dead capacity, bloat and a model that learned little or overfits are what
# an accuracy figure hides best.  Consistency weighs least: part of the spread between classes belongs
# to the data (Fashion-MNIST's shirts), not the model.  With these weights every pathology of the
# benchmark lands >= 0.15 below the healthy controls (bench/README.md).
WEIGHTS: dict[str, float] = {
    "neuron_utilization": 0.20,
    "parameter_efficiency": 0.20,
    "training_stability": 0.15,
    "gradient_health": 0.15,
    "convergence_quality": 0.20,
    "accuracy_consistency": 0.10,
}

METRICS: tuple[str, ...] = tuple(WEIGHTS)  # the six metric names, in display order
FLOOR = 0.02  # a metric at 0 counts as this in the geometric mean (so one zero is not -inf)

# --------------------------------------------------------------------------- dead units

FIRE_EPS = 1e-6  # a ReLU output at or below this is "off"
SATURATED = 0.99  # |tanh| above this is saturated: the unit's gradient is < 2 % of its peak
SATURATED_SHARE = 0.99  # a bounded unit saturated on this share of probe outputs is stuck
CONSTANT_REL = 0.01  # a unit whose spread is below 1 % of its layer's typical spread is constant
CONSTANT_ABS = 1e-3  # ... or below this absolute spread when the whole layer is flat

DEAD_LABELS = {
    "relu": "never fire (output 0 on every held-out input)",
    "tanh": "are saturated at ±1 or constant on held-out inputs",
    "other": "are constant (about the same output for every held-out input)",
}


def dead_label(activation: str) -> str:
    """What "dead" means for units with this activation, in words a user can check."""
    if activation == "relu":
        return DEAD_LABELS["relu"]
    if activation in ("tanh", "sigmoid"):
        return DEAD_LABELS["tanh"]
    return DEAD_LABELS["other"]


def unit_statistics(activations: np.ndarray) -> dict[str, Any]:
    """Per-unit figures of one layer's outputs on the probe batch (all axes but the last pooled).

    Returns lists (one value per unit) ``std``, ``max``, ``min``, ``saturated`` (share of
    outputs with |a| > SATURATED) and the layer's overall ``mean``.  Non-finite outputs make
    a unit's figures NaN (it then counts as dead).
    """
    a = np.asarray(activations, dtype=np.float32)
    flat = a.reshape(-1, a.shape[-1])
    ok = np.isfinite(flat)
    finite = ok.all(axis=0)
    safe = flat if finite.all() else np.where(ok, flat, 0.0)
    std = np.where(finite, safe.std(axis=0, dtype=np.float64), np.nan)
    mx = np.where(finite, safe.max(axis=0), np.nan)
    mn = np.where(finite, safe.min(axis=0), np.nan)
    sat = np.where(finite, np.count_nonzero(np.abs(safe) > SATURATED, axis=0) / max(1, len(safe)), np.nan)
    r = lambda v: [float(f"{x:.4g}") if math.isfinite(x) else None for x in v]  # noqa: E731 - compact JSON
    return {"std": r(std), "max": r(mx), "min": r(mn), "saturated": r(sat),
            "mean": float(np.mean(safe, dtype=np.float64)) if safe.size else 0.0}


def dead_units(stats: Mapping[str, Any], activation: str) -> np.ndarray:
    """Boolean mask of units that carry no information on held-out data.

    ReLU units that never output a positive value; tanh units (and LSTM outputs) saturated
    at ±1 on almost every input; and, for every activation, units whose output barely varies
    (near-constant).  A leaky-ReLU, ELU, GELU or swish unit that is never positive is *not*
    dead: its negative side still passes a signal, so only near-constant counts for them.
    """
    std = np.array([np.nan if v is None else v for v in stats["std"]], dtype=float)
    mx = np.array([np.nan if v is None else v for v in stats["max"]], dtype=float)
    sat = np.array([np.nan if v is None else v for v in stats["saturated"]], dtype=float)
    broken = ~np.isfinite(std)
    typical = float(np.nanmedian(std)) if np.any(~broken) else 0.0
    constant = np.nan_to_num(std, nan=0.0) < max(CONSTANT_ABS, CONSTANT_REL * typical)
    dead = broken | constant
    if activation == "relu":
        dead |= np.nan_to_num(mx, nan=0.0) <= FIRE_EPS
    elif activation in ("tanh", "sigmoid"):
        dead |= np.nan_to_num(sat, nan=1.0) >= SATURATED_SHARE
    return dead


def neuron_utilization(dead_fractions: Mapping[str, float], units: Mapping[str, int]) -> float | None:
    """The geometric mean over layers of each layer's share of live units (each at least 1 %).

    Per layer rather than per unit, and geometric: a conv layer with 90 % of its channels dead
    starves every layer after it, and neither a wide healthy dense layer nor a healthy
    neighbour may average that away.
    """
    shares = [max(0.01, 1.0 - min(1.0, max(0.0, dead_fractions[name]))) for name in dead_fractions if units.get(name)]
    if not shares:
        return None
    return float(np.clip(np.exp(np.mean(np.log(shares))), 0.0, 1.0))


# --------------------------------------------------------------------------- efficiency

# The reference budget: this many times a linear model's parameter count (pixels x classes for
# images, vocabulary x classes for text).  The product's default CNNs use 54x (Fashion-MNIST) to 83x
# (digits); the benchmark's bloated models 275x to 1 060x.
REFERENCE_SCALE = 80


def skill(accuracy: float, num_classes: int) -> float:
    """Accuracy gained over guessing, as a share of what was there to gain: 0 at chance, 1 at 100 %."""
    chance = 1.0 / max(num_classes, 2)
    return float(np.clip((accuracy - chance) / (1.0 - chance), 0.0, 1.0))


def parameter_efficiency(accuracy: float | None, num_classes: int, param_count: int, baseline_params: int) -> float | None:
    """Accuracy gained over chance, per parameter beyond a reference budget.

    ``skill(accuracy) x min(1, budget / params)`` with budget = REFERENCE_SCALE x a linear
    model's parameter count: full marks within the budget, and past it the score falls in
    proportion to the size (twice the parameters for the same accuracy: half the score).
    Bounded in [0, 1] and never negative.
    """
    if accuracy is None or not math.isfinite(accuracy) or param_count <= 0:
        return None
    budget = max(baseline_params, 1) * REFERENCE_SCALE
    return skill(accuracy, num_classes) * min(1.0, budget / param_count)


# --------------------------------------------------------------------------- stability

SPIKE_RATIO = 1.5  # a batch whose loss is this many times its neighbours' median is a spike
SPIKE_WINDOW = 9  # neighbours: the median of this many batches around it
SPIKE_FLOOR = 0.10  # losses below this share of the chance loss are all "near zero": no spike among them
SPIKE_SHARE = 0.04  # a spike share this large halves the score (healthy controls on the benchmark: 0-1.5 %)
REGRESSION = 0.10  # the epoch loss rising this far above its earlier minimum (x chance loss) halves it


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    padded = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)


def stability_parts(batch_losses: Sequence[float | None], num_classes: int, steps_per_epoch: int) -> dict[str, float] | None:
    """``spikes``: share of batches whose loss is SPIKE_RATIO x the median of their neighbours or more;
    ``regression``: the largest rise of an epoch's mean loss above the lowest before it, in units
    of the chance loss ln(classes).  None when there are too few batches to judge."""
    x = np.asarray([np.nan if v is None else v for v in batch_losses], dtype=float)
    if len(x) < SPIKE_WINDOW:
        return None
    if not np.all(np.isfinite(x)):
        return {"spikes": 1.0, "regression": math.inf}
    chance = math.log(max(num_classes, 2))
    floor = SPIKE_FLOOR * chance
    trend = _running_median(x, SPIKE_WINDOW)
    spikes = float(np.mean((x + floor) / (trend + floor) > SPIKE_RATIO))
    n = max(1, int(steps_per_epoch))
    epochs = np.array([x[i:i + n].mean() for i in range(0, len(x), n)])
    regression = float(np.max(epochs - np.minimum.accumulate(epochs))) / chance
    return {"spikes": spikes, "regression": regression}


def training_stability(batch_losses: Sequence[float | None], num_classes: int, steps_per_epoch: int) -> float | None:
    """1 / (1 + (spikes / SPIKE_SHARE)^3) x 1 / (1 + (regression / REGRESSION)^2); 0 for NaN/Inf."""
    p = stability_parts(batch_losses, num_classes, steps_per_epoch)
    if p is None:
        return None
    if not math.isfinite(p["regression"]):
        return 0.0
    return float(1.0 / (1.0 + (p["spikes"] / SPIKE_SHARE) ** 3) / (1.0 + (p["regression"] / REGRESSION) ** 2))


# --------------------------------------------------------------------------- gradients

# Healthy update-to-weight ratio of one training step: how far a layer's weights move in one
# step, as a share of their size (measured exactly on the middle step of every epoch).
# Healthy models on the pathology benchmark: 7e-4 to 1e-2; stalled ones 5e-6 to 4e-5.
UPDATE_LOW, UPDATE_HIGH = 3e-4, 1e-1
UPDATE_FALLOFF = 1.5  # decades outside the band at which a layer's score reaches 0
DEPTH_DECADES = 2.0  # first vs last layer's relative gradient further apart than this: vanishing with depth
# Embeddings are left out: only the rows of the tokens in a batch move, so their ratio is no signal.
_DEPTH_KINDS = {"conv2d", "dense", "lstm", "bilstm", "output"}


def _band(value: float, low: float, high: float, falloff: float = UPDATE_FALLOFF) -> float:
    """1 inside [low, high], falling linearly in log10 to 0 at ``falloff`` decades outside; 0 for 0/NaN/Inf."""
    if not math.isfinite(value) or value <= 0:
        return 0.0
    lg = math.log10(value)
    if lg < math.log10(low):
        return max(0.0, 1.0 - (math.log10(low) - lg) / falloff)
    if lg > math.log10(high):
        return max(0.0, 1.0 - (lg - math.log10(high)) / falloff)
    return 1.0


def update_rates(layers: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per weighted layer (embeddings and normalisation left out), the update-to-weight ratio of one step, each epoch."""
    out = {}
    for r in layers:
        if r.get("kind") not in _DEPTH_KINDS or not r.get("weight_norm") or not r.get("step_update_norm"):
            continue
        out[r["name"]] = [u / w if w and w > 0 and math.isfinite(u / w) else float("nan")
                          for u, w in zip(r["step_update_norm"], r["weight_norm"])]
    return out


def layer_gradient_scores(layers: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each weighted layer's gradient health: the median over epochs of its update rate scored against the band."""
    out = {}
    for name, rates in update_rates(layers).items():
        vals = [v for v in rates if math.isfinite(v)]
        out[name] = _band(float(np.median(vals)), UPDATE_LOW, UPDATE_HIGH) if vals else 0.0
    return out


def depth_spread(layers: Sequence[Mapping[str, Any]]) -> float | None:
    """Decades between the last and the first weighted layer's relative gradient (gradient / weight norm)."""
    rows = [r for r in layers if r.get("kind") in _DEPTH_KINDS and r.get("weight_norm") and r.get("grad_norm")]
    if len(rows) < 2:
        return None

    def rel(r):
        vals = [g / w for g, w in zip(r["grad_norm"], r["weight_norm"]) if g is not None and w > 0 and g > 0]
        return float(np.median(vals)) if vals else None

    first, last = rel(rows[0]), rel(rows[-1])
    if not first or not last:
        return math.inf
    return math.log10(last / first)


def gradient_health(layers: Sequence[Mapping[str, Any]]) -> float | None:
    """Mean of the per-layer scores, divided by 1 + the depth spread beyond DEPTH_DECADES."""
    scores = layer_gradient_scores(layers)
    if not scores:
        return None
    base = float(np.mean(list(scores.values())))
    spread = depth_spread(layers)
    if spread is None:
        return base
    if not math.isfinite(spread):
        return 0.0
    return float(np.clip(base / (1.0 + max(0.0, spread - DEPTH_DECADES)), 0.0, 1.0))


# --------------------------------------------------------------------------- convergence

# Train minus validation accuracy (both measured without dropout): up to GAP_OK is ordinary
# (small validation sets); the gap part then falls linearly to 0 at GAP_ZERO (overfitting).
GAP_OK, GAP_ZERO = 0.05, 0.25


def gap_score(gap: float) -> float:
    """The generalisation-gap part of convergence quality: 1 up to GAP_OK, 0 from GAP_ZERO."""
    return float(np.clip(1.0 - (gap - GAP_OK) / (GAP_ZERO - GAP_OK), 0.0, 1.0))


def convergence_parts(val_losses: Sequence[float | None], train_accuracy: float | None, val_accuracy: float | None,
                      num_classes: int) -> dict[str, float] | None:
    vals = [float(v) for v in val_losses if v is not None]
    if not vals:
        return None
    if not all(math.isfinite(v) for v in vals):
        return {"learned": 0.0, "settle": 0.0, "gap": 1.0}
    chance_loss = math.log(max(num_classes, 2))
    best, final = min(vals), vals[-1]
    learned = float(np.clip(1.0 - best / chance_loss, 0.0, 1.0))
    settle = float(np.clip(best / final, 0.0, 1.0)) if final > 0 else 1.0
    gap = 0.0 if train_accuracy is None or val_accuracy is None else max(0.0, train_accuracy - val_accuracy)
    return {"learned": learned, "settle": settle, "gap": gap}


def convergence_quality(val_losses: Sequence[float | None], train_accuracy: float | None, val_accuracy: float | None,
                        num_classes: int) -> float | None:
    """learned x settling x gap score: a model that learned nothing scores 0 whatever else holds."""
    p = convergence_parts(val_losses, train_accuracy, val_accuracy, num_classes)
    if p is None:
        return None
    return float(math.sqrt(p["learned"]) * p["settle"] * gap_score(p["gap"]))


# --------------------------------------------------------------------------- consistency


def per_class_recall(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall of each class and its number of samples (classes with no sample get NaN)."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(predictions, dtype=int)
    counts = np.bincount(y, minlength=num_classes).astype(float)
    hits = np.bincount(y[p == y], minlength=num_classes).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(counts > 0, hits / counts, np.nan)
    return recall, counts


def accuracy_consistency(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> float | None:
    """How evenly the model serves its classes, beyond what sampling noise alone would give.

    The spread of per-class recall is compared with the spread a model of the same accuracy
    would show if its errors fell on classes at random (binomial noise, per class size); only
    the excess counts.  Score = 1 - excess spread / accuracy, and never above the worst
    class's recall (plus its noise allowance) relative to the accuracy: a model that never
    predicts some class scores near 0.
    """
    recall, counts = per_class_recall(labels, predictions, num_classes)
    ok = counts > 0
    if ok.sum() < 2:
        return None
    r, n = recall[ok], counts[ok]
    acc = float((r * n).sum() / n.sum())
    if acc <= 0:
        return 0.0
    noise_var = acc * (1 - acc) / n
    excess_var = max(0.0, float(np.average((r - acc) ** 2, weights=n) - np.average(noise_var, weights=n)))
    spread = 1.0 - math.sqrt(excess_var) / acc
    worst = int(np.argmin(r))
    floor = min(1.0, (r[worst] + 2.0 * math.sqrt(noise_var[worst])) / acc)
    return float(np.clip(min(spread, floor), 0.0, 1.0))


# --------------------------------------------------------------------------- words for the screens


def fmt_sci(x: float) -> str:
    """1e-4 rather than 0.0001 or 1e-04."""
    mant, exp = f"{x:.0e}".split("e")
    return f"{mant}e{int(exp)}" if int(exp) < -2 else f"{x:g}"


COMPOSITE_HELP = (
    "A weighted geometric mean of the six metrics: a model is only as healthy as its weakest part, so one "
    "metric near 0 pulls the score down hard instead of being averaged away by five good ones."
)
UPDATE_RATIO_HELP = (
    "How far the layer's weights move in one training step, as a share of their size (measured on the middle "
    f"step of each epoch; median over epochs). Healthy: {fmt_sci(UPDATE_LOW)} to {fmt_sci(UPDATE_HIGH)}."
)
GRADIENT_HELP = (
    f"Each layer's update-to-weight ratio per step scored against the healthy band {fmt_sci(UPDATE_LOW)}..{fmt_sci(UPDATE_HIGH)}: "
    f"1 inside it, falling to 0 {UPDATE_FALLOFF:g} decades outside. Far below: the gradient reaching the layer has vanished (or the "
    "step is too small) and it barely learns; far above: exploding updates."
)

METRIC_INFO: dict[str, dict[str, str]] = {
    "neuron_utilization": {
        "title": "Neuron utilisation",
        "meaning": "How much of each layer (dense neurons, conv channels, LSTM units) carries information on held-out data. "
        "A dead unit costs parameters and compute and passes nothing on.",
        "formula": "The geometric mean over dense, conv and LSTM layers of each layer's share of live units (at least "
        "1 %), on up to 512 validation samples: a layer that is mostly dead pulls the score down however wide "
        "its neighbours are. "
        "Dead means: for ReLU, never positive; for tanh and LSTM outputs, saturated at ±1 on "
        f"{SATURATED_SHARE:.0%} of outputs or constant; for leaky ReLU, ELU, GELU and swish (whose negative side "
        f"still passes a signal), constant: a spread below {CONSTANT_REL:.0%} of the layer's typical unit.",
        "low_means": "Dying ReLUs (a lower learning rate, leaky_relu/elu/gelu, batch normalisation in conv blocks) or "
        "saturated tanh/LSTM units (a lower learning rate).",
    },
    "parameter_efficiency": {
        "title": "Parameter efficiency",
        "meaning": "Accuracy gained over chance per parameter. Two models with the same accuracy: the smaller one is "
        "healthier.",
        "formula": "skill x min(1, budget / parameters); skill = (accuracy - chance) / (1 - chance) clipped to [0, 1]; "
        f"budget = {REFERENCE_SCALE} x a linear model's parameter count (pixels x classes for images, vocabulary x "
        "classes for text). Twice the budget for the same accuracy scores half.",
        "low_means": "The model is larger than the accuracy it buys (fewer filters/units, a global-average head), or "
        "it learned little.",
    },
    "training_stability": {
        "title": "Training stability",
        "meaning": "Whether the training loss fell smoothly, batch by batch, or spiked and bounced back up.",
        "formula": f"1 / (1 + (spikes / {SPIKE_SHARE:g})^3) x 1 / (1 + (rise / {REGRESSION:g})^2): spikes = share of "
        f"batches whose loss is {SPIKE_RATIO:g}x or more the median of the {SPIKE_WINDOW} batches around it; rise = the "
        "largest climb of an epoch's mean loss above the lowest before it, over the chance loss ln(classes). "
        "NaN/Inf is 0.",
        "low_means": "Steps too big for the batch: a lower learning rate, a larger batch, batch normalisation, or adam "
        "instead of sgd.",
    },
    "gradient_health": {
        "title": "Gradient health",
        "meaning": "Whether every layer keeps learning at a useful rate: its weights neither frozen (vanishing gradient, "
        "too small a step) nor thrown around (exploding).",
        "formula": GRADIENT_HELP + f" The mean over layers, divided by 1 + the decades beyond {DEPTH_DECADES:g} by "
        "which the first layer's relative gradient (gradient / weight size) trails the last layer's.",
        "low_means": "Vanishing: deep tanh stacks without batch normalisation, a tiny learning rate, sgd at a low rate. "
        "Exploding: too high a learning rate.",
    },
    "convergence_quality": {
        "title": "Convergence quality",
        "meaning": "Did the model learn far beyond chance, settle at its best, and generalise what it learned?",
        "formula": "sqrt(learned) x settling x gap score; learned = 1 - best validation loss / ln(classes) (0 for a "
        "model that learned nothing, whatever else holds); settling = best / final validation loss; gap score = 1 "
        f"up to a {GAP_OK:.0%} train-validation accuracy gap, falling to 0 at {GAP_ZERO:.0%}.",
        "low_means": "Overfitting (more dropout, weight decay, more data, fewer epochs) or not learning at all.",
    },
    "accuracy_consistency": {
        "title": "Accuracy consistency",
        "meaning": "Whether the model serves every class alike, beyond the differences sampling noise alone would make.",
        "formula": "1 - (spread of per-class validation accuracy beyond binomial noise) / accuracy, and never above "
        "(worst class's accuracy + 2 standard errors) / accuracy: a model that never predicts a class scores ~0.",
        "low_means": "Some classes are neglected: imbalanced training data, too little data or capacity for the "
        "classes that look alike.",
    },
}


# --------------------------------------------------------------------------- one trial


def composite(metrics: Mapping[str, float | None], weights: Mapping[str, float] = WEIGHTS) -> float | None:
    """Weighted geometric mean of the measured metrics (unmeasured ones left out, weights renormalised).

    Geometric, not arithmetic: a model is only as healthy as its weakest part, so one metric
    near 0 pulls the score down hard instead of being averaged away by five good ones.
    """
    pairs = [(weights[k], v) for k, v in metrics.items() if k in weights and v is not None and math.isfinite(v)]
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    return float(math.exp(sum(w * math.log(max(FLOOR, min(1.0, v))) for w, v in pairs) / total))


@dataclass
class HealthReport:
    """The metrics, the composite and the per-layer figures of one trained model."""

    metrics: dict[str, float | None]
    score: float | None
    layers: list[dict[str, Any]] = field(default_factory=list)


def measure(stats: Mapping[str, Any]) -> HealthReport:
    """Every health figure of one trained model from the figures collected while it trained.

    Args:
        stats: ``num_classes``, ``batch_losses``, ``steps_per_epoch``, ``history`` (per-epoch
            ``val_loss``), ``layers`` (``HealthMonitor.layers``), ``units`` (per unit layer:
            name, layer_type, units, activation and :func:`unit_statistics`), ``val_labels``,
            ``val_predictions``, ``train_accuracy``, ``val_accuracy``, ``param_count`` and
            ``baseline_params`` (a linear model's parameter count).
    """
    c = int(stats["num_classes"])
    dead: dict[str, float] = {}
    unit_counts: dict[str, int] = {}
    by_name: dict[str, dict[str, Any]] = {}
    for u in stats.get("units") or []:
        mask = dead_units(u, u["activation"])
        dead[u["name"]] = float(mask.mean()) if mask.size else 0.0
        unit_counts[u["name"]] = int(u["units"])
        by_name[u["name"]] = {"name": u["name"], "layer_type": u["layer_type"], "units": int(u["units"]),
                              "dead_fraction": dead[u["name"]], "dead_label": dead_label(u["activation"]),
                              "activation_mean": u.get("mean")}
    layers = stats.get("layers") or []
    steps = int(stats.get("steps_per_epoch") or 1)
    grad_scores = layer_gradient_scores(layers)
    rates = update_rates(layers)
    out_layers = []
    for rec in layers:
        row = by_name.get(rec["name"], {"name": rec["name"], "layer_type": rec.get("kind", ""), "units": 0})
        measured = [g for g in rec.get("grad_norm") or [] if g is not None]
        if measured:
            row["grad_norm"] = measured[-1]
        finite = [v for v in rates.get(rec["name"], []) if math.isfinite(v)]
        if finite:
            row["update_ratio"] = float(np.median(finite))
        row["gradient_score"] = grad_scores.get(rec["name"])
        out_layers.append(row)
    history = stats.get("history") or {}
    metrics = {
        "neuron_utilization": neuron_utilization(dead, unit_counts),
        "parameter_efficiency": parameter_efficiency(stats.get("val_accuracy"), c, int(stats.get("param_count") or 0),
                                                     int(stats.get("baseline_params") or 1)),
        "training_stability": training_stability(stats.get("batch_losses") or [], c, steps),
        "gradient_health": gradient_health(layers),
        "convergence_quality": convergence_quality(history.get("val_loss", []), stats.get("train_accuracy"),
                                                   stats.get("val_accuracy"), c),
        "accuracy_consistency": accuracy_consistency(stats.get("val_labels") or [], stats.get("val_predictions") or [], c),
    }
    return HealthReport(metrics=metrics, score=composite(metrics), layers=out_layers)


def layer_health(dead_fraction: float | None, gradient_score: float | None) -> float | None:
    """One layer's health in [0, 1]: the worse of its live-unit share and its gradient score.

    A layer is as healthy as its worst symptom (half its units dead is a problem even if its
    gradients are fine).  ``None`` when neither was measured.  The dashboard and the 3D view
    both colour layers with this.
    """
    parts = []
    if dead_fraction is not None and math.isfinite(float(dead_fraction)):
        parts.append(1.0 - min(1.0, max(0.0, float(dead_fraction))))
    if gradient_score is not None and math.isfinite(float(gradient_score)):
        parts.append(min(1.0, max(0.0, float(gradient_score))))
    return min(parts) if parts else None


EVIDENCE_FILE = Path(__file__).resolve().parent / "evidence" / "health_robustness.json"


def robustness_evidence() -> dict[str, Any] | None:
    """What ``bench/bench_health_robustness.py`` measured (does health predict shifted accuracy?), or None."""
    try:
        return json.loads(EVIDENCE_FILE.read_text())
    except (OSError, ValueError):
        return None


def evidence_sentences(evidence: Mapping[str, Any] | None = None) -> list[str]:
    """The measured answer to "does a healthier model hold up better?", one sentence per data set.

    Built from :func:`robustness_evidence` so the Learn screen says exactly what was measured
    and nothing more.
    """
    evidence = evidence if evidence is not None else robustness_evidence()
    if not evidence:
        return []
    out = []
    for name, d in (evidence.get("datasets") or {}).items():
        corr = (d.get("residual_correlation") or {}).get("health")
        if not corr:
            continue
        lo, hi = corr["ci95"]
        verdict = ("held up better on shifted data" if lo > 0 else "held up worse on shifted data" if hi < 0
                   else "did not clearly hold up better or worse on shifted data")
        studies = f"{d['studies']} stud{'y' if d['studies'] == 1 else 'ies'}"
        text = (f"**{name}** ({d['trials']} trials in {studies}): among trials of similar validation "
                f"accuracy, healthier ones {verdict} (Spearman ρ = {corr['rho']:+.2f}, 95 % interval "
                f"{lo:+.2f} to {hi:+.2f}).")
        pairs = d.get("pairs") or {}
        if pairs.get("pairs"):
            text += (f" Of {pairs['pairs']} pairs within {100 * pairs['within']:.0f} point of validation accuracy, the "
                     f"healthier trial had the higher shifted accuracy in {100 * pairs['healthier_holds_up_better']:.0f} %.")
        picks = d.get("picks")
        if picks:
            n = len(picks["studies"])
            text += (f" Choosing by {1 - evidence.get('health_weight', 0.3):.0%} accuracy + "
                     f"{evidence.get('health_weight', 0.3):.0%} health instead of accuracy alone picked another trial in "
                     f"{n - picks['same_trial']} of {n} studies, changing shifted accuracy by "
                     f"{100 * picks['shifted_diff_mean']:+.1f} points on average "
                     f"(test accuracy {100 * picks['test_diff_mean']:+.1f}).")
        out.append(text)
    supported = [n for n, d in (evidence.get("datasets") or {}).items()
                 if ((d.get("residual_correlation") or {}).get("health") or {}).get("ci95", [0])[0] > 0]
    if out and not supported:
        out.append("So far, then, health tells you *what is wrong inside* a model (the pathology benchmark shows each "
                   "metric catching its problem), but it has not been shown to predict how a model holds up on "
                   "shifted data beyond what its validation accuracy already says.")
    return out
