"""Names and paths of everything HPO Studio keeps on disk: the one owner.

``runs/``, ``logs/`` and ``datasets/`` live under one home folder (:class:`Settings`,
``HPO_HOME``).  A study's folder and its trial folders are named here, and so is every
file a user downloads, so the same model has the same name on every screen::

    runs/<slug>-<hash>/                     Settings.study_dir(name)
        trial-0007/                         trial_folder_name(7)
            model.keras                     MODEL_FILE (kept for the best k trials only)
            result.json                     RESULT_FILE (always; written by core.artifacts.save_result)
            insight.npz                     INSIGHT_FILE (with result.json of a complete trial; core.insight)

    <study>_<what>[_trial-NNNN][_<metric>-<value>]_<YYYYmmdd-HHMMSS>.<ext>   download_name(...)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import os
import re
import stat
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.config import TrialSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where HPO Studio keeps its files.

    ``runs/``, ``logs/`` and ``datasets/`` live under one home folder, the project
    folder by default, so tests, benchmarks and a hosted demo can each move all
    three with ``HPO_HOME``.  ``HPO_DATASETS`` moves only the data-set cache (useful
    to share downloads between homes).
    """

    home: Path
    # Folders outside ``home`` where a trial's artifacts may go because the user chose them
    # explicitly (``python -m core trial --out DIR``); a spec alone can never add one.
    outputs: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(home=Path(os.environ.get("HPO_HOME", PROJECT_ROOT)).resolve())

    def with_output(self, folder: str | Path) -> "Settings":
        """These settings, also allowing artifacts in ``folder`` (an explicit command-line choice)."""
        return dataclasses.replace(self, outputs=(*self.outputs, Path(folder).resolve()))

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def datasets_dir(self) -> Path:
        override = os.environ.get("HPO_DATASETS")
        return Path(override).resolve() if override else self.home / "datasets"

    @property
    def default_storage(self) -> str:
        # SQLite is enough for one writing runner and polling readers (measured, DESIGN.md).
        return f"sqlite:///{self.runs_dir / 'studies.db'}"

    def study_dir(self, study_name: str) -> Path:
        """``runs/<slug>-<hash>/``: distinct names never share a folder (see :func:`study_folder_name`).

        Raises:
            ConfigError: the name has control characters or path parts.
        """
        return self.runs_dir / study_folder_name(study_name)

    def trial_dir(self, spec: "TrialSpec") -> Path:
        """Where a trial's model and result go: ``spec.artifacts_dir`` or ``runs/<study>/trial-NNNN``.

        A spec comes from outside (a file, a job, a shared storage), so the folder it names
        is honoured only inside ``home``, inside a folder the user chose explicitly
        (``outputs``), or when it is a private scratch folder this user just made
        (``tempfile.mkdtemp``: existing, empty, mode 0700, ours; what a RunPod worker uses).

        Raises:
            ConfigError: the folder is anywhere else; the message says how to choose one.
        """
        if not spec.artifacts_dir:
            return self.study_dir(spec.study) / trial_folder_name(spec.trial_number)
        folder = Path(spec.artifacts_dir)
        resolved = folder.resolve()
        if any(_inside(resolved, root) for root in (self.home.resolve(), *self.outputs)) or _private_scratch(resolved):
            return resolved
        raise ConfigError(
            f"artifacts_dir: {str(folder)[:200]!r} is outside HPO_HOME ({self.home}); leave it empty to use "
            f"runs/<study>/, or choose another folder explicitly on the command line (python -m core trial --out DIR)"
        )

    def ensure(self) -> "Settings":
        for d in (self.runs_dir, self.logs_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _private_scratch(path: Path) -> bool:
    """An existing, empty folder with mode 0700 owned by this user: what ``tempfile.mkdtemp`` makes.

    A hostile spec can name a folder but cannot make one like this for the user running it.
    """
    try:
        st = path.stat()
        return (stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
                and (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not any(path.iterdir())
                and _inside(path, Path(tempfile.gettempdir()).resolve()))
    except OSError:
        return False


def safe_name(name: str) -> str:
    """A name reduced to characters that are safe in a file name (readable, not unique: see study_folder_name)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "study"


MAX_NAME_LENGTH = 120  # a study name; StudyConfig asks for 80 (the UI's field), "<name>-reproduce" needs room


def check_study_name(name: Any, what: str = "name") -> str:
    """Refuse study names that cannot be shown or stored safely; return the name.

    A name may hold any printable text (spaces, accents, punctuation) but no control
    characters (NUL, newlines, tabs ...) and no path parts (``/``, ``\\``, a bare ``..``).

    Raises:
        ConfigError: the message names the problem and what to type instead.
    """
    if not isinstance(name, str):
        raise ConfigError(f"{what}: the study name must be text (got {type(name).__name__})")
    if not name.strip():
        raise ConfigError(f"{what}: give the study a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"{what}: keep the study name under {MAX_NAME_LENGTH} characters (got {len(name)})")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        raise ConfigError(f"{what}: the study name may not contain control characters (newlines, tabs, NUL); "
                          "use letters, digits, spaces, '-' or '_'")
    if "/" in name or "\\" in name or name.strip().strip(".") == "":
        raise ConfigError(f"{what}: the study name may not contain '/' or '\\' or be only dots; "
                          "use letters, digits, spaces, '-' or '_'")
    return name


def study_folder_name(name: str) -> str:
    """The folder of study ``name`` under runs/: a readable slug plus a hash of the exact name.

    ``"col a"``, ``"col-a"`` and ``"Col-A"`` get three folders (``col-a-1f3e...``); the slug
    keeps the folder recognisable, the hash makes it unique (10 hex digits of SHA-256).
    Studies written before this naming (``runs/<slug>/``) keep their stored model paths,
    so they are still found; new trials of a resumed old study go to the new folder.

    Raises:
        ConfigError: see :func:`check_study_name`.
    """
    check_study_name(name)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{safe_name(name)[:40].rstrip('-.') or 'study'}-{digest}"


# --------------------------------------------------------------------------- files in a study folder

MODEL_FILE = "model.keras"
RESULT_FILE = "result.json"
INSIGHT_FILE = "insight.npz"  # what the model does with test inputs (core.insight); never pruned
TRIAL_PREFIX = "trial-"


def trial_folder_name(number: int) -> str:
    """``trial-0007``: four digits so a folder listing sorts by trial."""
    return f"{TRIAL_PREFIX}{int(number):04d}"


def trial_number_of(path: str | Path) -> int | None:
    """The trial number in a ``trial-NNNN`` folder name, or None."""
    name = Path(path).name
    if not name.startswith(TRIAL_PREFIX):
        return None
    try:
        return int(name[len(TRIAL_PREFIX) :])
    except ValueError:
        return None


def study_dir(study_name: str, settings: Settings | None = None) -> Path:
    """``runs/<study>/`` (not created)."""
    return (settings or Settings.from_env()).study_dir(study_name)


def trial_dir(study_name: str, number: int, settings: Settings | None = None) -> Path:
    """``runs/<study>/trial-NNNN/`` (not created)."""
    return study_dir(study_name, settings) / trial_folder_name(number)


def health_stats_file(folder: str | Path, study: str, number: int) -> Path:
    """Where a benchmark keeps a trial's raw health figures (``HPO_KEEP_HEALTH_STATS``)."""
    return Path(folder) / f"{study}-{int(number):04d}.json"


# --------------------------------------------------------------------------- download names

#: The headline figure in a download name, by the name callers use for it.
METRIC_LABELS = {"val_accuracy": "val-acc", "val-acc": "val-acc"}
#: What a file from one trial is, by its extension, when the caller does not say.
WHAT_BY_EXT = {"keras": "model", "json": "architecture"}


def download_name(
    study: str,
    what: str,
    ext: str,
    *,
    trial: int | str | None = None,
    metric: str | None = None,
    value: float | None = None,
    when: dt.datetime | None = None,
) -> str:
    """A file name that says what a file is: ``mnist-run_model_trial-0007_val-acc-0.9731_20250101-120000.keras``.

    Every download of every screen is named here, so one file has one name wherever it is
    downloaded from.

    Args:
        study: study name (made path-safe).
        what: "trials", "study", "model", "config", "scene" ...
        ext: extension, with or without the dot.
        trial: trial number (``trial-NNNN``) or a label, when the file belongs to one trial.
        metric, value: a headline figure, e.g. ("val-acc", 0.9731); a missing or NaN value is ``na``.
        when: timestamp, local time (default now).
    """
    parts = [safe_name(study) if study else "study", safe_name(what)]
    if trial is not None:
        parts.append(trial_folder_name(trial) if isinstance(trial, int) else f"{TRIAL_PREFIX}{safe_name(str(trial))}")
    if metric:
        label = safe_name(METRIC_LABELS.get(metric, metric))
        ok = value is not None and math.isfinite(float(value))
        parts.append(f"{label}-{float(value):.4f}" if ok else f"{label}-na")  # type: ignore[arg-type]
    parts.append((when or dt.datetime.now()).strftime("%Y%m%d-%H%M%S"))
    return "_".join(parts) + "." + safe_name(ext.lstrip("."))


def model_download_name(study: str, trial: int, val_accuracy: float | None, when: dt.datetime | None = None) -> str:
    """The name a trial's ``.keras`` model downloads under, from every screen."""
    return download_name(study, "model", "keras", trial=trial, metric="val-acc", value=val_accuracy, when=when)
