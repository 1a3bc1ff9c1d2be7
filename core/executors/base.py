"""The Executor interface: where trials run, seen from the study runner.

The runner (``core.study.StudyRunner``) drives an executor from one thread:

    executor.start()                          # optional warm-up (workers, endpoint check)
    while ...:
        while executor.free_slots > 0:
            executor.submit(spec)             # a TrialSpec; returns at once
        for event in executor.events(timeout=0.5):
            EpochEvent -> report / prune -> executor.stop_trial(n)
            DoneEvent  -> tell Optuna
    executor.shutdown()

Contract every executor keeps (local processes, RunPod, a fake in tests):

* ``submit`` never blocks on training and never raises for a trial-level problem; a
  spec that cannot run comes back later as a ``DoneEvent`` whose result has
  ``status="failed"`` and an ``error`` a user can read.  It raises ``ExecutorFull``
  only when called with no free slot (a runner bug).
* Every submitted trial produces **exactly one** ``DoneEvent`` (unless ``shutdown`` is
  called first), possibly preceded by ``EpochEvent``\\ s in epoch order.
* ``stop_trial(n)`` asks a running trial to end early (pruning or cancel).  It returns
  at once; the trial still produces its ``DoneEvent``, normally with
  ``status="stopped"`` (or "complete"/"failed" when it finished first).  Unknown or
  finished trial numbers are ignored.
* ``events`` waits at most ``timeout`` seconds and returns whatever arrived, oldest
  first (an empty list when nothing did).  It is also where an executor notices lost
  work: a dead worker process or a vanished remote job becomes a failed ``DoneEvent``
  with the reason (e.g. "worker process was killed (SIGKILL) ... out of memory?").
* ``spec.artifacts_dir`` is where the runner expects ``model.keras`` and
  ``result.json``; a remote executor downloads them there, or returns
  ``model_path=None`` when it cannot.
* The runner calls the methods from a single thread; an executor need not be thread-safe
  except for ``describe()``, which a UI may call from elsewhere.
* Executors never import TensorFlow in the calling process: the UI and the runner stay light.

A new executor subclasses :class:`Executor`, implements the abstract methods and
``from_config``, and is registered in ``core.config.EXECUTORS``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from core.config import TrialResult, TrialSpec

if TYPE_CHECKING:
    from core.config import Settings, StudyConfig


@dataclass(frozen=True)
class EpochEvent:
    """One epoch of a running trial finished.

    Attributes:
        trial_number: the Optuna trial number (``TrialSpec.trial_number``).
        epoch: counted from 1.
        logs: loss, accuracy, val_loss, val_accuracy, lr, seconds (None where not finite).
    """

    trial_number: int
    epoch: int
    logs: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class DoneEvent:
    """A trial ended: complete, stopped (pruned/cancelled) or failed (``result.error`` says why)."""

    trial_number: int
    result: TrialResult


Event = Union[EpochEvent, DoneEvent]


class ExecutorFull(RuntimeError):
    """``submit`` was called with no free slot."""


class Executor(abc.ABC):
    """Runs TrialSpecs somewhere and reports back through events. See the module docstring."""

    #: short identifier written to each trial's ``executor`` attribute ("local", "runpod").
    name: str = "executor"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, config: "StudyConfig", settings: "Settings | None" = None) -> "Executor":
        """Build the executor a study configuration asks for (``config.workers`` slots ...)."""
        raise NotImplementedError(f"{cls.__name__} does not implement from_config")

    def start(self) -> None:
        """Warm up (start worker processes, check an endpoint). Optional; ``submit`` starts lazily."""

    # ------------------------------------------------------------------ capacity

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many trials may run at once (worker processes, remote slots)."""

    @property
    @abc.abstractmethod
    def running(self) -> set[int]:
        """Trial numbers submitted whose ``DoneEvent`` has not been returned yet."""

    @property
    def free_slots(self) -> int:
        """Trials that can be submitted now without exceeding ``capacity``."""
        return max(0, self.capacity - len(self.running))

    # ------------------------------------------------------------------ work

    @abc.abstractmethod
    def submit(self, spec: TrialSpec) -> None:
        """Start one trial. Returns at once.

        Raises:
            ExecutorFull: no free slot.
        """

    @abc.abstractmethod
    def events(self, timeout: float = 0.5) -> list[Event]:
        """Events that arrived since the last call, waiting up to ``timeout`` seconds for the first."""

    @abc.abstractmethod
    def stop_trial(self, trial_number: int) -> None:
        """Ask a running trial to end now; it still reports a ``DoneEvent`` (normally status 'stopped')."""

    def epoch_judged(self, trial_number: int, epoch: int) -> None:
        """The runner has judged ``epoch`` of a trial and lets it go on (it calls ``stop_trial``
        otherwise).  ``epoch=0``, right after ``submit``, announces that every epoch of the
        trial will be judged, so its worker may wait for each verdict before the next epoch;
        without it nobody waits (a bare executor, as in the benchmarks).  Executors whose
        workers never wait ignore this."""

    @abc.abstractmethod
    def shutdown(self, wait: float = 5.0) -> None:
        """Release every resource. Running trials are abandoned (no DoneEvent follows).

        Args:
            wait: seconds to let workers exit cleanly before they are killed.
        """

    # ------------------------------------------------------------------ UI

    @property
    def notice(self) -> dict[str, Any] | None:
        """Something the user must be told that changed while the study ran, or None.

        ``{"message": str, ...details}``; the runner records it in the study (the note every
        screen shows) when it changes.  E.g. ``FallbackExecutor`` once RunPod went down.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the UI: name, capacity, running trials, per-slot state."""
        return {"name": self.name, "capacity": self.capacity, "running": sorted(self.running)}

    def __enter__(self) -> "Executor":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def failed_result(spec: TrialSpec, error: str, *, executor: str, host: str = "") -> TrialResult:
    """The result an executor reports when it lost a trial (worker died, job vanished)."""
    return TrialResult(
        status="failed",
        trial_number=spec.trial_number,
        dataset=spec.dataset,
        params=dict(spec.params),
        error=error,
        executor=executor,
        host=host,
    )
