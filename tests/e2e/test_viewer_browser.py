"""The 3D viewer in a real browser: the WebGL scene draws, turns under the mouse, and exports a PNG.

Trains a tiny digits study with the CLI (2 trials, 1 epoch), starts ``streamlit run
streamlit_app.py`` on a free port with that HPO_HOME, and drives headless Chromium through
Playwright.  Saves docs/screenshots/viewer.png.

Run: ``.venv/bin/python -m pytest -m e2e tests/e2e/test_viewer_browser.py`` (~1.5 min on 2 cores).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.test_app_viewer import make_real_study

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# DESIGN.md, "Learned here": the flags that make Debian's chromium render WebGL headless here.
# Playwright adds a fresh --user-data-dir (a new temporary profile) for every launch.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWER_PATH = "viewer"  # the router's st.Page(app/views/viewer.py): url_path defaults to the file's stem
SCENE_IFRAME = ".st-key-viewer-scene iframe"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, port: int) -> subprocess.Popen:
    """``streamlit run streamlit_app.py`` with ``home`` as HPO_HOME; returns once it answers /health."""
    env = {**os.environ, "HPO_HOME": str(home), "HPO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HPO_STORAGE", None)
    log = open(home / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_app(proc)
            raise RuntimeError(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.5)


def stop_app(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own process group: render children stop with it
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def drawn(a: np.ndarray) -> bool:
    """A WebGL canvas that has drawn the network: not one flat background colour."""
    return a.std() > 8 and len(np.unique(a.reshape(-1, 3), axis=0)) > 64


# Inside the scene iframe: the synchronised renderer (vtk.js's last) has its actors and every
# actor's data, i.e. the whole scene is decoded and rendered (bench/bench_viewer.py uses the same test).
SCENE_READY_JS = """() => {
  const rw = (window.global || {}).renderWindow;
  if (!rw) return false;
  const renderers = rw.getRenderers();
  const r = renderers[renderers.length - 1];
  if (!r) return false;
  const actors = r.getActors();
  return actors.length > 0 && actors.every(a => {
    const d = a.getMapper() && a.getMapper().getInputData();
    return d && d.getNumberOfPoints() > 0;
  });
}"""
CAMERA_JS = """() => {
  const renderers = window.global.renderWindow.getRenderers();
  return renderers[renderers.length - 1].getActiveCamera().getPosition();
}"""


def scene_frame(page):
    """The scene iframe's frame once vtk.js has loaded the whole scene.

    Waiting for pixels alone is not enough: vtk.js draws before the scene has finished loading,
    and a drag made then is undone when loading ends and the scene's camera is applied.
    """
    frame = page.wait_for_selector(SCENE_IFRAME, state="attached").content_frame()
    assert frame is not None
    frame.wait_for_function(SCENE_READY_JS, polling="raf")
    return frame


def canvas_pixels(page, timeout_s: float = 30) -> np.ndarray:
    """A screenshot of the scene's canvas, once it is not blank."""
    canvas = page.frame_locator(SCENE_IFRAME).locator("canvas")
    deadline = time.time() + timeout_s
    while True:
        a = pixels(canvas.screenshot())
        if drawn(a):
            return a
        assert time.time() < deadline, "the 3D scene was not drawn"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("viewer_e2e")
    make_real_study(home)
    port = _free_port()
    proc = start_app(home, port)
    yield f"http://127.0.0.1:{port}"
    stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def test_scene_draws_rotates_and_exports_png(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    # tall enough that the whole screen (scene, table, exports) is in one screenshot
    page = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    page.goto(f"{app_url}/{VIEWER_PATH}")
    expect(page.get_by_role("heading", name="3D network viewer")).to_be_visible()

    frame = scene_frame(page)
    frame.evaluate("window.__e2e_mark = 1")  # gone if the iframe is ever reloaded
    before = canvas_pixels(page)
    camera = frame.evaluate(CAMERA_JS)

    # drag across the scene: vtk.js's trackball turns the camera, so the picture changes
    box = page.frame_locator(SCENE_IFRAME).locator("canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 160, cy + 50, steps=12)
    page.mouse.up()
    page.wait_for_timeout(300)
    after = canvas_pixels(page)
    changed = np.abs(before - after).max(axis=2) > 24
    assert changed.mean() > 0.02, f"dragging did not turn the scene ({changed.mean():.2%} of pixels changed)"
    turned = frame.evaluate(CAMERA_JS)
    assert np.linalg.norm(np.subtract(turned, camera)) > 1.0, (camera, turned)

    # PNG export: rendered in the background with a progress bar, then offered for download
    page.get_by_role("button", name="Make PNG").click()
    expect(page.get_by_role("progressbar")).to_be_visible()  # rendering: the page stays usable meanwhile
    download_button = page.get_by_role("button", name="Download PNG")
    expect(download_button).to_be_visible(timeout=180_000)
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename.startswith("v_trial-") and download.suggested_filename.endswith(".png")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    png = pixels(path.read_bytes())
    assert png.shape[:2] == (1080, 1920)
    assert drawn(png)

    # the export reran the page, but the scene was not reloaded: the user's turn is kept
    assert frame.evaluate("window.__e2e_mark") == 1, "the scene iframe was reloaded"
    assert frame.evaluate(CAMERA_JS) == turned

    # select a layer's row in the table: the scene is rebuilt with that layer outlined
    table = page.locator(".stDataFrame").first.bounding_box()
    row = 7  # dense_1 in a one-block CNN; any row will do
    page.mouse.click(table["x"] + 17, table["y"] + 35 * (row + 1) + 17)  # the row's selection checkbox
    expect(page.get_by_text("highlighted:", exact=False)).to_be_visible()
    scene_frame(page)
    canvas_pixels(page)

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "viewer.png"
    page.screenshot(path=str(shot))
    assert drawn(pixels(shot.read_bytes()))
    page.close()
