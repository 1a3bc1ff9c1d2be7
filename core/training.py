"""``run_trial``: the one training path. Every executor (local worker, RunPod worker, CLI) calls it.

It seeds everything, trains, reports each epoch, stops when asked, evaluates on the
validation and test splits, measures model health, and saves the model.  It never
raises for a trial-level problem: a NaN loss, a bad combination or an out-of-memory
error comes back as a ``TrialResult`` with ``status="failed"`` and a reason a user can
act on, so a study always goes on.
"""

from __future__ import annotations

import functools
import json
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
from core.artifacts import save_result
from core.config import ConfigError, LayerHealth, Settings, TrialResult, TrialSpec
from core.paths import INSIGHT_FILE, MODEL_FILE, RESULT_FILE, health_stats_file

log = logging.getLogger("hpo.training")

EpochCallback = Callable[[int, dict[str, float | None]], None]
StopCheck = Callable[[], bool]

PROBE_SAMPLES = 512  # activations are measured on this many validation samples at most
# Cross-entropy of a softmax is at most ~16 (Keras clips probabilities at 1e-7): a loss above
# this means the weights blew up even where the float did not overflow yet.
DIVERGED_LOSS = 1e4
GRAD_BATCH = 128  # samples in the fixed batch whose gradients are measured (core.monitor.grad_epochs)


@functools.lru_cache(maxsize=4)
def _cached_dataset(name: str, max_samples: int | None, data_seed: int, data_dir: str):
    """Long-lived workers run many trials on one data set: load it once per process."""
    from core.datasets import load_dataset

    return load_dataset(name, max_samples=max_samples, seed=data_seed, data_dir=Path(data_dir))


def load_trial_data(spec: TrialSpec, settings: Settings | None = None):
    settings = settings or Settings.from_env()
    return _cached_dataset(spec.dataset, spec.max_samples, spec.data_seed, str(settings.datasets_dir))


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
    stats_out: dict[str, Any] | None = None,
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
        stats_out: if given, filled with the raw figures the health metrics were computed from
            (``core.health.measure`` takes them), so a benchmark can re-score a trained model.

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
        _train(spec, data, result, timings, on_epoch, should_stop, settings, stats_out)
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
        save_result(result, Path(result.result_path).parent)
    return result


def _train(spec, data, result, timings, on_epoch, should_stop, settings, stats_out) -> None:
    import keras

    from core.models import build_model, describe_layers, unit_layers
    from core.monitor import DIVERGED_LOSS, HealthMonitor

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

    monitor = HealthMonitor(data.x_train[:GRAD_BATCH], data.y_train[:GRAD_BATCH], batch_size=batch_size,
                            n_train=len(data.x_train), on_epoch=on_epoch, should_stop=should_stop,
                            epochs=spec.epochs)
    callbacks: list[Any] = [monitor]
    if params.get("lr_schedule") == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6))

    t = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=spec.epochs,
              validation_data=(data.x_val, data.y_val), callbacks=callbacks, verbose=0, shuffle=True)
    timings["train"] = time.perf_counter() - t - monitor.seconds
    result.history = {k: list(v) for k, v in monitor.history.items() if k != "seconds"}
    result.epochs_run = monitor.epochs_run

    if monitor.diverged_epoch is not None:
        result.status = "failed"
        result.error = (
            f"loss diverged (NaN, Inf or above {DIVERGED_LOSS:g}) at epoch {monitor.diverged_epoch} (learning rate "
            f"{params.get('learning_rate')}, optimizer {params.get('optimizer')}): lower the learning rate or add "
            "batch normalisation"
        )
        result.health = {"training_stability": 0.0}
        result.health_score = 0.0
        return
    if monitor.stopped:
        result.status = "stopped"
        return

    t = time.perf_counter()
    # one forward pass gives the validation predictions and the activations health probes
    val_pred, activations = _predict_with_probe(model, units, data.x_val)
    test_pred = _predict(model, data.x_test)
    result.val_accuracy = float((val_pred.argmax(-1) == data.y_val).mean())
    result.val_loss = _xent(val_pred, data.y_val)
    result.test_accuracy = float((test_pred.argmax(-1) == data.y_test).mean())
    result.val_samples, result.test_samples = int(len(data.y_val)), int(len(data.y_test))
    result.test_loss = _xent(test_pred, data.y_test)
    n_train_probe = min(len(data.x_train), max(len(data.x_val), 256))
    train_acc = float((_predict(model, data.x_train[:n_train_probe]).argmax(-1) == data.y_train[:n_train_probe]).mean())
    result.train_accuracy = train_acc
    timings["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    x_shifted = _shifted_test(info, data.x_test)
    result.shifted_accuracy = float((_predict(model, x_shifted).argmax(-1) == data.y_test).mean())
    timings["shifted"] = time.perf_counter() - t

    t = time.perf_counter()
    unit_stats = [{**u, **H.unit_statistics(a)} for u, a in zip(units, activations)]
    # A linear model's parameter count: pixels x classes, or (bag of words) vocabulary x classes.
    baseline = int(np.prod(info.input_shape)) * info.num_classes
    if info.kind == "text":
        baseline = int(info.vocab_size or info.seq_len or 1) * info.num_classes
    stats = {
        "num_classes": info.num_classes,
        "batch_losses": monitor.batch_losses,
        "steps_per_epoch": steps,
        "history": result.history,
        "layers": monitor.layers,
        "units": unit_stats,
        "val_labels": data.y_val.tolist(),
        "val_predictions": val_pred.argmax(-1).tolist(),
        "train_accuracy": train_acc,
        "val_accuracy": result.val_accuracy,
        "val_loss": result.val_loss,
        "param_count": result.param_count,
        "baseline_params": baseline,
    }
    report = H.measure(stats)
    recall, _ = H.per_class_recall(data.y_val, stats["val_predictions"], info.num_classes)
    result.class_accuracy = [None if not math.isfinite(v) else round(float(v), 4) for v in recall]
    result.health = report.metrics
    result.health_score = report.score
    result.layers = [LayerHealth(**lay) for lay in report.layers]  # measure()'s rows are LayerHealth's fields
    timings["health"] = time.perf_counter() - t + monitor.seconds
    raw = {**stats, "test_accuracy": result.test_accuracy, "shifted_accuracy": result.shifted_accuracy}
    if stats_out is not None:
        stats_out.update(raw)
    keep = os.environ.get("HPO_KEEP_HEALTH_STATS")
    if keep:  # benchmarks: keep the raw figures so a trial can be re-scored when a definition changes
        path = health_stats_file(keep, spec.study, spec.trial_number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(raw))
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

    # What the model does with test inputs (issue 14), made while it is in memory, from the test
    # probabilities computed above (the test set is not run twice).
    # Only when the trial's files are written (save_model): otherwise nothing would keep it.
    insight = None
    if spec.save_model:
        t = time.perf_counter()
        try:
            from core.insight import collect

            insight = collect(model, units, data, test_pred, unit_stats)
        except Exception:  # noqa: BLE001 - like the architecture: a nicety must not lose a trained trial
            log.warning("trial %s: could not collect the insight data:\n%s", spec.trial_number, traceback.format_exc())
        timings["insight"] = time.perf_counter() - t

    if spec.save_model:
        t = time.perf_counter()
        out = _result_dir(spec, settings)
        out.mkdir(parents=True, exist_ok=True)
        model_path = out / MODEL_FILE
        model.save(model_path)
        result.model_path = str(model_path)
        result.result_path = str(out / RESULT_FILE)  # written by save_result when the trial is done
        timings["save"] = time.perf_counter() - t
        if insight is not None:
            t = time.perf_counter()
            try:
                from core.insight import save as save_insight

                save_insight(insight, out / INSIGHT_FILE)
            except Exception:  # noqa: BLE001 - a full disk here must not lose the trained trial
                log.warning("trial %s: could not write %s:\n%s", spec.trial_number, INSIGHT_FILE, traceback.format_exc())
            timings["insight"] += time.perf_counter() - t  # collecting and writing it: insight's whole cost


def _shifted_test(info, x_test: np.ndarray) -> np.ndarray:
    """The data set's shifted test inputs, made once per process and data set (workers run many trials)."""
    from core.shift import shifted_test_set

    key = hash((info.name, x_test.shape, float(np.asarray(x_test[:4], dtype=np.float64).sum())))
    if key not in _SHIFT_CACHE:
        if len(_SHIFT_CACHE) >= 4:
            _SHIFT_CACHE.pop(next(iter(_SHIFT_CACHE)))
        _SHIFT_CACHE[key] = shifted_test_set(info.name, info.kind, x_test)
    return _SHIFT_CACHE[key]


_SHIFT_CACHE: dict[int, np.ndarray] = {}


def _predict_with_probe(model, units: list[dict[str, Any]], x, probe: int = PROBE_SAMPLES):
    """Class probabilities for ``x`` and, for its first ``probe`` samples, each unit layer's outputs (one pass)."""
    import keras

    if not units:
        return _predict(model, x), []
    m = keras.Model(model.input, [model.get_layer(u["output_layer"]).output for u in units] + [model.output])
    outs = [keras.ops.convert_to_numpy(o) for o in m(x[:probe], training=False)]
    rest = _predict(model, x[probe:]) if len(x) > probe else None
    probs = outs[-1] if rest is None else np.concatenate([outs[-1], rest])
    return probs, outs[:-1]


def _predict(model, x, batch_size: int = 512) -> np.ndarray:
    """Class probabilities, batched, by calling the model directly (cheaper than .predict for small sets)."""
    import keras

    parts = [keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def _xent(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.log(p).mean())
