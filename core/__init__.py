"""HPO Studio's engine: configuration, data, models, training, health, studies and executors.

``core`` never imports Streamlit, and importing it is cheap: TensorFlow and Optuna load
only when a function that needs them runs.  The names below are the public surface;
each is imported on first access::

    from core import StudyConfig, StudyRunner, TrialSpec, run_trial
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "ConfigError": "core.errors",
    "Settings": "core.paths",
    "StudyConfig": "core.config",
    "TrialResult": "core.config",
    "TrialSpec": "core.config",
    "run_trial": "core.training",
    "StudyRunner": "core.study",
    "create_study": "core.study",
    "sweep_stale": "core.study",
    "Executor": "core.executors",
    "LocalExecutor": "core.executors.local",
    "build_executor": "core.executors",
    "setup_logging": "core.logs",
    "load_dataset": "core.datasets",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
