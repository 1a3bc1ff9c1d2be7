"""``python -m app.serve [options]``: ``streamlit run streamlit_app.py [options]`` with a head start.

Streamlit runs nothing of an app until the first browser connects, so the first visitor after
a server start used to wait for every import of the screens (pandas, Plotly, Optuna, the app's
modules) and then for PyVista before the first 3D scene: ~2 s to the first heading and ~4.6 s
to a drawn scene on a 2-core machine (bench/bench_viewer.py).  This launcher starts that work
in a background thread as the server starts, in the server's own process (so the first
session finds it all in ``sys.modules``), then hands over to Streamlit's own command line:
options, config files and behaviour are exactly ``streamlit run``'s.

The imports come first, then the study storage is opened and read once (SQLAlchemy, Optuna's
tables and Alembic's check: ~0.5 s that the first page's script run spent otherwise).  PyVista and
the scenes of the newest studies' best trials follow ``SCENE_GRACE_S`` after the first page has
run (or after ``SCENE_AFTER_S`` without a visitor), once the browser has drawn that page: run
beside the page or the browser's drawing of it, VTK's work (PyVista's import pulls in Matplotlib:
~1.3 s with the first build) held the GIL and the CPU and delayed its heading by ~0.8 s.  A direct
first visit to the 3D viewer builds its own scene then, which is still faster (bench/README.md
"viewer"; building the newest scenes in a child process instead was measured and lost: it slowed
the first heading and finished too late to spare the first view its build).

``make run`` and the container use it; a host that can only run ``streamlit run
streamlit_app.py`` (Streamlit Community Cloud) still works, without the head start (the app
then warms PyVista after its first page, ``app.scene_component.warm_up``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"

#: What the screens import, heaviest first; imported before the first visitor arrives.
MODULES = (
    "pandas", "plotly.graph_objects", "plotly.subplots", "optuna", "PIL.Image",
    "core.study", "core.diagnosis", "core.importance", "core.manage", "core.scene", "core.architecture",
    "app.state", "app.format", "app.figures", "app.widgets", "app.inside", "app.export_jobs", "app.guide",
)
# Not app.scene_component: components.declare_component must run inside the server's runtime (a
# component declared before it exists is registered where the server never looks: its files 404).

log = logging.getLogger("hpo.app.serve")
WARM: dict[str, float] = {}  # what the head start did: module or step -> seconds (read by the tests)
PREBUILD_STUDIES = 5  # the head start builds the best trial's scene of this many newest studies
SCENE_AFTER_S = 15.0  # with no visitor this long after the imports, the scene warm-up starts anyway
SCENE_GRACE_S = 3.0  # after the first page ran: time for the browser to draw it before VTK takes a core
_IMPORTED = threading.Event()  # the modules are imported (the scene warm-up may still run)
_PAGE_RAN = threading.Event()  # a first page has run: the scene warm-up may start
_started = False


class _NotFromHeadStart(logging.Filter):
    """Streamlit warns "missing ScriptRunContext" when its decorators run outside a session: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.current_thread().name != "hpo-head-start"


def start() -> None:
    """Start the head start in a background thread (once per process)."""
    global _started
    if not _started:
        _started = True
        threading.Thread(target=warm_up, name="hpo-head-start", daemon=True).start()


def wait(timeout: float = 60.0) -> None:
    """Called by the app before its own imports: while the head start imports, wait for it.

    Two threads importing pandas and Plotly at once break Plotly (it finds a half-initialised
    pandas in ``sys.modules``), so a session never imports alongside the head start.  Without
    a head start (plain ``streamlit run``) this returns at once.
    """
    if _started:
        _IMPORTED.wait(timeout)


def page_done() -> bool:
    """Called by the app after each page it runs: the head start's scene warm-up may begin.
    False when there is no head start (plain ``streamlit run``: the app warms PyVista itself)."""
    _PAGE_RAN.set()
    return _started


def warm_up() -> None:
    """Import the screens' modules and open the storage (:func:`open_storage`); after the first
    page (:func:`page_done`) and ``SCENE_GRACE_S``, build a one-layer scene so PyVista is loaded
    too, then the scenes the viewer opens on (:func:`prebuild_scenes`)."""
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_NotFromHeadStart())
    try:
        for name in MODULES:
            t = time.perf_counter()
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - only a head start: the screens import (and report) for real
                log.debug("head start: could not import %s", name, exc_info=True)
                continue
            WARM[name] = time.perf_counter() - t
    finally:
        _IMPORTED.set()
    # After the imports are marked done, so a slow database never holds a page back twice: a page
    # arriving now asks for the storage too and waits for this open (core.storage opens a URL
    # under a lock and keeps what it opened).  What it imports (SQLAlchemy, Alembic) no page
    # imports before that.
    t = time.perf_counter()
    try:
        WARM["studies"] = open_storage()
        WARM["storage"] = time.perf_counter() - t
    except Exception:  # noqa: BLE001 - a storage that cannot open is reported by the first page
        log.debug("head start: could not open the study storage", exc_info=True)
    if os.environ.get("HPO_HEAD_START_SCENE") == "0":
        return  # imports only (tests; and to compare the two in bench/bench_viewer-style timings)
    if _PAGE_RAN.wait(SCENE_AFTER_S):
        time.sleep(SCENE_GRACE_S)
    t = time.perf_counter()
    try:
        from core.architecture import ArchitectureVisualization, LayerVisualization
        from core.scene import browser_scene, viewer_script

        viewer_script()
        lay = LayerVisualization(layer_id="00_x", name="x", layer_type="dense", position_z=0.0, width=1.0,
                                 height=1.0, depth=1.0, parameters=0)
        browser_scene(ArchitectureVisualization(layers=[lay], architecture_type="dense"))
        WARM["scene"] = time.perf_counter() - t
    except Exception:  # noqa: BLE001
        log.debug("head start: the 3D scene warm-up failed", exc_info=True)
    t = time.perf_counter()
    try:
        WARM["scenes_built"] = prebuild_scenes()
        WARM["prebuild"] = time.perf_counter() - t
    except Exception:  # noqa: BLE001
        log.debug("head start: could not build the best trials' scenes", exc_info=True)


def open_storage() -> int:
    """Open the study storage the app reads and list its studies, as every first page does (the
    opened storage is kept per URL, ``core.storage``); returns how many studies it holds."""
    from app.state import storage_url
    from core.study import list_studies, load_records

    url = storage_url()
    studies = list_studies(url)
    if studies:
        load_records(studies[0].name, url)  # the newest study: the one the screens open on
    return len(studies)


def prebuild_scenes(studies: int = PREBUILD_STUDIES) -> int:
    """Write the 3D scene of the best trial of the newest ``studies`` studies, the one the viewer
    opens on, unless it is on disk already; returns how many were built or found."""
    from app.scene_files import load_or_build, scene_key, write_viewer_script
    from app.state import storage_url
    from core.architecture import ArchitectureVisualization
    from core.study import best_record, list_studies, load_records

    url = storage_url()
    write_viewer_script()
    done = 0
    for summary in list_studies(url)[:studies]:
        rec = best_record(load_records(summary.name, url), summary.config)
        layout = ((rec.result.architecture or {}).get("visualization") if rec and rec.result else None)
        if not layout or rec.complete is None:
            continue
        arch = ArchitectureVisualization.from_dict(layout)
        load_or_build(scene_key(url, summary.name, rec.number, rec.complete.isoformat(), arch), arch)
        done += 1
    return done


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(ROOT))
    # `python -m app.serve` runs this file as __main__: the app's `app.serve` is another module
    # object, and it is the one whose thread and event the app's wait() must see.
    # Streamlit's own import configures Plotly, which looks pandas up in sys.modules: import it
    # before the head start begins importing pandas, never beside it.
    from streamlit.web import cli

    from app import serve as shared

    shared.start()

    sys.argv = ["streamlit", "run", str(APP), *args]
    cli.main()


if __name__ == "__main__":
    main()
