"""The six health metrics and the composite health score.

Pure numpy on statistics collected during a trial (training.py collects them), so each
metric can be pinned by tests with constructed inputs.  Every metric lies in [0, 1],
higher is healthier, and ``None`` means "could not be measured" (it is then left out
of the composite instead of being guessed).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

# Composite weights. Utilisation and convergence weigh most: dead capacity and an
# unsettled or overfitting run are the two failures a test accuracy hides best.
WEIGHTS: dict[str, float] = {
    "neuron_utilization": 0.20,
    "parameter_efficiency": 0.15,
    "training_stability": 0.15,
    "gradient_health": 0.15,
    "convergence_quality": 0.20,
    "accuracy_consistency": 0.15,
}

METRICS: tuple[str, ...] = tuple(WEIGHTS)  # the six metric names, in display order

METRIC_INFO: dict[str, dict[str, str]] = {
    "neuron_utilization": {
        "title": "Neuron utilisation",
        "meaning": "Share of units (dense neurons, conv channels, LSTM units) that fire on held-out data. "
        "A dead unit never fires: it costs parameters and compute and contributes nothing.",
        "formula": "1 - dead units / all units, over every dense, conv and LSTM layer, on a probe batch of validation data.",
        "low_means": "Dead ReLUs (try leaky_relu/elu, a lower learning rate, batch normalisation) or saturated tanh/LSTM units.",
    },
    "parameter_efficiency": {
        "title": "Parameter efficiency",
        "meaning": "Accuracy gained over chance per parameter. Two models with the same accuracy: the smaller one is healthier.",
        "formula": "gain / (1 + 0.5 * max(0, log10(params / baseline))), gain = (acc - chance) / (1 - chance) clipped to [0, 1], "
        "baseline = input size x classes (a linear model's parameter count).",
        "low_means": "The model is larger than the accuracy it buys: fewer filters/units or a global-average head.",
    },
    "training_stability": {
        "title": "Training stability",
        "meaning": "How smoothly the training loss falls from epoch to epoch. Jumps and oscillation mean the steps are too big.",
        "formula": "net decrease / total variation of the per-epoch training loss (1 = falls monotonically); 0 if the loss rose overall or became NaN/Inf; not measured after a single epoch.",
        "low_means": "Learning rate too high, batch too small, or no normalisation.",
    },
    "gradient_health": {
        "title": "Gradient health",
        "meaning": "Whether every layer receives a useful gradient: neither vanishing (the layer stops learning) nor exploding.",
        "formula": "mean over layers and epochs of a per-layer score (1 inside 1e-5..1e1, falling by decade outside), "
        "times a penalty when layers' norms differ by more than 4 decades.",
        "low_means": "Vanishing: deep tanh stacks, too many LSTM layers. Exploding: learning rate too high, no normalisation.",
    },
    "convergence_quality": {
        "title": "Convergence quality",
        "meaning": "Did validation loss improve well beyond chance, settle near its best, and stay close to training accuracy?",
        "formula": "mean of improvement (1 - best val loss / ln(classes)), settling (best / final val loss) and "
        "gap score (1 - (train acc - val acc) / 0.2).",
        "low_means": "Overfitting (more dropout, weight decay, fewer epochs) or not learning at all.",
    },
    "accuracy_consistency": {
        "title": "Accuracy consistency",
        "meaning": "Whether accuracy holds across different slices of the validation data, not just on average.",
        "formula": "1 - coefficient of variation of accuracy over 5 disjoint validation folds.",
        "low_means": "The model is right on some kinds of input and wrong on others; more data or regularisation.",
    },
}

# Activations whose units are "on" only for positive output; other units (tanh, LSTM)
# count as dead when their output no longer varies (saturated).
_POSITIVE_FIRING = {"relu", "leaky_relu", "elu", "gelu", "swish", "silu"}
FIRE_EPS = 1e-6
SATURATION_STD = 1e-3


def dead_units(activations: np.ndarray, activation: str = "relu") -> np.ndarray:
    """Boolean mask of dead units for one layer's activations.

    Args:
        activations: shape (batch, ..., units); all axes but the last are pooled.
        activation: the layer's activation name.

    Returns:
        A (units,) boolean array, True where the unit never fired on the probe batch.
    """
    a = np.asarray(activations, dtype=np.float64)
    flat = a.reshape(-1, a.shape[-1])
    if not np.all(np.isfinite(flat)):
        return ~np.all(np.isfinite(flat), axis=0) | (np.nanmax(np.where(np.isfinite(flat), flat, -np.inf), axis=0) <= FIRE_EPS)
    if activation in _POSITIVE_FIRING:
        return flat.max(axis=0) <= FIRE_EPS
    return flat.std(axis=0) < SATURATION_STD


def neuron_utilization(dead_fractions: Mapping[str, float], units: Mapping[str, int]) -> float | None:
    """1 - (dead units / all units), weighting each layer by its unit count."""
    total = sum(units[name] for name in dead_fractions)
    if total == 0:
        return None
    dead = sum(dead_fractions[name] * units[name] for name in dead_fractions)
    return float(np.clip(1.0 - dead / total, 0.0, 1.0))


def parameter_efficiency(accuracy: float | None, num_classes: int, param_count: int, baseline_params: int) -> float | None:
    """Accuracy gained over chance, discounted by half a point per decade of size above a linear model.

    Bounded in [0, 1], never negative, and strictly lower for a bigger model at equal accuracy.
    """
    if accuracy is None or not math.isfinite(accuracy) or param_count <= 0:
        return None
    chance = 1.0 / max(num_classes, 2)
    gain = float(np.clip((accuracy - chance) / (1.0 - chance), 0.0, 1.0))
    decades = max(0.0, math.log10(param_count / max(baseline_params, 1)))
    return gain / (1.0 + 0.5 * decades)


def training_stability(losses: Sequence[float | None]) -> float | None:
    """Net decrease of the training loss divided by its total variation; 0 for NaN/Inf or a rise."""
    if not losses:
        return None
    vals = [float("nan") if v is None else float(v) for v in losses]
    if not all(math.isfinite(v) for v in vals):
        return 0.0
    if len(vals) == 1:
        return None  # one epoch shows no trend: not measured, rather than a flattering 1.0
    arr = np.array(vals)
    total_variation = float(np.abs(np.diff(arr)).sum())
    net = float(arr[0] - arr[-1])
    if net <= 0:
        return 0.0
    return float(np.clip(net / total_variation, 0.0, 1.0)) if total_variation > 0 else 1.0


GRAD_LOW, GRAD_HIGH = 1e-5, 1e1  # healthy per-layer gradient norm band (measured on trained models)


def _grad_score(norm: float) -> float:
    if not math.isfinite(norm):
        return 0.0
    if norm <= 0:
        return 0.0
    lg = math.log10(norm)
    if lg < math.log10(GRAD_LOW):
        return math.exp(-(math.log10(GRAD_LOW) - lg))
    if lg > math.log10(GRAD_HIGH):
        return math.exp(-(lg - math.log10(GRAD_HIGH)))
    return 1.0


def gradient_health(grad_norms: Mapping[str, Sequence[float]]) -> float | None:
    """Score per-layer gradient norms collected on a fixed batch (one list per layer, one value per epoch).

    Each norm scores 1 inside [1e-5, 10] and decays by a factor e per decade outside.
    Per epoch, a spread of more than 4 decades between the largest and smallest layer
    norm (some layers learn, others do not) multiplies the score by 1 / (1 + excess/2).
    """
    if not grad_norms:
        return None
    series = {k: [float(v) for v in vs] for k, vs in grad_norms.items() if len(vs)}
    if not series:
        return None
    n_epochs = max(len(v) for v in series.values())
    epoch_scores = []
    for e in range(n_epochs):
        norms = [vs[e] for vs in series.values() if e < len(vs)]
        if any(not math.isfinite(n) for n in norms):
            epoch_scores.append(0.0)
            continue
        base = float(np.mean([_grad_score(n) for n in norms]))
        positive = [n for n in norms if n > 0]
        spread = math.log10(max(positive) / min(positive)) if len(positive) >= 2 else 0.0
        epoch_scores.append(base / (1.0 + max(0.0, spread - 4.0) / 2.0))
    return float(np.clip(np.mean(epoch_scores), 0.0, 1.0))


def convergence_quality(
    val_losses: Sequence[float | None],
    train_accuracy: float | None,
    val_accuracy: float | None,
    num_classes: int,
) -> float | None:
    """Mean of improvement over chance, settling near the best, and a small train/val gap."""
    vals = [float(v) for v in val_losses if v is not None]
    if not vals:
        return None
    if not all(math.isfinite(v) for v in vals):
        return 0.0
    chance_loss = math.log(max(num_classes, 2))
    best, final = min(vals), vals[-1]
    improvement = float(np.clip(1.0 - best / chance_loss, 0.0, 1.0))
    settle = float(np.clip(best / final, 0.0, 1.0)) if final > 0 else 1.0
    gap = 0.0 if train_accuracy is None or val_accuracy is None else max(0.0, train_accuracy - val_accuracy)
    gap_score = float(np.clip(1.0 - gap / 0.2, 0.0, 1.0))
    return (improvement + settle + gap_score) / 3.0


def accuracy_consistency(fold_accuracies: Iterable[float]) -> float | None:
    """1 - coefficient of variation of accuracy over disjoint validation folds."""
    accs = np.array([a for a in fold_accuracies if a is not None and math.isfinite(a)], dtype=float)
    if len(accs) < 2:
        return None
    mean = accs.mean()
    if mean <= 0:
        return 0.0
    return float(np.clip(1.0 - accs.std() / mean, 0.0, 1.0))


def fold_accuracies(correct: np.ndarray, folds: int = 5, seed: int = 0) -> list[float]:
    """Accuracy on ``folds`` disjoint, shuffled slices of a per-sample correctness vector."""
    correct = np.asarray(correct, dtype=float)
    if len(correct) < folds * 2:
        return []
    idx = np.random.default_rng(seed).permutation(len(correct))
    return [float(correct[part].mean()) for part in np.array_split(idx, folds)]


def composite(metrics: Mapping[str, float | None], weights: Mapping[str, float] = WEIGHTS) -> float | None:
    """Weighted mean of the measured metrics (unmeasured ones are left out and the weights renormalised)."""
    pairs = [(weights[k], v) for k, v in metrics.items() if k in weights and v is not None and math.isfinite(v)]
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    return float(sum(w * v for w, v in pairs) / total)
