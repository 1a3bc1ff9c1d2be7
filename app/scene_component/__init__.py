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

import logging
import sys
import threading

import streamlit as st
import streamlit.components.v1 as components

from app.scene_files import CACHE, FOLDER, SCENES, load_or_build, scene_key, write_viewer_script  # noqa: F401
from core.architecture import ArchitectureVisualization, score_color

log = logging.getLogger("hpo.app.scene")


_component = components.declare_component("hpo_scene", path=str(FOLDER))


@st.cache_resource(show_spinner=False)
def viewer_script_url() -> str | None:
    """vtk.js's viewer written once beside the component; its URL (relative to index.html), or None."""
    return write_viewer_script()


@st.cache_data(show_spinner="Building the 3D scene…", max_entries=64)
def scene_files(key: str, _arch: ArchitectureVisualization) -> tuple[str | None, str | None, dict]:
    """(URL of the scene file or None, the scene inline when it could not be written, meta): app.scene_files."""
    return load_or_build(key, _arch)


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
                 color_by: str, highlight: str | None, colorings: list[dict[str, str]], height: int,
                 table: dict | None = None) -> "ScenePick":
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
        table: The layer table drawn beside the stage (``app.views.viewer.table_of``): ``{"title",
            "columns": [{"name", "help"}], "rows": [{"id", "cells"}]}``; a click on a row selects
            that layer as a click on it in the scene does.  None: no table.
    """
    url, inline, meta = meta_scene
    value = _component(
        key=key, default=None, scene_key=scene, scene_url=url, scene_b64=inline, script_url=viewer_script_url(),
        actors=meta["actors"], layers=meta["layers"], unknown=meta["unknown"], background=meta["background"],
        colorings=colorings,
        stops=[score_color(i / 10) for i in range(11)], unknown_color=score_color(None), color_by=color_by,
        highlight=highlight, height=height, table=table,
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
