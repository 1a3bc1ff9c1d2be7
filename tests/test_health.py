"""core.health's definitions pinned on constructed inputs (the real-model checks are in test_health_validity.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import health as H


def _stats(acts: np.ndarray) -> dict:
    return H.unit_statistics(acts)


# --------------------------------------------------------------------------- dead units


def test_relu_units_that_never_fire_are_dead():
    rng = np.random.default_rng(0)
    acts = np.abs(rng.normal(size=(64, 6, 6, 10))) + 0.01
    assert not H.dead_units(_stats(acts), "relu").any()
    acts[..., :6] = 0.0
    assert H.dead_units(_stats(acts), "relu").sum() == 6
    # per layer, geometric: 40 % live in one layer and all live in the other gives sqrt(0.4), not 0.7
    assert H.neuron_utilization({"conv_1": 0.6, "dense_1": 0.0}, {"conv_1": 10, "dense_1": 1000}) == pytest.approx(0.4 ** 0.5)
    assert H.neuron_utilization({"conv_1": 1.0, "dense_1": 0.0}, {"conv_1": 10, "dense_1": 10}) == pytest.approx(0.1)


def test_leaky_relu_unit_that_is_never_positive_is_not_dead():
    """The issue's case: a leaky-ReLU unit between -1.54 and -0.91 passes a signal, so it is alive."""
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(200, 4))
    acts[:, 0] = rng.uniform(-1.54, -0.91, 200)  # never positive, but varies
    acts[:, 1] = -0.3  # constant: dead whatever the activation
    assert H.dead_units(_stats(acts), "leaky_relu").tolist() == [False, True, False, False]
    assert H.dead_units(_stats(acts), "relu").tolist() == [True, True, False, False]
    assert "constant" in H.dead_label("leaky_relu") and "never fire" in H.dead_label("relu")


def test_saturated_tanh_units_are_dead_and_nonfinite_units_too():
    rng = np.random.default_rng(2)
    acts = np.tanh(rng.normal(size=(300, 4)))
    acts[:, 0] = np.sign(rng.normal(size=300)) * 0.999  # stuck at +-1 on every input
    acts[:, 2] = np.nan
    assert H.dead_units(_stats(acts), "tanh").tolist() == [True, False, True, False]


# --------------------------------------------------------------------------- efficiency


def test_efficiency_is_skill_within_the_budget_and_halves_at_twice_it():
    budget = 640 * H.REFERENCE_SCALE
    within = H.parameter_efficiency(0.95, 10, budget // 2, 640)
    assert within == pytest.approx(H.skill(0.95, 10))
    assert H.parameter_efficiency(0.95, 10, 2 * budget, 640) == pytest.approx(within / 2)
    assert H.parameter_efficiency(0.95, 10, 10 * budget, 640) < H.parameter_efficiency(0.95, 10, 2 * budget, 640)
    assert H.parameter_efficiency(0.05, 10, 10_000, 640) == 0.0  # below chance: never negative
    assert H.parameter_efficiency(None, 10, 10_000, 640) is None


# --------------------------------------------------------------------------- stability


def _smooth(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return list(2.0 * np.exp(-np.arange(n) / 60) + 0.1 + rng.normal(0, 0.01, n))


def test_smooth_batch_losses_are_stable_and_spikes_are_not():
    assert H.training_stability(_smooth(), 10, 20) > 0.95
    spiky = np.array(_smooth())
    rng = np.random.default_rng(3)
    idx = rng.choice(len(spiky), size=40, replace=False)  # 20 % of batches at 3x their trend
    spiky[idx] *= 3
    parts = H.stability_parts(list(spiky), 10, 20)
    assert parts["spikes"] == pytest.approx(0.2, abs=0.03)
    assert H.training_stability(list(spiky), 10, 20) < 0.2


def test_a_loss_that_falls_then_climbs_back_is_unstable_even_without_spikes():
    down = list(np.linspace(2.3, 0.5, 100))
    back = list(np.linspace(0.5, 2.3, 100))  # smooth: no batch spikes at all
    parts = H.stability_parts(down + back, 10, 20)
    assert parts["spikes"] == 0.0 and parts["regression"] > 0.5
    assert H.training_stability(down + back, 10, 20) < 0.05
    assert H.training_stability(_smooth()[:5], 10, 20) is None  # too short to judge
    assert H.training_stability(_smooth()[:50] + [float("nan")], 10, 20) == 0.0


# --------------------------------------------------------------------------- gradients


def _layer(name, kind, ratio, grad=0.1, weight=10.0, epochs=3):
    return {"name": name, "kind": kind, "weight_norm": [weight] * epochs, "grad_norm": [grad] * epochs,
            "update_norm": [ratio * weight * 20] * epochs, "step_update_norm": [ratio * weight] * epochs}


def test_gradient_health_scores_each_layers_step_size():
    healthy = [_layer("conv_1", "conv2d", 3e-3), _layer("dense_1", "dense", 5e-3), _layer("output", "output", 8e-3)]
    assert H.gradient_health(healthy) == 1.0
    stalled = [_layer("conv_1", "conv2d", 1e-6), _layer("dense_1", "dense", 1e-6), _layer("output", "output", 1e-5)]
    assert H.gradient_health(stalled) < 0.1
    exploding = [_layer("conv_1", "conv2d", 5.0), _layer("output", "output", 5.0)]
    assert H.gradient_health(exploding) < 0.05
    half = [_layer("conv_1", "conv2d", 1e-6), _layer("output", "output", 5e-3)]
    assert H.gradient_health(half) == pytest.approx(0.5)
    scores = H.layer_gradient_scores(half)
    assert scores == {"conv_1": 0.0, "output": 1.0}


def test_embeddings_and_normalisation_are_left_out_and_depth_spread_counts():
    layers = [_layer("embedding", "embedding", 1e-7), _layer("bn_1", "normalization", 1e-7),
              _layer("lstm_1", "lstm", 4e-3), _layer("output", "output", 4e-3)]
    assert set(H.layer_gradient_scores(layers)) == {"lstm_1", "output"}
    assert H.gradient_health(layers) == 1.0
    # steps in band, but the first layer's relative gradient trails the last's by 5 decades
    deep = [_layer("conv_1", "conv2d", 3e-3, grad=1e-6), _layer("output", "output", 3e-3, grad=0.1)]
    assert H.depth_spread(deep) == pytest.approx(5.0)
    assert H.gradient_health(deep) == pytest.approx(1 / (1 + 3.0))


def test_epochs_whose_gradient_was_not_measured_are_skipped():
    # the monitor measures gradients at a few scheduled epochs and leaves None at the others
    deep = [_layer("conv_1", "conv2d", 3e-3, grad=1e-6, epochs=5), _layer("output", "output", 3e-3, grad=0.1, epochs=5)]
    for rec in deep:
        rec["grad_norm"][1] = rec["grad_norm"][3] = None
    deep[0]["grad_norm"][4] = 1e-4  # the last measured value is what a layer's row shows
    assert H.depth_spread(deep) == pytest.approx(5.0)
    rows = {r["name"]: r for r in H.measure({"num_classes": 10, "layers": deep}).layers}
    assert rows["conv_1"]["grad_norm"] == pytest.approx(1e-4)
    assert rows["output"]["grad_norm"] == pytest.approx(0.1)


# --------------------------------------------------------------------------- convergence


def test_a_model_that_learned_nothing_cannot_converge_well():
    chance = math.log(10)
    assert H.convergence_quality([chance, chance * 0.999], 0.1, 0.1, 10) < 0.05
    settled = H.convergence_quality([2.0, 1.0, 0.5, 0.3], 0.92, 0.90, 10)
    overfit = H.convergence_quality([2.0, 1.0, 1.5, 2.5], 1.0, 0.70, 10)
    assert settled > 0.8 and overfit < 0.15
    small_gap = H.convergence_quality([2.0, 0.3], 0.93, 0.90, 10)
    big_gap = H.convergence_quality([2.0, 0.3], 1.0, 0.85, 10)
    assert big_gap < small_gap
    assert H.convergence_quality([], None, None, 10) is None


# --------------------------------------------------------------------------- consistency


def _predict(labels, accuracy, rng, wrong_classes=None):
    """Predictions at a given accuracy; errors at random, or only on ``wrong_classes``."""
    labels = np.asarray(labels)
    preds = labels.copy()
    pool = np.arange(len(labels)) if wrong_classes is None else np.flatnonzero(np.isin(labels, wrong_classes))
    n_wrong = int(round((1 - accuracy) * len(labels)))
    wrong = rng.choice(pool, size=min(n_wrong, len(pool)), replace=False)
    preds[wrong] = (labels[wrong] + 1) % 10
    return preds


def test_consistency_sees_class_structure_not_sampling_noise():
    """The issue's check: errors at random score high; the same number of errors on two classes scores low."""
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(10), 50)
    random_errors = [H.accuracy_consistency(labels, _predict(labels, 0.9, rng), 10) for _ in range(20)]
    structured = [H.accuracy_consistency(labels, _predict(labels, 0.9, rng, wrong_classes=[3, 7]), 10)
                  for _ in range(20)]
    assert min(random_errors) > 0.85
    assert max(structured) < 0.7  # two classes right half the time, the rest always
    never = _predict(labels, 0.9, rng, wrong_classes=[5])  # class 5: 50 samples, 50 errors
    assert H.accuracy_consistency(labels, never, 10) < 0.15
    recall, counts = H.per_class_recall(labels, never, 10)
    assert recall[5] == 0.0 and counts[5] == 50


# --------------------------------------------------------------------------- composite, measure, layers


def test_composite_is_a_weighted_geometric_mean():
    assert H.composite({k: 1.0 for k in H.METRICS}) == pytest.approx(1.0)
    assert H.composite({"neuron_utilization": 0.5, "gradient_health": None}) == pytest.approx(0.5)
    assert H.composite({}) is None
    five_good_one_bad = {k: 0.9 for k in H.METRICS} | {"parameter_efficiency": 0.1}
    arithmetic = sum(H.WEIGHTS[k] * v for k, v in five_good_one_bad.items())
    assert H.composite(five_good_one_bad) < arithmetic - 0.1  # one bad metric is not averaged away
    assert H.composite({k: 0.9 for k in H.METRICS} | {"training_stability": 0.0}) < 0.55


def test_layer_health_is_the_worse_of_live_units_and_gradients():
    assert H.layer_health(None, None) is None
    assert H.layer_health(0.2, None) == pytest.approx(0.8)
    assert H.layer_health(0.1, 0.3) == pytest.approx(0.3)


def test_measure_gives_every_metric_and_per_layer_figures():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10), 20)
    acts = np.abs(rng.normal(size=(100, 16)))
    acts[:, :4] = 0
    stats = {
        "num_classes": 10, "batch_losses": _smooth(), "steps_per_epoch": 20,
        "history": {"val_loss": [1.0, 0.5, 0.3]},
        "layers": [_layer("dense_1", "dense", 4e-3), _layer("output", "output", 4e-3)],
        "units": [{"name": "dense_1", "layer_type": "dense", "units": 16, "activation": "relu", **_stats(acts)}],
        "val_labels": labels.tolist(), "val_predictions": _predict(labels, 0.9, rng).tolist(),
        "train_accuracy": 0.93, "val_accuracy": 0.9, "param_count": 20_000, "baseline_params": 640,
    }
    report = H.measure(stats)
    assert set(report.metrics) == set(H.METRICS)
    assert all(0.0 <= v <= 1.0 for v in report.metrics.values())
    assert report.metrics["neuron_utilization"] == pytest.approx(0.75)  # one layer, 4 of 16 units dead
    assert 0 < report.score <= 1
    dense = next(row for row in report.layers if row["name"] == "dense_1")
    assert dense["dead_fraction"] == 0.25 and dense["gradient_score"] == 1.0
    assert dense["update_ratio"] == pytest.approx(4e-3) and "never fire" in dense["dead_label"]


def test_evidence_sentences_say_only_what_the_interval_supports():
    def evidence(lo, hi):
        return {"health_weight": 0.3, "datasets": {"digits": {
            "trials": 90, "studies": 3, "residual_correlation": {"health": {"rho": (lo + hi) / 2, "ci95": [lo, hi]}},
            "pairs": {"within": 0.01, "pairs": 40, "healthier_holds_up_better": 0.6},
            "picks": {"studies": [{}, {}, {}], "same_trial": 2, "shifted_diff_mean": 0.01, "test_diff_mean": 0.0}}}}

    supported = H.evidence_sentences(evidence(0.1, 0.4))
    assert "held up better" in supported[0] and len(supported) == 1
    assert "held up worse" in H.evidence_sentences(evidence(-0.4, -0.1))[0]
    unclear = H.evidence_sentences(evidence(-0.1, 0.3))
    text = unclear[0]
    assert "did not clearly hold up better or worse" in text and "90 trials in 3 studies" in text and "60 %" in text
    assert "has not been shown to predict" in unclear[-1]
    assert H.evidence_sentences({}) == []
