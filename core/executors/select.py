"""Choose where a study's trials run, falling back to this machine when RunPod cannot be used.

:func:`build_executor` is the one executor factory (exported as ``core.executors.build_executor``):
it looks the name up in :data:`EXECUTORS`, and the runner calls it once per run (start or resume).  A study asked to
run on RunPod whose endpoint is not configured, has no key, or does not answer its
``/health`` within a few seconds still runs, locally, and the returned note says why;
the runner stores it as the study's ``ATTR_NOTE`` so every view shows it.

An endpoint that goes down *during* the study is handled by :class:`FallbackExecutor`,
which :func:`build_executor` wraps around every healthy RunPod executor: once RunPod
declares the outage (a few unanswered requests and a failed ``/health``: seconds, not the
5 minutes a job may be out of contact), the trials in flight there move to local workers
and the study goes on on this machine; its :attr:`~FallbackExecutor.notice` tells the
runner, which records it in the study (``ATTR_NOTE`` and ``ATTR_FALLBACK``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from core.config import EXECUTORS, ConfigError, Settings, TrialResult, TrialSpec
from core.executors.base import DoneEvent, EpochEvent, Event, Executor, ExecutorFull

if TYPE_CHECKING:
    from core.config import StudyConfig
    from core.executors.runpod import RunPodExecutor

log = logging.getLogger("hpo.executors")

#: Seconds the health check may take before the study starts locally instead.
HEALTH_TIMEOUT_S = 5.0


def build_executor(
    config: "StudyConfig",
    settings: Settings | None = None,
    api_key: str | None = None,
    *,
    health_timeout: float = HEALTH_TIMEOUT_S,
) -> tuple["Executor", str | None]:
    """The executor ``config`` asks for, or a local one and the reason when RunPod is unusable.

    Args:
        config: the study; ``executor`` ("local" | "runpod"), ``workers``, ``runpod_endpoint``
            (an endpoint id or a URL; ``RUNPOD_ENDPOINT_ID`` when empty).
        settings: paths (``Settings.from_env()`` by default).
        api_key: the RunPod API key (the UI passes ``st.secrets``); default ``RUNPOD_API_KEY``.
        health_timeout: seconds for the endpoint's ``/health``.

    Returns:
        ``(executor, note)``: ``note`` is None when the requested executor is used, else a
        sentence for the user ("RunPod endpoint abc unreachable (...): running locally").
        It never contains the API key.
    """
    from core.executors import executor_class

    settings = settings or Settings.from_env()
    if config.executor == "local":
        return executor_class("local").from_config(config, settings), None
    try:
        remote = executor_class(config.executor)  # the EXECUTORS registry; ConfigError for an unknown name
    except ConfigError as exc:
        if config.executor not in EXECUTORS:
            raise
        note = f"{config.executor} is not available in this installation ({exc}): running locally"
    else:
        from core.executors.runpod import safe_url

        endpoint = (config.runpod_endpoint or os.environ.get("RUNPOD_ENDPOINT_ID") or "").strip()
        shown = safe_url(endpoint) if endpoint.startswith(("http://", "https://")) else endpoint
        if not endpoint:
            note = "RunPod endpoint not configured (set runpod_endpoint or RUNPOD_ENDPOINT_ID): running locally"
        else:
            try:
                executor = remote.from_config(config, settings, api_key=api_key)
            except ConfigError as exc:
                note = f"RunPod endpoint {shown} unusable ({exc}): running locally"
            else:
                ok, detail = executor.check_health(timeout=health_timeout)
                if ok:
                    log.info("RunPod endpoint %s healthy: %s", executor.describe()["endpoint"], detail)
                    return FallbackExecutor(executor, lambda: local_fallback(config, settings)), None
                executor.shutdown(wait=0)
                note = f"RunPod endpoint {shown} unreachable ({detail}): running locally"
    local = local_fallback(config, settings)
    if local.capacity < config.workers:
        note += f" with {local.capacity} worker{'s' if local.capacity > 1 else ''}"
    log.warning(note)
    return local, note


def local_fallback(config: "StudyConfig", settings: Settings | None = None) -> "Executor":
    """The local executor a RunPod study falls back to.

    RunPod studies may ask for up to 6 workers; that many TensorFlow processes would swamp
    a laptop, so the fallback runs no more workers than this machine has cores.
    """
    from core.executors.local import LocalExecutor, cpu_count

    return LocalExecutor(workers=max(1, min(config.workers, cpu_count())), settings=settings)


class FallbackExecutor(Executor):
    """RunPod first; this machine's workers from the moment the endpoint goes down.

    Before the outage every call goes to ``primary``.  When ``primary.outage`` is set (its
    watchers found the endpoint down and left their trials unreported), the next
    :meth:`events` call moves every trial still in flight to a fallback executor made by
    ``make_fallback``; trials that do not fit its slots wait in a backlog and start as slots
    free up.  A moved trial trains again from its first epoch: epochs the runner already
    judged are not reported twice (this executor judges them itself, so a local worker
    waiting for verdicts is not held up), later ones are reported as usual.  The runner sees
    one executor throughout; :attr:`notice` says what happened.

    Args:
        primary: the RunPod executor (its ``hand_off_on_outage`` is switched on).
        make_fallback: builds the local executor, only when it is needed.
    """

    def __init__(self, primary: "RunPodExecutor", make_fallback: Callable[[], Executor]) -> None:
        self.primary = primary
        primary.hand_off_on_outage = True
        self._make_fallback = make_fallback
        self.fallback: Executor | None = None
        self._backlog: list[TrialSpec] = []
        self._reported: dict[int, int] = {}  # trial -> epochs reported to the runner
        self._judging: set[int] = set()  # trials whose epochs the runner judges (epoch_judged(n, 0))
        self._moved: dict[int, int] = {}  # moved trial -> epochs reported before the move
        self._queued: list[Event] = []  # events to deliver first: the primary's last ones, stopped backlog trials
        self._notice: dict[str, Any] | None = None

    @property
    def active(self) -> Executor:
        return self.fallback if self.fallback is not None else self.primary

    @property
    def name(self) -> str:  # type: ignore[override] - "runpod", then "local" for trials submitted after the move
        return self.active.name

    @property
    def notice(self) -> dict[str, Any] | None:
        return self._notice

    @property
    def capacity(self) -> int:
        return self.active.capacity

    @property
    def running(self) -> set[int]:
        return self.active.running | {s.trial_number for s in self._backlog}

    def start(self) -> None:
        self.primary.start()

    def submit(self, spec: TrialSpec) -> None:
        if self.fallback is None:
            self.primary.submit(spec)
            return
        if self.fallback.free_slots > 0 and not self._backlog:
            self.fallback.submit(spec)
        elif len(self.running) < self.capacity:
            self._backlog.append(spec)
        else:
            raise ExecutorFull(f"all {self.capacity} local workers are busy")

    def stop_trial(self, trial_number: int) -> None:
        for spec in self._backlog:
            if spec.trial_number == trial_number:  # never started here: it ends now, with the epochs RunPod reported
                self._backlog.remove(spec)
                self._queued.append(DoneEvent(trial_number, TrialResult(
                    status="stopped", trial_number=trial_number, dataset=spec.dataset, params=dict(spec.params),
                    epochs_run=self._reported.get(trial_number, 0), executor="runpod")))
                return
        self.active.stop_trial(trial_number)

    def epoch_judged(self, trial_number: int, epoch: int) -> None:
        if epoch == 0:
            self._judging.add(trial_number)
        self.active.epoch_judged(trial_number, epoch)

    def events(self, timeout: float = 0.5) -> list[Event]:
        if self.fallback is None and self.primary.outage is not None:
            self._fall_back()
        out: list[Event] = list(self._queued)
        self._queued.clear()
        self._feed_backlog()
        for event in self.active.events(0.0 if out else timeout):
            n = event.trial_number
            if isinstance(event, EpochEvent):
                if event.epoch <= self._moved.get(n, 0):
                    # trained again after the move; the runner judged this epoch already
                    if n in self._judging:
                        self.active.epoch_judged(n, event.epoch)
                    continue
                self._reported[n] = event.epoch
            elif isinstance(event, DoneEvent):
                self._reported.pop(n, None)
                self._moved.pop(n, None)
                self._judging.discard(n)
            out.append(event)
        return out

    def shutdown(self, wait: float = 5.0) -> None:
        self.primary.shutdown(wait=0 if self.fallback is not None else wait)
        if self.fallback is not None:
            self.fallback.shutdown(wait)

    def describe(self) -> dict[str, Any]:
        desc = dict(self.active.describe())
        if self._notice is not None:
            desc["fallback"] = dict(self._notice)
            desc["running"] = sorted(self.running)
        return desc

    # ------------------------------------------------------------------ the move

    def _fall_back(self) -> None:
        reason = self.primary.outage or "RunPod endpoint is down"
        # Events already queued (an epoch, a trial that completed just in time) still count.
        late = self.primary.events(0.0)
        for event in late:
            if isinstance(event, EpochEvent):
                self._reported[event.trial_number] = event.epoch
            self._queued.append(event)  # delivered first, in order
        done = {e.trial_number for e in late if isinstance(e, DoneEvent)}
        moved = [s for s in self.primary.in_flight() if s.trial_number not in done]
        self.primary.shutdown(wait=0)  # cancels what it can; the endpoint is down anyway
        self.fallback = self._make_fallback()
        self.fallback.start()
        for spec in moved:
            self._moved[spec.trial_number] = self._reported.get(spec.trial_number, 0)
        self._backlog = list(moved)
        self._feed_backlog()
        where = f"{self.fallback.capacity} local worker{'s' if self.fallback.capacity != 1 else ''}"
        moved_text = (f"trial{'s' if len(moved) != 1 else ''} {', '.join(str(s.trial_number) for s in moved)} "
                      f"moved to this machine" if moved else "no trial was running there")
        message = (f"{reason}: the study goes on with {where} from {time.strftime('%H:%M:%S')} "
                   f"({moved_text})")
        self._notice = {"message": message, "at": time.time(), "from": "runpod", "to": self.fallback.name,
                        "reason": reason, "moved": [s.trial_number for s in moved]}
        log.error("%s", message)

    def _feed_backlog(self) -> None:
        if self.fallback is None:
            return
        while self._backlog and self.fallback.free_slots > 0:
            spec = self._backlog.pop(0)
            self.fallback.submit(spec)
            if spec.trial_number in self._judging:
                self.fallback.epoch_judged(spec.trial_number, 0)
