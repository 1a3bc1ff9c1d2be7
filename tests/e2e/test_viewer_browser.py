"""The 3D viewer in a real browser: the WebGL scene draws, turns under the mouse, and exports a PNG.

Trains a tiny digits study with the CLI (2 trials, 1 epoch), starts ``streamlit run
streamlit_app.py`` on a free port with that HPO_HOME, and drives headless Chromium through
Playwright.  Saves docs/screenshots/viewer.png.

Run: ``.venv/bin/python -m pytest -m e2e tests/e2e/test_viewer_browser.py`` (~1.5 min on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.apprun import SCENE_IFRAME, WEBGL_ARGS, free_port, pixels, scene_frame, start_app, stop_app
from tests.e2e.apprun import not_blank as drawn  # a WebGL canvas that has drawn the network
from tests.test_app_viewer import make_real_study

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_EXTRA_ARGS = WEBGL_ARGS  # for conftest's browser fixture: the scene is WebGL
VIEWER_PATH = "viewer"  # the router's st.Page(app/views/viewer.py): url_path defaults to the file's stem
# Inside the scene iframe: the active camera's position (vtk.js's last renderer).
CAMERA_JS = """() => {
  const renderers = window.global.renderWindow.getRenderers();
  return renderers[renderers.length - 1].getActiveCamera().getPosition();
}"""


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
    port = free_port()
    proc = start_app(home, port)
    yield f"http://127.0.0.1:{port}"
    stop_app(proc)


def test_scene_draws_rotates_and_exports_png(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    # tall enough that the whole screen (scene, table, exports) is in one screenshot
    page = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    page.goto(f"{app_url}/{VIEWER_PATH}")
    expect(page.get_by_role("heading", name="3D network viewer", level=1)).to_be_visible()

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
