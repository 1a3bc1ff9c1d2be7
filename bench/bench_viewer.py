"""Time from opening the 3D viewer to its WebGL canvas being drawn, for a 20-layer model (target < 3 s).

What it does:

1. Lays out a 20-layer CNN (three conv blocks and a dense head; 21 layers drawn with the input)
   with ``core.architecture.build_architecture`` in a child process (Keras stays out of this one),
   with made-up per-layer health so every colouring has values.
2. Writes a small fake study (tests/fakes.py) into a temporary HPO_HOME and adds one complete
   trial carrying that layout, with the best accuracy, so the viewer shows it by default.
3. Starts ``streamlit run streamlit_app.py`` on a free port, twice: with vtk.js served once as
   ``app/static/vtk_viewer.js`` (the default) and with it inlined in every scene page (static
   serving off), and opens ``/viewer`` in headless Chromium (Playwright, /usr/bin/chromium, the
   flags of DESIGN.md) in each:

   * cold      -- the first visit after the server started: the page's imports, the scene
                  build and the browser's work;
   * first-time visitor -- later visits, each in a fresh browser context (empty cache); the
                  scene HTML comes from ``st.cache_data``;
   * returning browser  -- new tabs of one context that has shown the viewer before (its HTTP
                  and code caches are warm): the common case of a user opening another tab;
   * recolour  -- three new colourings in a warm process (cache misses: the scene is rebuilt).

   For each it records when the scene iframe's document arrives (``srcdoc`` navigation) and when
   vtk.js has loaded every actor's data and rendered (polled every animation frame inside the
   iframe), then checks a screenshot of the canvas is not blank.

Since the scene became a component (app/scene_component), the two "variants" below run the same
viewer (static serving no longer matters) and a recolour is a click on the scene's own button,
timed until the browser has restyled the actors.  Still to do (issue 15): the old viewer
(80df8c8) as the "before" column, and the 390 / 768 px widths.

Usage::

    python bench/bench_viewer.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import study as K  # the storage schema: attribute keys
from tests.e2e.apprun import (SCENE_IFRAME, SCENE_READY_JS, WEBGL_ARGS, free_port, launch_chromium,  # noqa: E402
                              not_blank, pixels, scene_frame, start_app, stop_app)

STUDY = "bench-viewer"
TARGET_S = 3.0

_LAYOUT_CHILD = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
from core.architecture import build_architecture
L = keras.layers
layers = [keras.Input((64, 64, 3))]
for filters in (32, 64, 128):
    layers += [L.Conv2D(filters, 3, padding="same", activation="relu"), L.BatchNormalization(),
               L.Conv2D(filters, 3, padding="same", activation="relu"), L.MaxPooling2D(), L.Dropout(0.25)]
layers += [L.Flatten(), L.Dense(256, activation="relu"), L.BatchNormalization(), L.Dropout(0.5),
           L.Dense(10, activation="softmax")]
model = keras.Sequential(layers)
assert len(model.layers) == 20
health = [{"name": lay.name, "dead_fraction": 0.1 * (i % 4), "grad_norm": 10.0 ** -(i % 6)}
          for i, lay in enumerate(model.layers) if lay.count_params()]
arch = build_architecture(model, performance_score=0.97, health_score=0.74, layer_health=health)
print(arch.to_json())
"""


def twenty_layer_layout() -> dict:
    """The 20-layer CNN's layout, made by a child process (Keras is never imported here)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _LAYOUT_CHILD], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_study(home: Path, layout: dict) -> int:
    """A fake study plus one complete trial carrying ``layout``, the best of the study; its number."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from core import storage as S
    from core.config import Settings, TrialResult
    from tests.fakes import make_fake_study

    settings = Settings(home=home)
    url = S.resolve_url(None, settings)
    fake = make_fake_study(url, STUDY, n_complete=2, n_pruned=0, n_failed=0, with_models=False, settings=settings)
    number = max(fake.states) + 1
    res = TrialResult.from_dict({**fake.results[0].to_dict(), "trial_number": number, "val_accuracy": 0.995,
                                 "test_accuracy": 0.99, "param_count": layout["total_parameters"],
                                 "architecture": {"layers": [], "visualization": layout}})
    study = optuna.load_study(study_name=STUDY, storage=S.open_storage(url))
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.995], params={}, distributions={},
                                 user_attrs={K.T_RESULT: res.to_dict(), K.T_HEALTH: res.health_score,
                                             K.T_TEST_ACCURACY: res.test_accuracy, K.T_PARAMS: res.param_count}))
    return number


def _scene_page_html(layout: dict) -> str:
    """The standalone page of this layout (export_html's page, vtk.js inlined)."""
    from core.architecture import ArchitectureVisualization
    from core.scene import build_scene, scene_html

    pl = build_scene(ArchitectureVisualization.from_dict(layout), color_by="health", window_size=(552, 460))
    try:
        return scene_html(pl)
    finally:
        pl.close()


def _browser_scene_kb(layout: dict) -> float:
    """KB of the scene file the app's viewer fetches once per trial."""
    from core.architecture import ArchitectureVisualization
    from core.scene import browser_scene

    return len(browser_scene(ArchitectureVisualization.from_dict(layout))[0]) / 1024


def open_viewer(browser, url: str, colour: str | None = None, context=None) -> dict[str, float]:
    """Seconds from navigation to the page heading, the scene document and the drawn scene.

    A fresh browser context (a first-time visitor: empty cache) unless ``context`` is given (a
    new tab of a browser that has shown the viewer before: its cache is warm).  With
    ``colour``, the colouring is switched after the first draw and the timings are those of the
    new scene (click -> document -> drawn).
    """
    own = context is None
    context = context or browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def on_nav(frame) -> None:
        if "/component/" in frame.url:  # the scene component's document (app/scene_component)
            marks.setdefault("document", time.perf_counter() - t0)

    page.on("framenavigated", on_nav)
    page.goto(f"{url}/viewer")
    page.locator("h1").first.wait_for()
    marks["heading"] = time.perf_counter() - t0
    scene_frame(page)
    if colour is not None:
        marks.clear()
        t0 = time.perf_counter()
        frame = scene_frame(page)
        key = {"Gradient norm": "gradient_norm", "Gradient health": "gradient_norm", "Dead units": "dead_units",
               "Performance": "performance", "Layer health": "health"}[colour]
        frame.locator(f'button[data-key="{key}"]').click()  # switched in the browser: no new document
        frame.wait_for_function(f"() => window.hpoScene.applied && window.hpoScene.applied.colorBy === '{key}'",
                                polling="raf")
        marks["document"] = 0.0
    marks["drawn"] = time.perf_counter() - t0
    if not not_blank(pixels(page.locator(SCENE_IFRAME).screenshot())):
        raise AssertionError("the canvas is blank after the scene reported ready")
    page.close()
    if own:
        context.close()
    return marks


def open_plain(browser, url: str, path: str) -> float:
    """Seconds from navigation to the heading of a screen without a scene: Streamlit's own start-up."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.locator("h1").first.wait_for(timeout=120_000)
    seconds = time.perf_counter() - t0
    context.close()
    return seconds


def open_scene_file(browser, path: Path) -> float:
    """Seconds to load and draw the scene page alone (file://): the browser's share of a view."""
    page = browser.new_page(viewport={"width": 552, "height": 460})
    t0 = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function(SCENE_READY_JS, polling="raf", timeout=120_000)
    seconds = time.perf_counter() - t0
    page.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm visits to time (median)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    t = time.perf_counter()
    layout = twenty_layer_layout()
    t_layout = time.perf_counter() - t
    rows: list[tuple[str, float, str]] = [
        ("layout of the 20-layer CNN (child process with Keras; not counted)", t_layout,
         f"{len(layout['layers'])} layers drawn, {layout['total_parameters']:,} params"),
    ]
    med = statistics.median
    # Side by side: vtk.js served once as app/static/vtk_viewer.js (the default) against
    # inlined in every scene page (what the app does when static serving is off).
    variants = {"static": "true", "inline": "false"}
    got: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        home = Path(tmp)
        trial = write_study(home, layout)
        with sync_playwright() as p:
            browser = launch_chromium(p, WEBGL_ARGS)
            for variant, flag in variants.items():
                proc = start_app(home, port := free_port(), {"STREAMLIT_SERVER_ENABLE_STATIC_SERVING": flag})
                url = f"http://127.0.0.1:{port}"
                try:
                    cold = open_viewer(browser, url)
                    first = [open_viewer(browser, url) for _ in range(args.repeat)]
                    returning = browser.new_context(viewport={"width": 1280, "height": 1000})
                    open_viewer(browser, url, context=returning)  # fills this browser's cache
                    again = [open_viewer(browser, url, context=returning) for _ in range(args.repeat)]
                    recolour = [open_viewer(browser, url, colour=c, context=returning)
                                for c in ("Gradient norm", "Dead units", "Performance")]
                    returning.close()
                    plain = [open_plain(browser, url, "learn") for _ in range(args.repeat)]
                finally:
                    stop_app(proc)
                got[variant] = {"cold": cold, "first": first, "again": again, "recolour": recolour, "plain": plain}
            scene_file = home / "scene.html"
            scene_file.write_text(_scene_page_html(layout), encoding="utf-8")
            alone = [open_scene_file(browser, scene_file) for _ in range(args.repeat)]
            browser.close()

    def both(key: str, fn) -> tuple[float, float]:
        return fn(got["static"][key]), fn(got["inline"][key])

    cells = [
        ("cold: first visit after the server started -> drawn", both("cold", lambda v: v["drawn"]),
         "imports + scene build + browser"),
        ("first-time visitor, new tab -> scene document", both("first", lambda v: med(w["document"] for w in v)),
         f"empty cache; median of {args.repeat}"),
        ("first-time visitor, new tab -> drawn", both("first", lambda v: med(w["drawn"] for w in v)),
         f"target < {TARGET_S:.0f} s"),
        ("returning browser, new tab -> scene document", both("again", lambda v: med(w["document"] for w in v)),
         "cache warm"),
        ("returning browser, new tab -> drawn", both("again", lambda v: med(w["drawn"] for w in v)),
         f"target < {TARGET_S:.0f} s"),
        ("recolour: click -> new scene document", both("recolour", lambda v: med(w["document"] for w in v)),
         "rebuilt in a warm process; median of 3 colourings"),
        ("recolour: click -> drawn", both("recolour", lambda v: med(w["drawn"] for w in v)),
         f"target < {TARGET_S:.0f} s"),
        ("a screen without a scene (Learn) -> heading", both("plain", med), "Streamlit's own start-up"),
    ]
    rows += [(name, s_, note + f" | inline: {i_:.2f}") for name, (s_, i_), note in cells]
    rows.append(("the scene page alone, vtk.js inlined (file://) -> drawn", med(alone), "vtk.js parse + decode + draw"))
    rows.append(("scene file fetched once per trial (KB)", _browser_scene_kb(layout),
                 f"standalone page with vtk.js: {len(_scene_page_html(layout)) / 1024:.0f} KB; trial #{trial}"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement (vtk.js as a static file; inline in the note)'.ljust(width)}  {'seconds':>8}  note")
    print(f"{'-' * width}  {'-' * 8}  ----")
    for name, sec, note in rows:
        print(f"{name.ljust(width)}  {sec:8.2f}  {note}")
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs, Chromium headless (software WebGL)")


if __name__ == "__main__":
    main()
