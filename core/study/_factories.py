"""Samplers, pruners, and creating or opening a study: the factories of ``core.study``."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

from core import storage as S
from core.config import ConfigError, Settings, StudyConfig
from core.errors import StudyNotFound
from core.study import _schema as K

log = logging.getLogger("hpo.study")


def make_sampler(config: StudyConfig, *, seed_offset: int = 0):
    """The Optuna sampler for a config.

    TPE is multivariate (the knobs interact: learning rate with batch size, filters with
    dropout) and uses ``constant_liar`` explicitly so parallel workers are not handed the
    same point (Optuna 5 defaults it to True; we do not rely on that).  ``seed_offset``
    shifts the seed on resume so a resumed random search does not replay its first trials.
    """
    import optuna

    if config.experiment:
        return make_knob_sampler(config.experiment["knob"], config.experiment["values"])
    seed = config.seed + seed_offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if config.sampler in ("tpe", "motpe"):
            startup = 10 if config.n_trials is None else min(10, max(4, config.n_trials // 3))
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, constant_liar=True, n_startup_trials=startup
            )
        if config.sampler == "nsga2":
            population = 50 if config.n_trials is None else max(4, min(50, config.n_trials // 3))
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    raise ConfigError(f"sampler: unknown sampler {config.sampler!r}")


def make_knob_sampler(knob: str, values: list[Any]):
    """A sampler for a one-knob experiment: each trial takes the first of ``values`` that no trial has
    taken yet, so every value runs once, in the order given.

    Not Optuna's GridSampler: it calls ``Study.stop()`` when the grid is done, which raises outside
    ``optimize`` (the runner uses ask/tell), and it never revisits a value whose trial was cut off by a
    cancel.  "Taken" here is exactly what counts against the trial budget (``counts_against_budget``:
    finished, running, or failed on its own), so a resumed experiment runs the values still missing.
    """
    import optuna

    class KnobSampler(optuna.samplers.BaseSampler):
        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if param_name != knob:
                raise ConfigError(f"experiment: only '{knob}' varies (asked for {param_name!r})")
            taken: list[Any] = []
            for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
                if t.number == trial.number or knob not in t.params:
                    continue
                if K.counts_against_budget(t.state.name, bool(t.user_attrs.get(K.T_INTERRUPTED)), running=True):
                    taken.append(t.params[knob])
            for value in values:
                if not any(_same(value, v) for v in taken):
                    return value
            # every value taken (two runners raced for the last one): repeat the least-run value
            return min(values, key=lambda v: sum(_same(v, t) for t in taken))

    return KnobSampler()


def _same(a: Any, b: Any) -> bool:
    """Equal as knob values: a bool only equals a bool, numbers compare by value (1e-3 == 0.001)."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-12 * max(abs(a), abs(b)))


def max_epochs(config: StudyConfig) -> int:
    """Most epochs a trial of this study can run (the upper bound when ``epochs`` is tuned)."""
    if "epochs" in config.tuned:
        from core.search_space import HYPERPARAMETERS

        return int(config.ranges.get("epochs", {}).get("high", HYPERPARAMETERS["epochs"].high))
    return int(config.epochs)


def make_pruner(config: StudyConfig):
    """The Optuna pruner for a config. Steps are epochs, counted from 1.

    Settings from bench/bench_search.py (a digits grid trained once for 15 epochs and
    replayed at 3–15 epochs per trial, 40 seeds; bench/README.md has the tables):

    * successive_halving (default): first rung at epoch 2, keep the better half at each
      rung (epochs 2, 4, 8, ...).  The one setting that reached the unpruned best (within 0.5
      points) on 37–40 of 40 seeds at every horizon: 1.56–1.88x fewer epochs at 8–15 epochs
      per trial, 1.1–1.35x at 3–6 (short trials leave little to save).  A first rung at epoch
      1 saves more on some horizons but misses the best on half the seeds on others (slow
      starters); a rung at a third of the epochs, the earlier rule, saved less as trials got
      longer (1.16x at 15 epochs).
    * median: below the median of earlier trials, judged from two thirds of the epochs on,
      once 4 trials finished — 1.07–1.25x, safe;
    * hyperband: brackets from half the epochs, halving — 1.06–1.27x, safe.
    """
    import optuna

    top = max(1, max_epochs(config))
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, (2 * top) // 3))
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, top // 2), max_resource=top, reduction_factor=2)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min(2, max(1, top - 1)), reduction_factor=2)
    raise ConfigError(f"pruner: unknown pruner {config.pruner!r}")


def create_study(config: StudyConfig, *, settings: Settings | None = None, sampler: Any = None, pruner: Any = None):
    """Create a new Optuna study for ``config`` and store the config in it.

    Raises:
        ConfigError: invalid config, unreachable storage, or a study of that name exists
            already (the message says to resume it or choose another name).
    """
    import optuna

    config.validate()
    url = S.resolve_url(config.storage, settings)
    storage = S.open_storage(url)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=config.name,
            directions=config.directions,
            sampler=sampler or make_sampler(config),
            pruner=pruner or make_pruner(config),
            load_if_exists=False,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(
            f"name: a study called '{config.name}' already exists in {S.redact(url)}; "
            f"resume it (python -m core resume {config.name}) or choose another name"
        ) from None
    study.set_user_attr(K.ATTR_CONFIG, config.to_dict())
    study.set_user_attr(K.ATTR_CREATED, time.time())
    study.set_user_attr(K.ATTR_STATUS, "created")
    log.info("created study %s in %s (%s, %s sampler, %s pruner)", config.name, S.redact(url), config.mode,
             config.sampler, config.pruner)
    return study


def load_study(name: str, storage_url: str | None = None, *, settings: Settings | None = None, sampler: Any = None,
               pruner: Any = None):
    """Open an existing study: the one way every reader and runner opens one.

    Raises:
        StudyNotFound: no study of that name there (a ConfigError naming the storage, and a KeyError).
        ConfigError: the storage cannot be opened.
    """
    import optuna

    url = S.resolve_url(storage_url, settings)
    try:
        return optuna.load_study(study_name=name, storage=S.open_storage(url), sampler=sampler, pruner=pruner)
    except KeyError:
        raise StudyNotFound(
            f"study: no study called '{name}' in {S.redact(url)}; `python -m core list` shows the studies there"
        ) from None
