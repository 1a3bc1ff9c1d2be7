"""RunPod serverless worker: runs one TrialSpec per job through ``training.run_trial``.

A job's input is ``{"spec": <TrialSpec as JSON>}``.  The handler trains with the one
training path (:func:`core.training.run_trial`), saving the model into a temporary
folder, and returns::

    {
      "result": <TrialResult as JSON>,          # executor "runpod"; paths cleared (they were the worker's)
      "model": "inline" | "model_too_large" | None,
      "model_b64": "<base64 of model.keras>",   # only when model == "inline"
      "model_bytes": 123456,                    # size of model.keras (also when too large)
      "model_sha256": "<hex>",                  # lets the client check the decoded file
      "worker": {"host": ..., "concurrency": 1, "replicas": ...}
    }

A job may also carry ``"limits": {"max_epochs": N, "max_seconds": S}``, caps the client
sets (``RunPodExecutor`` always does): a spec asking for more epochs is refused before any
data loads, and training stops at the time limit (the result says so).  The worker's own
caps, ``HPO_WORKER_MAX_EPOCHS`` (default 500, the app's limit) and ``HPO_WORKER_MAX_SECONDS``
(default none), apply whatever the client sends.

A payload that is not a valid TrialSpec returns ``{"error": "..."}``, which the SDK turns
into a FAILED job with that message (no traceback, no crash).  While training, each epoch
is reported with ``runpod.serverless.progress_update(job, {"progress": ...})``; the
progress carries the whole history so far, so a client that polls less often than
epochs end still sees every epoch.  Cancelling a job (``POST /cancel``) makes the SDK
cancel the handler's task; the handler then raises the stop flag that ``run_trial``
polls, so training stops within a few batches instead of burning GPU time.

Each job trains alone in a process.  Keras keeps process-global state (``clear_session``,
``set_random_seed``): jobs trained in threads of one process change each other's results
(measured: a seeded spec that gives 0.195 alone gave 0.10-0.335 beside 9 others).  The
handler therefore hands each job to a :class:`JobPool` of ``HPO_WORKER_CONCURRENCY``
(default 1) long-lived processes that train one job at a time each (``LocalExecutor``'s
workers: TensorFlow is imported once per process, not once per job).  Concurrency stays
useful, several small trials share one big GPU, and every result is the one the job gives
alone.  The handler is ``async`` and waits on its job in ``asyncio.to_thread``, so the event
loop stays free for heartbeats, progress and cancellation.

SIGTERM (RunPod scaling a worker down, ``docker stop``) stops the jobs in training within a
few batches, kills a process that does not stop within ``SHUTDOWN_GRACE_S``, removes the
jobs' temporary folders, then lets the SDK (or uvicorn) shut down as it would have.  Neither
stops a running job by itself: the SDK waits for it to finish.

Run it:

* on RunPod: the image's ``CMD python core/worker.py`` (see docker/worker.Dockerfile);
* locally, as RunPod's development server::

      python core/worker.py --rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port 8000

  and point a study at ``http://127.0.0.1:8000`` (RunPodExecutor detects the SDK server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import math
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    # `python core/worker.py` puts core/ (not the repo root) on sys.path; `import core` needs the root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import ConfigError, TrialResult, TrialSpec  # noqa: E402 - after the sys.path fix
from core.model_codec import encode_insight, encode_model  # noqa: E402
from core.paths import INSIGHT_FILE  # noqa: E402

log = logging.getLogger("hpo.worker")

ProgressSink = Callable[[dict[str, Any]], None]
StopCheck = Callable[[], bool]
EpochSink = Callable[[int, dict[str, Any]], None]
#: How a job's spec is trained: ``train(spec, on_epoch, should_stop, settings) -> TrialResult``.
Trainer = Callable[[TrialSpec, EpochSink, StopCheck, Any], TrialResult]

#: Bounds for HPO_WORKER_CONCURRENCY: one GPU rarely fits more small trials than this.
MAX_CONCURRENCY = 16
#: Most epochs a job may ask for unless HPO_WORKER_MAX_EPOCHS says otherwise: the app's own limit.
MAX_EPOCHS = 500
#: After SIGTERM, training has this long to stop by itself before its process is killed.
SHUTDOWN_GRACE_S = 3.0


# --------------------------------------------------------------------------- settings from env


def worker_concurrency() -> int:
    """Jobs one worker serves at once, from ``HPO_WORKER_CONCURRENCY`` (default 1, clamped to 1..16)."""
    raw = os.environ.get("HPO_WORKER_CONCURRENCY", "1")
    try:
        value = int(raw)
    except ValueError:
        log.warning("HPO_WORKER_CONCURRENCY=%r is not a whole number; using 1", raw)
        return 1
    return max(1, min(MAX_CONCURRENCY, value))


def concurrency_modifier(current: int) -> int:  # noqa: ARG001 - the SDK's signature
    """The SDK asks this before taking jobs; the answer is read from the environment each time."""
    return worker_concurrency()


def _env_number(name: str, kind: type) -> float | int | None:
    """A positive number from the environment; None when unset or unusable (said once in the log)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        log.warning("%s=%r is not a positive number; ignored", name, raw)
        return None
    return value


def worker_max_epochs() -> int:
    """Most epochs this worker trains for one job: ``HPO_WORKER_MAX_EPOCHS`` (default 500)."""
    return int(_env_number("HPO_WORKER_MAX_EPOCHS", int) or MAX_EPOCHS)


def worker_max_seconds() -> float | None:
    """Longest this worker trains one job: ``HPO_WORKER_MAX_SECONDS`` (default: no cap of its own)."""
    value = _env_number("HPO_WORKER_MAX_SECONDS", float)
    return float(value) if value is not None else None


def _on_runpod() -> bool:
    # The platform sets the URL progress and results are posted to; the SDK's local
    # development server does not, and progress_update would only log an error per epoch.
    return bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))


# --------------------------------------------------------------------------- input / output


def parse_input(job_input: Any) -> TrialSpec:
    """The TrialSpec a job asks for.

    Raises:
        ConfigError: the input is not ``{"spec": {...}}`` with a valid TrialSpec; the
            message says what is wrong.
    """
    if not isinstance(job_input, dict):
        raise ConfigError(f'job input must be a JSON object {{"spec": {{...}}}} (got {type(job_input).__name__})')
    if "spec" not in job_input:
        raise ConfigError(f'job input must have a "spec" key holding a TrialSpec (got keys {sorted(job_input)})')
    return TrialSpec.from_dict(job_input["spec"])


@dataclasses.dataclass(frozen=True)
class JobLimits:
    """Caps one job trains under: the client's (``"limits"`` in the job input) and the worker's, whichever is lower.

    Attributes:
        max_epochs: a spec asking for more is refused before any data loads.
        max_seconds: training stops after this long (status "stopped", the error says why);
            None: no time limit (the endpoint's execution timeout still applies).
    """

    max_epochs: int = MAX_EPOCHS
    max_seconds: float | None = None


def job_limits(job_input: Any, spec: TrialSpec) -> JobLimits:
    """The caps a job trains under, checked against its spec.

    Raises:
        ConfigError: ``limits`` is malformed, or the spec asks for more epochs than allowed.
    """
    raw = job_input.get("limits") if isinstance(job_input, dict) else None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or set(raw) - {"max_epochs", "max_seconds"}:
        raise ConfigError('"limits" must be an object with "max_epochs" and/or "max_seconds"')
    max_epochs = worker_max_epochs()
    client_epochs = raw.get("max_epochs")
    if client_epochs is not None:
        if isinstance(client_epochs, bool) or not isinstance(client_epochs, int) or client_epochs < 1:
            raise ConfigError(f"limits.max_epochs must be a whole number >= 1 (got {client_epochs!r})")
        max_epochs = min(max_epochs, client_epochs)
    max_seconds = worker_max_seconds()
    client_seconds = raw.get("max_seconds")
    if client_seconds is not None:
        if (isinstance(client_seconds, bool) or not isinstance(client_seconds, (int, float))
                or not math.isfinite(client_seconds) or client_seconds <= 0):
            raise ConfigError(f"limits.max_seconds must be a number of seconds > 0 (got {client_seconds!r})")
        max_seconds = float(client_seconds) if max_seconds is None else min(max_seconds, float(client_seconds))
    if spec.epochs > max_epochs:
        raise ConfigError(f"epochs: {spec.epochs} is over this job's cap of {max_epochs}")
    return JobLimits(max_epochs=max_epochs, max_seconds=max_seconds)


# --------------------------------------------------------------------------- the job

#: Temporary folders of jobs in progress; a SIGTERM removes any its job could not.
_ACTIVE_TMP: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def train_here(spec: TrialSpec, on_epoch: EpochSink, should_stop: StopCheck, settings: Any = None) -> TrialResult:
    """Train ``spec`` in this process (tests, the fake endpoint); the handler uses :class:`JobPool`."""
    from core import training  # TensorFlow loads here, not when the module is imported

    return training.run_trial(spec, on_epoch, should_stop, settings=settings)


def run_job(
    job_input: Any,
    *,
    progress: ProgressSink | None = None,
    should_stop: StopCheck | None = None,
    settings: Any | None = None,
    train: Trainer | None = None,
) -> dict[str, Any]:
    """Run one job synchronously: validate, train, package the result and model.

    This is the handler's body without the SDK around it, so tests and the fake RunPod
    server can run exactly what a worker runs.

    Args:
        job_input: the job's ``input``: ``{"spec": {...}, "limits": {...}}`` (limits optional).
        progress: called with ``{"progress": {...}}`` after each epoch.
        should_stop: polled during training; True stops the trial (status "stopped").
        settings: paths (``Settings.from_env()`` by default); the data-set cache lives there.
        train: how the spec is trained: :func:`train_here` (this process) by default, a
            :class:`JobPool`'s ``run`` in the handler (a process of its own).

    Returns:
        The job's output (see the module docstring), or ``{"error": message}`` for a bad payload.
    """
    try:
        spec = parse_input(job_input)
        limits = job_limits(job_input, spec)
    except ConfigError as exc:
        log.warning("refused job: %s", exc)
        return {"error": f"invalid job input: {exc}"}

    history: list[dict[str, float | None]] = []

    def on_epoch(epoch: int, logs: dict[str, float | None]) -> None:
        history.append(dict(logs))
        if progress is not None:
            payload = {
                "progress": {
                    "trial_number": spec.trial_number,
                    "study": spec.study,
                    "epoch": epoch,
                    "epochs": spec.epochs,
                    "history": list(history),  # all epochs so far: a slow poller misses none
                }
            }
            try:
                progress(payload)
            except Exception:  # noqa: BLE001 - progress is informative; it must never kill a trial
                log.debug("progress sink failed", exc_info=True)

    deadline = time.monotonic() + limits.max_seconds if limits.max_seconds else None
    timed_out = threading.Event()

    def stop() -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            timed_out.set()
            return True
        return bool(should_stop is not None and should_stop())

    with tempfile.TemporaryDirectory(prefix="hpo-job-") as tmp:
        with _ACTIVE_LOCK:
            _ACTIVE_TMP.add(tmp)
        try:
            # The client decides where the model lands on its side; here it only needs a scratch folder.
            local_spec = dataclasses.replace(spec, artifacts_dir=tmp)
            result: TrialResult = (train or train_here)(local_spec, on_epoch, stop, settings)
            if timed_out.is_set() and result.status == "stopped":
                result.error = (f"stopped at the job's time limit of {limits.max_seconds:g} s "
                                f"after {result.epochs_run} of {spec.epochs} epochs")
            model = (encode_model(Path(result.model_path) if result.model_path else None)
                     if spec.save_model and result.status == "complete" else {"model": None})
            # the insight (core.insight) is written beside the model: it rides along the same way
            insight = (encode_insight(Path(result.model_path).parent / INSIGHT_FILE)
                       if spec.save_model and result.status == "complete" and result.model_path else {"insight": None})
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_TMP.discard(tmp)
    result.trial_number = spec.trial_number
    result.executor = "runpod"
    result.model_path = None  # worker-local paths mean nothing to the client
    result.result_path = None
    output: dict[str, Any] = {"result": result.to_dict(), **model, **insight}
    output["worker"] = {
        "host": socket.gethostname(),
        "concurrency": worker_concurrency(),
        "replicas": _replicas(),
    }
    return output


@functools.lru_cache(maxsize=1)
def _replicas() -> int:
    """Replicas one job trains on here: every visible GPU under MirroredStrategy, else 1.

    Counted without TensorFlow (``nvidia-smi``): this process only hands jobs to its pool.
    """
    from core.executors.local import detect_gpus

    return max(1, len(detect_gpus()))


# --------------------------------------------------------------------------- one job per process


class JobPool:
    """Processes that train one job each at a time, shared by the jobs the handler serves at once.

    The processes are ``LocalExecutor``'s workers (one training path, TensorFlow imported once
    per process, a dead process replaced).  They see the worker's own devices: each job trains
    on every GPU of the worker (MirroredStrategy when there are several), as it would alone.
    ``LocalExecutor`` is driven from one thread at a time; a pump thread routes its events to
    the job waiting for them.

    Args:
        size: processes, i.e. jobs training at once (``HPO_WORKER_CONCURRENCY``).
        settings: paths for the processes (``HPO_HOME``); ``Settings.from_env()`` by default.
    """

    def __init__(self, size: int, settings: Any | None = None) -> None:
        from core.executors.local import LocalExecutor

        self.size = max(1, int(size))
        # gpus=[]: CUDA_VISIBLE_DEVICES is left as the worker has it, so each job sees every GPU.
        self._executor = LocalExecutor(workers=self.size, gpus=[], settings=settings)
        self._lock = threading.Lock()
        self._free = threading.BoundedSemaphore(self.size)
        self._inbox: dict[int, queue.Queue] = {}
        self._numbers = itertools.count(1)
        self._closing = threading.Event()
        self._pump_done = threading.Event()
        self._broken: str | None = None
        self._pump: threading.Thread | None = None

    @property
    def pids(self) -> list[int | None]:
        return self._executor.pids

    def start(self) -> "JobPool":
        with self._lock:
            if self._pump is None:
                self._executor.start()
                self._pump = threading.Thread(target=self._pump_events, name="hpo-job-pool", daemon=True)
                self._pump.start()
        return self

    def run(self, spec: TrialSpec, on_epoch: EpochSink, should_stop: StopCheck, settings: Any = None) -> TrialResult:
        """Train ``spec`` in a process of the pool; blocks until it ends. A :data:`Trainer`."""
        from core.executors.base import DoneEvent, EpochEvent, failed_result

        self.start()
        while not self._free.acquire(timeout=0.1):  # more jobs than processes: wait for one
            if should_stop() or self._closing.is_set():
                return TrialResult(status="stopped", trial_number=spec.trial_number, dataset=spec.dataset,
                                   params=dict(spec.params), error="stopped before it started")
        number = next(self._numbers)  # the pool's own id: two jobs may carry the same trial number
        inbox: queue.Queue = queue.Queue()
        try:
            with self._lock:
                if self._broken is not None or self._closing.is_set():
                    return failed_result(spec, self._broken or "the worker is shutting down", executor="runpod",
                                         host=socket.gethostname())
                self._inbox[number] = inbox
                self._executor.submit(dataclasses.replace(spec, trial_number=number))
            stop_sent = False
            while True:
                if not stop_sent and (self._closing.is_set() or should_stop()):
                    with self._lock:
                        self._executor.stop_trial(number)
                    stop_sent = True
                try:
                    event = inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(event, EpochEvent):
                    on_epoch(event.epoch, dict(event.logs))
                elif isinstance(event, DoneEvent):
                    result = event.result
                    result.trial_number = spec.trial_number
                    if self._closing.is_set() and result.status == "stopped" and not result.error:
                        result.error = "the worker was shut down (SIGTERM) during this trial"
                    return result
        finally:
            with self._lock:
                self._inbox.pop(number, None)
            self._free.release()

    def _pump_events(self) -> None:
        from core.executors.base import DoneEvent

        try:
            while not self._pump_done.is_set():
                with self._lock:
                    events = self._executor.events(timeout=0.05)
                for event in events:
                    inbox = self._inbox.get(event.trial_number)
                    if inbox is not None:
                        inbox.put(event)
                if not events:
                    time.sleep(0.01)  # let submit/stop_trial take the lock
        except Exception as exc:  # noqa: BLE001 - e.g. TensorFlow cannot start: every job fails with the reason
            log.exception("job pool failed")
            self._broken = f"the worker's training processes failed: {exc}"
            with self._lock:
                inboxes = dict(self._inbox)
            for number, inbox in inboxes.items():
                spec = TrialSpec(dataset="", params={}, trial_number=number)
                from core.executors.base import failed_result

                inbox.put(DoneEvent(number, failed_result(spec, self._broken, executor="runpod")))

    def close(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop every job (they end "stopped" within a few batches), wait ``grace`` seconds for
        them, then end the processes; a job still waiting then gets a failed result."""
        from core.executors.base import DoneEvent, failed_result

        self._closing.set()
        with self._lock:
            for number in list(self._inbox):
                self._executor.stop_trial(number)
        deadline = time.monotonic() + max(0.0, grace)
        while self._inbox and time.monotonic() < deadline and self._pump is not None and self._pump.is_alive():
            time.sleep(0.05)
        self._pump_done.set()
        if self._pump is not None:
            self._pump.join(2.0)
        with self._lock:
            self._executor.shutdown(wait=0.5)
            inboxes = dict(self._inbox)
        for number, inbox in inboxes.items():
            spec = TrialSpec(dataset="", params={}, trial_number=number)
            inbox.put(DoneEvent(number, failed_result(spec, "the worker was shut down (SIGTERM) during this trial",
                                                      executor="runpod")))


_POOL: JobPool | None = None
_POOL_LOCK = threading.Lock()
_SHUTTING_DOWN = threading.Event()  # set by SIGTERM: jobs the SDK still hands over are refused


class WorkerShuttingDown(RuntimeError):
    """A job arrived after SIGTERM."""


def job_pool() -> JobPool:
    """This worker's pool, made on the first job with ``HPO_WORKER_CONCURRENCY`` processes.

    Raises:
        WorkerShuttingDown: after SIGTERM (the SDK still runs jobs it had queued).
    """
    global _POOL
    with _POOL_LOCK:
        if _SHUTTING_DOWN.is_set():
            raise WorkerShuttingDown("the worker is shutting down (SIGTERM): job not started")
        if _POOL is None:
            _POOL = JobPool(worker_concurrency())
        return _POOL


def shutdown_pool(grace: float = SHUTDOWN_GRACE_S) -> None:
    """Stop the pool's jobs and processes (SIGTERM, the end of ``main``, tests)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close(grace)


# --------------------------------------------------------------------------- SIGTERM

_CHAINED: dict[int, Any] = {}


def _on_sigterm(signum: int, frame: Any) -> None:
    """Stop training, clean up, then hand the signal to whoever handled it before us.

    The SDK's handler (or uvicorn's) then shuts down as it would have, only quickly: nothing
    is training any more.  Where there is none, or when the signal comes back to us (uvicorn
    re-raises it once it has stopped), ``SystemExit`` ends the process with exit handlers run.
    """
    first = not _SHUTTING_DOWN.is_set()
    _SHUTTING_DOWN.set()
    if first:
        log.warning("SIGTERM: stopping the jobs in training (at most %.0f s), then exiting", SHUTDOWN_GRACE_S)
        shutdown_pool(SHUTDOWN_GRACE_S)
        deadline = time.monotonic() + 2.0
        while _ACTIVE_TMP and time.monotonic() < deadline:  # each job removes its own folder as it returns
            time.sleep(0.05)
        with _ACTIVE_LOCK:
            left = list(_ACTIVE_TMP)
        for tmp in left:
            shutil.rmtree(tmp, ignore_errors=True)
        previous = _CHAINED.get(signum, signal.SIG_DFL)
        if callable(previous) and previous is not _on_sigterm:
            previous(signum, frame)  # the SDK's or uvicorn's shutdown: now quick, nothing is training
            return
        if previous == signal.SIG_IGN:
            return
    raise SystemExit(128 + signum)


def _hook_sigterm() -> None:
    """Put :func:`_on_sigterm` in front of the SIGTERM handler in place.

    Called from the handler, i.e. once the SDK (or uvicorn) has installed its own handler,
    which only sets a flag and waits for running jobs to finish.  Only the main thread may
    set signal handlers; elsewhere (a test's event loop in a thread) nothing is hooked.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return
    _CHAINED[signal.SIGTERM] = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    log.debug("SIGTERM hooked in front of %r", current)


# --------------------------------------------------------------------------- the handler


def _send_progress(job: dict[str, Any], payload: dict[str, Any]) -> None:
    """Post one progress update through the SDK (only where the platform can receive it)."""
    if not _on_runpod():
        progress = payload.get("progress", {})
        log.info("job %s: epoch %s/%s", job.get("id"), progress.get("epoch"), progress.get("epochs"))
        return
    import runpod

    runpod.serverless.progress_update(job, payload)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """RunPod's entry point: one job in, its output (or ``{"error": ...}``) out.

    The job trains in a process of :func:`job_pool`; this coroutine waits for it in a
    thread, so the event loop keeps serving other jobs, heartbeats and stop signals.  When
    the SDK cancels this task (``/cancel``, execution timeout) the stop flag is raised and
    the job's process stops training within a few batches.
    """
    _hook_sigterm()
    stop = threading.Event()
    job_id = job.get("id", "?")
    spec = (job.get("input") or {}).get("spec") if isinstance(job.get("input"), dict) else None
    log.info("job %s started: trial %s", job_id, spec.get("trial_number") if isinstance(spec, dict) else "?")
    try:
        output = await asyncio.to_thread(
            run_job,
            job.get("input"),
            progress=lambda payload: _send_progress(job, payload),
            should_stop=stop.is_set,
            train=lambda *args: job_pool().run(*args),
        )
    except asyncio.CancelledError:
        stop.set()
        log.info("job %s cancelled: stopping its training", job_id)
        raise
    except WorkerShuttingDown as exc:
        return {"error": str(exc)}
    if "error" in output:
        return output
    res = output["result"]
    log.info(
        "job %s finished: trial %s %s, val_accuracy=%s, model=%s",
        job_id, res.get("trial_number"), res.get("status"), res.get("val_accuracy"), output.get("model"),
    )
    return output


# --------------------------------------------------------------------------- entry point


def main() -> None:
    """Start the RunPod worker (or its local development server with ``--rp_serve_api``)."""
    os.environ["HPO_EXECUTOR"] = "runpod"  # every result says where it ran
    # Concurrent jobs share the GPU: without this, the first TF context takes all its memory.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.logs import setup_logging

    setup_logging("worker-runpod", console=True, console_level="INFO")
    log.info("HPO Studio RunPod worker starting: %d job(s) at once, each in its own process", worker_concurrency())

    import runpod

    # Ours from the start: uvicorn (--rp_serve_api) keeps it and hands the signal back once it
    # has stopped; the SDK replaces it, and the first job puts it in front again (_hook_sigterm).
    _hook_sigterm()
    try:
        runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency_modifier})
    finally:
        shutdown_pool(grace=1.0)


if __name__ == "__main__":
    main()
