"""HealthMonitor, the Keras callback behind the health metrics, on a real tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.tf  # every test here trains or builds a Keras model

TINY = {"conv_blocks": 1, "filters": 8, "dense_units": 16, "batch_norm": False, "learning_rate": 0.01,
        "batch_size": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def digits():
    from core.datasets import load_dataset

    return load_dataset("digits", max_samples=300, seed=0)


def _fit(digits, params=None, epochs=2, planned=False, **monitor_kw):
    import keras

    from core.models import build_model
    from core.monitor import HealthMonitor

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    p = {**TINY, **(params or {})}
    model = build_model(p, digits.info, steps_per_epoch=10, epochs=epochs)
    mon = HealthMonitor(digits.x_train[:64], digits.y_train[:64], batch_size=p["batch_size"],
                        n_train=len(digits.x_train), epochs=epochs if planned else None, **monitor_kw)
    hist = model.fit(digits.x_train, digits.y_train, batch_size=p["batch_size"], epochs=epochs,
                     validation_data=(digits.x_val, digits.y_val), callbacks=[mon], verbose=0, shuffle=True)
    return mon, hist


def test_batch_losses_invert_keras_running_mean(digits, clear_keras):
    mon, hist = _fit(digits)
    steps = math.ceil(len(digits.x_train) / TINY["batch_size"])
    assert len(mon.batch_losses) == 2 * steps
    # Each epoch's batch losses, weighted by batch size, average back to the loss Keras reported.
    sizes = [TINY["batch_size"]] * (steps - 1) + [len(digits.x_train) - TINY["batch_size"] * (steps - 1)]
    for e in range(2):
        own = np.array(mon.batch_losses[e * steps:(e + 1) * steps])
        assert np.average(own, weights=sizes) == pytest.approx(hist.history["loss"][e], rel=1e-4)
    assert all(v > 0 for v in mon.batch_losses)
    assert mon.history["loss"] == pytest.approx(hist.history["loss"])


def test_per_layer_figures_per_epoch(digits, clear_keras):
    mon, _ = _fit(digits, epochs=3)
    names = [r["name"] for r in mon.layers]
    assert names == ["conv_1", "dense_1", "output"]
    assert [r["kind"] for r in mon.layers] == ["conv2d", "dense", "output"]
    for rec in mon.layers:
        assert len(rec["grad_norm"]) == len(rec["weight_norm"]) == len(rec["update_norm"]) == 3
        assert len(rec["step_update_norm"]) == 3
        # one step moves the weights less than the whole epoch did
        assert all(0 < s < u for s, u in zip(rec["step_update_norm"], rec["update_norm"]))
        assert all(v > 0 for v in rec["update_norm"])  # every layer learned something each epoch
        assert all(u < w for u, w in zip(rec["update_norm"], rec["weight_norm"]))
    assert mon.epochs_run == 3 and mon.diverged_epoch is None and not mon.stopped
    assert mon.seconds > 0


def test_grad_epochs_spread_over_the_planned_run():
    from core.monitor import grad_epochs

    assert grad_epochs(None) is None  # no plan: every epoch
    assert grad_epochs(1) == {1}
    assert grad_epochs(3) == {1, 2, 3}
    assert grad_epochs(5) == {1, 3, 5}
    assert grad_epochs(21) == {1, 11, 21}
    assert grad_epochs(41, points=5) == {1, 11, 21, 31, 41}


def test_gradients_are_measured_at_the_scheduled_epochs_only(digits, clear_keras):
    mon, _ = _fit(digits, epochs=5, planned=True)
    for rec in mon.layers:
        measured = [i + 1 for i, g in enumerate(rec["grad_norm"]) if g is not None]
        assert measured == [1, 3, 5]
        assert all(g > 0 for g in rec["grad_norm"] if g is not None)
        # the step figures are there for every epoch
        assert len(rec["weight_norm"]) == len(rec["step_update_norm"]) == len(rec["update_norm"]) == 5
        assert all(math.isfinite(v) and v > 0 for v in rec["step_update_norm"])


def test_tiny_learning_rate_moves_weights_less(digits, clear_keras):
    fast, _ = _fit(digits)
    slow, _ = _fit(digits, {"optimizer": "sgd", "learning_rate": 1e-4})
    for a, b in zip(fast.layers, slow.layers):
        assert b["update_norm"][-1] / b["weight_norm"][-1] < a["update_norm"][-1] / a["weight_norm"][-1] / 10
        assert b["step_update_norm"][-1] / b["weight_norm"][-1] < a["step_update_norm"][-1] / a["weight_norm"][-1] / 10


def test_divergence_is_caught_within_the_epoch(digits, clear_keras):
    mon, hist = _fit(digits, {"optimizer": "sgd", "learning_rate": 1e6, "activation": "leaky_relu"}, epochs=3)
    assert mon.diverged_epoch == 1
    assert mon.epochs_run <= 1


def test_should_stop_and_on_epoch(digits, clear_keras):
    seen = []
    mon, _ = _fit(digits, epochs=5, on_epoch=lambda e, logs: seen.append((e, sorted(logs))),
                  should_stop=lambda: len(seen) >= 2)
    assert mon.stopped and mon.epochs_run == 2
    assert [e for e, _ in seen] == [1, 2]
    assert {"loss", "val_accuracy", "lr", "seconds"} <= set(seen[0][1])
