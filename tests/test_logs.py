"""core.logs: one bounded log for every entry point."""

from __future__ import annotations

import logging

import pytest

from core.config import Settings
from core.logs import MAX_MESSAGE_CHARS, MAX_RECORD_CHARS, setup_logging


@pytest.fixture
def logged(tmp_path):
    settings = Settings(home=tmp_path)
    setup_logging("cli", settings=settings, console=False)
    yield tmp_path / "logs" / "hpo.log"
    for name in ("hpo", "optuna"):
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if getattr(h, "_hpo_handler", False)]:
            lg.removeHandler(h)
            h.close()


def _flush() -> None:
    for h in logging.getLogger("hpo").handlers:
        h.flush()


def test_a_huge_value_becomes_a_bounded_record_with_a_note(logged):
    log = logging.getLogger("hpo.test")
    huge = "x" * 5_000_000  # a 5 MB parameter value (the issue saw 50 MB)
    log.warning("trial %s submitted: %s", 7, {"activation": huge})
    log.warning(huge)  # as the message itself, not only an argument
    try:
        raise ValueError(huge)
    except ValueError:
        log.exception("trial %s failed", 8)
    log.info("a normal line after them")
    _flush()
    text = logged.read_text()
    assert len(text) < 2 * MAX_MESSAGE_CHARS + MAX_RECORD_CHARS + 2_000
    assert "trial 7 submitted: {'activation': 'xxx" in text
    assert text.count("more characters]") == 3
    assert "trial 8 failed" in text and "a normal line after them" in text


def test_ordinary_records_are_untouched(logged):
    logging.getLogger("hpo.test").info("trial %s COMPLETE: val_accuracy %.4f", 3, 0.91234)
    _flush()
    assert "trial 3 COMPLETE: val_accuracy 0.9123\n" in logged.read_text()
