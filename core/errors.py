"""The error vocabulary of HPO Studio and the helpers that phrase its messages.

``ConfigError`` is a setting the user can fix; its message names the setting and what to do.
Anything else stops a study with its traceback in the log.  This module imports nothing of
the project, so every other module (config, datasets, search_space, paths) can use it
without an import cycle.
"""

from __future__ import annotations

import math
from typing import Any


class ConfigError(ValueError):
    """A setting the user can fix. The message names the setting and what to do."""


class StudyNotFound(ConfigError, KeyError):
    """No study of that name in the storage.  A ConfigError (the message names the storage and
    what to type) and a KeyError (what ``optuna.load_study`` raises), so either ``except`` catches it."""

    __str__ = BaseException.__str__  # KeyError would quote the message


def as_number(value: Any, what: str, *, integer: bool = False) -> float | int:
    """``value`` as a finite number, or a ConfigError naming ``what`` (bools, text, NaN and inf refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{what}: must be {kind} (got {brief(value)})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{what}: must be a finite number (got {value})")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{what}: must be a whole number (got {value})")
            return int(value)
        return value
    return value


def brief(value: Any, limit: int = 60) -> str:
    """A value for a one-line message: its repr, cut, on one line."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail (deep nesting, odd objects)
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
