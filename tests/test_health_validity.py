"""The health metrics and the diagnosis on real trained models that have the pathology they name.

The models are the pathology benchmark's (bench/bench_health_validity.py), trained once here on
real digits through ``run_trial`` with seed 0: healthy controls against dead units, stalled
(vanishing) gradients, unstable training, overfitting, bloat and class collapse.  Each
pathology's own metric must fall below both controls, the composite at least 0.15 below, and
the diagnosis must say what is wrong in words that are true for the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_health_validity import CONTROLS, PATHOLOGIES, train  # noqa: E402
from core.config import TrialResult  # noqa: E402
from core.diagnosis import diagnose  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs():
    """Every benchmark model on digits, seed 0, plus a leaky-ReLU twin of the dead-units model."""
    import keras

    out = {}
    for model in (*CONTROLS, *PATHOLOGIES):
        keras.backend.clear_session()
        out[model] = train("digits", model, 0)
    keras.backend.clear_session()
    out["dead_leaky"] = train("digits", "dead_units", 0, extra={"activation": "leaky_relu"})
    return out


def _result(run) -> TrialResult:
    return TrialResult.from_dict(run["result"])


@pytest.mark.parametrize("model", list(PATHOLOGIES))
def test_each_pathology_is_seen_by_its_own_metric_and_the_composite(runs, model):
    metric = PATHOLOGIES[model]
    run = runs[model]
    assert run["status"] == "complete", run["error"]
    controls = [runs[c] for c in CONTROLS]
    own = run["health"][metric]
    assert own < min(c["health"][metric] for c in controls), (model, metric, own)
    assert run["health_score"] <= min(c["health_score"] for c in controls) - 0.15, (model, run["health_score"])


def test_controls_are_healthy_and_the_stuck_model_is_not(runs):
    for c in CONTROLS:
        assert runs[c]["health_score"] >= 0.8, (c, runs[c]["health"])
    stuck = runs["vanishing"]
    assert stuck["val_accuracy"] < 0.3  # far below the ~97 % the data allows
    assert stuck["health_score"] <= 0.45


def test_bloat_costs_efficiency_at_equal_accuracy(runs):
    bloat, default = runs["bloat"], runs["default"]
    assert abs(bloat["val_accuracy"] - default["val_accuracy"]) < 0.03
    assert bloat["param_count"] > 10 * default["param_count"]
    assert bloat["health"]["parameter_efficiency"] < 0.5 * default["health"]["parameter_efficiency"]


def test_diagnosis_names_each_pathology_truthfully(runs):
    def findings(model):
        return diagnose(_result(runs[model]), 10)

    def titles(model):
        return " | ".join(f.title for f in findings(model))

    assert not [f for f in findings("default") if f.severity == "critical"]
    dead = [f for f in findings("dead_units") if f.metric == "neuron_utilization"]
    assert dead and all("never fires" in f.title and "output 0" in f.detail for f in dead)
    assert "Weights barely move" in titles("vanishing") and "Barely better than guessing" in titles("vanishing")
    assert "Training loss jumps around" in titles("unstable")
    assert "Overfitting" in titles("overfitting")
    assert "larger than its accuracy needs" in titles("bloat")
    collapse = [f for f in findings("class_collapse") if f.metric == "accuracy_consistency"]
    assert collapse and all(f"'{c}'" in collapse[0].detail for c in "012")  # the three starved classes


def test_leaky_relu_findings_never_claim_zero_output(runs):
    run = runs["dead_leaky"]
    assert run["status"] == "complete", run["error"]
    result = _result(run)
    for f in diagnose(result, 10):
        assert "output 0" not in f.detail and "never fire" not in f.title, f
    for layer in result.layers:
        if layer.dead_label:
            assert "constant" in layer.dead_label


def test_shifted_accuracy_is_below_test_accuracy_for_real_models(runs):
    for model in CONTROLS:
        r = runs[model]
        assert r["shifted_accuracy"] < r["test_accuracy"] - 0.05  # the damage is real
        assert r["shifted_accuracy"] > 0.5  # and a good model still mostly copes
