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

import enum
import functools
import logging
import math
import os
import secrets
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core import artifacts
from core import storage as S
from core.config import ConfigError, Settings, StudyConfig, TrialResult, TrialSpec
from core.executors.base import DoneEvent, EpochEvent, Executor
from core.paths import study_dir, trial_dir
from core.study import _schema as K
from core.study._factories import create_study, load_study, make_pruner, make_sampler
from core.study._liveness import (
    HEARTBEAT_S,
    new_runner_id,
    register,
    runner_alive,
    set_trial_attr,
    sweep_stale,
    unregister,
)

log = logging.getLogger("hpo.study")

POLL_S = 0.5  # longest wait for executor events; bounds how fast stop/cancel are noticed
CANCEL_GRACE_S = 5.0  # on cancel, how long running trials get to report what they have before being cut off
SWEEP_EVERY_S = 10.0  # how often a running runner sweeps trials of dead fellow runners

TrialEndCallback = Callable[[int, str, TrialResult], None]


class Role(enum.Enum):
    """How a runner comes to a study.

    * NEW: creates the study and owns it (``optimize``, Start in the app).
    * RESUME: takes over a study nobody runs now and owns it (``resume``, Resume in the app).
    * JOIN: works beside the owner (``python -m core worker``); never writes the study's
      ``status``, ``runner`` or heartbeat, nor says "finished" for it.
    """

    NEW = "new"
    RESUME = "resume"
    JOIN = "join"

    @property
    def owns(self) -> bool:
        """Whether this runner speaks for the study (status, heartbeat, stop requests)."""
        return self is not Role.JOIN


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


class StudyRunner:
    """Runs one study: the ask/tell loop in a background thread, feeding an executor.

    Args:
        config: the study configuration (validated on ``start``).
        executor: where trials run; default ``core.executors.build_executor(config)``.  An executor passed
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
        role: Role = Role.NEW,
    ) -> None:
        self.config = config
        self._api_key = api_key  # RunPod key (from st.secrets or the environment); never stored or logged
        self.settings = settings or Settings.from_env()
        self._executor = executor
        self._own_executor = executor is None
        self._sampler, self._pruner = sampler, pruner
        self.on_trial_end = on_trial_end  # public: the CLI sets it on a resumed or attached runner
        self.role = role
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
        raw = study.user_attrs.get(K.ATTR_CONFIG)
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
        return cls(config, executor=executor, settings=settings, role=Role.JOIN if join else Role.RESUME, **kwargs)

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
    def trials_done_at_start(self) -> int:
        """Trials of the study that counted against its budget when this run started."""
        return self._counted_at_start

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
        from core.logs import quiet_optuna

        quiet_optuna()
        cfg = self.config
        cfg.validate()
        if cfg.executor == "local":  # a set no trial could load is refused once, here (RunPod loads it remotely)
            from core.datasets import check_available

            check_available(cfg.dataset, self.settings.datasets_dir)
        self._url = S.resolve_url(cfg.storage, self.settings)
        register(self._url, cfg.name, self)  # claimed before any storage work, so two starts cannot race
        try:
            {Role.NEW: self._open_new, Role.RESUME: self._open_resume, Role.JOIN: self._open_join}[self.role](cfg)
        except BaseException:
            unregister(self._url, cfg.name)
            raise

    def _open_join(self, cfg: StudyConfig) -> None:
        """Join a study beside its owner: sweep only dead runners' trials, share the owner's time budget."""
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
        owner = probe.user_attrs.get(K.ATTR_RUNNER) or {}
        if runner_alive(probe, storage_url=self._url, ignore=self) and owner.get("started"):
            # the study's time budget runs from its owner's start, not from this runner's
            self._started_at = min(self._started_at, float(owner["started"]))
        self._set_status("running")
        self._beat(force=True)

    def _open_resume(self, cfg: StudyConfig) -> None:
        """Take over a study nobody runs now: every trial left RUNNING is swept, the config stored back."""
        probe = load_study(cfg.name, self._url, settings=self.settings)
        if runner_alive(probe, storage_url=self._url, ignore=self):
            owner = probe.user_attrs.get(K.ATTR_RUNNER) or {}
            raise ConfigError(
                f"study: '{cfg.name}' is being run by another process (pid {owner.get('pid')} on "
                f"{owner.get('host')}); stop it before resuming"
            )
        swept = sweep_stale(probe, storage_url=self._url, force=True)
        n_before = len(probe.get_trials(deepcopy=False))
        sampler = self._sampler or make_sampler(cfg, seed_offset=n_before)
        study = load_study(cfg.name, self._url, settings=self.settings, sampler=sampler,
                           pruner=self._pruner or make_pruner(cfg))
        study.set_user_attr(K.ATTR_CONFIG, cfg.to_dict())
        log.info("resuming study %s (%d trials so far, %d swept)", cfg.name, n_before, len(swept))
        self._own(study)

    def _open_new(self, cfg: StudyConfig) -> None:
        study = create_study(cfg, settings=self.settings, sampler=self._sampler, pruner=self._pruner)
        self._own(study)

    def _own(self, study: Any) -> None:
        """Start this run as the study's owner: its ``runner`` record, status and heartbeat."""
        self._study = study
        self._counted_at_start = _budget_count(study)
        self._started_at = time.time()
        study.set_user_attr(K.ATTR_RUNNER, {"host": socket.gethostname(), "pid": os.getpid(), "started": self._started_at,
                                           "id": self.runner_id})
        if study.user_attrs.get(K.ATTR_CONTROL):
            study.set_user_attr(K.ATTR_CONTROL, None)  # a stop asked of an earlier run does not apply to this one
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
            unregister(self._url, self.config.name)
            self._done.set()
            log.info("study %s: runner ended (%s): %s", self.config.name, self._status, self.counts)

    def _build_executor(self) -> Executor:
        """The executor the config names; RunPod falls back to local workers with a note for the user."""
        from core.executors import build_executor

        executor, note = build_executor(self.config, self.settings, api_key=self._api_key)
        self._study.set_user_attr(K.ATTR_NOTE, note)  # None clears a note left by an earlier run
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
                if not self._stop.is_set() and self.role.owns and self._fellows_running():
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
        if self.role.owns:
            action = "cancel" if self._cancel.is_set() else "stop" if self._stop.is_set() else ""
            if action and action != self._broadcast and self._broadcast != "cancel":
                self._broadcast = action
                self._safe(self._study.set_user_attr, K.ATTR_CONTROL,
                           {"action": action, "at": time.time(), "by": self.runner_id})
        now = time.time()
        if now - self._last_control < HEARTBEAT_S:
            return
        self._last_control = now
        attrs = self._safe(lambda: self._study.user_attrs) or {}
        control = attrs.get(K.ATTR_CONTROL)
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
        self._safe(self._study.set_user_attr, K.ATTR_NOTE, message)
        self._safe(self._study.set_user_attr, K.ATTR_FALLBACK, dict(notice))

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
        return any(t.user_attrs.get(K.T_RUNNER) not in (None, self.runner_id) for t in running)

    def _fill(self, ex: Executor) -> None:
        from core.search_space import suggest

        cfg = self.config
        while ex.free_slots > 0 and self._budget_left(fresh=True) and not self._stop.is_set():
            trial = self._study.ask()
            # who runs it first: a reader sees the machine from (almost) the moment the trial exists
            trial.set_user_attr(K.T_RUNNER, self.runner_id)
            trial.set_user_attr(K.T_HOST, socket.gethostname())  # the result's host replaces it (RunPod)
            params = suggest(trial, cfg.kind, cfg.tuned, cfg.ranges, cfg.fixed)
            spec = cfg.trial_spec(params, trial.number)
            spec.artifacts_dir = str(trial_dir(cfg.name, trial.number, self.settings))
            trial.set_user_attr(K.T_SPEC, spec.to_dict())
            trial.set_user_attr(K.T_EXECUTOR, ex.name)
            trial.set_user_attr(K.T_PROGRESS, {"epoch": 0, "epochs": spec.epochs, "logs": {}, "time": time.time()})
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
        trial.set_user_attr(K.T_PROGRESS, {"epoch": ev.epoch, "epochs": run.spec.epochs, "logs": ev.logs,
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
            folder = run.spec.artifacts_dir or trial_dir(self.config.name, ev.trial_number, self.settings)
            self._safe(artifacts.save_result, result, Path(folder))
        if result.status == "stopped" and not run.pruned:
            result.error = result.error or ("cancelled" if run.cancelled else "stopped before it finished")
        trial = run.trial
        for key, value in K.result_attrs(result).items():
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
                trial.set_user_attr(K.T_INTERRUPTED, True)
            self._study.tell(trial, state=TrialState.FAIL)
            state = "FAIL"
            self.counts.failed += 1
            log.warning("trial %s failed: %s", ev.trial_number, result.error)
        log.info("trial %s %s: val_accuracy %s, health %s, %s epochs", ev.trial_number, state,
                 _fmt(result.val_accuracy), _fmt(result.health_score), result.epochs_run)
        if state == "COMPLETE":
            self._safe(self._keep_best_models)
        if self.on_trial_end is not None:
            self._safe(self.on_trial_end, ev.trial_number, state, result)

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
            run.trial.set_user_attr(K.T_ERROR, "cancelled")
            run.trial.set_user_attr(K.T_INTERRUPTED, True)
            self._study.tell(run.trial, state=TrialState.FAIL)
            self.counts.failed += 1
            del self._pending[number]
        log.warning("study %s cancelled", self.config.name)

    def _fail_pending(self, reason: str) -> None:
        from optuna.trial import TrialState

        for number, run in list(self._pending.items()):
            self._safe(run.trial.set_user_attr, K.T_ERROR, reason)
            self._safe(run.trial.set_user_attr, K.T_INTERRUPTED, True)
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
            if t.user_attrs.get(K.T_RUNNER) != self.runner_id:
                continue
            self._safe(set_trial_attr, self._study, t, K.T_ERROR, reason)
            self._safe(set_trial_attr, self._study, t, K.T_INTERRUPTED, True)
            self._safe(self._study.tell, t.number, state=TrialState.FAIL)

    def _keep_best_models(self) -> None:
        """Delete the models of finished trials outside the best k.

        Only trials the storage says are finished (COMPLETE, PRUNED, FAIL) can lose their
        model: a trial of any runner that is still RUNNING (or one asked after this list
        was read) may have saved ``model.keras`` without being told yet, and keeps it.
        """
        from optuna.trial import TrialState

        cfg = self.config
        scored = []
        finished: set[int] = set()
        for t in self._study.get_trials(deepcopy=False):
            if not t.state.is_finished():
                continue
            finished.add(t.number)
            if t.state != TrialState.COMPLETE:
                continue
            res = t.user_attrs.get(K.T_RESULT) or {}
            scored.append((K.rank_key(res.get("val_accuracy"), res.get("health_score"), cfg), t.number))
        scored.sort(key=lambda kn: (tuple(-v for v in kn[0]), kn[1]))  # the one ranking rule, best first
        keep = {n for _, n in scored[: cfg.keep_best_k]} | set(self._pending)
        if cfg.mode == "pareto":
            keep |= {t.number for t in self._study.best_trials}
        artifacts.prune_models(study_dir(cfg.name, self.settings), keep, only=finished - keep)

    # ------------------------------------------------------------------ storage helpers

    def _set_status(self, status: str) -> None:
        self._status = status
        if self._study is not None:
            if self.role.owns:  # a joining runner never speaks for the study
                self._study.set_user_attr(K.ATTR_STATUS, status)
            self._write_worker(time.time())

    def _beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_beat >= HEARTBEAT_S:
            if self.role.owns:
                self._study.set_user_attr(K.ATTR_HEARTBEAT, now)
            self._write_worker(now)
            self._last_beat = now

    def _write_worker(self, now: float) -> None:
        self._study.set_user_attr(K.ATTR_WORKER_PREFIX + self.runner_id, {
            "host": socket.gethostname(), "pid": os.getpid(), "beat": now, "workers": self.config.workers,
            "status": self._status, "joined": self._joined_at or now, "owner": self.role.owns,
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
    """Trials of the storage that count against n_trials (the rule: ``_schema.counts_against_budget``)."""
    return sum(K.counts_against_budget(t.state.name, bool(t.user_attrs.get(K.T_INTERRUPTED)), running=running)
               for t in study.get_trials(deepcopy=False))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _short_params(params: dict[str, Any], tuned: list[str]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items() if k in tuned)
