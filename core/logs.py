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
# One record is at most this long: a 50 MB parameter value must not become a 50 MB line that
# rotates every older log away.  Messages are cut first; a traceback gets room of its own.
MAX_MESSAGE_CHARS = 4_000
MAX_RECORD_CHARS = 32_000

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


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [cut: {len(text) - limit:,} more characters]"


class BoundedFilter(logging.Filter):
    """Cuts a record's message (with its args filled in) to ``limit`` characters, with a note saying so."""

    def __init__(self, limit: int = MAX_MESSAGE_CHARS) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hpo_bounded", False):
            return True  # one record goes through several handlers: cut it once
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's own error to report
            return True
        if len(message) > self.limit:
            record.msg, record.args = _cut(message, self.limit), None
        record._hpo_bounded = True
        return True


class BoundedFormatter(logging.Formatter):
    """A formatter whose lines, traceback included, never exceed ``limit`` characters."""

    def __init__(self, fmt: str, limit: int = MAX_RECORD_CHARS) -> None:
        super().__init__(fmt)
        self.limit = limit

    def format(self, record: logging.LogRecord) -> str:
        return _cut(super().format(record), self.limit)


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
        fh.setFormatter(BoundedFormatter(FILE_FORMAT))
        fh.setLevel(level)
        handlers.append(fh)
    except OSError as exc:  # a read-only home must not stop the app; say so once on stderr
        print(f"hpo: cannot write logs to {settings.logs_dir}: {exc}", file=sys.stderr)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(BoundedFormatter(CONSOLE_FORMAT))
        ch.setLevel(console_level)
        handlers.append(ch)
    entry_filter = _EntryFilter(entry)
    bounded = BoundedFilter()
    for h in handlers:
        setattr(h, _MARK, True)
        h.addFilter(entry_filter)
        h.addFilter(bounded)

    for name in _ROUTED:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if is_ours(h)]:
            logger.removeHandler(old)
            old.close()
        for h in handlers:
            logger.addHandler(h)
        logger.propagate = False  # our handlers are the only ones; no duplicate lines via the root logger
    logging.getLogger("hpo").setLevel(level)
    quiet_optuna()
    _CONFIGURED = key
    return logging.getLogger("hpo")


def is_ours(handler: logging.Handler) -> bool:
    """Whether :func:`setup_logging` added ``handler`` (the CLI points our console handler above its progress bar)."""
    return bool(getattr(handler, _MARK, False))


def quiet_optuna() -> None:
    """Optuna installs its own stderr handler at INFO ("Trial 3 finished ..."); ours replace it.

    Importing optuna (~0.5 s, no TensorFlow) is the only way to stop it adding that
    handler later, on its first log call.
    """
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.set_verbosity(logging.WARNING)
