"""Demo mode for a hosted instance (Streamlit Community Cloud): limits and an example study.

Switched on by ``HPO_DEMO=1`` (or ``demo = true`` in Streamlit secrets, which the app
copies into the environment).  A visitor then sees a finished-looking study at once: the
example study is started on first launch and fills within about a minute, while the
limits keep one visitor from occupying the shared machine.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from core.config import ConfigError, Settings, StudyConfig

log = logging.getLogger("hpo.demo")

DEMO_ENV = "HPO_DEMO"
EXAMPLE_STUDY = "example-digits"

# Sized for a shared 1–2 core host: a study of this size finishes in a few minutes.
LIMITS = {"n_trials": 12, "epochs": 5, "max_samples": 1500, "workers": 1, "timeout_s": 900}

_lock = threading.Lock()
_example_runner: Any = None


def demo_enabled() -> bool:
    return os.environ.get(DEMO_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def example_config() -> StudyConfig:
    """The example study: health-aware on digits, small enough to fill in about a minute."""
    return StudyConfig(
        name=EXAMPLE_STUDY,
        dataset="digits",
        mode="health-aware",
        health_weight=0.3,
        n_trials=8,
        epochs=3,
        max_samples=600,
        sampler="tpe",
        pruner="none",
        seed=0,
        workers=1,
        keep_best_k=8,
    )


def check_limits(config: StudyConfig) -> None:
    """Refuse a study the hosted demo cannot afford, saying how to run it for real."""
    from core.datasets import get_info

    where = "on the hosted demo; run HPO Studio locally (make run) for bigger studies"
    if config.n_trials is None or config.n_trials > LIMITS["n_trials"]:
        raise ConfigError(f"n_trials: at most {LIMITS['n_trials']} trials per study {where}")
    if config.epochs > LIMITS["epochs"]:
        raise ConfigError(f"epochs: at most {LIMITS['epochs']} epochs per trial {where}")
    if config.max_samples is None or config.max_samples > LIMITS["max_samples"]:
        raise ConfigError(f"max_samples: at most {LIMITS['max_samples']} training samples {where}")
    if config.workers > LIMITS["workers"]:
        raise ConfigError(f"workers: {LIMITS['workers']} worker {where}")
    if config.timeout_s is None or config.timeout_s > LIMITS["timeout_s"]:
        raise ConfigError(f"timeout_s: a time budget of at most {LIMITS['timeout_s']} s is required {where}")
    if not get_info(config.dataset).embedded:
        raise ConfigError(f"dataset: only the embedded data sets (digits, synthetic_text) are available {where}")
    if config.executor != "local":
        raise ConfigError(f"executor: only local execution {where}")


def ensure_example_study(settings: Settings | None = None):
    """Start the example study if the storage has none; resume it if a crash left it unfinished.

    Returns:
        The StudyRunner working on it, or None when it is already complete (or running elsewhere).
    """
    global _example_runner
    from core import study

    settings = settings or Settings.from_env()
    with _lock:
        if _example_runner is not None and _example_runner.is_running:
            return _example_runner
        names = {s.name for s in study.list_studies(None)}
        cfg = example_config()
        if EXAMPLE_STUDY not in names:
            log.info("demo: starting the example study %s", EXAMPLE_STUDY)
            _example_runner = study.StudyRunner(cfg, settings=settings).start()
            return _example_runner
        existing = study.load_study(EXAMPLE_STUDY)
        finished = [t for t in existing.trials if t.state.is_finished()]
        if len(finished) < (cfg.n_trials or 0) and not study.runner_alive(existing):
            log.info("demo: resuming the unfinished example study")
            _example_runner = study.StudyRunner.resume(EXAMPLE_STUDY, settings=settings).start()
            return _example_runner
        return None
