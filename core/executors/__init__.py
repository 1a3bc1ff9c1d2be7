"""Where trials run. The runner talks to every executor through :class:`Executor`.

* ``local``: worker processes on this machine (:class:`LocalExecutor`).
* ``runpod``: RunPod serverless GPU workers (``core.executors.runpod.RunPodExecutor``).

:func:`make_executor` builds the one a ``StudyConfig`` names; executors are imported
lazily so choosing one never imports another's dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.config import ConfigError
from core.executors.base import DoneEvent, EpochEvent, Event, Executor, ExecutorFull, failed_result

if TYPE_CHECKING:
    from core.config import Settings, StudyConfig

# name -> "module:Class"; each class implements Executor.from_config(config, settings)
EXECUTORS: dict[str, str] = {
    "local": "core.executors.local:LocalExecutor",
    "runpod": "core.executors.runpod:RunPodExecutor",
}


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


def make_executor(config: "StudyConfig", settings: "Settings | None" = None) -> Executor:
    """Build the executor ``config.executor`` names, sized by ``config.workers``."""
    return executor_class(config.executor).from_config(config, settings)


__all__ = [
    "DoneEvent",
    "EXECUTORS",
    "EpochEvent",
    "Event",
    "Executor",
    "ExecutorFull",
    "executor_class",
    "failed_result",
    "make_executor",
]
