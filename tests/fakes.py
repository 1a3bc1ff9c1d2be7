"""Shared fakes: realistic studies written straight into an Optuna storage, no training.

:func:`make_fake_study` writes what a real :class:`core.study.StudyRunner` leaves behind
(study attributes, per-trial ``result``/``spec``/``progress`` attributes from
``core.storage``, intermediate values, pruned and failed trials, optionally running ones)
using Optuna's public API only.  The app's AppTests and ``bench/bench_app.py`` use it, so
the screens are tested and timed on the same data shape the runner produces, in
milliseconds and without importing TensorFlow.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import socket
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import storage as S
from core.config import LayerHealth, Settings, StudyConfig, TrialResult
from core.health import WEIGHTS, composite, dead_label
from core import study as K  # the storage schema: attribute keys

# The knobs a default image study tunes (search_space.DEFAULT_TUNED["image"]), spelled out so
# the fake does not depend on the data-set registry.
IMAGE_TUNED = ["conv_blocks", "filters", "dense_units", "dropout", "activation", "learning_rate", "batch_size"]


@dataclass
class FakeStudy:
    """What :func:`make_fake_study` wrote, for assertions."""

    name: str
    storage_url: str
    config: StudyConfig
    results: dict[int, TrialResult] = field(default_factory=dict)  # complete trials by number
    states: dict[int, str] = field(default_factory=dict)
    best_number: int | None = None  # best complete trial under the study's mode


def _fake_keras_file(path: Path, number: int) -> None:
    """A small zip shaped like a .keras file (metadata.json + config.json + weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "fake_trial": number}))
        z.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"name": f"cnn_digits_{number}"}}))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))


def _fake_result(number: int, params: dict[str, Any], epochs: int, rng: random.Random, study: str, model_path: str | None) -> TrialResult:
    """A plausible complete result: accuracy driven by learning rate and size, health by activation/dropout."""
    lr = float(params.get("learning_rate", 1e-3))
    # accuracy peaks near lr = 3e-3 and rises with filters; a little noise per trial
    quality = 1.0 - min(1.0, abs(math.log10(lr) - math.log10(3e-3)) / 2.5)
    filters = int(params.get("filters", 32))
    final_val = min(0.99, 0.55 + 0.35 * quality + 0.04 * math.log2(filters / 8) / 4 + rng.uniform(-0.03, 0.03))
    gap = 0.02 + 0.15 * (0.5 - min(0.5, float(params.get("dropout", 0.25)))) + rng.uniform(0, 0.03)
    hist: dict[str, list[float | None]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "lr": []}
    for e in range(1, epochs + 1):
        frac = 1 - math.exp(-2.2 * e / epochs)
        va = 0.1 + (final_val - 0.1) * frac / (1 - math.exp(-2.2))
        ta = min(0.999, va + gap * frac)
        hist["val_accuracy"].append(round(va, 4))
        hist["accuracy"].append(round(ta, 4))
        hist["loss"].append(round(2.3 * (1 - ta) + 0.05, 4))
        hist["val_loss"].append(round(2.3 * (1 - va) + 0.08, 4))
        hist["lr"].append(lr)
    dead_dense = 0.05 if params.get("activation") != "relu" else rng.choice([0.02, 0.1, 0.38])
    dense_units = int(params.get("dense_units", 128))
    param_count = int(filters * 9 + filters * 2 * filters * 9 + 256 * dense_units + dense_units * 10)
    layers = [
        LayerHealth("conv_1", "conv2d", filters, dead_fraction=0.03, grad_norm=round(rng.uniform(0.01, 0.08), 5),
                    activation_mean=0.2, update_ratio=round(rng.uniform(2e-3, 8e-3), 6), gradient_score=1.0),
        LayerHealth("conv_2", "conv2d", filters * 2, dead_fraction=0.06, grad_norm=round(rng.uniform(0.02, 0.1), 5),
                    activation_mean=0.15, update_ratio=round(rng.uniform(2e-3, 8e-3), 6), gradient_score=1.0),
        LayerHealth("dense_1", "dense", dense_units, dead_fraction=dead_dense, grad_norm=round(rng.uniform(0.05, 0.2), 5),
                    activation_mean=0.1, update_ratio=round(rng.uniform(2e-3, 8e-3), 6), gradient_score=1.0,
                    dead_label=dead_label(str(params.get("activation", "relu")))),
        LayerHealth("output", "dense", 0, grad_norm=round(rng.uniform(0.2, 0.5), 5),
                    update_ratio=round(rng.uniform(2e-3, 8e-3), 6), gradient_score=1.0),
    ]
    health = {
        "neuron_utilization": round(1 - (0.03 * filters + 0.06 * 2 * filters + dead_dense * dense_units) / (3 * filters + dense_units), 4),
        "parameter_efficiency": round(max(0.0, (final_val - 0.1) / 0.9 / (1 + 0.5 * max(0.0, math.log10(param_count / 640)))), 4),
        "training_stability": round(rng.uniform(0.85, 1.0) if lr < 0.01 else rng.uniform(0.4, 0.8), 4),
        "gradient_health": round(rng.uniform(0.9, 1.0), 4),
        "convergence_quality": round(max(0.0, 0.9 - gap * 2), 4),
        "accuracy_consistency": round(rng.uniform(0.88, 0.98), 4),
    }
    assert set(health) == set(WEIGHTS)
    return TrialResult(
        status="complete",
        trial_number=number,
        dataset="digits",
        val_accuracy=round(final_val, 4),
        val_loss=hist["val_loss"][-1],
        test_accuracy=round(final_val - rng.uniform(0.0, 0.02), 4),
        shifted_accuracy=round(final_val - rng.uniform(0.1, 0.25), 4),
        val_samples=216,  # digits' validation and test splits
        test_samples=360,
        test_loss=hist["val_loss"][-1],
        history=hist,
        epochs_run=epochs,
        health=health,
        health_score=round(composite(health), 4),
        layers=layers,
        param_count=param_count,
        timings={"load": 0.1, "build": 0.2, "train": 3.0, "evaluate": 0.1, "health": 0.1, "total": 3.5},
        model_path=model_path,
        executor="local",
        host=socket.gethostname(),
        params=dict(params),
        architecture={"layers": [{"name": layer.name, "type": layer.layer_type, "params": 0} for layer in layers]},
    )


def make_fake_study(
    storage_url: str,
    name: str = "fake-study",
    *,
    n_complete: int = 6,
    n_pruned: int = 1,
    n_failed: int = 1,
    n_running: int = 0,
    mode: str = "simple",
    epochs: int = 4,
    seed: int = 0,
    with_models: bool = True,
    status: str | None = None,
    settings: Settings | None = None,
) -> FakeStudy:
    """Write a study with trials in every state into ``storage_url``.

    Args:
        storage_url: an Optuna storage URL (``sqlite:///...``); opened with ``core.storage``.
        name: study name.
        n_complete, n_pruned, n_failed, n_running: trials per state, written in that order
            (running trials last, with a ``progress`` attribute part-way through).
        mode: "simple", "health-aware" or "pareto" (pareto writes two objective values).
        epochs: epochs per trial (the length of every history and intermediate series).
        seed: makes params and values reproducible.
        with_models: write a small .keras-shaped zip per complete trial under the study folder.
        status: the study's ``status`` attribute; default "running" when trials run, else "finished".
        settings: paths (default ``Settings.from_env()``) for the model files.

    Returns:
        A :class:`FakeStudy` with the results written and the best trial's number.
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = settings or Settings.from_env()
    rng = random.Random(seed)
    config = StudyConfig(
        name=name,
        dataset="digits",
        mode=mode,
        health_weight=0.3,
        n_trials=n_complete + n_pruned + n_failed + n_running,
        epochs=epochs,
        max_samples=600,
        tune=list(IMAGE_TUNED),
        sampler="nsga2" if mode == "pareto" else "tpe",
        pruner="none" if mode == "pareto" else "median",
        seed=seed,
        storage=storage_url,
    )
    dists = {
        "conv_blocks": IntDistribution(1, 4),
        "filters": IntDistribution(8, 128, log=True),
        "dense_units": IntDistribution(16, 512, log=True),
        "dropout": FloatDistribution(0.0, 0.6),
        "activation": CategoricalDistribution(["relu", "leaky_relu", "elu", "gelu", "swish", "tanh"]),
        "learning_rate": FloatDistribution(1e-4, 3e-2, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64, 128, 256]),
    }

    def draw() -> dict[str, Any]:
        return {
            "conv_blocks": rng.randint(1, 4),
            "filters": int(2 ** rng.uniform(3, 7)),
            "dense_units": int(2 ** rng.uniform(4, 9)),
            "dropout": round(rng.uniform(0.0, 0.6), 3),
            "activation": rng.choice(["relu", "leaky_relu", "elu", "gelu", "swish", "tanh"]),
            "learning_rate": 10 ** rng.uniform(-4, math.log10(3e-2)),
            "batch_size": rng.choice([16, 32, 64, 128, 256]),
        }

    storage = S.open_storage(storage_url)
    study = optuna.create_study(study_name=name, storage=storage, directions=config.directions)
    now = time.time()
    study.set_user_attr(K.ATTR_CONFIG, config.to_dict())
    study.set_user_attr(K.ATTR_CREATED, now - 600)
    study.set_user_attr(K.ATTR_STATUS, status or ("running" if n_running else "finished"))
    study.set_user_attr(K.ATTR_HEARTBEAT, now if n_running else now - 120)

    fake = FakeStudy(name=name, storage_url=storage_url, config=config)
    t0 = dt.datetime.now() - dt.timedelta(minutes=10)
    number = 0
    trials = []

    def base_attrs(n: int, params: dict[str, Any]) -> dict[str, Any]:
        spec = config.trial_spec({**params}, n).to_dict()
        return {K.T_SPEC: spec, K.T_EXECUTOR: "local", K.T_HOST: socket.gethostname(), K.T_RUNNER: FAKE_RUNNER_ID}

    for _ in range(n_complete):
        params = draw()
        model_path = None
        if with_models:
            path = settings.study_dir(name) / f"trial-{number:04d}" / "model.keras"
            _fake_keras_file(path, number)
            model_path = str(path)
        res = _fake_result(number, params, epochs, rng, name, model_path)
        values = res.objective(mode, config.health_weight)
        values = list(values) if isinstance(values, tuple) else [values]
        attrs = {
            **base_attrs(number, params),
            K.T_RESULT: res.to_dict(),
            K.T_TEST_ACCURACY: res.test_accuracy,
            K.T_HEALTH: res.health_score,
            K.T_PARAMS: res.param_count,
        }
        start = t0 + dt.timedelta(seconds=20 * number)
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                values=values,
                params=params,
                distributions=dists,
                user_attrs=attrs,
                intermediate_values={} if mode == "pareto" else {e + 1: v for e, v in enumerate(res.history["val_accuracy"])},
            )
        )
        trials[-1].datetime_start, trials[-1].datetime_complete = start, start + dt.timedelta(seconds=15)
        fake.results[number] = res
        fake.states[number] = "COMPLETE"
        number += 1

    for _ in range(n_pruned):
        params = draw()
        stop_at = max(1, epochs // 2)
        inter = {e: round(0.1 + 0.15 * e, 4) for e in range(1, stop_at + 1)}
        res = TrialResult(status="stopped", trial_number=number, dataset="digits", epochs_run=stop_at, params=params,
                          history={"val_accuracy": list(inter.values()), "loss": [2.0 - 0.2 * e for e in inter]})
        attrs = {**base_attrs(number, params), K.T_RESULT: res.to_dict()}
        trials.append(create_trial(state=TrialState.PRUNED, params=params, distributions=dists, user_attrs=attrs,
                                   intermediate_values={} if mode == "pareto" else inter))
        fake.states[number] = "PRUNED"
        number += 1

    for _ in range(n_failed):
        params = {**draw(), "learning_rate": 0.029}
        err = "loss became NaN/Inf at epoch 2 (learning rate 0.029, optimizer adam): lower the learning rate or add batch normalisation"
        res = TrialResult(status="failed", trial_number=number, dataset="digits", epochs_run=2, params=params, error=err,
                          history={"loss": [2.5, None], "accuracy": [0.1, None]}, health={"training_stability": 0.0}, health_score=0.0)
        attrs = {**base_attrs(number, params), K.T_RESULT: res.to_dict(), K.T_ERROR: err}
        trials.append(create_trial(state=TrialState.FAIL, params=params, distributions=dists, user_attrs=attrs))
        fake.states[number] = "FAIL"
        number += 1

    for t in trials:
        study.add_trial(t)

    for _ in range(n_running):
        params = draw()
        trial = study.ask({k: d for k, d in dists.items()})
        # ask() samples its own params; keep the record consistent with what the runner writes
        params = dict(trial.params)
        for k, v in base_attrs(trial.number, params).items():
            trial.set_user_attr(k, v)
        done = rng.randint(1, max(1, epochs - 1))
        logs = {"loss": 1.2, "accuracy": 0.6, "val_loss": 1.0, "val_accuracy": 0.65, "seconds": 1.1}
        trial.set_user_attr(K.T_PROGRESS, {"epoch": done, "epochs": epochs, "logs": logs, "time": now})
        if mode != "pareto":
            for e in range(1, done + 1):
                trial.report(0.1 + 0.5 * e / epochs, e)
        fake.states[trial.number] = "RUNNING"

    from core.study import best_record, forget_study, load_records

    best = best_record(load_records(name, storage_url), config)
    forget_study(name, storage_url)  # the study is made as by another process: the app's reads start uncached
    fake.best_number = best.number if best else None
    return fake


def advance_running_trial(storage_url: str, name: str, trial_number: int, epoch: int) -> None:
    """Move a running fake trial's progress on (what the runner does after each epoch)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=S.open_storage(storage_url))
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == trial_number)
    progress = dict(trial.user_attrs.get(K.T_PROGRESS) or {})
    progress.update({"epoch": epoch, "time": time.time()})
    # FrozenTrial exposes no public id; the storage API needs it to update a running trial from outside
    S.open_storage(storage_url).set_trial_user_attr(trial._trial_id, K.T_PROGRESS, progress)


def touch_heartbeat(storage_url: str, name: str, when: float | None = None) -> None:
    """Refresh the study's runner heartbeat, as a live runner does every couple of seconds.

    A fake "running" study counts as running only while its heartbeat is under 30 s old
    (``StudySummary.alive``); tests that share one fake study call this before each test.
    """
    import optuna

    study = optuna.load_study(study_name=name, storage=S.open_storage(storage_url))
    study.set_user_attr(K.ATTR_HEARTBEAT, time.time() if when is None else when)


# --------------------------------------------------------------------------- a fake executor (no TensorFlow)


FAKE_RUNNER_ID = "fake-host:4242:fake0"  # the runner that "asked" every trial of a fake study


class FakeExecutor:
    """Finishes each trial after ``epochs`` fake epochs; accuracy grows with the learning rate (deterministic)."""

    name = "fake"

    def __init__(self, capacity: int = 2, epoch_s: float = 0.0, crash_after: int | None = None):
        self.capacity = capacity
        self.epoch_s = epoch_s
        self.crash_after = crash_after
        self.specs: dict[int, object] = {}
        self.progress: dict[int, int] = {}
        self.stopped: set[int] = set()
        self.done = 0
        self.shut = False
        self._last_epoch = time.monotonic()

    @property
    def running(self):
        return set(self.specs)

    @property
    def free_slots(self):
        return self.capacity - len(self.specs)

    def start(self):
        pass

    def submit(self, spec):
        self.specs[spec.trial_number] = spec
        self.progress[spec.trial_number] = 0

    def stop_trial(self, n):
        self.stopped.add(n)

    def epoch_judged(self, n, epoch):
        pass  # fake trials never wait for a verdict

    def shutdown(self, wait=5.0):
        self.shut = True

    def describe(self):
        return {"name": self.name}

    def events(self, timeout=0.5):
        from core.config import TrialResult
        from core.executors import DoneEvent, EpochEvent

        if self.crash_after is not None and self.done >= self.crash_after:
            raise RuntimeError("fake executor lost its connection")
        # like the real executors, wait at most ``timeout``: an epoch ends ``epoch_s`` after the last
        due = self._last_epoch + self.epoch_s - time.monotonic()
        if due > 0:
            time.sleep(min(due, timeout))
            if due > timeout:
                return []
        self._last_epoch = time.monotonic()
        out = []
        for n, spec in list(self.specs.items()):
            acc = min(0.99, 0.5 + 10 * spec.params["learning_rate"])
            if n in self.stopped:
                out.append(DoneEvent(n, TrialResult(status="stopped", trial_number=n, epochs_run=self.progress[n])))
            elif self.progress[n] < spec.epochs:
                self.progress[n] += 1
                out.append(EpochEvent(n, self.progress[n], {"val_accuracy": acc * self.progress[n] / spec.epochs}))
                continue
            else:
                out.append(DoneEvent(n, TrialResult(status="complete", trial_number=n, val_accuracy=acc,
                                                    test_accuracy=acc - 0.01, health_score=0.5, param_count=100,
                                                    epochs_run=spec.epochs, host="fake-host", executor="fake")))
            del self.specs[n]
            self.done += 1
        return out
