"""The 3D viewer's scene as a Streamlit component: sent once per trial, restyled in the browser.

``index.html`` + ``scene.js`` + ``scene.css`` in this folder are the component (Streamlit's v1
component protocol, plain JavaScript, no build step).  The scene itself
(:func:`core.scene.browser_scene`) is written once to ``cache/scenes/<key>.vtksz`` beside them
and fetched by the browser from there, as is vtk.js's viewer (``cache/vtk_viewer.js``); the
component's arguments carry only the per-layer colours of every colouring, label texts and
the current colouring and highlight.  So a colour change or a highlighted layer is a few hundred
bytes of arguments and a restyle in the browser, and a scene built once (by this process or an
earlier one: files are keyed by the trial and the scene format) is never built again.

Without a writable folder (a read-only install) the scene travels inline in the arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import threading
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from core.architecture import ArchitectureVisualization, score_color

log = logging.getLogger("hpo.app.scene")

FOLDER = Path(__file__).resolve().parent
CACHE = FOLDER / "cache"  # served with the component: cache/... is relative to index.html
SCENES = CACHE / "scenes"
KEEP_SCENES = 64  # scene files kept on disk (each ~50-200 KB); the oldest go first

_component = components.declare_component("hpo_scene", path=str(FOLDER))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: another tab never reads half a file


@st.cache_resource(show_spinner=False)
def viewer_script_url() -> str | None:
    """vtk.js's viewer written once beside the component; its URL (relative to index.html), or None."""
    from core.scene import VIEWER_SCRIPT, viewer_script

    js = viewer_script().encode()
    path = CACHE / VIEWER_SCRIPT
    try:
        if not path.exists() or path.read_bytes() != js:
            _write(path, js)
    except OSError as exc:
        log.warning("cannot write %s (%s): the 3D viewer is unavailable", path, exc)
        return None
    return f"cache/{VIEWER_SCRIPT}?v={hashlib.sha1(js).hexdigest()[:10]}"


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


@st.cache_data(show_spinner="Building the 3D scene…", max_entries=64)
def scene_files(key: str, _arch: ArchitectureVisualization) -> tuple[str | None, str | None, dict]:
    """(URL of the scene file or None, the scene inline (base64) when it could not be written, meta).

    Reads the files an earlier build (this process or an earlier one) left, else builds the scene.
    """
    data_path, meta_path = SCENES / f"{key}.vtksz", SCENES / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if data_path.exists():
            return f"cache/scenes/{key}.vtksz", None, meta
    except (OSError, ValueError):
        pass
    from core.scene import browser_scene

    data, meta = browser_scene(_arch)
    try:
        _write(data_path, data)
        _write(meta_path, json.dumps(meta).encode())
        _prune()
    except OSError as exc:
        log.warning("cannot write the 3D scene to %s (%s); sending it inline", SCENES, exc)
        return None, base64.b64encode(data).decode(), meta
    return f"cache/scenes/{key}.vtksz", None, meta


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import PyVista and trame's serialisers in the background once per server, before the first view."""

    def work() -> None:
        if "pyvista" in sys.modules:
            return  # a scene was built already (the first page was the 3D viewer)
        try:
            from core.architecture import LayerVisualization
            from core.scene import browser_scene

            lay = LayerVisualization(layer_id="00_x", name="x", layer_type="dense", position_z=0.0, width=1.0,
                                     height=1.0, depth=1.0, parameters=0)
            browser_scene(ArchitectureVisualization(layers=[lay], architecture_type="dense"))
        except Exception:  # noqa: BLE001 - only a head start; the view builds (and reports) for real
            log.debug("3D viewer warm-up failed", exc_info=True)

    thread = threading.Thread(target=work, name="scene-warm-up", daemon=True)
    thread.start()
    return thread


def render_scene(*, key: str, scene: str, arch: ArchitectureVisualization, meta_scene: tuple[str | None, str | None, dict],
                 color_by: str, highlight: str | None, colorings: list[dict[str, str]], height: int) -> "ScenePick":
    """Draw the scene; returns the colouring the user chose in it (``color_by`` until they do) and
    the layer they last clicked in it (see :func:`scene_pick`).

    Args:
        key: The component's key; one per scene, so another trial gets a fresh frame.
        scene: The scene's key (:func:`scene_key`).
        arch: The layout (unused beyond its meta, which :func:`scene_files` made from it).
        meta_scene: What :func:`scene_files` returned for it.
        color_by: The colouring to show (one of ``colorings``' keys).
        highlight: ``layer_id`` of the layer to outline, or None.
        colorings: ``{"key", "label", "help", "low", "high"}`` per colouring, in button order.
        height: Pixels of the 3D stage (the buttons and legend add to it).
    """
    url, inline, meta = meta_scene
    value = _component(
        key=key, default=None, scene_key=scene, scene_url=url, scene_b64=inline, script_url=viewer_script_url(),
        actors=meta["actors"], layers=meta["layers"], unknown=meta["unknown"], colorings=colorings,
        stops=[score_color(i / 10) for i in range(11)], unknown_color=score_color(None), color_by=color_by,
        highlight=highlight, height=height,
    )
    return scene_pick(value, color_by, {c["key"] for c in colorings})


class ScenePick(tuple):
    """(colouring, clicked layer id or None, number of clicks so far): what the scene sent back."""

    color_by = property(lambda self: self[0])
    layer = property(lambda self: self[1])
    picks = property(lambda self: self[2])


def scene_pick(value: object, color_by: str, colorings: set[str]) -> ScenePick:
    """Read the component's value: ``{"color_by", "layer", "pick"}`` (older frames send only color_by)."""
    value = value if isinstance(value, dict) else {}
    chosen = value.get("color_by")
    layer = value.get("layer")
    picks = value.get("pick")
    return ScenePick((chosen if chosen in colorings else color_by, layer if isinstance(layer, str) else None,
                      picks if isinstance(picks, int) and not isinstance(picks, bool) else 0))
