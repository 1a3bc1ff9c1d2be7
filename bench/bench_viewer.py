"""The 3D viewer in the browser, before and after the scene component (issue 15), in one run.

What it does:

1. Lays out a 20-layer CNN (three conv blocks and a dense head; 21 layers drawn with the input)
   with ``core.architecture.build_architecture`` in a child process (Keras stays out of this one),
   with made-up per-layer health so every colouring has values.
2. Writes a small fake study (tests/fakes.py) into a temporary HPO_HOME and adds one complete
   trial carrying that layout, with the best accuracy, so the viewer shows it by default.
3. Starts ``streamlit run streamlit_app.py`` (``python -m app.serve``) for two checkouts on that
   same HPO_HOME, side by side (one after the other, the same figure drifted with this machine by
   up to 1 s between runs; alternating between them, the two meet the same machine):

   * after  -- this checkout: the scene is a component (app/scene_component), sent once per
               trial; colourings and the highlight restyle it in the browser;
   * before -- the viewer as it was before the component (commit ``BEFORE``, unpacked with
               ``git archive`` into a temporary folder): PyVista's vtk.js page rebuilt and sent
               as a new iframe document for every colouring and highlight;

   and opens ``/viewer`` in headless Chromium (Playwright, /usr/bin/chromium, DESIGN.md's flags),
   each kind of visit alternating between the two servers:

   * cold       -- the first view after the server started (imports, scene build, browser), of a
                   trial never viewed, on ``--cold`` fresh servers; and the same after a restart,
                   its scene on disk; both alternating between the two checkouts;
   * new tab    -- later visits, each in a fresh browser context (empty cache), and new tabs
                   of one context that has shown the viewer before (warm cache);
   * recolour   -- a click on another colouring (after: the scene's own button; before: the
                   radio), until the scene is drawn in the new colours;
   * highlight  -- a click on a layer's row in the table (the component's own since 2026-12-03,
                   Streamlit's data grid before), until the scene shows it outlined;
   * fits       -- (after only) the viewer at 390 px and 768 px wide: the frame within the
                   screen, no sideways scrolling, at least two labels shown and no two label
                   boxes overlapping;
   * bare       -- new tabs on an app of one ``st.title`` and nothing else (this Streamlit, no app
                   code): the floor under every page, measured in the same run;
   * trained    -- new tabs on a trial really trained by the CLI (digits, in a second HPO_HOME,
                   on a server of its own): the page a user meets, with the example picker and
                   the "Inside the network" panel its insight.npz brings (the 20-layer trial
                   above has none).

   "Drawn" is polled every 20 ms inside the scene's iframe: every actor's data
   loaded and rendered (and, after, the component's restyle applied); then a screenshot of
   the canvas must not be blank.

Usage::

    python bench/bench_viewer.py [--repeat 3] [--no-before] [--write]

``--write`` puts the table into bench/README.md between the ``viewer`` markers; the raw figures
go to bench/out/viewer.json.
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
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import study as K  # the storage schema: attribute keys
from tests.e2e.apprun import (SCENE_IFRAME, SCENE_READY_JS, WEBGL_ARGS, cli_study, free_port,  # noqa: E402
                              launch_chromium, not_blank, pixels, start_app, stop_app)

STUDY = "bench-viewer"
BEFORE = "8f203b0"  # the last commit before the scene component (975de0b)
TARGETS = {"recolour": 0.3, "highlight": 0.3, "new_tab": 1.5, "cold": 3.0}  # seconds (issue 15)
COLOUR_LABELS = {"gradient_norm": "Gradient health", "dead_units": "Dead units", "performance": "Performance",
                 "health": "Layer health"}
POLL_MS = 20  # how often "is it drawn yet?" is asked inside the iframe
HIGHLIGHT_ROWS = (2, 4, 6)  # table rows clicked in turn (each click selects another layer; all in view)
# Inside the component's iframe: the scene has drawn and the component has restyled it.
READY_JS = "() => !!(window.hpoScene && window.hpoScene.ready && window.hpoScene.applied)"
STATE_JS = """() => ({scene: window.hpoScene && {ready: window.hpoScene.ready, key: window.hpoScene.sceneKey,
  applied: window.hpoScene.applied}, status: (document.getElementById('status') || {}).textContent,
  viewer: !!window.OfflineLocalView, rw: !!(window.global || {}).renderWindow,
  actors: (() => { try { const rs = window.global.renderWindow.getRenderers();
    return rs[rs.length - 1].getActors().map(a => a.getMapper().getInputData().getNumberOfPoints()); }
    catch (e) { return String(e); } })()})"""
# Inside the component's iframe: the boxes of the labels shown, and whether the frame fits.
LABELS_JS = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const shown = Array.from(document.querySelectorAll('#labels .lbl')).filter(
    e => getComputedStyle(e).visibility === 'visible');
  return {labels: shown.map(box), all: document.querySelectorAll('#labels .lbl').length,
          docWidth: document.documentElement.scrollWidth, width: window.innerWidth};
}"""

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


def _browser_scene_kb(layout: dict) -> float:
    """KB of the scene file the app's viewer fetches once per trial."""
    from core.architecture import ArchitectureVisualization
    from core.scene import browser_scene

    return len(browser_scene(ArchitectureVisualization.from_dict(layout))[0]) / 1024


class Variant:
    """How to tell, in one checkout of the app, that the scene is drawn, recoloured or highlighted."""

    def __init__(self, name: str, component: bool) -> None:
        self.name, self.component = name, component

    def is_document(self, frame) -> bool:
        return "/component/" in frame.url if self.component else frame.url == "about:srcdoc"

    def drawn(self, page):
        try:
            # polled every 20 ms, not every animation frame: a tab opened after another one in
            # the same context sometimes never ran Playwright's rAF poll (the scene was drawn)
            frame = page.wait_for_selector(SCENE_IFRAME, state="attached").content_frame()
            frame.wait_for_function(READY_JS if self.component else SCENE_READY_JS, polling=POLL_MS)
        except Exception:
            frames = [(f.url, f.evaluate(STATE_JS) if "/component/" in f.url else None) for f in page.frames]
            print("the scene was not drawn:", json.dumps(frames, default=str), file=sys.stderr, flush=True)
            # what the page showed instead (how the scene-building deadlock, fixed 2026-12-03, was found)
            print("the page said:", page.inner_text("body")[:2000], file=sys.stderr, flush=True)
            raise
        return frame

    def recolour(self, page, key: str) -> float | None:
        """Click another colouring and wait until it is drawn; after: ms from the click event to
        the restyled scene painted, as the page's own clocks saw it (None before)."""
        if self.component:
            frame = self.drawn(page)
            frame.locator(f'#bar button[data-key="{key}"]').click()  # switched in the browser
            frame.wait_for_function(f"() => window.hpoScene.applied.colorBy === {key!r}", polling=POLL_MS)
            return self._painted(frame, "window.hpoScene.clickAt")
        else:
            with page.expect_event("framenavigated", predicate=self.is_document):
                page.get_by_text(COLOUR_LABELS[key], exact=True).click()
            self.drawn(page)
        return None

    def _painted(self, frame, since_js: str) -> float | None:
        try:
            frame.wait_for_function("() => window.hpoScene.applied.painted !== null", polling=POLL_MS, timeout=5000)
        except Exception:  # noqa: BLE001 - no animation frame came (a background tab): no in-page figure
            return None
        return frame.evaluate(f"() => (window.hpoScene.applied.painted - ({since_js})) / 1000")

    def highlight(self, page, row: int) -> float | None:
        """Click a layer's row and wait until it is outlined; after: seconds from the click event
        to the restyled scene painted (the page's clocks), None before.

        The table is the scene component's own (since 2026-12-03), else Streamlit's data grid."""
        if self.component:
            frame = self.drawn(page)
            rows = frame.locator("#layers tbody tr")
            if rows.count():
                layer = rows.nth(row).get_attribute("data-layer")
                # when the click happened, as scene.js's happened(): the wall clock less its age; a
                # listener of the bench's own, as scene.js records only colour-button clicks (and an
                # older checkout's scene.js, compared with, none of a row)
                frame.evaluate("() => document.addEventListener('click', e => { const age = e.timeStamp > 1e12 ? "
                               "Date.now() - e.timeStamp : performance.now() - e.timeStamp; window.__hpoClickAt = "
                               "Date.now() - (age >= 0 && age < 60000 ? age : 0); }, {capture: true, once: true})")
                rows.nth(row).click()
                frame.wait_for_function(f"() => window.hpoScene.applied.highlight === {layer!r}", polling=POLL_MS)
                return self._painted(frame, "window.__hpoClickAt")
        page.locator(".stDataFrame").first.scroll_into_view_if_needed()
        table = page.locator(".stDataFrame").first.bounding_box()
        x, y = table["x"] + 17, table["y"] + 35 * (row + 1) + 17  # the row's selection checkbox
        if self.component:
            frame = self.drawn(page)
            layer = frame.evaluate(f"() => window.hpoScene.args.layers[{row}].id")
            page.evaluate("() => document.addEventListener('click', e => { window.__hpoClickAt = "
                          "performance.timeOrigin + e.timeStamp; }, {capture: true, once: true})")
            page.mouse.click(x, y)
            frame.wait_for_function(f"() => window.hpoScene.applied.highlight === {layer!r}", polling=POLL_MS)
            return self._painted(frame, str(page.evaluate("() => window.__hpoClickAt")))
        else:
            with page.expect_event("framenavigated", predicate=self.is_document):
                page.mouse.click(x, y)
            self.drawn(page)
        return None


def _check_canvas(page) -> None:
    if not not_blank(pixels(page.locator(SCENE_IFRAME).screenshot())):
        raise AssertionError("the canvas is blank after the scene reported ready")


def open_viewer(browser, url: str, v: Variant, context=None) -> dict[str, float]:
    """Seconds from navigation to the page heading, the scene's document and the drawn scene.

    A fresh browser context (a first-time visitor: empty cache) unless ``context`` is given (a
    new tab of a browser that has shown the viewer before: its cache is warm).
    """
    own = context is None
    context = context or browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    page.on("framenavigated", lambda f: v.is_document(f) and marks.setdefault("document", time.perf_counter() - t0))
    page.goto(f"{url}/viewer")
    page.locator("h1").first.wait_for()
    marks["heading"] = time.perf_counter() - t0
    v.drawn(page)
    marks["drawn"] = time.perf_counter() - t0
    _check_canvas(page)
    page.close()
    if own:
        context.close()
    return marks


def interact(browser, url: str, v: Variant) -> dict[str, list[float]]:
    """Seconds per recolour (three colourings) and per highlight (three rows), in one tab."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/viewer")
    v.drawn(page)
    page.wait_for_timeout(500)
    out: dict[str, list] = {"recolour": [], "highlight": [], "recolour_in_page": [], "highlight_in_page": []}
    for key in ("gradient_norm", "dead_units", "performance"):
        t0 = time.perf_counter()
        out["recolour_in_page"].append(v.recolour(page, key))
        out["recolour"].append(time.perf_counter() - t0)
        _check_canvas(page)
        page.wait_for_timeout(1500)  # the app's rerun (after: for the exports) settles before the next click
    for row in HIGHLIGHT_ROWS:
        t0 = time.perf_counter()
        out["highlight_in_page"].append(v.highlight(page, row))
        out["highlight"].append(time.perf_counter() - t0)
        _check_canvas(page)
        page.wait_for_timeout(1500)
    context.close()
    return out


def fits(browser, url: str, v: Variant, width: int) -> dict:
    """The viewer at ``width`` px: does the frame fit, how many labels show, how many overlap."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/viewer")
    frame = v.drawn(page)
    page.wait_for_timeout(300)
    geo = frame.evaluate(LABELS_JS)
    iframe = page.locator(SCENE_IFRAME).bounding_box()
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    context.close()
    boxes = geo["labels"]
    overlap = sum(1 for i, a in enumerate(boxes) for b in boxes[:i]
                  if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    inside = iframe["x"] >= 0 and iframe["x"] + iframe["width"] <= width + 0.5 and page_width <= width \
        and geo["docWidth"] <= geo["width"]
    return {"width": width, "fits": bool(inside and overlap == 0 and len(boxes) >= 2), "frame_inside": inside,
            "labels_shown": len(boxes), "labels": geo["all"], "overlaps": overlap}


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


BARE_APP = 'import streamlit as st\n\nst.title("Streamlit alone")\n'


def open_bare(browser, tmp: Path, repeat: int) -> list[float]:
    """New tabs (empty cache) on an app of one heading and nothing else, served by this Streamlit:
    the floor under any page of any Streamlit app on this machine (its frontend's start-up)."""
    folder = tmp / "bare"
    folder.mkdir()
    (folder / "streamlit_app.py").write_text(BARE_APP)
    proc = start_app(folder, port := free_port(), root=folder)  # no app/serve.py there: `streamlit run` itself
    try:
        url = f"http://127.0.0.1:{port}"
        open_plain(browser, url, "")  # its first run
        return [open_plain(browser, url, "") for _ in range(repeat)]
    finally:
        stop_app(proc)


def settle(proc, quiet_s: float = 1.0, timeout_s: float = 40.0) -> float:
    """Wait until the server has used under 5 % of a core for ``quiet_s``: its head start loads
    PyVista and builds the newest scenes ``app.serve.SCENE_GRACE_S`` (3 s) after the first page,
    so the wait starts 4 s after it.  The new tabs timed next meet the server as a later visitor
    would.  Returns the seconds waited."""
    def cpu() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    t0 = time.perf_counter()
    time.sleep(4.0)
    last = cpu()
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(quiet_s)
        now = cpu()
        if now - last < 0.05 * quiet_s:
            break
        last = now
    return time.perf_counter() - t0


@contextmanager
def servers(variants: list[tuple[str, Path]], home: Path):
    """One server per checkout, all at once on ``home``: {name: (process, url, seconds to start)}."""
    up: dict[str, tuple] = {}
    try:
        for name, root in variants:
            t = time.perf_counter()
            proc = start_app(home, port := free_port(), root=root)
            up[name] = (proc, f"http://127.0.0.1:{port}", time.perf_counter() - t)
        yield up
    finally:
        for proc, _, _ in up.values():
            stop_app(proc)


def alternate(up: dict, repeat: int, visit) -> dict[str, list]:
    """``visit(name, url)`` ``repeat`` times on each server of ``up``, taking turns: {name: results}."""
    out: dict[str, list] = {name: [] for name in up}
    for _ in range(repeat):
        for name, (_, url, _) in up.items():
            out[name].append(visit(name, url))
    return out


def warm(browser, up: dict, kinds: dict) -> None:
    """Each server's first view (its scene built, as the head start would have), then let it settle."""
    for name, (_, url, _) in up.items():
        open_viewer(browser, url, kinds[name])
    for proc, _, _ in up.values():
        settle(proc)


def measure_trained(browser, variants, home: Path, kinds: dict, repeat: int) -> dict[str, list]:
    """New tabs (empty cache) on the trained trial in ``home``, alternating between the checkouts."""
    with servers(variants, home) as up:
        warm(browser, up, kinds)
        return alternate(up, repeat, lambda name, url: open_viewer(browser, url, kinds[name]))


def _first_view(browser, root: Path, home: Path, v: Variant) -> dict[str, float]:
    """Start the server, open the viewer at once (the first visit since it started), stop it."""
    proc = start_app(home, port := free_port(), root=root)
    try:
        return open_viewer(browser, f"http://127.0.0.1:{port}", v)
    except Exception:  # noqa: BLE001 - recorded, and the bench goes on
        # Before 2026-12-03 a first view could deadlock the server: the head start and the
        # visit built scenes in two threads at once (core.scene's lock fixed it).
        return {"heading": None, "document": None, "drawn": None, "hung": True}
    finally:
        stop_app(proc)


def cold_view(browser, root: Path, home: Path, v: Variant) -> dict[str, float]:
    """The first view after a server start, of a trial never viewed: the scene files it wrote are
    removed after it (the checkout's cache keeps every other scene)."""
    scenes = root / "app" / "scene_component" / "cache" / "scenes"
    kept = set(scenes.glob("*"))  # none when the folder is not there yet
    try:
        return _first_view(browser, root, home, v)
    finally:
        for path in set(scenes.glob("*")) - kept:
            path.unlink(missing_ok=True)


def measure(browser, variants, home: Path, kinds: dict, repeat: int) -> dict[str, dict]:
    """The figures of each checkout on servers running side by side, new tabs alternating between
    them (first views after a server start are timed by :func:`main`)."""
    with servers(variants, home) as up:
        got: dict[str, dict] = {name: {"server_start": started} for name, (_, _, started) in up.items()}
        warm(browser, up, kinds)  # builds the scene (the views after a restart read it)
        first = alternate(up, repeat, lambda name, url: open_viewer(browser, url, kinds[name]))
        returning = {name: browser.new_context(viewport={"width": 1280, "height": 1000}) for name in up}
        for name, (_, url, _) in up.items():
            open_viewer(browser, url, kinds[name], context=returning[name])  # fills that browser's cache
        again = alternate(up, repeat, lambda name, url: open_viewer(browser, url, kinds[name], context=returning[name]))
        for context in returning.values():
            context.close()
        for name, (_, url, _) in up.items():
            v = kinds[name]
            got[name].update(interact(browser, url, v), first=first[name], again=again[name])
            got[name]["fits"] = [fits(browser, url, v, w) for w in (390, 768)] if v.component and name == "after" else []
        plain = alternate(up, repeat, lambda name, url: open_plain(browser, url, "learn"))
    for name in got:
        got[name]["plain"] = plain[name]
    return got


def first_views(browser, variants, home: Path, kinds: dict, times: int, view) -> dict[str, list]:
    """``view`` (a first view after a server start) ``times`` times per checkout, taking turns."""
    out: dict[str, list] = {name: [] for name, _ in variants}
    for _ in range(times):
        for name, root in variants:
            out[name].append(view(browser, root, home, kinds[name]))
    return out


def _unpack(commit: str, into: Path) -> Path:
    """The app as it was at ``commit`` (``git archive``: no worktree is registered)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _med_or_none(xs: list) -> float | None:
    """The median of the in-page figures; one outside 0-60 s is a clock misread (see scene.js
    ``happened``), reported and left out."""
    bad = [x for x in xs if x is not None and not 0 <= x <= 60]
    if bad:
        print(f"in-page times left out (a clock misread): {bad}", file=sys.stderr, flush=True)
    xs = [x for x in xs if x is not None and 0 <= x <= 60]
    return statistics.median(xs) if xs else None


def _fmt(x: float | None | str) -> str:
    return "–" if x is None else x if isinstance(x, str) else f"{x:.2f}"


def _cold(views: list[dict], key: str) -> float | str | None:
    """The median of first views; "hung" when most of them never drew."""
    drawn = [w[key] for w in views if not w.get("hung")]
    return "hung" if len(drawn) * 2 < len(views) else statistics.median(drawn)


def table(got: dict, repeat: int, scene_kb: float, before: str = BEFORE, cold: int = 3) -> str:
    """The README's markdown table: after, before, target, met."""
    med = statistics.median
    a, b = got["after"], got.get("before")

    def row(name, fn, target=None, note=""):
        x, y = fn(a), (fn(b) if b else None)
        met = "" if target is None or x is None else "**no**" if isinstance(x, str) else \
            ("**yes**" if x <= target else "**no**")
        tgt = "" if target is None else f"≤ {target:g}" if name.startswith(("new tab", "first", "…")) \
            else f"< {target:g}"
        return f"| {name} | {_fmt(x)} | {_fmt(y)} | {tgt} | {met} | {note} |"

    lines = [
        "| in the browser, seconds | this checkout | before (" + before + ") | target | met | note |",
        "|---|---|---|---|---|---|",
        row("recolour: click event → restyled scene painted (the page's clocks)",
            lambda g: _med_or_none(g["recolour_in_page"]), TARGETS["recolour"], "median of 3 colourings"),
        row("recolour: Playwright's click → seen drawn", lambda g: med(g["recolour"]), None,
            "adds Playwright's click and polling (~0.1 s)"),
        row("highlight: click event on a table row → outlined scene painted",
            lambda g: _med_or_none(g["highlight_in_page"]), TARGETS["highlight"],
            f"median of {len(HIGHLIGHT_ROWS)} rows; this checkout: in the browser; before: includes the app's rerun"),
        row("highlight: Playwright's click → seen drawn", lambda g: med(g["highlight"]), None, ""),
        row("new tab, first-time visitor (empty cache) → drawn", lambda g: med(w["drawn"] for w in g["first"]),
            TARGETS["new_tab"], f"median of {repeat}, alternating with before"),
        row("new tab, returning browser (warm cache) → drawn", lambda g: med(w["drawn"] for w in g["again"]),
            TARGETS["new_tab"], f"median of {repeat}, alternating"),
        row("new tab: scene document → drawn (the browser's part)",
            lambda g: med(w["drawn"] - w["document"] for w in g["first"]), note="empty cache: vtk.js, scene, WebGL"),
        row("first view after the server started → drawn", lambda g: _cold(g["cold"], "drawn"), TARGETS["cold"],
            f"median of {cold}, alternating with before; a new server each, answering /health, then the first "
            "visit; a trial never viewed (its scene is built)"),
        row("… after a restart, the trial viewed before → drawn", lambda g: _cold(g["restart"], "drawn"),
            TARGETS["cold"], f"median of {cold}, alternating; its scene is read from disk, PyVista is not needed"),
        row("… first view's heading (Streamlit's first run of the app)", lambda g: _cold(g["cold"], "heading"),
            note="hung: no scene within 60 s, the server frozen (two threads building scenes at once)"
            if any(g and any(c.get("hung") for c in g["cold"] + g["restart"]) for g in (a, b)) else ""),
        row("new tab → page heading (Streamlit's part)", lambda g: med(w["heading"] for w in g["first"]),
            note="empty cache"),
        row("a screen without a scene (Learn) → heading", lambda g: med(g["plain"]), note="Streamlit's own start-up"),
        row("Streamlit alone: an app of one heading, new tab → heading",
            lambda g: med(g["bare"]) if g.get("bare") else None,
            note=f"median of {repeat}; no app code: the floor under any page here"),
        row("new tab on a trained digits trial (empty cache) → drawn",
            lambda g: med(w["drawn"] for w in g["trained"]) if g.get("trained") else None, TARGETS["new_tab"],
            f"median of {repeat}; the page as users meet it: example picker, insight panel"),
        row("… its page heading", lambda g: med(w["heading"] for w in g["trained"]) if g.get("trained") else None),
    ]
    for f in a["fits"]:
        lines.append(f"| fits {f['width']} px wide | {'**yes**' if f['fits'] else '**no**'} | – | yes | "
                     f"{'**yes**' if f['fits'] else '**no**'} | frame inside the screen: {f['frame_inside']}; "
                     f"{f['labels_shown']} of {f['labels']} labels shown, {f['overlaps']} overlapping |")
    lines.append(f"| scene sent per trial | {scene_kb:.0f} KB, once | a ~420 KB page per view, colouring "
                 "and highlight | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="new tabs to time per kind (median)")
    parser.add_argument("--no-before", action="store_true", help=f"skip the viewer as it was at {BEFORE}")
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE}, the last "
                        "before the scene component)")
    parser.add_argument("--cold", type=int, default=3, help="first views after a server start to time per kind")
    parser.add_argument("--write", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    t = time.perf_counter()
    layout = twenty_layer_layout()
    print(f"layout of the 20-layer CNN: {len(layout['layers'])} layers drawn, {layout['total_parameters']:,} params "
          f"({time.perf_counter() - t:.1f} s, child process with Keras; not counted)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        trial = write_study(home, layout)
        trained = Path(tmp) / "trained"
        t = time.perf_counter()
        cli_study(trained, "trained", trials=1, epochs=3, max_samples=1500)
        print(f"a digits trial trained by the CLI ({time.perf_counter() - t:.0f} s; not counted)", flush=True)
        load = [os.getloadavg()[0]]
        with sync_playwright() as p:
            browser = launch_chromium(p, WEBGL_ARGS)
            variants = [("after", ROOT)]
            if not args.no_before:
                variants.append(("before", _unpack(args.before, Path(tmp) / "before")))
            kinds = {name: Variant(name, (root / "app" / "scene_component").is_dir()) for name, root in variants}
            # First views after a server start alternate between the checkouts (one after the
            # other, each run's timings drifted with the machine by up to 1 s): a trial never
            # viewed, then, once each server has built its scene, the same after a restart.
            cold = first_views(browser, variants, home, kinds, args.cold, cold_view)
            got = measure(browser, variants, home, kinds, args.repeat)
            trained_tabs = measure_trained(browser, variants, trained, kinds, args.repeat)
            got["after"]["bare"] = open_bare(browser, Path(tmp), args.repeat)  # one Streamlit serves both
            load.append(os.getloadavg()[0])
            # each server has built its scene by now: the first views after a restart read it from disk
            restart = first_views(browser, variants, home, kinds, args.cold, _first_view)
            for name in got:
                got[name].update(cold=cold[name], trained=trained_tabs[name], restart=restart[name])
            for name in got:
                print(f"{name}:", json.dumps(got[name]), flush=True)
            browser.close()

    text = table(got, args.repeat, _browser_scene_kb(layout), args.before, args.cold)
    when = time.strftime("%Y-%m-%d %H:%M")
    footer = (f"`python bench/bench_viewer.py --repeat {args.repeat} --cold {args.cold}"
              + ("" if args.before == BEFORE else f" --before {args.before}") + f"`, {when} UTC, one run: the two checkouts' "
              f"servers side by side on one HPO_HOME (trial #{trial}), new tabs and first views alternating; load average {min(load):.1f}–{max(load):.1f}; python "
              f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, Chromium headless (software WebGL).")
    print("\n" + text + "\n\n" + footer)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "viewer.json").write_text(json.dumps({"when": when, "load": load, "repeat": args.repeat,
                                                 "before_commit": args.before, **got}, indent=1))
    if args.write:
        readme = ROOT / "bench" / "README.md"
        body = readme.read_text()
        start, end = "<!-- viewer:start -->", "<!-- viewer:end -->"
        block = f"{start}\n{text}\n\n{footer}\n{end}"
        body = (body[: body.index(start)] + block + body[body.index(end) + len(end):]) if start in body \
            else body + "\n" + block + "\n"
        readme.write_text(body)


if __name__ == "__main__":
    main()
