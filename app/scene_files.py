"""The 3D scene's files on disk, beside the scene component (``app/scene_component/cache/``).

vtk.js's viewer (``cache/vtk_viewer.js``) and each trial's scene (``cache/scenes/<key>.vtksz``
and its ``.json`` meta) are written here once and served with the component.  Kept out of the
``app.scene_component`` package, whose import declares the component: this module has no
Streamlit in it, so the server's head start (``app.serve``) can build the scenes users open
first before any session exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from core.architecture import ArchitectureVisualization

log = logging.getLogger("hpo.app.scene")

FOLDER = Path(__file__).resolve().parent / "scene_component"
CACHE = FOLDER / "cache"  # served with the component: cache/... is relative to its index.html
SCENES = CACHE / "scenes"
KEEP_SCENES = 64  # scene files kept on disk (each ~50-200 KB); the oldest go first
# Scenes are built one at a time in a process anyway (core.scene's lock): a tab that asks for a
# scene another thread is building (the head start, another tab) waits and reads its files.
_BUILDING = threading.Lock()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this thread's own: two writers of one file never share (and truncate) a temporary file
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: another tab never reads half a file


def write_viewer_script() -> str | None:
    """vtk.js's viewer written beside the component; its URL (relative to index.html), or None."""
    from core.scene import VIEWER_SCRIPT, viewer_script

    js = viewer_script().encode()
    path = CACHE / VIEWER_SCRIPT
    try:
        if not path.exists() or path.read_bytes() != js:
            _write(path, js)
    except OSError as exc:
        log.warning("cannot write %s (%s): the 3D viewer is unavailable", path, exc)
        return None
    # No version in the URL: index.html preloads this very URL while the app's arguments are on
    # their way, and a preload is used only by a script of the same URL.  Nothing goes stale:
    # Streamlit serves component files as "public" without a date or validator, so a browser
    # never reuses them unasked (a new PyVista's viewer is fetched on the next visit).
    return f"cache/{VIEWER_SCRIPT}"


def scene_key(storage_url: str, study: str, trial: int, stamp: str, arch: ArchitectureVisualization) -> str:
    """A name for one trial's scene: the trial, its completion time, its layout and the scene format."""
    from core.scene import SCENE_FORMAT

    ident = json.dumps([SCENE_FORMAT, storage_url, study, trial, stamp, arch.to_dict()], sort_keys=True, default=str)
    return hashlib.sha1(ident.encode()).hexdigest()[:20]


def _prune() -> None:
    files = sorted(SCENES.glob("*.vtksz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP_SCENES:]:
        for path in (old, old.with_suffix(".json")):
            path.unlink(missing_ok=True)


def load_or_build(key: str, arch: ArchitectureVisualization) -> tuple[str | None, str | None, dict]:
    """(URL of the scene file or None, the scene inline (base64) when it could not be written, meta).

    Reads the files an earlier build (this process or an earlier one) left, else builds the scene.
    """
    found = _on_disk(key)
    if found:
        return found
    from core.scene import browser_scene

    with _BUILDING:
        found = _on_disk(key)  # built by another thread while this one waited
        if found:
            return found
        data, meta = browser_scene(arch)
        try:
            _write(SCENES / f"{key}.vtksz", data)
            _write(SCENES / f"{key}.json", json.dumps(meta).encode())  # last: it marks the scene complete
            _prune()
        except OSError as exc:
            log.warning("cannot write the 3D scene to %s (%s); sending it inline", SCENES, exc)
            return None, base64.b64encode(data).decode(), meta
    return f"cache/scenes/{key}.vtksz", None, meta


def _on_disk(key: str) -> tuple[str, None, dict] | None:
    """The scene's URL and meta where an earlier build left both files, else None."""
    try:
        meta = json.loads((SCENES / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (f"cache/scenes/{key}.vtksz", None, meta) if (SCENES / f"{key}.vtksz").exists() else None
