"""Configuration, specs and results: the plain-data contracts of HPO Studio.

Everything that crosses a process or network boundary (a trial to run, its result,
a study's configuration) is a dataclass here that round-trips through JSON.  Paths
come from :class:`Settings`, which reads one environment variable, ``HPO_HOME``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Re-exported so ``from core.config import Settings, ConfigError ...`` keeps working; the owners are
# core.errors (the error vocabulary) and core.paths (names and paths on disk).
from core.errors import ConfigError, as_number, brief
from core.paths import (  # noqa: F401
    MAX_NAME_LENGTH,
    PROJECT_ROOT,
    Settings,
    check_study_name,
    safe_name,
    study_folder_name,
)
# One-way: the data-set registry and the search space know nothing of this module (they use
# core.errors and core.paths), so validating against them here makes no import cycle.
from core.datasets import get_info
from core.search_space import DEFAULT_TUNED, MAX_EPOCHS, validate_params, validate_space


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON text as Python values, or a one-line ConfigError (bad syntax, nesting too deep)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{what}: the JSON is nested too deeply to read") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


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
        """A validated spec from plain data (a file, a job, a pipe).

        Raises:
            ConfigError: not an object, missing or unknown fields, or any invalid value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"TrialSpec must be a JSON object (got {type(data).__name__})")
        for required in ("dataset", "params"):
            if required not in data:
                raise ConfigError(f"TrialSpec is missing '{required}'")
        spec = _from_dict(cls, dict(data))
        spec.validate()
        return spec

    @classmethod
    def from_json(cls, text: str) -> "TrialSpec":
        return cls.from_dict(parse_json(text, "TrialSpec"))

    def validate(self) -> None:
        """Refuse anything a trial could not run with, before any data loads.

        Every hyperparameter goes through :func:`core.search_space.validate_params`; the
        study name through :func:`check_study_name`.  ``artifacts_dir`` is checked where it is
        used (:meth:`Settings.trial_dir`), against the settings of the machine that writes.

        Raises:
            ConfigError: one line naming the field and what to do.
        """
        if not isinstance(self.dataset, str):
            raise ConfigError(f"dataset: must be a data set name (got {brief(self.dataset)})")
        kind = get_info(self.dataset).kind  # ConfigError listing valid names
        if not isinstance(self.params, dict):
            raise ConfigError("params: must be a mapping of hyperparameter name to value")
        self.epochs = as_number(self.epochs, "epochs", integer=True)
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs: must be a whole number from 1 to {MAX_EPOCHS} (got {self.epochs})")
        self.params = validate_params(self.params, kind)
        if self.max_samples is not None:
            self.max_samples = as_number(self.max_samples, "max_samples", integer=True)
            if self.max_samples < 20:
                raise ConfigError(f"max_samples: must be empty or a whole number >= 20 (got {self.max_samples})")
        for name in ("seed", "data_seed", "trial_number"):
            value = as_number(getattr(self, name), name, integer=True)
            if not 0 <= value < 2**32:
                raise ConfigError(f"{name}: must be a whole number from 0 to {2**32 - 1} (got {value})")
            setattr(self, name, value)
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)} (got {brief(self.mode)})")
        self.health_weight = as_number(self.health_weight, "health_weight")
        if not 0.0 <= self.health_weight <= 1.0:
            raise ConfigError(f"health_weight: must be between 0 and 1 (got {self.health_weight})")
        check_study_name(self.study, "study")
        if not isinstance(self.save_model, bool):
            raise ConfigError(f"save_model: must be true or false (got {brief(self.save_model)})")
        if self.artifacts_dir is not None and (not isinstance(self.artifacts_dir, str) or "\x00" in self.artifacts_dir):
            raise ConfigError(f"artifacts_dir: must be empty or a folder path (got {brief(self.artifacts_dir)})")


@dataclass
class LayerHealth:
    """Per-layer figures kept for the health dashboard and the 3D viewer."""

    name: str
    layer_type: str
    units: int  # dense units, conv channels or LSTM units
    dead_fraction: float | None = None  # share of units that carry no signal (core.health.dead_units)
    grad_norm: float | None = None  # L2 norm of this layer's gradient on a fixed batch, last measured epoch
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
    # accuracy on (up to a validation set's worth of) training samples, measured like validation
    # (no dropout): the train side of the generalisation gap
    train_accuracy: float | None = None
    # accuracy on the data set's fixed, damaged copy of the test split (core.shift)
    shifted_accuracy: float | None = None
    # how many samples the validation and test accuracies were measured on (0: not recorded, older
    # results): what tells a real difference between two trials from sampling noise
    val_samples: int = 0
    test_samples: int = 0
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

MAX_EXPERIMENT_VALUES = 7  # a handful: each value is a full trial, and more points than this crowd the plot


def check_knob_values(knob: Any, values: Any, kind: str) -> list[Any]:
    """The values of a one-knob experiment, checked: 2–7 distinct values inside the knob's search range.

    Returns:
        The values normalised (3.0 -> 3 for whole-number knobs), in the order given.

    Raises:
        ConfigError: naming the knob and what it accepts.
    """
    from core.search_space import HYPERPARAMETERS, hyperparameters_for, validate_value

    names = [h.name for h in hyperparameters_for(kind)]
    if not isinstance(knob, str) or knob not in names:
        raise ConfigError(f"experiment: knob must be a hyperparameter of {kind} models, one of "
                          f"{', '.join(names)} (got {brief(knob)})")
    hp = HYPERPARAMETERS[knob]
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"experiment: values of '{knob}' must be a list (got {brief(values)})")
    out: list[Any] = []
    for value in values:
        value = validate_value(hp, value, "experiment")
        if hp.kind in ("int", "float") and not hp.low <= value <= hp.high:
            raise ConfigError(f"experiment: '{knob}' values must be from {hp.low} to {hp.high}"
                              f"{' (log scale)' if hp.log else ''} (got {value})")
        if any(value == v and type(value) is type(v) for v in out):
            raise ConfigError(f"experiment: '{knob}' value {brief(value)} is given twice")
        out.append(value)
    if not 2 <= len(out) <= MAX_EXPERIMENT_VALUES:
        raise ConfigError(f"experiment: give 2 to {MAX_EXPERIMENT_VALUES} values of '{knob}' (got {len(out)}); "
                          f"its range is {hp.describe_range()}")
    return out


SAMPLERS = ("tpe", "random", "nsga2", "motpe")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
#: Where trials run: name -> "module:Class" (each implements ``Executor.from_config``).  The one
#: registry: validation checks names against it and ``core.executors.build_executor`` imports from it.
EXECUTORS: dict[str, str] = {
    "local": "core.executors.local:LocalExecutor",
    "runpod": "core.executors.runpod:RunPodExecutor",
}

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
    epochs: int = 10  # with n_trials=20: >= 97 % within seconds and pruning saves >= 1.5x (bench_default_study)
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
    # A one-knob experiment (core.experiment): {"study", "trial", "knob", "values", "seed"}.  Its
    # trials vary only ``knob`` over ``values`` (each once, in order), with every other param and
    # the seed of the base trial; None = an ordinary search.
    experiment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default (``name`` has none): the one source of a first study's numbers
        for the Configure form, the CLI and bench/bench_default_study.py."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StudyConfig":
        """A config from plain data (not validated: a stored study is read back as it was)."""
        if not isinstance(data, dict):
            raise ConfigError(f"StudyConfig must be a JSON object (got {type(data).__name__})")
        if "name" not in data:
            raise ConfigError("StudyConfig is missing 'name'")
        cfg = _from_dict(cls, dict(data))
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "StudyConfig":
        return cls.from_dict(parse_json(text, "StudyConfig"))

    @property
    def kind(self) -> str:
        return get_info(self.dataset).kind

    @property
    def tuned(self) -> list[str]:
        return list(self.tune) if self.tune is not None else list(DEFAULT_TUNED[self.kind])

    @property
    def directions(self) -> list[str]:
        return ["maximize", "maximize"] if self.mode == "pareto" else ["maximize"]

    def validate(self) -> "StudyConfig":
        """Refuse bad settings before any work starts; each message names the setting."""
        check_study_name(self.name, "name")
        if len(self.name) > 80:
            raise ConfigError("name: keep it under 80 characters")
        if not isinstance(self.dataset, str):
            raise ConfigError(f"dataset: must be a data set name (got {brief(self.dataset)})")
        info = get_info(self.dataset)  # ConfigError listing valid names
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)} (got {brief(self.mode)})")
        self.health_weight = as_number(self.health_weight, "health_weight")
        if not 0.0 <= self.health_weight <= 1.0:
            raise ConfigError(f"health_weight: must be between 0 and 1 (got {self.health_weight})")
        if self.n_trials is None and self.timeout_s is None:
            raise ConfigError("n_trials / timeout_s: give a number of trials, a time budget, or both")
        if self.n_trials is not None:
            self.n_trials = as_number(self.n_trials, "n_trials", integer=True)
            if not 1 <= self.n_trials <= 1_000_000:
                raise ConfigError(f"n_trials: must be a whole number from 1 to 1000000 (got {self.n_trials})")
        if self.timeout_s is not None:
            self.timeout_s = as_number(self.timeout_s, "timeout_s")
            if self.timeout_s <= 0:
                raise ConfigError(f"timeout_s: must be above 0 seconds (got {self.timeout_s})")
        self.epochs = as_number(self.epochs, "epochs", integer=True)
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"epochs: must be a whole number from 1 to {MAX_EPOCHS} (got {self.epochs})")
        if self.max_samples is not None:
            self.max_samples = as_number(self.max_samples, "max_samples", integer=True)
            if self.max_samples < 20:
                raise ConfigError(f"max_samples: leave empty for all data or give a whole number >= 20 (got {self.max_samples})")
        if self.tune is not None and (not isinstance(self.tune, (list, tuple))
                                      or not all(isinstance(t, str) for t in self.tune)):
            raise ConfigError(f"tune: must be a list of hyperparameter names (got {brief(self.tune)})")
        if not isinstance(self.ranges, dict):
            raise ConfigError(f"ranges: must map hyperparameter names to ranges (got {brief(self.ranges)})")
        if not isinstance(self.fixed, dict):
            raise ConfigError(f"fixed: must map hyperparameter names to values (got {brief(self.fixed)})")
        validate_space(info.kind, self.tuned, self.ranges)
        self.fixed = validate_params(self.fixed, info.kind, what="fixed")
        if not self.tuned:
            raise ConfigError("tune: choose at least one hyperparameter to search")
        if not isinstance(self.sampler, str) or self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler: must be one of {', '.join(SAMPLERS)} (got {brief(self.sampler)})")
        if self.mode == "pareto" and self.sampler not in ("nsga2", "motpe", "random"):
            raise ConfigError("sampler: pareto mode has two objectives; use nsga2, motpe or random")
        if self.mode != "pareto" and self.sampler in ("nsga2", "motpe"):
            raise ConfigError(f"sampler: {self.sampler} is for pareto mode; use tpe or random")
        if not isinstance(self.pruner, str) or self.pruner not in PRUNERS:
            raise ConfigError(f"pruner: must be one of {', '.join(PRUNERS)} (got {brief(self.pruner)})")
        if self.mode == "pareto" and self.pruner != "none":
            raise ConfigError("pruner: Optuna cannot prune multi-objective (pareto) studies; choose 'none'")
        if not isinstance(self.executor, str) or self.executor not in EXECUTORS:
            raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)} (got {brief(self.executor)})")
        max_workers = 6 if self.executor == "runpod" else 16
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or not 1 <= self.workers <= max_workers:
            raise ConfigError(f"workers: must be from 1 to {max_workers} for {self.executor} (got {brief(self.workers)})")
        if isinstance(self.keep_best_k, bool) or not isinstance(self.keep_best_k, int) or self.keep_best_k < 1:
            raise ConfigError(f"keep_best_k: keep at least 1 model (got {brief(self.keep_best_k)})")
        self.seed = as_number(self.seed, "seed", integer=True)
        if not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed: must be a whole number from 0 to {2**31 - 1} (got {self.seed})")
        for name in ("storage", "runpod_endpoint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise ConfigError(f"{name}: must be empty or text (got {brief(value)})")
        if self.experiment is not None:
            self._validate_experiment(info.kind)
        return self

    def _validate_experiment(self, kind: str) -> None:
        """An experiment varies one knob over 2–7 values and nothing else, every trial on one seed."""
        exp = self.experiment
        if not isinstance(exp, dict):
            raise ConfigError(f"experiment: must be a mapping with study, trial, knob and values (got {brief(exp)})")
        unknown = set(exp) - {"study", "trial", "knob", "values", "seed"}
        if unknown:
            raise ConfigError(f"experiment: unknown field(s) {sorted(map(str, unknown))}")
        check_study_name(exp.get("study"), "experiment: study")
        for key in ("trial", "seed"):
            value = as_number(exp.get(key, 0), f"experiment: {key}", integer=True)
            if not 0 <= value < 2**32:
                raise ConfigError(f"experiment: {key} must be a whole number from 0 to {2**32 - 1} (got {value})")
            exp[key] = value
        exp["values"] = check_knob_values(exp.get("knob"), exp.get("values"), kind)
        knob = exp["knob"]
        if self.tuned != [knob]:
            raise ConfigError(f"tune: an experiment on '{knob}' tunes only '{knob}' (got {brief(self.tuned)})")
        if knob in self.fixed:
            raise ConfigError(f"fixed: '{knob}' is the experiment's knob; it cannot also be fixed")
        if self.pruner != "none":
            raise ConfigError("pruner: an experiment trains every value to the end; choose 'none'")
        if self.n_trials != len(exp["values"]):
            raise ConfigError(f"n_trials: an experiment runs one trial per value ({len(exp['values'])}, got {self.n_trials})")

    def trial_spec(self, params: dict[str, Any], trial_number: int) -> TrialSpec:
        """The spec one trial of this study runs (seed varies per trial, reproducibly).

        In a one-knob experiment every trial runs on the base trial's seed (``experiment["seed"]``):
        same initial weights, shuffling and dropout masks, so the knob is the only difference.

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
            seed=int(self.experiment["seed"]) if self.experiment else self.seed + trial_number,
            data_seed=self.seed,
            mode=self.mode,
            health_weight=self.health_weight,
            study=self.name,
            trial_number=trial_number,
        )
