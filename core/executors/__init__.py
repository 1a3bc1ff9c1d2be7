"""Where trials run. The runner talks to every executor through :class:`Executor`.

* ``local``: worker processes on this machine (:class:`LocalExecutor`).
* ``runpod``: RunPod serverless GPU workers (``core.executors.runpod.RunPodExecutor``).

:func:`build_executor` (``core.executors.select``) builds the one a ``StudyConfig`` names and
returns ``(executor, note)``: a RunPod study that cannot reach its endpoint runs locally and the
note says why.  Executors are imported lazily so choosing one never imports another's dependencies.
"""

from __future__ import annotations

import importlib

from core.config import EXECUTORS, ConfigError
from core.executors.base import DoneEvent, EpochEvent, Event, Executor, ExecutorFull, failed_result
from core.executors.select import build_executor


def executor_class(name: str) -> type[Executor]:
    """The Executor class registered under ``name``.

    Raises:
        ConfigError: unknown name, or its module cannot be imported here.
    """
    target = EXECUTORS.get(name)
    if target is None:
        raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)} (got {name!r})")
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"executor: '{name}' is not available in this installation ({exc})") from exc


__all__ = [
    "DoneEvent",
    "EXECUTORS",
    "EpochEvent",
    "Event",
    "Executor",
    "ExecutorFull",
    "build_executor",
    "executor_class",
    "failed_result",
]
