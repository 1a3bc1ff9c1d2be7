"""One logging setup for every entry point: the UI, the CLI and the worker processes.

Everything HPO Studio logs goes through loggers named ``hpo.*`` (and Optuna's own
``optuna`` logger) into a rotating file, ``<HPO_HOME>/logs/hpo.log``.  The CLI also gets
a concise console handler.  TensorFlow's start-up noise is silenced here, *without*
importing TensorFlow: the environment variable it reads must be set before it loads.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from core.config import Settings

LOG_FILE = "hpo.log"
MAX_BYTES = 5 * 1024 * 1024  # 5 MB x 5 files bounds disk use at 30 MB
BACKUP_COUNT = 5
FILE_FORMAT = "%(asctime)s %(levelname)-7s [%(entry)s:%(process)d] %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s: %(message)s"

# Loggers we own or route: ours, Optuna's (so its warnings reach the file too).
_ROUTED = ("hpo", "optuna")
_MARK = "_hpo_handler"  # attribute on handlers we added, so a second call replaces rather than stacks them
_CONFIGURED: tuple | None = None  # arguments of the last setup, to make repeated calls free


class _EntryFilter(logging.Filter):
    """Stamps each record with the entry point (app, cli, worker-0 ...) so one file shows who said what."""

    def __init__(self, entry: str) -> None:
        super().__init__()
        self.entry = entry

    def filter(self, record: logging.LogRecord) -> bool:
        record.entry = self.entry
        return True


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python start-up chatter; safe before or after TF is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read once when TF's C++ runtime loads
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:  # absl-py is light; it ships with TF and prints "WARNING: All log messages before absl..." otherwise
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def setup_logging(
    entry: str = "app",
    level: int | str = logging.INFO,
    *,
    console: bool | None = None,
    console_level: int | str = logging.WARNING,
    settings: Settings | None = None,
) -> logging.Logger:
    """Configure logging for one process. Idempotent: the same call again does nothing, a
    different one replaces the handlers this function added (never stacks them), so
    Streamlit reruns and repeated CLI calls log each line once.

    Args:
        entry: who is logging: "app", "cli", "worker-<slot>" ... (shown in every file line).
        level: level of the ``hpo`` loggers and the file handler.
        console: add a concise stderr handler; defaults to True for "cli", False otherwise
            (Streamlit owns the UI's console; workers share their parent's terminal).
        console_level: level of the console handler (WARNING keeps a progress bar readable).
        settings: where logs go (``Settings.from_env()`` by default).

    Returns:
        The ``hpo`` logger.
    """
    quiet_tensorflow()
    settings = settings or Settings.from_env()
    console = entry == "cli" if console is None else console
    level = logging.getLevelName(level) if isinstance(level, str) else level
    console_level = logging.getLevelName(console_level) if isinstance(console_level, str) else console_level

    global _CONFIGURED
    key = (entry, level, console, console_level, str(settings.logs_dir))
    hpo = logging.getLogger("hpo")
    if key == _CONFIGURED and any(getattr(h, _MARK, False) for h in hpo.handlers):
        return hpo
    handlers: list[logging.Handler] = []
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(
            settings.logs_dir / LOG_FILE, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8", delay=True
        )
        fh.setFormatter(logging.Formatter(FILE_FORMAT))
        fh.setLevel(level)
        handlers.append(fh)
    except OSError as exc:  # a read-only home must not stop the app; say so once on stderr
        print(f"hpo: cannot write logs to {settings.logs_dir}: {exc}", file=sys.stderr)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        ch.setLevel(console_level)
        handlers.append(ch)
    entry_filter = _EntryFilter(entry)
    for h in handlers:
        setattr(h, _MARK, True)
        h.addFilter(entry_filter)

    for name in _ROUTED:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(old)
            old.close()
        for h in handlers:
            logger.addHandler(h)
        logger.propagate = False  # our handlers are the only ones; no duplicate lines via the root logger
    logging.getLogger("hpo").setLevel(level)
    _quiet_optuna()
    _CONFIGURED = key
    return logging.getLogger("hpo")


def _quiet_optuna() -> None:
    """Optuna installs its own stderr handler at INFO ("Trial 3 finished ..."); ours replace it.

    Importing optuna (~0.5 s, no TensorFlow) is the only way to stop it adding that
    handler later, on its first log call.
    """
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.set_verbosity(logging.WARNING)
