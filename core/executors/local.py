"""LocalExecutor: N long-lived worker processes on this machine, each running many trials.

Why processes: Keras in several threads of one process breaks (global session state,
layer-name clashes), and TensorFlow's thread pools are fixed when it initialises.  So
each worker is a ``spawn``-ed process that sets its thread counts (and, on a GPU machine,
``CUDA_VISIBLE_DEVICES``) *before* importing TensorFlow, imports it once (~4 s) and then
runs trial after trial through ``core.training.run_trial``.

Plumbing, per worker slot:

* a duplex ``Pipe``: the parent sends TrialSpec dicts (``None`` = exit), the worker sends
  ``("ready", pid)``, ``("epoch", n, epoch, logs)`` and ``("done", n, result_dict)``.
  One pipe per worker (not one shared Queue) so a worker killed mid-write cannot leave a
  shared lock held, and its end-of-file tells the parent at once that it died;
* a slot in a shared integer array holding the trial number to stop (-1 = none), polled
  by ``run_trial``'s ``should_stop`` every few batches;
* a slot in a second array holding the last epoch the runner has judged (-1: this trial's
  epochs are not judged, e.g. a bare executor in a benchmark).  After each epoch
  the worker waits for that verdict (at most ``VERDICT_WAIT_SHARE`` of the epoch's time,
  capped at ``VERDICT_WAIT_MAX_S``) before starting the next one, so a pruned trial stops at
  the epoch it was judged on instead of training into the next (measured live: one extra
  epoch per pruned trial without the wait).  Short epochs wait little: a stray epoch of
  theirs costs little too.

A worker that dies (crash, ``kill -9``, the OOM killer) is noticed in ``events()``: its
trial comes back failed with the reason and a fresh worker takes the slot.  A worker
whose parent died stops its trial and exits (it notices that it was re-parented).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.config import ConfigError, Settings, TrialResult, TrialSpec
from core.executors.base import DoneEvent, EpochEvent, Event, Executor, ExecutorFull, failed_result

if TYPE_CHECKING:
    from core.config import StudyConfig

log = logging.getLogger("hpo.executors.local")

NO_STOP = -1
VERDICT_WAIT_SHARE = 0.25  # a worker waits for the runner's verdict at most this share of the epoch's time...
VERDICT_WAIT_MAX_S = 2.0  # ...and never longer than this
MAX_QUICK_DEATHS = 3  # a slot whose worker dies this many times before becoming ready is broken (bad install)


# --------------------------------------------------------------------------- machine facts


def cpu_count() -> int:
    """Cores this process may use (respects CPU affinity / container limits where Linux exposes them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def detect_gpus() -> list[str]:
    """GPU ids usable by workers, without importing TensorFlow.

    ``CUDA_VISIBLE_DEVICES`` wins when set ("" or "-1" = none); otherwise ``nvidia-smi -L``
    is asked.  A machine without NVIDIA tools has no GPUs.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [g.strip() for g in env.split(",") if g.strip()]
        return [] if ids in ([], ["-1"]) else ids
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def default_workers() -> int:
    """One worker per GPU; one on a CPU-only machine (it then gets every core)."""
    return max(1, len(detect_gpus()))


def _death_reason(exitcode: int | None, pid: int | None) -> str:
    if exitcode is None:
        return f"worker process {pid} stopped responding"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        hint = " (the system may have run out of memory: lower batch_size, model size or max_samples)" if sig == "SIGKILL" else ""
        return f"worker process {pid} was killed by {sig}{hint}"
    return f"worker process {pid} exited with code {exitcode} (see logs/hpo.log)"


# --------------------------------------------------------------------------- the worker process


def _wait_for_verdict(judged: Any, stop_flags: Any, slot: int, number: int, epoch: int, epoch_s: float | None,
                      share: float, cap: float) -> None:
    """Block until the runner has judged ``epoch`` (or stopped the trial), within the wait budget."""
    deadline = time.monotonic() + min(cap, share * max(0.0, epoch_s or 0.0))
    if judged[slot] < 0:
        return  # nobody judges this trial's epochs (a bare executor): do not wait
    while judged[slot] < epoch and stop_flags[slot] != number and time.monotonic() < deadline:
        time.sleep(0.002)


def _worker_main(slot: int, conn: mpc.Connection, stop_flags: Any, env: dict[str, str], judged: Any = None,
                 verdict_wait: tuple[float, float] = (VERDICT_WAIT_SHARE, VERDICT_WAIT_MAX_S)) -> None:
    """Entry point of a worker process: configure, import TensorFlow once, run trials until told to exit."""
    os.environ.update(env)  # thread counts and GPU choice must be in place before TensorFlow loads
    # Ctrl-C in a terminal reaches the whole process group; the runner decides what happens to
    # trials (first Ctrl-C: let them finish), so workers ignore it and exit when told or orphaned.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from core.logs import setup_logging

    wlog = setup_logging(f"worker-{slot}").getChild("worker")
    parent = os.getppid()
    try:
        import tensorflow as tf

        threads = int(env.get("TF_NUM_INTRAOP_THREADS", "0"))
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(int(env.get("TF_NUM_INTEROP_THREADS", threads)))
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)  # workers sharing a GPU must not grab it all
        from core.training import run_trial

        conn.send(("ready", os.getpid()))
        wlog.info("worker %s ready (pid %s, %s threads, GPUs %s)", slot, os.getpid(), threads or "all",
                  env.get("CUDA_VISIBLE_DEVICES", "default"))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            number = int(msg.get("trial_number", 0))
            try:
                spec = TrialSpec.from_dict(msg)
            except ConfigError as exc:
                conn.send(("done", number, failed_result(TrialSpec(dataset=str(msg.get("dataset", "")), params={},
                                                                   trial_number=number), f"invalid trial spec: {exc}",
                                                         executor="local", host=socket.gethostname()).to_dict()))
                continue

            def on_epoch(epoch: int, logs: dict[str, float | None], _n: int = number) -> None:
                conn.send(("epoch", _n, epoch, logs))
                if judged is not None:
                    _wait_for_verdict(judged, stop_flags, slot, _n, epoch, logs.get("seconds"), *verdict_wait)

            def should_stop(_n: int = number) -> bool:
                # the parent died (we were re-parented): stop instead of training for nobody
                return stop_flags[slot] == _n or os.getppid() != parent

            result = run_trial(spec, on_epoch, should_stop)
            conn.send(("done", number, result.to_dict()))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent went away; nothing left to report to


# --------------------------------------------------------------------------- the parent side


@dataclass
class _Slot:
    index: int
    env: dict[str, str]
    process: Any = None
    conn: Any = None
    pid: int | None = None
    ready: bool = False
    spec: TrialSpec | None = None
    started_at: float = 0.0
    trials_run: int = 0
    restarts: int = 0
    quick_deaths: int = 0
    last_epoch: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def trial(self) -> int | None:
        return self.spec.trial_number if self.spec is not None else None


class LocalExecutor(Executor):
    """Runs trials in ``workers`` long-lived processes on this machine.

    Args:
        workers: concurrent trials; default one per GPU, else 1.
        threads_per_worker: TensorFlow intra/inter-op threads per worker; default
            ``max(1, cores // workers)`` so workers do not fight over cores.
        gpus: GPU ids to hand out round-robin (worker i gets ``gpus[i % len(gpus)]``);
            default: detected.  ``[]`` hands out none: workers inherit this process's
            ``CUDA_VISIBLE_DEVICES`` (all its GPUs, or none where it hides them).
        settings: paths (the worker's ``HPO_HOME``); default ``Settings.from_env()``.
        start_method: multiprocessing start method; "spawn" because a forked TensorFlow
            (or a forked Streamlit server) is not safe.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int | None = None,
        gpus: list[str] | None = None,
        settings: Settings | None = None,
        start_method: str = "spawn",
        verdict_wait: tuple[float, float] = (VERDICT_WAIT_SHARE, VERDICT_WAIT_MAX_S),
    ) -> None:
        self._n = int(workers) if workers else default_workers()
        if self._n < 1:
            raise ConfigError(f"workers: must be at least 1 (got {workers})")
        self._cores = cpu_count()
        self._threads = int(threads_per_worker) if threads_per_worker else max(1, self._cores // self._n)
        self._gpus = detect_gpus() if gpus is None else list(gpus)
        self._settings = settings or Settings.from_env()
        self._ctx = mp.get_context(start_method)
        self._stop_flags = self._ctx.RawArray("q", [NO_STOP] * self._n)
        self._judged = self._ctx.RawArray("q", [-1] * self._n)  # last epoch the runner judged (-1: none will be)
        self._verdict_wait = (float(verdict_wait[0]), float(verdict_wait[1]))
        self._slots = [_Slot(index=i, env=self._worker_env(i)) for i in range(self._n)]
        self._started = False
        self._closed = False
        self._buffer: list[Event] = []  # events read while looking for something else

    @classmethod
    def from_config(cls, config: "StudyConfig", settings: Settings | None = None) -> "LocalExecutor":
        return cls(workers=config.workers, settings=settings)

    # ------------------------------------------------------------------ worker management

    def _worker_env(self, i: int) -> dict[str, str]:
        t = str(self._threads)
        env = {
            "HPO_EXECUTOR": "local",
            "HPO_HOME": str(self._settings.home),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "TF_NUM_INTRAOP_THREADS": t,
            "TF_NUM_INTEROP_THREADS": t,
            "OMP_NUM_THREADS": t,  # oneDNN/OpenMP pools size themselves from this
        }
        if self._gpus:
            env["CUDA_VISIBLE_DEVICES"] = self._gpus[i % len(self._gpus)]
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        return env

    def _spawn(self, slot: _Slot) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(slot.index, child_conn, self._stop_flags, slot.env, self._judged, self._verdict_wait),
            name=f"hpo-worker-{slot.index}",
            daemon=True,  # never outlive the runner's process
        )
        proc.start()
        child_conn.close()  # the parent keeps only its end, so EOF means the worker is gone
        slot.process, slot.conn, slot.pid, slot.ready = proc, parent_conn, proc.pid, False
        slot.history.append(f"started pid {proc.pid}")
        log.info("started worker %s (pid %s, %s threads, GPU %s)", slot.index, proc.pid, self._threads,
                 slot.env.get("CUDA_VISIBLE_DEVICES", "-"))

    def start(self) -> None:
        """Start every worker process now (they import TensorFlow in parallel, ~4 s)."""
        if self._closed:
            raise RuntimeError("executor is shut down")
        if not self._started:
            for slot in self._slots:
                self._spawn(slot)
            self._started = True

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every worker has imported TensorFlow (benchmarks; the runner does not need it)."""
        self.start()
        deadline = time.monotonic() + timeout
        while not all(s.ready for s in self._slots) and time.monotonic() < deadline:
            self._buffer.extend(self._poll(min(0.5, max(0.0, deadline - time.monotonic()))))
        return all(s.ready for s in self._slots)

    # ------------------------------------------------------------------ Executor API

    @property
    def capacity(self) -> int:
        return self._n

    @property
    def running(self) -> set[int]:
        return {s.trial for s in self._slots if s.trial is not None}

    @property
    def pids(self) -> list[int | None]:
        """Current worker process ids, by slot (tests kill them)."""
        return [s.pid for s in self._slots]

    def slot_of(self, trial_number: int) -> int | None:
        """The slot running ``trial_number``, if any."""
        for s in self._slots:
            if s.trial == trial_number:
                return s.index
        return None

    def submit(self, spec: TrialSpec) -> None:
        self.start()
        slot = next((s for s in self._slots if s.spec is None), None)
        if slot is None:
            raise ExecutorFull(f"all {self._n} local workers are busy")
        self._stop_flags[slot.index] = NO_STOP  # a number from an earlier study must not stop this trial
        self._judged[slot.index] = -1  # until the runner says it judges this trial's epochs
        slot.spec, slot.started_at, slot.last_epoch = spec, time.time(), 0
        try:
            slot.conn.send(spec.to_dict())
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the worker is dead; _poll reports the trial failed and replaces it
        log.debug("trial %s -> worker %s", spec.trial_number, slot.index)

    def stop_trial(self, trial_number: int) -> None:
        idx = self.slot_of(trial_number)
        if idx is not None:
            self._stop_flags[idx] = trial_number

    def epoch_judged(self, trial_number: int, epoch: int) -> None:
        idx = self.slot_of(trial_number)
        if idx is not None:
            self._judged[idx] = epoch

    def events(self, timeout: float = 0.5) -> list[Event]:
        self.start()
        out, self._buffer = self._buffer, []
        out.extend(self._poll(0.0 if out else timeout))
        return out

    def shutdown(self, wait: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self._slots:
            if s.trial is not None:
                self._stop_flags[s.index] = s.trial
            if s.conn is not None:
                try:
                    s.conn.send(None)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
        deadline = time.monotonic() + wait
        for s in self._slots:
            if s.process is None:
                continue
            s.process.join(max(0.0, deadline - time.monotonic()))
            if s.process.is_alive():
                s.process.terminate()
                s.process.join(2.0)
            if s.process.is_alive():
                s.process.kill()
                s.process.join(2.0)
            if s.conn is not None:
                s.conn.close()
            s.spec = None
        log.info("local executor shut down")

    def describe(self) -> dict[str, Any]:
        now = time.time()
        return {
            "name": self.name,
            "capacity": self._n,
            "cores": self._cores,
            "threads_per_worker": self._threads,
            "gpus": list(self._gpus),
            "running": sorted(self.running),
            "workers": [
                {
                    "slot": s.index,
                    "pid": s.pid,
                    "alive": bool(s.process is not None and s.process.is_alive()),
                    "ready": s.ready,
                    "trial": s.trial,
                    "epoch": s.last_epoch if s.trial is not None else None,
                    "running_for_s": round(now - s.started_at, 1) if s.trial is not None else None,
                    "trials_run": s.trials_run,
                    "restarts": s.restarts,
                    "gpu": s.env.get("CUDA_VISIBLE_DEVICES"),
                }
                for s in self._slots
            ],
        }

    # ------------------------------------------------------------------ internals

    def _poll(self, timeout: float) -> list[Event]:
        """Read every pending message; detect and replace dead workers."""
        conns = {s.conn: s for s in self._slots if s.conn is not None}
        sentinels = {s.process.sentinel: s for s in self._slots if s.process is not None}
        out: list[Event] = []
        try:
            mpc.wait(list(conns) + list(sentinels), timeout)
        except OSError:
            pass
        for s in self._slots:
            out.extend(self._drain(s))
        for s in self._slots:
            if s.process is not None and not s.process.is_alive():
                out.extend(self._drain(s))  # a "done" written just before exiting still counts
                out.extend(self._handle_death(s))
        return out

    def _drain(self, s: _Slot) -> list[Event]:
        out: list[Event] = []
        if s.conn is None:
            return out
        try:
            while s.conn.poll():
                out.extend(self._message(s, s.conn.recv()))
        except (EOFError, OSError):
            pass  # the worker is gone; the sentinel check reports it
        return out

    def _message(self, s: _Slot, msg: tuple) -> list[Event]:
        kind = msg[0]
        if kind == "ready":
            s.ready, s.pid, s.quick_deaths = True, int(msg[1]), 0
            return []
        if kind == "epoch":
            _, number, epoch, logs = msg
            if number != s.trial:
                return []  # a straggler from a trial already reported
            s.last_epoch = int(epoch)
            return [EpochEvent(int(number), int(epoch), dict(logs))]
        if kind == "done":
            _, number, data = msg
            if number != s.trial:
                return []
            result = TrialResult.from_dict(data)
            s.spec, s.trials_run = None, s.trials_run + 1
            self._stop_flags[s.index] = NO_STOP
            return [DoneEvent(int(number), result)]
        log.warning("worker %s sent an unknown message %r", s.index, kind)
        return []

    def _handle_death(self, s: _Slot) -> list[Event]:
        proc = s.process
        proc.join(0.1)
        reason = _death_reason(proc.exitcode, s.pid)
        s.history.append(reason)
        out: list[Event] = []
        if s.spec is not None:
            log.error("trial %s lost: %s", s.trial, reason)
            out.append(DoneEvent(s.trial, failed_result(s.spec, f"{reason} while running this trial",
                                                        executor=self.name, host=socket.gethostname())))
            s.spec = None
        else:
            log.warning("%s (idle)", reason)
        if s.conn is not None:
            s.conn.close()
        s.conn, s.process = None, None
        s.quick_deaths = s.quick_deaths + 1 if not s.ready else 0
        if s.quick_deaths >= MAX_QUICK_DEATHS:
            raise RuntimeError(
                f"local worker {s.index} died {s.quick_deaths} times before it could start ({reason}); "
                "check that TensorFlow imports in this environment and see logs/hpo.log"
            )
        if not self._closed:
            s.restarts += 1
            self._spawn(s)
        return out
