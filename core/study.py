"""StudyRunner: the Optuna ask/tell loop that feeds an executor, in a background thread.

One runner owns one study while it runs.  It asks Optuna for as many trials as the
executor has free slots, turns each into a :class:`~core.config.TrialSpec`, submits it,
and turns the executor's events back into Optuna calls: ``report`` / ``should_prune``
per epoch, ``tell`` when a trial ends.  Everything a screen shows is written to the
storage as it happens (DESIGN.md, "one source of truth").

Why ask/tell and not ``study.optimize``: trials run in other processes (or on RunPod),
several at a time, and pruning decisions must reach them while they train.

Study attributes written: ``config`` (the StudyConfig, so ``resume`` needs nothing else),
``created``, ``status`` (running | stopping | stopped | finished | cancelled | crashed),
``runner_heartbeat`` (refreshed every ``HEARTBEAT_S``) and ``runner`` (host and pid, so a
dead runner on this host is recognised at once).  Optuna's own heartbeat does not cover
ask/tell, so trials left RUNNING by a dead runner are swept by :func:`sweep_stale`.

Several runners on one study (Optuna's distributed mode, PostgreSQL across machines):
the owner (``optimize`` / ``resume``) is joined by runners made with
``StudyRunner.attach`` (``python -m core worker``), each with its own executor.  Every
runner has an id ``host:pid:random``, stamps it on the trials it asks (``runner_id``,
with ``host``), and refreshes its own study attribute ``worker:<id>`` with each
heartbeat.  A joining runner never touches ``status`` / ``runner``; all runners share
the ``n_trials`` budget by counting the trials in the storage just before each ask (two
runners racing for the last slot may overshoot by at most runners-1 trials).  A RUNNING
trial is swept only when the runner that asked it is dead (same host: its pid is gone;
another host: its beat is older than ``STALE_AFTER_S``).
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import os
import secrets
import socket
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import artifacts
from core import storage as S
from core.config import ConfigError, Settings, StudyConfig, TrialResult, TrialSpec, objective_value
from core.executors.base import DoneEvent, EpochEvent, Executor

log = logging.getLogger("hpo.study")

# Study / trial attributes this module adds to the schema in core.storage.
ATTR_RUNNER = "runner"  # {"host", "pid", "started"} of the runner that owns the study now
T_INTERRUPTED = "interrupted"  # True on trials ended by cancel or a dead runner (not counted in the budget)

HEARTBEAT_S = 2.0  # how often the runner refreshes ATTR_HEARTBEAT
STALE_AFTER_S = 30.0  # a heartbeat older than this means the runner is gone (matches records.StudySummary.alive)
POLL_S = 0.5  # longest wait for executor events; bounds how fast stop/cancel are noticed
CANCEL_GRACE_S = 5.0  # on cancel, how long running trials get to report what they have before being cut off
SWEEP_EVERY_S = 10.0  # how often a running runner sweeps trials of dead fellow runners

RUNNING_STATES = ("running", "stopping")
TrialEndCallback = Callable[[int, str, TrialResult], None]

# (storage url, study name) -> runner, for runners alive in this process
_ACTIVE: dict[tuple[str, str], "StudyRunner"] = {}
_ACTIVE_LOCK = threading.Lock()


# --------------------------------------------------------------------------- samplers, pruners, studies


def make_sampler(config: StudyConfig, *, seed_offset: int = 0):
    """The Optuna sampler for a config.

    TPE is multivariate (the knobs interact: learning rate with batch size, filters with
    dropout) and uses ``constant_liar`` explicitly so parallel workers are not handed the
    same point (Optuna 5 defaults it to True; we do not rely on that).  ``seed_offset``
    shifts the seed on resume so a resumed random search does not replay its first trials.
    """
    import optuna

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
    study.set_user_attr(S.ATTR_CONFIG, config.to_dict())
    study.set_user_attr(S.ATTR_CREATED, time.time())
    study.set_user_attr(S.ATTR_STATUS, "created")
    log.info("created study %s in %s (%s, %s sampler, %s pruner)", config.name, S.redact(url), config.mode,
             config.sampler, config.pruner)
    return study


def load_study(name: str, storage_url: str | None = None, *, settings: Settings | None = None, sampler: Any = None,
               pruner: Any = None):
    """Open an existing study. Raises ConfigError naming the storage when it is not there."""
    import optuna

    url = S.resolve_url(storage_url, settings)
    try:
        return optuna.load_study(study_name=name, storage=S.open_storage(url), sampler=sampler, pruner=pruner)
    except KeyError:
        raise ConfigError(
            f"study: no study called '{name}' in {S.redact(url)}; `python -m core list` shows the studies there"
        ) from None


# --------------------------------------------------------------------------- liveness and stale trials


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def runner_alive(study: Any, *, stale_after: float = STALE_AFTER_S, storage_url: str | None = None,
                 ignore: "StudyRunner | None" = None) -> bool:
    """Whether a runner is driving ``study`` right now (here, or in another live process).

    See :func:`owner_alive`, which judges the same from the study's attributes alone.
    ``ignore`` is a runner of this process not to count (the one asking).
    """
    attrs = study.user_attrs
    return owner_alive(study.study_name, attrs.get(S.ATTR_STATUS), attrs.get(S.ATTR_HEARTBEAT), attrs.get(ATTR_RUNNER),
                       stale_after=stale_after, storage_url=storage_url, ignore=ignore)


def owner_alive(name: str, status: str | None, heartbeat: float | None, owner: dict[str, Any] | None, *,
                stale_after: float = STALE_AFTER_S, storage_url: str | None = None,
                ignore: "StudyRunner | None" = None) -> bool:
    """The one rule for "study ``name`` is being run now", from its ``status``, ``runner_heartbeat``
    and ``runner`` attributes (what any reader of the storage has, e.g. the app's study list).

    A runner of this process counts while it is registered.  Otherwise the status must be
    running or stopping; a runner on this host is judged by its pid (a ``kill -9``-ed runner,
    or an app server restarted under its study, is recognised at once); one on another host
    by its heartbeat (older than ``stale_after`` = gone).
    """
    with _ACTIVE_LOCK:
        if any(n == name and (storage_url is None or url == storage_url) and runner is not ignore
               for (url, n), runner in _ACTIVE.items()):
            return True
    if status not in RUNNING_STATES:
        return False
    fresh = heartbeat is not None and time.time() - float(heartbeat) < stale_after
    owner = owner if isinstance(owner, dict) else {}
    if owner.get("host") == socket.gethostname() and owner.get("pid"):
        pid = int(owner["pid"])
        if pid == os.getpid():
            return False  # recorded by this process, but no runner here holds it (checked above)
        return fresh and _pid_alive(pid)
    return fresh


def request_stop(name: str, storage_url: str | None = None, *, cancel: bool = False, by: str | None = None,
                 settings: Settings | None = None) -> None:
    """Ask every runner of study ``name`` to stop (or, with ``cancel``, to cancel), through the storage.

    The owner and every joined runner (``python -m core worker``, on any machine) read the
    request at their next heartbeat (``HEARTBEAT_S``) and act as on ``stop()`` / ``cancel()``.
    A runner started or resumed after the request ignores it.

    Raises:
        ConfigError: no such study.
    """
    url = S.resolve_url(storage_url, settings)
    study = load_study(name, url, settings=settings)
    action = "cancel" if cancel else "stop"
    study.set_user_attr(S.ATTR_CONTROL, {"action": action, "at": time.time(), "by": by or socket.gethostname()})
    log.info("study %s: %s requested by %s", name, action, by or socket.gethostname())


def new_runner_id() -> str:
    """``host:pid:random``: unique per runner, and says where to look for its process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _active_runner_ids() -> set[str]:
    with _ACTIVE_LOCK:
        return {r.runner_id for r in _ACTIVE.values()}


def runner_id_alive(study_attrs: dict[str, Any], runner_id: str, *, stale_after: float = STALE_AFTER_S,
                    active_ids: set[str] | None = None) -> bool:
    """Whether the runner ``runner_id`` (a trial's ``runner_id``) is alive.

    In this process: while it is registered.  Same host: its pid exists.  Another host:
    its ``worker:<id>`` beat is younger than ``stale_after``.
    """
    active = _active_runner_ids() if active_ids is None else active_ids
    if runner_id in active:
        return True
    host, _, rest = runner_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid != os.getpid() and _pid_alive(pid)
    info = study_attrs.get(S.ATTR_WORKER_PREFIX + runner_id) or {}
    beat = info.get("beat")
    return beat is not None and info.get("status") in (None, *RUNNING_STATES) and time.time() - float(beat) < stale_after


def _just_asked(t: Any, within_s: float = 10.0) -> bool:
    # ask and the runner_id stamp are separate writes: an unstamped trial this young may
    # belong to a live runner that has not stamped it yet (a later sweep still catches it)
    start = t.datetime_start
    return start is not None and (datetime.datetime.now() - start).total_seconds() < within_s


def _set_trial_attr(study: Any, frozen: Any, key: str, value: Any) -> None:
    # A FrozenTrial has no setter; write through the storage as Optuna's own stale-trial sweep does.
    study._storage.set_trial_user_attr(frozen._trial_id, key, value)


def sweep_stale(study: Any, *, storage_url: str | None = None, stale_after: float = STALE_AFTER_S,
                force: bool = False) -> list[int]:
    """End the RUNNING trials a dead runner left behind; return their numbers.

    A trial stamped with a ``runner_id`` is swept when that runner is dead (see
    :func:`runner_id_alive`), whoever else is alive and even with ``force``.  An unstamped
    trial (older studies) is swept only when no runner is alive (or ``force``).  A trial whose worker had
    already written a complete ``result.json`` is recovered as COMPLETE (no finished
    work is lost); the others become FAIL with the reason in ``error`` and
    ``interrupted=True`` (so they do not count against the trial budget on resume).
    """
    from optuna.trial import TrialState

    candidates = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    if not candidates:
        return []
    owner_alive = not force and runner_alive(study, stale_after=stale_after, storage_url=storage_url)
    attrs = study.user_attrs
    active = _active_runner_ids()
    stale = []
    for t in candidates:
        rid = t.user_attrs.get(S.T_RUNNER)
        if rid:
            if not runner_id_alive(attrs, rid, stale_after=stale_after, active_ids=active):
                stale.append(t)
        elif not owner_alive and not _just_asked(t):
            stale.append(t)
    if not stale:
        return []
    config = None
    raw = study.user_attrs.get(S.ATTR_CONFIG)
    if raw:
        try:
            config = StudyConfig.from_dict(raw)
        except ConfigError:
            config = None
    swept = []
    for t in stale:
        recovered = _recover_from_disk(study, t, config)
        if recovered:
            swept.append(t.number)
            continue
        reason = "interrupted: the runner stopped before this trial finished (process killed or crashed)"
        _set_trial_attr(study, t, S.T_ERROR, reason)
        _set_trial_attr(study, t, T_INTERRUPTED, True)
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError) as exc:  # finished meanwhile by someone else
            log.debug("trial %s not swept: %s", t.number, exc)
            continue
        swept.append(t.number)
    if swept:
        log.warning("study %s: swept %d trial(s) left running by a dead runner: %s", study.study_name, len(swept), swept)
    return swept


def _recover_from_disk(study: Any, t: Any, config: StudyConfig | None) -> bool:
    """Tell COMPLETE a trial whose result.json says complete (the runner died before telling)."""
    from optuna.trial import TrialState

    spec = t.user_attrs.get(S.T_SPEC) or {}
    folder = spec.get("artifacts_dir")
    if not folder or config is None:
        return False
    result = artifacts.load_result(Path(folder))
    if result is None or result.status != "complete":
        return False
    for key, value in _result_attrs(result).items():
        _set_trial_attr(study, t, key, value)
    values = result.objective(config.mode, config.health_weight)
    try:
        study.tell(t.number, list(values) if isinstance(values, tuple) else values, state=TrialState.COMPLETE)
    except (RuntimeError, ValueError):
        return False
    log.warning("study %s: trial %s recovered from %s", study.study_name, t.number, folder)
    return True


def _result_attrs(result: TrialResult) -> dict[str, Any]:
    """The trial user attributes written for a result (flat keys for optuna-dashboard's table)."""
    attrs: dict[str, Any] = {
        S.T_RESULT: result.to_dict(),
        S.T_TEST_ACCURACY: result.test_accuracy,
        S.T_SHIFTED_ACCURACY: result.shifted_accuracy,
        S.T_HEALTH: result.health_score,
        S.T_PARAMS: result.param_count,
        S.T_HOST: result.host,
        S.T_EXECUTOR: result.executor,
    }
    if result.error:
        attrs[S.T_ERROR] = result.error
    return attrs


def running_here(name: str, storage_url: str | None = None, settings: Settings | None = None) -> "StudyRunner | None":
    """The runner driving study ``name`` in this process, if any (the UI's registry uses it)."""
    url = S.resolve_url(storage_url, settings)
    with _ACTIVE_LOCK:
        return _ACTIVE.get((url, name))


# --------------------------------------------------------------------------- the runner


@dataclass
class _Running:
    """A trial handed to the executor and not yet told."""

    trial: Any  # optuna.Trial
    spec: TrialSpec
    submitted: float
    epoch: int = 0
    pruned: bool = False
    cancelled: bool = False


@dataclass
class RunCounts:
    """What this runner session did."""

    asked: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    epochs: int = 0  # epochs trained in this session (pruning saves these)
    by_state: dict[str, int] = field(default_factory=dict)


class StudyRunner:
    """Runs one study: the ask/tell loop in a background thread, feeding an executor.

    Args:
        config: the study configuration (validated on ``start``).
        executor: where trials run; default ``make_executor(config)``.  An executor passed
            in is left running at the end (the caller owns it: tests and benchmarks reuse
            warm workers); one the runner made is shut down.
        settings: paths; default ``Settings.from_env()``.
        sampler, pruner: Optuna objects overriding the config's choice (tests, benchmarks).
        api_key: RunPod API key for a "runpod" study (else RUNPOD_API_KEY); kept in memory only.
        on_trial_end: called as ``on_trial_end(number, state, result)`` in the runner thread
            after each trial is told (``state`` is COMPLETE, PRUNED or FAIL); the CLI's
            progress bar uses it.  Exceptions in it are logged, not raised.

    Typical use::

        runner = StudyRunner(config)
        runner.start()          # returns at once; ConfigError here for a bad config
        ...
        runner.stop()           # finish running trials, start no more
        runner.join()
    """

    def __init__(
        self,
        config: StudyConfig,
        *,
        executor: Executor | None = None,
        settings: Settings | None = None,
        sampler: Any = None,
        pruner: Any = None,
        on_trial_end: TrialEndCallback | None = None,
        api_key: str | None = None,
        _resume: bool = False,
        _join: bool = False,
    ) -> None:
        self.config = config
        self._api_key = api_key  # RunPod key (from st.secrets or the environment); never stored or logged
        self.settings = settings or Settings.from_env()
        self._executor = executor
        self._own_executor = executor is None
        self._sampler, self._pruner = sampler, pruner
        self._on_trial_end = on_trial_end
        self._resume = _resume or _join
        self._join = _join  # a fellow runner on a study someone else owns (python -m core worker)
        self.runner_id = new_runner_id()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._status = "created"
        self._study: Any = None
        self._url = ""
        self._pending: dict[int, _Running] = {}
        self._counted_at_start = 0
        self._started_at = 0.0
        self._last_beat = 0.0
        self._last_sweep = 0.0
        self._joined_at = 0.0
        self._last_control = 0.0
        self._broadcast = ""  # the stop/cancel this owner has written to the storage for its fellows
        self._global_count: tuple[float, int] = (0.0, 0)  # (when, trials counted in the storage)
        self._notice_seen: dict[str, Any] | None = None  # the executor notice already recorded
        self.counts = RunCounts()

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def resume(
        cls,
        name: str,
        storage_url: str | None = None,
        *,
        n_trials: int | None = None,
        timeout_s: float | None = None,
        workers: int | None = None,
        executor: Executor | None = None,
        settings: Settings | None = None,
        join: bool = False,
        **kwargs: Any,
    ) -> "StudyRunner":
        """A runner that continues study ``name`` with the configuration stored in it.

        Args:
            name: the study.
            storage_url: where it is; default the configured/default storage.
            n_trials, timeout_s, workers: optional new budget / parallelism (stored back
                into the study's config on start).
            executor, settings, kwargs: as for the constructor.
            join: join the runners already on the study instead of taking it over (see
                :meth:`attach`).

        Raises:
            ConfigError: no such study, or it was not made by HPO Studio.
        """
        settings = settings or Settings.from_env()
        study = load_study(name, storage_url, settings=settings)
        raw = study.user_attrs.get(S.ATTR_CONFIG)
        if not raw:
            raise ConfigError(f"study: '{name}' has no HPO Studio configuration (was it made by another tool?)")
        config = StudyConfig.from_dict(raw)
        if storage_url:
            config.storage = storage_url
        if n_trials is not None:
            config.n_trials = n_trials
        if timeout_s is not None:
            config.timeout_s = timeout_s
        if workers is not None:
            config.workers = workers
        return cls(config, executor=executor, settings=settings, _resume=True, _join=join, **kwargs)

    @classmethod
    def attach(
        cls,
        name: str,
        storage_url: str | None = None,
        *,
        workers: int | None = None,
        n_trials: int | None = None,
        executor: Executor | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> "StudyRunner":
        """A runner that joins study ``name`` beside its owner (``python -m core worker``).

        It runs trials on its own executor (``workers`` local processes by default),
        shares the study's ``n_trials`` budget with every other runner (``n_trials`` here
        only overrides it for this runner), does not need the owner to be gone, and never
        writes the study's ``status`` or ``runner``.  Its liveness is its own
        ``worker:<runner id>`` attribute.

        Raises:
            ConfigError: no such study, or it was not made by HPO Studio.
        """
        return cls.resume(name, storage_url, n_trials=n_trials, workers=workers, executor=executor,
                          settings=settings, join=True, **kwargs)

    # ------------------------------------------------------------------ public state

    @property
    def study_name(self) -> str:
        return self.config.name

    @property
    def storage_url(self) -> str:
        return self._url or S.resolve_url(self.config.storage, self.settings)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that crashed the runner (status 'crashed'), else None."""
        return self._error

    @property
    def status(self) -> str:
        """created | running | stopping | stopped | finished | cancelled | crashed."""
        return self._status

    @property
    def executor(self) -> Executor | None:
        return self._executor

    @property
    def study(self) -> Any:
        """The optuna Study (after ``start``). Read it from other threads only through the storage."""
        return self._study

    @property
    def running_trials(self) -> list[int]:
        return sorted(self._pending)

    # ------------------------------------------------------------------ control

    def start(self) -> "StudyRunner":
        """Prepare the study (create or resume) and start the loop in a background thread.

        Raises:
            ConfigError: invalid config, duplicate name, unknown study, or a study already
                run by another live runner.
            RuntimeError: called twice.
        """
        if self._thread is not None:
            raise RuntimeError("this runner was already started; make a new one (or StudyRunner.resume)")
        self._prepare()
        self._thread = threading.Thread(target=self._main, name=f"hpo-runner-{self.config.name}", daemon=True)
        self._thread.start()
        return self

    def run(self) -> str:
        """Run the study to the end in the calling thread's time (the CLI); return the final status.

        Ctrl-C once: stop (running trials finish); twice: cancel.
        """
        if self._thread is None:
            self.start()
        interrupts = 0
        while True:
            try:
                if self.join(0.5):
                    break
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1:
                    log.warning("stopping: running trials will finish (Ctrl-C again to cancel them)")
                    self.stop()
                else:
                    log.warning("cancelling running trials")
                    self.cancel()
        return self._status

    def stop(self) -> None:
        """Finish the running trials and start no more. Returns at once; ``join`` to wait."""
        self._stop.set()

    def cancel(self) -> None:
        """End running trials now; they are recorded FAIL with error 'cancelled'. Returns at once."""
        self._stop.set()
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; True when it has (or never started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ preparation (caller's thread)

    def _prepare(self) -> None:
        from core.logs import _quiet_optuna

        _quiet_optuna()
        cfg = self.config
        cfg.validate()
        if cfg.executor == "local":  # a set no trial could load is refused once, here (RunPod loads it remotely)
            from core.datasets import check_available

            check_available(cfg.dataset, self.settings.datasets_dir)
        self._url = S.resolve_url(cfg.storage, self.settings)
        key = (self._url, cfg.name)
        with _ACTIVE_LOCK:  # claimed before any storage work, so two starts of one study cannot race
            if key in _ACTIVE:
                raise ConfigError(f"study: '{cfg.name}' is already running in this process; stop it first")
            _ACTIVE[key] = self
        try:
            self._open_study(cfg)
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE.pop(key, None)
            raise

    def _open_study(self, cfg: StudyConfig) -> None:
        if self._join:
            probe = load_study(cfg.name, self._url, settings=self.settings)
            swept = sweep_stale(probe, storage_url=self._url)  # only trials of dead runners
            n_before = len(probe.get_trials(deepcopy=False))
            # a seed of its own, so two runners' random draws differ
            sampler = self._sampler or make_sampler(cfg, seed_offset=n_before + secrets.randbelow(1 << 20))
            study = load_study(cfg.name, self._url, settings=self.settings, sampler=sampler,
                               pruner=self._pruner or make_pruner(cfg))
            log.info("joining study %s as %s (%d trials so far, %d swept)", cfg.name, self.runner_id, n_before,
                     len(swept))
            self._study = study
            self._counted_at_start = _budget_count(study)
            self._started_at = time.time()
            self._joined_at = self._started_at
            owner = probe.user_attrs.get(ATTR_RUNNER) or {}
            if runner_alive(probe, storage_url=self._url, ignore=self) and owner.get("started"):
                # the study's time budget runs from its owner's start, not from this runner's
                self._started_at = min(self._started_at, float(owner["started"]))
            self._set_status("running")
            self._beat(force=True)
            return
        if self._resume:
            probe = load_study(cfg.name, self._url, settings=self.settings)
            if runner_alive(probe, storage_url=self._url, ignore=self):
                owner = probe.user_attrs.get(ATTR_RUNNER) or {}
                raise ConfigError(
                    f"study: '{cfg.name}' is being run by another process (pid {owner.get('pid')} on "
                    f"{owner.get('host')}); stop it before resuming"
                )
            swept = sweep_stale(probe, storage_url=self._url, force=True)
            n_before = len(probe.get_trials(deepcopy=False))
            sampler = self._sampler or make_sampler(cfg, seed_offset=n_before)
            study = load_study(cfg.name, self._url, settings=self.settings, sampler=sampler,
                               pruner=self._pruner or make_pruner(cfg))
            study.set_user_attr(S.ATTR_CONFIG, cfg.to_dict())
            log.info("resuming study %s (%d trials so far, %d swept)", cfg.name, n_before, len(swept))
        else:
            study = create_study(cfg, settings=self.settings, sampler=self._sampler, pruner=self._pruner)
        self._study = study
        self._counted_at_start = _budget_count(study)
        self._started_at = time.time()
        study.set_user_attr(ATTR_RUNNER, {"host": socket.gethostname(), "pid": os.getpid(), "started": self._started_at,
                                           "id": self.runner_id})
        if study.user_attrs.get(S.ATTR_CONTROL):
            study.set_user_attr(S.ATTR_CONTROL, None)  # a stop asked of an earlier run does not apply to this one
        self._joined_at = self._started_at
        self._set_status("running")
        self._beat(force=True)

    # ------------------------------------------------------------------ the loop (runner thread)

    def _main(self) -> None:
        try:
            if self._executor is None:
                self._executor = self._build_executor()
            self._executor.start()
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - anything here ends the study; say so everywhere
            self._error = exc
            log.error("runner of study %s crashed:\n%s", self.config.name, traceback.format_exc())
            reason = f"runner crashed: {type(exc).__name__}: {str(exc)[:300]}"
            self._safe(self._fail_pending, reason)
            self._safe(self._fail_own_running, reason)
            self._safe(self._set_status, "crashed")  # the runner's record says crashed: its heartbeat counts no more
        finally:
            self._safe(self._follow_notice)  # a fallback in the loop's last moments is recorded too
            if self._executor is not None and self._own_executor:
                self._safe(self._executor.shutdown)
            with _ACTIVE_LOCK:
                _ACTIVE.pop((self._url, self.config.name), None)
            self._done.set()
            log.info("study %s: runner ended (%s): %s", self.config.name, self._status, self.counts)

    def _build_executor(self) -> Executor:
        """The executor the config names; RunPod falls back to local workers with a note for the user."""
        try:
            from core.executors.select import build_executor
        except ImportError:  # an installation without the RunPod fallback module
            from core.executors import make_executor

            return make_executor(self.config, self.settings)
        executor, note = build_executor(self.config, self.settings, api_key=self._api_key)
        self._study.set_user_attr(S.ATTR_NOTE, note)  # None clears a note left by an earlier run
        if note:
            log.warning("study %s: %s", self.config.name, note)
        return executor

    def _loop(self) -> None:
        ex = self._executor
        assert ex is not None
        while True:
            self._beat()
            self._follow_control()
            self._follow_notice()
            if self._cancel.is_set():
                self._cancel_running()
                self._set_status("cancelled")
                return
            if self._stop.is_set():
                if self._status != "stopping" and self._pending:
                    self._set_status("stopping")
            else:
                self._fill(ex)
            self._sweep_fellows()
            if not self._pending and (self._stop.is_set() or not self._budget_left()):
                if not self._stop.is_set() and not self._join and self._fellows_running():
                    # the owner says "finished" only once the other runners' trials are told
                    for event in ex.events(timeout=POLL_S):
                        if isinstance(event, DoneEvent):
                            self._on_done(event)
                    continue
                if not self._stop.is_set() and self._budget_left(fresh=True):
                    continue  # the sweep just ended a dead fellow's trial: its place is free again
                self._set_status("stopped" if self._stop.is_set() else "finished")
                return
            # (no trial of ours but budget left: a shared executor is still finishing someone
            # else's cut-off trial; wait for its slot instead of ending early)
            for event in ex.events(timeout=POLL_S):
                if isinstance(event, EpochEvent):
                    self._on_epoch(event)
                elif isinstance(event, DoneEvent):
                    self._on_done(event)

    def _follow_control(self) -> None:
        """Share stop/cancel through the storage: the owner writes its own, every runner obeys one
        written after it started (checked once per heartbeat)."""
        if not self._join:
            action = "cancel" if self._cancel.is_set() else "stop" if self._stop.is_set() else ""
            if action and action != self._broadcast and self._broadcast != "cancel":
                self._broadcast = action
                self._safe(self._study.set_user_attr, S.ATTR_CONTROL,
                           {"action": action, "at": time.time(), "by": self.runner_id})
        now = time.time()
        if now - self._last_control < HEARTBEAT_S:
            return
        self._last_control = now
        attrs = self._safe(lambda: self._study.user_attrs) or {}
        control = attrs.get(S.ATTR_CONTROL)
        if not isinstance(control, dict) or float(control.get("at") or 0) < self._joined_at:
            return
        if control.get("action") == "cancel" and not self._cancel.is_set():
            log.warning("study %s: cancel requested by %s", self.config.name, control.get("by"))
            self._broadcast = "cancel"  # already in the storage: the fellows see it too
            self._cancel.set()
            self._stop.set()
        elif control.get("action") == "stop" and not self._stop.is_set():
            log.warning("study %s: stop requested by %s", self.config.name, control.get("by"))
            self._broadcast = self._broadcast or "stop"
            self._stop.set()

    def _follow_notice(self) -> None:
        """Record what the executor says changed mid-study (RunPod down, trials moved to this
        machine) where every screen reads it: the study's note, and ``ATTR_FALLBACK`` in full."""
        notice = getattr(self._executor, "notice", None)  # duck-typed executors (test fakes) may lack it
        if notice is None or notice is self._notice_seen:
            return
        self._notice_seen = notice
        message = str(notice.get("message", ""))
        log.warning("study %s: %s", self.config.name, message)
        self._safe(self._study.set_user_attr, S.ATTR_NOTE, message)
        self._safe(self._study.set_user_attr, S.ATTR_FALLBACK, dict(notice))

    def _budget_left(self, fresh: bool = False) -> bool:
        """Time and trials left.  Trials are counted in the storage (every runner's), at most
        once per heartbeat unless ``fresh`` (just before an ask)."""
        cfg = self.config
        if cfg.timeout_s is not None and time.time() - self._started_at >= float(cfg.timeout_s):
            return False
        if cfg.n_trials is None:
            return True
        if self._counted_at_start + self.counts.asked >= cfg.n_trials:
            return False  # a lower bound of the count in the storage: no need to read it
        when, count = self._global_count
        if fresh or time.time() - when >= HEARTBEAT_S:
            count = _budget_count(self._study, running=True)
            self._global_count = (time.time(), count)
        return count < cfg.n_trials

    def _sweep_fellows(self) -> None:
        """End the RUNNING trials of fellow runners that died (every ``SWEEP_EVERY_S``)."""
        now = time.time()
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        swept = self._safe(sweep_stale, self._study, storage_url=self._url)
        if swept:
            self._global_count = (0.0, 0)

    def _fellows_running(self) -> bool:
        """Whether another live runner still has a RUNNING trial in this study (swept first when dead)."""
        from optuna.trial import TrialState

        self._last_sweep = 0.0
        self._sweep_fellows()
        self._beat()
        running = self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return any(t.user_attrs.get(S.T_RUNNER) not in (None, self.runner_id) for t in running)

    def _fill(self, ex: Executor) -> None:
        from core.search_space import suggest

        cfg = self.config
        while ex.free_slots > 0 and self._budget_left(fresh=True) and not self._stop.is_set():
            trial = self._study.ask()
            # who runs it first: a reader sees the machine from (almost) the moment the trial exists
            trial.set_user_attr(S.T_RUNNER, self.runner_id)
            trial.set_user_attr(S.T_HOST, socket.gethostname())  # the result's host replaces it (RunPod)
            params = suggest(trial, cfg.kind, cfg.tuned, cfg.ranges, cfg.fixed)
            spec = cfg.trial_spec(params, trial.number)
            spec.artifacts_dir = str(artifacts.trial_dir(cfg.name, trial.number, self.settings))
            trial.set_user_attr(S.T_SPEC, spec.to_dict())
            trial.set_user_attr(S.T_EXECUTOR, ex.name)
            trial.set_user_attr(S.T_PROGRESS, {"epoch": 0, "epochs": spec.epochs, "logs": {}, "time": time.time()})
            ex.submit(spec)
            if self._prunes:
                ex.epoch_judged(trial.number, 0)  # each epoch will be judged: its worker may wait for the verdict
            self._pending[trial.number] = _Running(trial=trial, spec=spec, submitted=time.time())
            self.counts.asked += 1
            log.info("trial %s submitted to %s: %s", trial.number, ex.name, _short_params(params, cfg.tuned))

    @functools.cached_property
    def _prunes(self) -> bool:
        """Whether epochs of this study are judged at all (a pruner, one objective)."""
        import optuna

        return self.config.mode != "pareto" and not isinstance(self._study.pruner, optuna.pruners.NopPruner)

    def _on_epoch(self, ev: EpochEvent) -> None:
        run = self._pending.get(ev.trial_number)
        if run is None or run.cancelled:
            return
        run.epoch = ev.epoch
        self.counts.epochs += 1
        trial = run.trial
        # The verdict first, the progress record after: the worker waits for the verdict
        # before its next epoch (LocalExecutor), so it must not wait on a storage write.
        self._judge(run, ev)
        trial.set_user_attr(S.T_PROGRESS, {"epoch": ev.epoch, "epochs": run.spec.epochs, "logs": ev.logs,
                                           "time": time.time()})

    def _judge(self, run: _Running, ev: EpochEvent) -> None:
        """Report the epoch to Optuna and stop the trial if the pruner says so; else let it go on."""
        value = ev.logs.get("val_accuracy")
        # Optuna cannot prune multi-objective studies (pareto); pruning judges learning progress
        # by validation accuracy in every single-objective mode: health is only known at the end.
        if not run.pruned and self.config.mode != "pareto" and value is not None and math.isfinite(value):
            run.trial.report(float(value), step=ev.epoch)
            # After the last epoch the training is already paid for: keep the finished model.
            if ev.epoch < run.spec.epochs and run.trial.should_prune():
                run.pruned = True
                self._executor.stop_trial(ev.trial_number)
                log.info("trial %s pruned at epoch %s (val_accuracy %.4f)", ev.trial_number, ev.epoch, value)
                return
        self._executor.epoch_judged(ev.trial_number, ev.epoch)

    def _on_done(self, ev: DoneEvent) -> None:
        from optuna.trial import TrialState

        run = self._pending.pop(ev.trial_number, None)
        if run is None:
            return
        result = ev.result
        result.executor = result.executor or self._executor.name
        if not result.result_path or not Path(result.result_path).is_file():
            # failed, stopped and remote trials have no result.json yet; every trial folder gets one
            folder = run.spec.artifacts_dir or artifacts.trial_dir(self.config.name, ev.trial_number, self.settings)
            self._safe(artifacts.save_result, result, Path(folder))
        if result.status == "stopped" and not run.pruned:
            result.error = result.error or ("cancelled" if run.cancelled else "stopped before it finished")
        trial = run.trial
        for key, value in _result_attrs(result).items():
            trial.set_user_attr(key, value)

        if result.status == "complete":
            values = result.objective(self.config.mode, self.config.health_weight)
            self._study.tell(trial, list(values) if isinstance(values, tuple) else values)
            state = "COMPLETE"
            self.counts.complete += 1
        elif result.status == "stopped" and run.pruned:
            self._study.tell(trial, state=TrialState.PRUNED)
            state = "PRUNED"
            self.counts.pruned += 1
        else:
            if run.cancelled:
                trial.set_user_attr(T_INTERRUPTED, True)
            self._study.tell(trial, state=TrialState.FAIL)
            state = "FAIL"
            self.counts.failed += 1
            log.warning("trial %s failed: %s", ev.trial_number, result.error)
        self.counts.by_state[state] = self.counts.by_state.get(state, 0) + 1
        log.info("trial %s %s: val_accuracy %s, health %s, %s epochs", ev.trial_number, state,
                 _fmt(result.val_accuracy), _fmt(result.health_score), result.epochs_run)
        if state == "COMPLETE":
            self._safe(self._keep_best_models)
        if self._on_trial_end is not None:
            self._safe(self._on_trial_end, ev.trial_number, state, result)

    def _cancel_running(self) -> None:
        """Stop every running trial, let them report for a moment, record them FAIL 'cancelled'."""
        from optuna.trial import TrialState

        ex = self._executor
        for number, run in self._pending.items():
            run.cancelled = True
            ex.stop_trial(number)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while self._pending and time.monotonic() < deadline:
            for event in ex.events(timeout=POLL_S):
                if isinstance(event, DoneEvent):
                    self._on_done(event)
            self._beat()
        for number, run in list(self._pending.items()):
            run.trial.set_user_attr(S.T_ERROR, "cancelled")
            run.trial.set_user_attr(T_INTERRUPTED, True)
            self._study.tell(run.trial, state=TrialState.FAIL)
            self.counts.failed += 1
            del self._pending[number]
        log.warning("study %s cancelled", self.config.name)

    def _fail_pending(self, reason: str) -> None:
        from optuna.trial import TrialState

        for number, run in list(self._pending.items()):
            self._safe(run.trial.set_user_attr, S.T_ERROR, reason)
            self._safe(run.trial.set_user_attr, T_INTERRUPTED, True)
            self._safe(self._study.tell, run.trial, state=TrialState.FAIL)
            del self._pending[number]

    def _fail_own_running(self, reason: str) -> None:
        """FAIL every trial this runner asked that the storage still shows RUNNING.

        A crash between ``ask`` and ``submit`` (a bad range, an executor that refused the
        spec) leaves a trial that is not in ``_pending``; without this it would stay
        RUNNING after the process exits.
        """
        from optuna.trial import TrialState

        if self._study is None:
            return
        for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if t.user_attrs.get(S.T_RUNNER) != self.runner_id:
                continue
            self._safe(_set_trial_attr, self._study, t, S.T_ERROR, reason)
            self._safe(_set_trial_attr, self._study, t, T_INTERRUPTED, True)
            self._safe(self._study.tell, t.number, state=TrialState.FAIL)

    def _keep_best_models(self) -> None:
        """Delete the models of finished trials outside the best k.

        Only trials the storage says are finished (COMPLETE, PRUNED, FAIL) can lose their
        model: a trial of any runner that is still RUNNING (or one asked after this list
        was read) may have saved ``model.keras`` without being told yet, and keeps it.
        """
        from optuna.trial import TrialState

        cfg = self.config
        mode = "health-aware" if cfg.mode == "pareto" else cfg.mode
        scored = []
        finished: set[int] = set()
        for t in self._study.get_trials(deepcopy=False):
            if not t.state.is_finished():
                continue
            finished.add(t.number)
            if t.state != TrialState.COMPLETE:
                continue
            res = t.user_attrs.get(S.T_RESULT) or {}
            scored.append((float(objective_value(res.get("val_accuracy"), res.get("health_score"), mode,
                                                 cfg.health_weight)), t.number))
        scored.sort(key=lambda vn: (-vn[0], vn[1]))
        keep = {n for _, n in scored[: cfg.keep_best_k]} | set(self._pending)
        if cfg.mode == "pareto":
            keep |= {t.number for t in self._study.best_trials}
        artifacts.prune_models(artifacts.study_dir(cfg.name, self.settings), keep, only=finished - keep)

    # ------------------------------------------------------------------ storage helpers

    def _set_status(self, status: str) -> None:
        self._status = status
        if self._study is not None:
            if not self._join:  # a joining runner never speaks for the study
                self._study.set_user_attr(S.ATTR_STATUS, status)
            self._write_worker(time.time())

    def _beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_beat >= HEARTBEAT_S:
            if not self._join:
                self._study.set_user_attr(S.ATTR_HEARTBEAT, now)
            self._write_worker(now)
            self._last_beat = now

    def _write_worker(self, now: float) -> None:
        self._study.set_user_attr(S.ATTR_WORKER_PREFIX + self.runner_id, {
            "host": socket.gethostname(), "pid": os.getpid(), "beat": now, "workers": self.config.workers,
            "status": self._status, "joined": self._joined_at or now, "owner": not self._join,
            "asked": self.counts.asked,
        })

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - clean-up paths must not hide the original problem
            log.error("%s failed:\n%s", getattr(fn, "__name__", fn), traceback.format_exc())
            return None


def _budget_count(study: Any, running: bool = False) -> int:
    """Trials that count against n_trials: finished on their own (cancelled/swept ones do not),
    and with ``running`` the RUNNING / WAITING ones too (asked by any runner)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            n += 1
        elif running and t.state in (TrialState.RUNNING, TrialState.WAITING):
            n += 1
        elif t.state == TrialState.FAIL and not t.user_attrs.get(T_INTERRUPTED):
            n += 1
    return n


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _short_params(params: dict[str, Any], tuned: list[str]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items() if k in tuned)
