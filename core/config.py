"""Configuration, specs and results: the plain-data contracts of HPO Studio.

Everything that crosses a process or network boundary (a trial to run, its result,
a study's configuration) is a dataclass here that round-trips through JSON.  Paths
come from :class:`Settings`, which reads one environment variable, ``HPO_HOME``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting the user can fix. The message names the setting and what to do."""


class TrialFailed(RuntimeError):
    """One trial is lost (NaN loss, out of memory, bad combination); the study goes on."""


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class Settings:
    """Where HPO Studio keeps its files.

    ``runs/``, ``logs/`` and ``datasets/`` live under one home folder, the project
    folder by default, so tests, benchmarks and a hosted demo can each move all
    three with ``HPO_HOME``.  ``HPO_DATASETS`` moves only the data-set cache (useful
    to share downloads between homes).
    """

    home: Path

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(home=Path(os.environ.get("HPO_HOME", PROJECT_ROOT)).resolve())

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def datasets_dir(self) -> Path:
        override = os.environ.get("HPO_DATASETS")
        return Path(override).resolve() if override else self.home / "datasets"

    @property
    def default_storage(self) -> str:
        # SQLite is enough for one writing runner and polling readers (measured, DESIGN.md).
        return f"sqlite:///{self.runs_dir / 'studies.db'}"

    def study_dir(self, study_name: str) -> Path:
        return self.runs_dir / safe_name(study_name)

    def ensure(self) -> "Settings":
        for d in (self.runs_dir, self.logs_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def safe_name(name: str) -> str:
    """A study or file name reduced to characters that are safe in a path."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "study"


# --------------------------------------------------------------------------- JSON helpers


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Inf; None reads as "not measured"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def to_json(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_jsonable(obj), **kwargs)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; expected some of {sorted(names)}")
    return cls(**data)


# --------------------------------------------------------------------------- trial spec / result

MODES = ("simple", "health-aware", "pareto")


@dataclass
class TrialSpec:
    """Everything needed to train one model, anywhere: plain JSON.

    The same spec run locally or on a RunPod worker must give the same accuracy.
    """

    dataset: str
    params: dict[str, Any]
    epochs: int = 5
    max_samples: int | None = None  # cap on training samples; None = the whole set
    seed: int = 0  # seeds weights, shuffling and dropout; varies per trial
    data_seed: int = 0  # seeds the train/validation split; fixed per study so trials compare fairly
    mode: str = "simple"
    health_weight: float = 0.3
    study: str = "adhoc"
    trial_number: int = 0
    save_model: bool = True
    # Folder for this trial's artifacts; None = runs/<study>/trial-<n> under Settings.
    artifacts_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialSpec":
        if not isinstance(data, dict):
            raise ConfigError("TrialSpec must be a JSON object")
        for required in ("dataset", "params"):
            if required not in data:
                raise ConfigError(f"TrialSpec is missing '{required}'")
        spec = _from_dict(cls, dict(data))
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "TrialSpec":
        return cls.from_dict(json.loads(text))

    def validate(self) -> None:
        if not isinstance(self.params, dict):
            raise ConfigError("params must be a mapping of hyperparameter name to value")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a whole number >= 1 (got {self.epochs!r})")
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 20):
            raise ConfigError(f"max_samples must be empty or a whole number >= 20 (got {self.max_samples!r})")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not 0.0 <= float(self.health_weight) <= 1.0:
            raise ConfigError(f"health_weight must be between 0 and 1 (got {self.health_weight!r})")


@dataclass
class LayerHealth:
    """Per-layer figures kept for the health dashboard and the 3D viewer."""

    name: str
    layer_type: str
    units: int  # dense units, conv channels or LSTM units
    dead_fraction: float | None = None  # share of units that carry no signal (core.health.dead_units)
    grad_norm: float | None = None  # L2 norm of this layer's gradient on a fixed batch, last epoch
    activation_mean: float | None = None
    update_ratio: float | None = None  # update-to-weight ratio per training step (median over epochs)
    gradient_score: float | None = None  # this layer's share of gradient_health (core.health.layer_gradient_scores)
    dead_label: str | None = None  # what "dead" means for this layer's activation, in words


@dataclass
class TrialResult:
    """What one trial produced. Plain JSON; stored as Optuna user attributes."""

    status: str  # "complete" | "failed" | "stopped"
    trial_number: int = 0
    dataset: str = ""
    val_accuracy: float | None = None
    val_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    # accuracy on the data set's fixed, damaged copy of the test split (core.shift)
    shifted_accuracy: float | None = None
    # validation accuracy of each class (recall), in class order; None where a class has no sample
    class_accuracy: list[float | None] = field(default_factory=list)
    # keys: loss, accuracy, val_loss, val_accuracy, lr; one value per epoch
    history: dict[str, list[float | None]] = field(default_factory=dict)
    epochs_run: int = 0
    health: dict[str, float | None] = field(default_factory=dict)  # the six metrics
    health_score: float | None = None
    layers: list[LayerHealth] = field(default_factory=list)
    param_count: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, build, train, evaluate, health, total
    model_path: str | None = None
    result_path: str | None = None
    error: str | None = None
    executor: str = "local"
    host: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] | None = None  # compact layer summary (name, type, output shape, params)

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def to_json(self, **kwargs: Any) -> str:
        return to_json(self, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialResult":
        data = dict(data)
        data["layers"] = [LayerHealth(**layer) if isinstance(layer, dict) else layer for layer in data.get("layers") or []]
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "TrialResult":
        return cls.from_dict(json.loads(text))

    def objective(self, mode: str, health_weight: float = 0.3) -> float | tuple[float, float]:
        """The value Optuna maximises for this result under ``mode`` (validation, never test)."""
        return objective_value(self.val_accuracy, self.health_score, mode, health_weight)


def objective_value(
    val_accuracy: float | None, health_score: float | None, mode: str, health_weight: float = 0.3
) -> float | tuple[float, float]:
    """simple: validation accuracy; health-aware: (1-w)*accuracy + w*health; pareto: both."""
    acc = float(val_accuracy or 0.0)
    health = float(health_score or 0.0)
    if mode == "simple":
        return acc
    if mode == "health-aware":
        return (1.0 - health_weight) * acc + health_weight * health
    if mode == "pareto":
        return (acc, health)
    raise ConfigError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")


# --------------------------------------------------------------------------- study config

SAMPLERS = ("tpe", "random", "nsga2", "motpe")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
EXECUTORS = ("local", "runpod")

# What each choice means, for the Configure form and the Learn screen (one wording for both).
MODE_HELP = {
    "simple": "Maximise validation accuracy. Fast to explain, blind to how healthy the model is.",
    "health-aware": "Maximise a blend of validation accuracy and the health score; you choose the weight.",
    "pareto": "Two objectives, accuracy and health: the study keeps every trade-off no other trial beats (the Pareto front).",
}
SAMPLER_HELP = {
    "tpe": "TPE (Bayesian): learns which regions of the space score well and samples there more often.",
    "random": "Random search: no learning, a fair baseline, and surprisingly strong for few trials.",
    "nsga2": "NSGA-II (genetic): evolves a population toward the accuracy/health Pareto front.",
    "motpe": "Multi-objective TPE: TPE for two objectives.",
}
PRUNER_HELP = {
    "none": "Every trial trains all its epochs.",
    "median": "From two thirds of the epochs on, stop a trial whose validation accuracy is below the median of earlier trials at the same epoch.",
    "hyperband": "Hyperband: runs many trials briefly and gives more epochs to the promising ones.",
    "successive_halving": "Successive halving (default): from epoch 2 on, keeps the better half of the trials at each rung (epochs 2, 4, 8, ...).",
}
# bench/bench_search.py: the default pruner saves >= 1.5x epochs for the same best model from
# this many epochs per trial on; the measured figures, in the words Configure and Learn show.
PRUNING_PAYS_FROM_EPOCHS = 8
PRUNING_MEASURED = ("measured on digits, the default reached the same best model with 1.1–1.35x fewer epochs at "
                    f"3–6 epochs per trial and 1.5–1.9x at {PRUNING_PAYS_FROM_EPOCHS}–15")


@dataclass
class StudyConfig:
    """A study as the user configured it. Kept as a study attribute so resume needs nothing else."""

    name: str
    dataset: str = "digits"
    mode: str = "simple"
    health_weight: float = 0.3  # health-aware: objective = (1-w)*val_accuracy + w*health
    n_trials: int | None = 20
    timeout_s: float | None = None  # wall-clock budget; None = until n_trials
    epochs: int = 5
    max_samples: int | None = None
    tune: list[str] | None = None  # None = search_space.DEFAULT_TUNED for the data kind
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "successive_halving"  # the pruner that saved most epochs without losing the best (bench_search)
    seed: int = 0
    executor: str = "local"
    workers: int = 1
    storage: str | None = None  # Optuna storage URL; None = Settings.default_storage
    keep_best_k: int = 5  # models kept on disk; the rest are deleted to bound disk use
    runpod_endpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudyConfig":
        cfg = _from_dict(cls, dict(data))
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "StudyConfig":
        return cls.from_dict(json.loads(text))

    @property
    def kind(self) -> str:
        from core.datasets import get_info

        return get_info(self.dataset).kind

    @property
    def tuned(self) -> list[str]:
        from core.search_space import DEFAULT_TUNED

        return list(self.tune) if self.tune is not None else list(DEFAULT_TUNED[self.kind])

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.mode == "pareto" else ["maximize"]

    def validate(self) -> "StudyConfig":
        """Refuse bad settings before any work starts; each message names the setting."""
        from core.datasets import get_info
        from core.search_space import validate_space

        if not self.name or not str(self.name).strip():
            raise ConfigError("name: give the study a name")
        if len(self.name) > 80:
            raise ConfigError("name: keep it under 80 characters")
        info = get_info(self.dataset)  # ConfigError listing valid names
        if self.mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not 0.0 <= float(self.health_weight) <= 1.0:
            raise ConfigError(f"health_weight: must be between 0 and 1 (got {self.health_weight})")
        if self.n_trials is None and self.timeout_s is None:
            raise ConfigError("n_trials / timeout_s: give a number of trials, a time budget, or both")
        if self.n_trials is not None and (not isinstance(self.n_trials, int) or self.n_trials < 1):
            raise ConfigError(f"n_trials: must be a whole number >= 1 (got {self.n_trials!r})")
        if self.timeout_s is not None and float(self.timeout_s) <= 0:
            raise ConfigError(f"timeout_s: must be above 0 seconds (got {self.timeout_s})")
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 500:
            raise ConfigError(f"epochs: must be a whole number from 1 to 500 (got {self.epochs!r})")
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 20):
            raise ConfigError(f"max_samples: leave empty for all data or give a whole number >= 20 (got {self.max_samples!r})")
        validate_space(info.kind, self.tuned, self.ranges)
        if not self.tuned:
            raise ConfigError("tune: choose at least one hyperparameter to search")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler: must be one of {', '.join(SAMPLERS)} (got {self.sampler!r})")
        if self.mode == "pareto" and self.sampler not in ("nsga2", "motpe", "random"):
            raise ConfigError("sampler: pareto mode has two objectives; use nsga2, motpe or random")
        if self.mode != "pareto" and self.sampler in ("nsga2", "motpe"):
            raise ConfigError(f"sampler: {self.sampler} is for pareto mode; use tpe or random")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"pruner: must be one of {', '.join(PRUNERS)} (got {self.pruner!r})")
        if self.mode == "pareto" and self.pruner != "none":
            raise ConfigError("pruner: Optuna cannot prune multi-objective (pareto) studies; choose 'none'")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)} (got {self.executor!r})")
        max_workers = 6 if self.executor == "runpod" else 16
        if not isinstance(self.workers, int) or not 1 <= self.workers <= max_workers:
            raise ConfigError(f"workers: must be from 1 to {max_workers} for {self.executor} (got {self.workers!r})")
        if not isinstance(self.keep_best_k, int) or self.keep_best_k < 1:
            raise ConfigError(f"keep_best_k: keep at least 1 model (got {self.keep_best_k!r})")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed: must be a whole number (got {self.seed!r})")
        return self

    def trial_spec(self, params: dict[str, Any], trial_number: int) -> TrialSpec:
        """The spec one trial of this study runs (seed varies per trial, reproducibly).

        ``epochs`` is the study's, unless the trial's params tune or fix it; the params are
        updated to say which, so a trial's params always reproduce it.
        """
        params = dict(params)
        if "epochs" in self.tuned or "epochs" in self.fixed:
            epochs = int(params.get("epochs", self.epochs))
        else:
            epochs = self.epochs
        params["epochs"] = epochs
        return TrialSpec(
            dataset=self.dataset,
            params=params,
            epochs=epochs,
            max_samples=self.max_samples,
            seed=self.seed + trial_number,
            data_seed=self.seed,
            mode=self.mode,
            health_weight=self.health_weight,
            study=self.name,
            trial_number=trial_number,
        )
