"""run_trial end to end on tiny digits, and the health metrics pinned on constructed inputs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.tf  # every test here trains or builds a Keras model

from core.config import LayerHealth, TrialResult, TrialSpec

METRICS = (
    "neuron_utilization",
    "parameter_efficiency",
    "training_stability",
    "gradient_health",
    "convergence_quality",
    "accuracy_consistency",
)
# Small enough to train in about a second on one core, big enough to learn something.
TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 16, "batch_norm": False, "learning_rate": 0.01,
        "batch_size": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def digits():
    from core.datasets import load_dataset

    return load_dataset("digits", max_samples=300, seed=0)


def _spec(tmp_path, **kw) -> TrialSpec:
    base = dict(dataset="digits", params=dict(TINY), epochs=2, max_samples=300, study="test",
                artifacts_dir=str(tmp_path / "trial"))
    base.update(kw)
    return TrialSpec(**base)


# --------------------------------------------------------------------------- run_trial


def test_complete_trial_has_metrics_history_and_a_loadable_model(tmp_path, digits, clear_keras):
    import keras

    from core.training import run_trial

    epochs_seen: list[int] = []
    result = run_trial(_spec(tmp_path), on_epoch=lambda e, logs: epochs_seen.append(e), dataset=digits)

    assert result.status == "complete", result.error
    assert epochs_seen == [1, 2]
    assert result.epochs_run == 2
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert len(result.history[key]) == 2, key
    assert set(result.health) == set(METRICS)
    for key in METRICS:
        assert result.health[key] is not None and 0.0 <= result.health[key] <= 1.0, (key, result.health[key])
    assert 0.0 <= result.health_score <= 1.0
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert 0.0 <= result.shifted_accuracy <= 1.0
    # the sample counts behind the accuracies (what tells a difference from noise on every screen)
    assert (result.val_samples, result.test_samples) == (len(digits.y_val), len(digits.y_test))
    assert round(result.val_accuracy * result.val_samples) == pytest.approx(result.val_accuracy * result.val_samples)
    assert len(result.class_accuracy) == 10 and all(v is None or 0 <= v <= 1 for v in result.class_accuracy)
    assert {"shifted"} <= set(result.timings)
    for layer in result.layers:
        if layer.name in ("conv_1", "dense_1", "output"):
            assert layer.update_ratio > 0 and 0 <= layer.gradient_score <= 1, layer
    assert result.param_count > 0 and result.layers

    model = keras.models.load_model(result.model_path)
    assert model.predict(digits.x_test[:4], verbose=0).shape == (4, 10)
    on_disk = TrialResult.from_json((tmp_path / "trial" / "result.json").read_text())
    assert on_disk.to_dict() == result.to_dict()


def test_should_stop_ends_the_trial_early(tmp_path, digits, clear_keras):
    from core.training import run_trial

    seen: list[int] = []
    result = run_trial(_spec(tmp_path, epochs=20), on_epoch=lambda e, logs: seen.append(e),
                       should_stop=lambda: bool(seen), dataset=digits)
    assert result.status == "stopped"
    assert result.epochs_run == 1 and seen == [1]
    assert result.model_path is None  # a stopped trial is not evaluated or saved


@pytest.mark.parametrize("activation", ["leaky_relu", "relu"])
def test_exploding_training_fails_with_a_nan_reason(tmp_path, digits, clear_keras, activation):
    import dataclasses

    from core.training import run_trial

    # A learning rate of 1e6 is refused before training now (search-space validation); the
    # largest allowed one on inputs scaled by 1e6 explodes the same way: leaky_relu overflows to
    # NaN within a few batches, relu leaves a finite but astronomical loss: diverged all the same.
    huge = dataclasses.replace(digits, **{k: getattr(digits, k) * 1e6 for k in ("x_train", "x_val", "x_test")})
    params = {**TINY, "optimizer": "sgd", "learning_rate": 0.03, "activation": activation}
    result = run_trial(_spec(tmp_path, params=params, epochs=3), dataset=huge)
    assert result.status == "failed"
    assert "NaN" in result.error and "learning rate" in result.error
    assert result.health["training_stability"] == 0.0


def test_out_of_range_learning_rate_is_refused_before_training(tmp_path, digits, clear_keras):
    from core.training import run_trial

    result = run_trial(_spec(tmp_path, params={**TINY, "learning_rate": 1e6}, epochs=3), dataset=digits)
    assert result.status == "failed" and "learning_rate" in result.error and result.epochs_run == 0


def test_invalid_params_fail_without_raising(tmp_path, digits, clear_keras):
    from core.training import run_trial

    result = run_trial(_spec(tmp_path, params={**TINY, "dropout": 1.5}), dataset=digits)
    assert result.status == "failed" and "dropout" in result.error


@pytest.mark.slow
def test_default_cnn_reaches_ninety_percent_on_digits(tmp_path, clear_keras):
    """The issue's floor: a default CNN on the full digits set, at most 10 epochs, test accuracy >= 0.90."""
    from core.training import run_trial

    result = run_trial(TrialSpec(dataset="digits", params={}, epochs=10, study="floor",
                                 artifacts_dir=str(tmp_path / "floor")))
    assert result.status == "complete", result.error
    assert result.test_accuracy >= 0.90, result.test_accuracy


def test_trial_result_json_round_trip():
    result = TrialResult(
        status="complete", trial_number=3, dataset="digits", val_accuracy=0.9, test_accuracy=0.88,
        history={"loss": [1.0, float("nan")], "val_accuracy": [0.5, 0.9]}, epochs_run=2,
        health={k: 0.5 for k in METRICS}, health_score=0.5,
        layers=[LayerHealth(name="conv_1", layer_type="conv2d", units=8, dead_fraction=0.25, grad_norm=0.1)],
        param_count=1234, timings={"total": 1.5}, params={"filters": 8, "activation": "relu"},
    )
    back = TrialResult.from_json(result.to_json())
    assert back.layers[0] == result.layers[0]
    assert back.history["loss"] == [1.0, None]  # NaN travels as null
    assert back.to_dict() == result.to_dict()
    assert back.objective("health-aware", 0.5) == pytest.approx(0.7)
