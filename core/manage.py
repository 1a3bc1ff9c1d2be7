"""Study management: a display name, a note, duplicating a configuration, deleting a study.

Everything lives in the Optuna storage (study user attributes) or the study's folder
(``Settings.study_dir``), so the CLI, a second browser tab and optuna-dashboard see the same.
The storage name of a study never changes: Optuna has no rename, and the CLI, joined workers
and the study's folder are keyed by it.  A rename sets the name the app *shows*.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import storage as S
from core.study import ATTR_DISPLAY_NAME, ATTR_HEARTBEAT, ATTR_STATUS, ATTR_USER_NOTE
from core.config import ConfigError, Settings, StudyConfig

log = logging.getLogger("hpo.manage")

MAX_DISPLAY_NAME = 80
MAX_NOTE = 2000


@dataclass
class Deleted:
    """What :func:`delete_study` removed."""

    name: str
    trials: int
    folder: Path | None  # None when the study had no folder on this machine
    files: int  # files removed with the folder (models, results, exports)


def _load(name: str, storage_url: str | None):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=S.open_storage(storage_url))
    except KeyError as exc:
        raise ConfigError(f"no study called {name!r} in this storage (deleted, or another storage?)") from exc


def display_name(attrs: dict[str, Any], name: str) -> str:
    """The name to show for a study: its display name if it has one, else its storage name."""
    shown = attrs.get(ATTR_DISPLAY_NAME)
    return shown if isinstance(shown, str) and shown.strip() else name


def user_note(attrs: dict[str, Any]) -> str:
    note = attrs.get(ATTR_USER_NOTE)
    return note if isinstance(note, str) else ""


def labels(storage_url: str | None = None) -> dict[str, tuple[str, str]]:
    """{storage name: (name to show, the user's note)} for every study, in one read of the studies table."""
    return {fs.study_name: (display_name(fs.user_attrs, fs.study_name), user_note(fs.user_attrs))
            for fs in S.open_storage(storage_url).get_all_studies()}


def rename_study(name: str, new_name: str, storage_url: str | None = None) -> str:
    """Show study ``name`` as ``new_name`` everywhere in the app (the storage name stays).

    Returns:
        The display name stored (stripped); the storage name itself clears it.

    Raises:
        ConfigError: empty, too long, with control characters, or already the name of another study.
    """
    new = " ".join(str(new_name).split())
    if not new:
        raise ConfigError("New name: give the study a name")
    if len(new) > MAX_DISPLAY_NAME:
        raise ConfigError(f"New name: at most {MAX_DISPLAY_NAME} characters (this one has {len(new)})")
    storage = S.open_storage(storage_url)
    for fs in storage.get_all_studies():
        if fs.study_name == name:
            continue
        if new in (fs.study_name, display_name(fs.user_attrs, fs.study_name)):
            raise ConfigError(f"New name: another study is called {new!r} already; choose another name")
    study = _load(name, storage_url)
    study.set_user_attr(ATTR_DISPLAY_NAME, None if new == name else new)
    log.info("study %s shown as %r", name, new)
    return new


def set_note(name: str, note: str, storage_url: str | None = None) -> str:
    """Store the user's note on study ``name`` (an empty note clears it).

    Raises:
        ConfigError: the note is longer than MAX_NOTE characters.
    """
    text = str(note).strip()
    if len(text) > MAX_NOTE:
        raise ConfigError(f"Note: at most {MAX_NOTE} characters (this one has {len(text)}); shorten it")
    _load(name, storage_url).set_user_attr(ATTR_USER_NOTE, text or None)
    return text


def _alive(name: str, attrs: dict[str, Any], storage_url: str | None) -> bool:
    """Anyone (the owner or a joined worker) works on the study now: the rules of core.study."""
    from core.study import owner_alive, runners_from_attrs

    if owner_alive(name, attrs.get(ATTR_STATUS), attrs.get(ATTR_HEARTBEAT), attrs.get("runner"),
                   storage_url=storage_url):
        return True
    return any(r.alive for r in runners_from_attrs(attrs) if not r.owner)


def delete_study(name: str, storage_url: str | None = None, settings: Settings | None = None) -> Deleted:
    """Delete study ``name``: its trials from the storage, and its folder (models, results) from disk.

    Raises:
        ConfigError: the study does not exist, or a runner still works on it (stop it first).
    """
    import optuna

    settings = settings or Settings.from_env()
    study = _load(name, storage_url)
    if _alive(name, study.user_attrs, storage_url):
        raise ConfigError(f"study {name!r} is running: stop it (or wait for it to finish), then delete it")
    n_trials = len(study.get_trials(deepcopy=False))
    folder = settings.study_dir(name)
    optuna.delete_study(study_name=name, storage=S.open_storage(storage_url))
    files = 0
    if folder.is_dir():
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
    log.info("study %s deleted: %d trials, %d files under %s", name, n_trials, files, folder)
    return Deleted(name=name, trials=n_trials, folder=folder if files or folder.exists() else None, files=files)


def delete_preview(name: str, storage_url: str | None = None, settings: Settings | None = None) -> Deleted:
    """What :func:`delete_study` would remove, without removing anything (for the confirmation)."""
    settings = settings or Settings.from_env()
    study = _load(name, storage_url)
    folder = settings.study_dir(name)
    files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return Deleted(name=name, trials=len(study.get_trials(deepcopy=False)), folder=folder if folder.is_dir() else None,
                   files=files)


def copy_name(name: str, taken: set[str]) -> str:
    """``name-copy``, ``name-copy2``, ...: the first not in ``taken``."""
    base = f"{name}-copy"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}{n}"
    return candidate


def duplicate_config(name: str, storage_url: str | None = None) -> StudyConfig:
    """Study ``name``'s configuration under a new, unused name, ready to edit and start.

    Raises:
        ConfigError: the study does not exist or was made by another tool (it stores no configuration).
    """
    from core.study import config_of

    cfg = config_of(_load(name, storage_url))
    if cfg is None:
        raise ConfigError(f"study {name!r} stores no HPO Studio configuration (made by another tool?): nothing to copy")
    taken = {fs.study_name for fs in S.open_storage(storage_url).get_all_studies()}
    return StudyConfig.from_dict({**cfg.to_dict(), "name": copy_name(name, taken), "storage": cfg.storage})
