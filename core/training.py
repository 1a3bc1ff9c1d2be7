"""``run_trial``: the one training path. Every executor (local worker, RunPod worker, CLI) calls it.

It seeds everything, trains, reports each epoch, stops when asked, evaluates on the
validation and test splits, measures model health, and saves the model.  It never
raises for a trial-level problem: a NaN loss, a bad combination or an out-of-memory
error comes back as a ``TrialResult`` with ``status="failed"`` and a reason a user can
act on, so a study always goes on.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import health as H
from core.config import ConfigError, LayerHealth, Settings, TrialResult, TrialSpec

log = logging.getLogger("hpo.training")

EpochCallback = Callable[[int, dict[str, float | None]], None]
StopCheck = Callable[[], bool]

PROBE_SAMPLES = 512  # activations and fold accuracies are measured on this many validation samples at most
# Cross-entropy of a softmax is at most ~16 (Keras clips probabilities at 1e-7): a loss above
# this means the weights blew up even where the float did not overflow yet.
DIVERGED_LOSS = 1e4
GRAD_BATCH = 128  # samples in the fixed batch whose gradients are measured after each epoch


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, max_samples: int | None, data_seed: int, data_dir: str):
    """Long-lived workers run many trials on one data set: load it once per process."""
    from core.datasets import load_dataset

    return load_dataset(name, max_samples=max_samples, seed=data_seed, data_dir=Path(data_dir))


def load_trial_data(spec: TrialSpec, settings: Settings | None = None):
    settings = settings or Settings.from_env()
    return _cached_dataset(spec.dataset, spec.max_samples, spec.data_seed, str(settings.datasets_dir))


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating)) and math.isfinite(float(v))


def _clean_logs(logs: dict[str, Any] | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k, v in (logs or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[k] = f if math.isfinite(f) else None
    return out


def distribution_strategy():
    """MirroredStrategy across GPUs when several are visible (or HPO_MIRRORED=1), else the default."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    if os.environ.get("HPO_MIRRORED") == "1":
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            return tf.distribute.MirroredStrategy([c.name for c in cpus])
    return tf.distribute.get_strategy()


def _result_dir(spec: TrialSpec, settings: Settings) -> Path:
    # one rule for every writer: inside HPO_HOME unless the user chose a folder explicitly
    return settings.trial_dir(spec)


def run_trial(
    spec: TrialSpec,
    on_epoch: EpochCallback | None = None,
    should_stop: StopCheck | None = None,
    *,
    settings: Settings | None = None,
    dataset: Any | None = None,
) -> TrialResult:
    """Train one model from ``spec`` and measure its accuracy and health.

    Args:
        spec: what to train (JSON-able; see ``TrialSpec``).
        on_epoch: called as ``on_epoch(epoch, logs)`` after each epoch, epoch counted from 1;
            logs has loss, accuracy, val_loss, val_accuracy, lr and seconds.
        should_stop: polled during training; True stops the trial (pruning, cancel) and the
            result comes back with ``status="stopped"`` without evaluation.
        settings: paths (defaults to ``Settings.from_env()``).
        dataset: a preloaded ``core.datasets.Dataset`` (tests, benchmarks).

    Returns:
        A ``TrialResult``; ``status`` is "complete", "stopped" or "failed" (with ``error``).
    """
    settings = settings or Settings.from_env()
    t_start = time.perf_counter()
    result = TrialResult(
        status="failed",
        trial_number=spec.trial_number,
        dataset=spec.dataset,
        params=dict(spec.params),
        host=socket.gethostname(),
        executor=os.environ.get("HPO_EXECUTOR", "local"),
    )
    timings: dict[str, float] = {}
    try:
        spec.validate()
        t = time.perf_counter()
        data = dataset if dataset is not None else load_trial_data(spec, settings)
        timings["load"] = time.perf_counter() - t
        _train(spec, data, result, timings, on_epoch, should_stop, settings)
    except ConfigError as exc:
        result.status, result.error = "failed", f"invalid configuration: {exc}"
        log.warning("trial %s refused: %s", spec.trial_number, exc)
    except MemoryError:
        result.status, result.error = "failed", "out of memory: lower batch_size, filters or units, or max_samples"
        log.warning("trial %s out of memory", spec.trial_number)
    except Exception as exc:  # noqa: BLE001 - one trial is lost, the study goes on
        msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if "OOM" in msg or "ResourceExhausted" in type(exc).__name__:
            msg = "out of memory: lower batch_size, filters or units, or max_samples"
        result.status, result.error = "failed", f"{type(exc).__name__}: {msg}"
        log.error("trial %s failed:\n%s", spec.trial_number, traceback.format_exc())
    timings["total"] = time.perf_counter() - t_start
    result.timings = {k: round(v, 4) for k, v in timings.items()}
    if result.result_path:
        Path(result.result_path).write_text(result.to_json(indent=2))
    return result


def _train(spec, data, result, timings, on_epoch, should_stop, settings) -> None:
    import keras
    import tensorflow as tf

    from core.models import build_model, describe_layers, unit_layers

    info = data.info
    params = dict(spec.params)
    batch_size = int(params.get("batch_size", 64))
    steps = max(1, math.ceil(len(data.x_train) / batch_size))

    keras.backend.clear_session()
    keras.utils.set_random_seed(spec.seed)
    t = time.perf_counter()
    strategy = distribution_strategy()
    with strategy.scope():
        model = build_model(params, info, steps_per_epoch=steps, epochs=spec.epochs)
    timings["build"] = time.perf_counter() - t
    result.param_count = int(model.count_params())
    result.architecture = {"layers": describe_layers(model), "notes": list(getattr(model, "hpo_notes", []))}
    units = unit_layers(model)

    # Fixed batch for gradient norms: the same samples every epoch, so norms are comparable.
    gx, gy = data.x_train[:GRAD_BATCH], data.y_train[:GRAD_BATCH]
    grad_layers = [layer for layer in model.layers if layer.trainable_weights]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def _grad_norms(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        grads = tape.gradient(loss, [w for layer in grad_layers for w in layer.trainable_weights])
        out, i = [], 0
        for layer in grad_layers:
            n = len(layer.trainable_weights)
            g = [gr for gr in grads[i : i + n] if gr is not None]
            out.append(tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(gr, tf.float32))) for gr in g])) if g else tf.constant(0.0))
            i += n
        return tf.stack(out)

    grad_series: dict[str, list[float]] = {layer.name: [] for layer in grad_layers}
    health_time = [0.0]
    state = {"nan_epoch": None, "stopped": False}

    class _TrialCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._t0 = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not (math.isfinite(float(loss)) and float(loss) < DIVERGED_LOSS):
                state["nan_epoch"] = state["nan_epoch"] or -1
                self.model.stop_training = True
            elif should_stop is not None and batch % 8 == 0 and should_stop():
                state["stopped"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = _clean_logs(logs)
            lr = self.model.optimizer.learning_rate
            try:
                logs["lr"] = float(keras.ops.convert_to_numpy(lr))
            except Exception:  # noqa: BLE001 - schedules expose lr differently; it is informative only
                logs["lr"] = None
            logs["seconds"] = time.perf_counter() - self._t0
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                result.history.setdefault(key, []).append(logs.get(key))
            result.epochs_run = epoch + 1
            if logs.get("loss") is None or logs["loss"] >= DIVERGED_LOSS or state["nan_epoch"] == -1:
                state["nan_epoch"] = epoch + 1
                self.model.stop_training = True
                return
            th = time.perf_counter()
            norms = _grad_norms(tf.convert_to_tensor(gx), tf.convert_to_tensor(gy)).numpy()
            for layer, n in zip(grad_layers, norms):
                grad_series[layer.name].append(float(n))
            health_time[0] += time.perf_counter() - th
            if on_epoch is not None:
                on_epoch(epoch + 1, logs)
            if should_stop is not None and should_stop():
                state["stopped"] = True
                self.model.stop_training = True

    callbacks: list[Any] = [_TrialCallback()]
    if params.get("lr_schedule") == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6))

    t = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=batch_size,
        epochs=spec.epochs,
        validation_data=(data.x_val, data.y_val),
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
    )
    timings["train"] = time.perf_counter() - t - health_time[0]

    if state["nan_epoch"] is not None:
        epoch = state["nan_epoch"] if state["nan_epoch"] > 0 else result.epochs_run + 1
        result.status = "failed"
        result.error = (
            f"loss diverged (NaN, Inf or above {DIVERGED_LOSS:g}) at epoch {epoch} (learning rate {params.get('learning_rate')}, "
            f"optimizer {params.get('optimizer')}): lower the learning rate or add batch normalisation"
        )
        result.health = {"training_stability": 0.0}
        result.health_score = 0.0
        return
    if state["stopped"]:
        result.status = "stopped"
        return

    t = time.perf_counter()
    val_pred = _predict(model, data.x_val)
    test_pred = _predict(model, data.x_test)
    val_correct = val_pred.argmax(-1) == data.y_val
    result.val_accuracy = float(val_correct.mean())
    result.val_loss = _xent(val_pred, data.y_val)
    result.test_accuracy = float((test_pred.argmax(-1) == data.y_test).mean())
    result.test_loss = _xent(test_pred, data.y_test)
    n_train_probe = min(len(data.x_train), max(len(data.x_val), 256))
    train_acc = float((_predict(model, data.x_train[:n_train_probe]).argmax(-1) == data.y_train[:n_train_probe]).mean())
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    probe_x = data.x_val[:PROBE_SAMPLES]
    dead: dict[str, float] = {}
    acts_mean: dict[str, float] = {}
    if units:
        probe = keras.Model(model.input, [model.get_layer(u["output_layer"]).output for u in units])
        outs = probe(probe_x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for u, a in zip(units, outs):
            a = keras.ops.convert_to_numpy(a)
            mask = H.dead_units(a, u["activation"])
            dead[u["name"]] = float(mask.mean())
            acts_mean[u["name"]] = float(np.mean(a))
    unit_counts = {u["name"]: u["units"] for u in units}
    baseline = int(np.prod(info.input_shape)) * info.num_classes
    if info.kind == "text":
        baseline = int(info.seq_len or 1) * info.num_classes
    metrics = {
        "neuron_utilization": H.neuron_utilization(dead, unit_counts),
        "parameter_efficiency": H.parameter_efficiency(result.val_accuracy, info.num_classes, result.param_count, baseline),
        "training_stability": H.training_stability(result.history.get("loss", [])),
        "gradient_health": H.gradient_health(grad_series),
        "convergence_quality": H.convergence_quality(
            result.history.get("val_loss", []), train_acc, result.val_accuracy, info.num_classes
        ),
        "accuracy_consistency": H.accuracy_consistency(H.fold_accuracies(val_correct[:PROBE_SAMPLES * 4], seed=spec.seed)),
    }
    result.health = metrics
    result.health_score = H.composite(metrics)
    layer_types = {u["name"]: u["layer_type"] for u in units}
    result.layers = [
        LayerHealth(
            name=layer.name,
            layer_type=layer_types.get(layer.name, type(layer).__name__.lower()),
            units=int(unit_counts.get(layer.name, 0)),
            dead_fraction=dead.get(layer.name),
            grad_norm=grad_series[layer.name][-1] if grad_series.get(layer.name) else None,
            activation_mean=acts_mean.get(layer.name),
        )
        for layer in grad_layers
    ]
    timings["health"] = time.perf_counter() - t + health_time[0]
    result.status = "complete"
    # The 3D view's data is made here, where the model is in memory, so the UI can draw any
    # trial without importing TensorFlow (and without the TF/Mesa clash in one process).
    try:
        from core.architecture import build_architecture

        arch = build_architecture(model, performance_score=result.val_accuracy, health_score=result.health_score,
                                  layer_health=result.layers)
        result.architecture["visualization"] = arch.to_dict()
    except Exception:  # noqa: BLE001 - a drawing problem must not lose a trained trial
        log.warning("trial %s: could not describe the architecture for 3D:\n%s", spec.trial_number, traceback.format_exc())

    if spec.save_model:
        t = time.perf_counter()
        out = _result_dir(spec, settings)
        out.mkdir(parents=True, exist_ok=True)
        model_path = out / "model.keras"
        model.save(model_path)
        result.model_path = str(model_path)
        result.result_path = str(out / "result.json")
        timings["save"] = time.perf_counter() - t


def _predict(model, x, batch_size: int = 512) -> np.ndarray:
    """Class probabilities, batched, by calling the model directly (cheaper than .predict for small sets)."""
    import keras

    parts = [keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def _xent(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean())
