"""The 3D viewer in a real browser: the scene component draws, restyles without being sent again, fits phones.

Trains a tiny digits study with the CLI (2 trials, 1 epoch), starts ``streamlit run
streamlit_app.py`` on a free port with that HPO_HOME, and drives headless Chromium through
Playwright.  Every request the pages make is recorded: the scene file (``.vtksz``) must be
fetched once per page, and nothing may leave localhost.  Saves a screenshot to tests/e2e/artifacts/ ($HPO_SHOTS).

Run: ``.venv/bin/python -m pytest -m e2e tests/e2e/test_viewer_browser.py`` (~1.5 min on 2 cores).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from core.scene import faded
from tests.e2e.apprun import SCENE_IFRAME, WEBGL_ARGS, click_until, pixels, served, shots_dir
from tests.e2e.apprun import not_blank as drawn  # a WebGL canvas that has drawn the network
from tests.test_app_viewer import make_real_study

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_EXTRA_ARGS = WEBGL_ARGS  # for conftest's browser fixture: the scene is WebGL
VIEWER_PATH = "viewer"  # the router's st.Page(app/views/viewer.py): url_path defaults to the file's stem
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Inside the scene iframe: the active camera's position (vtk.js's last renderer).
CAMERA_JS = """() => {
  const renderers = window.global.renderWindow.getRenderers();
  return renderers[renderers.length - 1].getActiveCamera().getPosition();
}"""
# Inside the scene iframe: each layer's drawn colour (its mesh actor's), opacity and outline visibility.
ACTORS_JS = """() => {
  const S = window.hpoScene, actors = S.renderer.getActors();
  return S.args.layers.map(l => ({id: l.id, color: actors[l.mesh].getProperty().getColor(),
    opacity: actors[l.mesh].getProperty().getOpacity(), outline: actors[l.outline].getVisibility()}));
}"""
# Inside the scene iframe: the boxes of the labels shown, the stage's box and the label font size.
LABELS_JS = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const shown = Array.from(document.querySelectorAll('#labels .lbl')).filter(
    e => getComputedStyle(e).visibility === 'visible');
  return {labels: shown.map(box), texts: shown.map(e => e.textContent), all: document.querySelectorAll('#labels .lbl').length,
          stage: box(document.getElementById('stage')), legend: box(document.getElementById('legend')),
          font: Math.min(...shown.map(e => parseFloat(getComputedStyle(e.querySelector('span')).fontSize))),
          docWidth: document.documentElement.scrollWidth, width: window.innerWidth};
}"""


def hex_rgb(color: str) -> np.ndarray:
    n = int(color[1:], 16)
    return np.array([(n >> 16) & 255, (n >> 8) & 255, n & 255]) / 255


def overlaps(boxes: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs of boxes (left, top, right, bottom) that share any area."""
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[:i])
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


class Viewer:
    """One page on the viewer in its own browser context, with every request it makes recorded."""

    def __init__(self, browser, url: str, width: int, height: int, init_script: str | None = None) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        if init_script:
            self.context.add_init_script(init_script)
        self.requests: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        # anything not on this machine is recorded (above) and refused, so an offline run cannot hang on it
        self.context.route(lambda u: urlparse(u).hostname not in LOCAL_HOSTS, lambda route: route.abort())
        self.page = self.context.new_page()
        self.sockets: list[str] = []
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.page.set_default_timeout(60_000)
        self.page.goto(f"{url}/{VIEWER_PATH}")
        self.frame = self.page.wait_for_selector(SCENE_IFRAME, state="attached").content_frame()
        assert self.frame is not None
        self.frame.wait_for_function("() => window.hpoScene && window.hpoScene.ready && window.hpoScene.labelsShown > 0",
                                     polling="raf")

    def scene_fetches(self) -> list[str]:
        return [u for u in self.requests if ".vtksz" in urlparse(u).path]

    def outside(self) -> list[str]:
        return [u for u in self.requests + self.sockets
                if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname not in LOCAL_HOSTS]

    def canvas(self, timeout_s: float = 30) -> np.ndarray:
        """A screenshot of the scene's canvas, once it is not blank."""
        canvas = self.page.frame_locator(SCENE_IFRAME).locator("canvas")
        deadline = time.time() + timeout_s
        while True:
            a = pixels(canvas.screenshot())
            if drawn(a):
                return a
            assert time.time() < deadline, "the 3D scene was not drawn"
            time.sleep(0.2)

    def close(self) -> None:
        self.context.close()


# In the scene's iframe only: the app's arguments arrive late, as on a loaded machine: held until
# vtk.js's viewer has run and 300 ms more, longer than its 100 ms patience (it then adds a file
# drop zone and a full-screen class to the page); whether it did is recorded.
SLOW_ARGS_JS = """
if (window !== window.top) {
  window.__hpoDelayed = 0; window.__hpoDropSeen = false; window.__hpoLog = [[location.href.slice(0, 30), performance.now()]];
  // Seen as it is added, not polled: when the page is busy the viewer's 100 ms timer and the
  // arguments' timer fire back to back, and the drop zone lives between two tasks (CI saw that).
  // This window first holds the iframe's about:blank, then the component's document: the hook
  // on the prototype is the window's, so it stays.
  const append = Node.prototype.appendChild;
  Node.prototype.appendChild = function (child) {
    if (child && child.querySelector && child.querySelector('input[type="file"]')) {
      window.__hpoDropSeen = true; window.__hpoLog.push(['drop', performance.now()]);
    }
    return append.call(this, child);
  };
  const later = data => window.OfflineLocalView
    ? setTimeout(() => { window.__hpoLog.push(['sent', performance.now()]);
        window.dispatchEvent(new MessageEvent('message', {data: {...data, __late: true}})); }, 300)
    : setTimeout(() => later(data), 20);
  window.addEventListener('message', e => {
    if (!e.data || e.data.type !== 'streamlit:render' || e.data.__late) return;
    e.stopImmediatePropagation();
    window.__hpoDelayed += 1;
    window.__hpoLog.push(['held', performance.now(), !!window.OfflineLocalView, location.href.slice(0, 30)]);
    later(e.data);
  }, true);
}
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("viewer_e2e")
    make_real_study(home)
    with served(home) as url:
        yield url


def test_scene_draws_restyles_in_the_browser_and_exports_png(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    # tall enough that the whole screen (scene, table, exports) is in one screenshot
    v = Viewer(browser, app_url, 1280, 1400)
    page, frame = v.page, v.frame
    expect.set_options(timeout=60_000)
    expect(page.get_by_role("heading", name="3D network viewer", level=1)).to_be_visible()
    frame.evaluate("window.__e2e_mark = 1")  # gone if the iframe is ever reloaded
    assert len(v.scene_fetches()) == 1, v.scene_fetches()
    before = v.canvas()
    camera = frame.evaluate(CAMERA_JS)

    # drag across the scene: vtk.js's trackball turns the camera, so the picture changes
    box = page.frame_locator(SCENE_IFRAME).locator("canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 160, cy + 50, steps=12)
    page.mouse.up()
    page.wait_for_timeout(300)
    after = v.canvas()
    changed = np.abs(before - after).max(axis=2) > 24
    assert changed.mean() > 0.02, f"dragging did not turn the scene ({changed.mean():.2%} of pixels changed)"
    turned = frame.evaluate(CAMERA_JS)
    assert np.linalg.norm(np.subtract(turned, camera)) > 1.0, (camera, turned)

    # recolour with the scene's own button: the drawn colours change, the scene is not sent again
    layers = frame.evaluate("() => window.hpoScene.args.layers")
    current = frame.evaluate("() => window.hpoScene.colorBy")
    other = next(k for k in layers[0]["colors"] if k != current
                 and any(lay["colors"][k] != lay["colors"][current] for lay in layers))
    restyles = frame.evaluate("() => window.hpoScene.restyles")
    drawn_before = v.canvas()
    frame.locator(f'#bar button[data-key="{other}"]').click()
    frame.wait_for_function(f"() => window.hpoScene.applied.colorBy === {other!r}")
    assert frame.locator(f'#bar button[data-key="{other}"]').get_attribute("aria-pressed") == "true"
    for lay, actor in zip(layers, frame.evaluate(ACTORS_JS)):
        # drawn opaque, a see-through layer faded toward the background as core.scene.faded does
        assert np.allclose(actor["color"], hex_rgb(faded(lay["colors"][other], lay["opacity"])), atol=1 / 255), \
            (lay["id"], other)
        assert actor["opacity"] == 1
    page.wait_for_timeout(200)
    recoloured = np.abs(drawn_before - v.canvas()).max(axis=2) > 24
    assert recoloured.mean() > 0.002, f"the colours drawn did not change ({recoloured.mean():.3%} of pixels)"
    # the app hears of the choice (a rerun, for the exports) and answers with the same scene
    page.wait_for_timeout(1500)
    assert frame.evaluate("() => window.hpoScene.colorBy") == other  # the rerun did not switch it back
    assert frame.evaluate("window.__e2e_mark") == 1, "the scene iframe was reloaded"
    assert len(v.scene_fetches()) == 1, "recolouring fetched the scene again"
    assert frame.evaluate("() => window.hpoScene.restyles") > restyles

    # PNG export: rendered in the background with a progress bar, then offered for download
    download_button = page.get_by_role("button", name="Download PNG")
    # rendering shows a progress bar: the page stays usable meanwhile
    click_until(page.get_by_role("button", name="Make PNG"), page.get_by_role("progressbar"), wait_ms=30_000)
    expect(download_button).to_be_visible(timeout=180_000)
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename.startswith("v_scene_trial-") and download.suggested_filename.endswith(".png")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    png = pixels(path.read_bytes())
    assert png.shape[:2] == (1080, 1920)
    assert drawn(png)

    # the export reran the page, but the scene was not reloaded: the user's turn is kept
    assert frame.evaluate("window.__e2e_mark") == 1, "the scene iframe was reloaded"
    assert frame.evaluate(CAMERA_JS) == turned

    # select a layer's row in the table beside the scene: that layer is outlined, its row marked,
    # the others fade; nothing is sent again, and the app shows the layer's details
    row = 2
    assert frame.evaluate(ACTORS_JS)[row]["outline"] is False
    rows = frame.locator("#layers tbody tr")
    assert rows.count() == len(layers)
    assert rows.nth(row).get_attribute("data-layer") == layers[row]["id"]
    assert rows.nth(row).locator("th").inner_text() == layers[row]["name"]
    rows.nth(row).click()
    frame.wait_for_function(f"() => window.hpoScene.applied.highlight === {layers[row]['id']!r}")
    expect(page.get_by_text(f"selected: {layers[row]['name']}", exact=False)).to_be_visible()
    assert rows.nth(row).get_attribute("aria-selected") == "true"
    assert frame.locator("#layers tbody tr.sel").count() == 1
    actors = frame.evaluate(ACTORS_JS)
    assert [a["outline"] for a in actors] == [i == row for i in range(len(layers))]
    # the highlighted layer keeps its own colour, the others fade as if drawn at 45 % of their opacity
    for i, (lay, actor) in enumerate(zip(layers, actors)):
        want = faded(lay["colors"][other], lay["opacity"] * (1 if i == row else 0.45))
        assert np.allclose(actor["color"], hex_rgb(want), atol=1 / 255) and actor["opacity"] == 1, (lay["id"], actor)
    assert frame.locator(f'.lbl.hl[data-layer="{layers[row]["id"]}"]').count() == 1
    assert frame.locator(f'.lbl[data-layer="{layers[row]["id"]}"]').evaluate("e => getComputedStyle(e).visibility") \
        == "visible"  # the highlighted layer's label is placed first, so it is always shown
    assert frame.evaluate("() => window.hpoScene.colorBy") == other  # the highlight kept the colouring
    assert frame.evaluate("window.__e2e_mark") == 1, "the scene iframe was reloaded"
    assert len(v.scene_fetches()) == 1, "highlighting fetched the scene again"
    v.canvas()

    # the favicon is the app's own file, and no request of the whole session left this machine
    icon = page.evaluate("() => Array.from(document.querySelectorAll('link[rel~=icon]')).map(l => l.href)")
    assert len(icon) == 1, icon
    if icon[0].startswith("data:"):  # Streamlit inlines a small icon file into the page
        head, _, body = icon[0].partition(",")
        assert head == "data:image/svg+xml;base64", head
        assert base64.b64decode(body) == (ROOT / "app" / "favicon.svg").read_bytes()
    else:
        assert urlparse(icon[0]).hostname in LOCAL_HOSTS, icon
        answer = page.request.get(icon[0])
        assert answer.ok and answer.body() == (ROOT / "app" / "favicon.svg").read_bytes(), (icon, answer.status)
    assert v.sockets and not v.outside(), v.outside()

    shot = shots_dir() / "viewer.png"
    page.screenshot(path=str(shot))
    assert drawn(pixels(shot.read_bytes()))
    v.close()


@pytest.mark.parametrize("width", [390, 768])
def test_scene_fits_narrow_screens_with_readable_labels(app_url, browser, width):
    v = Viewer(browser, app_url, width, 900)
    frame = v.frame
    geo = frame.evaluate(LABELS_JS)
    iframe = v.page.locator(SCENE_IFRAME).bounding_box()
    # the frame and everything in it fit the screen: no sideways scrolling
    assert iframe["x"] >= 0 and iframe["x"] + iframe["width"] <= width + 0.5, (iframe, width)
    assert geo["docWidth"] <= geo["width"], geo
    assert v.page.evaluate("() => document.documentElement.scrollWidth") <= width
    # labels are HTML, inside the stage, readable, and none overlaps another
    assert geo["all"] == len(frame.evaluate("() => window.hpoScene.args.layers"))
    assert len(geo["labels"]) >= 2, geo  # enough shown that the overlap check means something
    stage = geo["stage"]
    for box in geo["labels"]:
        assert stage[0] - 0.5 <= box[0] and box[2] <= stage[2] + 0.5 and stage[1] - 0.5 <= box[1] \
            and box[3] <= stage[3] + 0.5, (box, stage)
    assert not overlaps(geo["labels"]), (overlaps(geo["labels"]), geo["texts"])
    assert geo["font"] >= 11, geo["font"]
    # the legend is HTML under the stage, not drawn (tilted) in the 3D scene
    assert geo["legend"][1] >= stage[3] - 0.5 and geo["legend"][3] > geo["legend"][1], geo
    # the layer table: beside the stage where there is room, else under the legend; within the
    # frame either way (a wide table scrolls inside its own box)
    table = frame.evaluate("""() => { const r = document.getElementById('tablebox').getBoundingClientRect();
      return [r.left, r.top, r.right, r.bottom, document.querySelectorAll('#layers tbody tr').length]; }""")
    assert table[4] == geo["all"], table
    assert 0 <= table[0] and table[2] <= geo["width"] + 0.5, (table, geo["width"])
    if width < 700:  # stacked
        assert table[1] >= geo["legend"][3] - 0.5, (table, geo["legend"])
    else:
        assert table[0] >= stage[2] - 0.5 and table[1] < stage[3], (table, stage)
    assert v.canvas() is not None
    assert len(v.scene_fetches()) == 1
    assert not v.outside(), v.outside()
    v.close()


def test_scene_draws_when_the_apps_arguments_come_late(app_url, browser):
    """vtk.js's viewer runs as soon as it has loaded, before the app's arguments (faster); when they
    come late its file drop zone, offered after 100 ms with nothing loaded, is taken away again."""
    v = Viewer(browser, app_url, 1280, 1000, init_script=SLOW_ARGS_JS)
    frame = v.frame
    assert frame.evaluate("() => window.__hpoDelayed") >= 1  # the arguments really came late
    # and the viewer had offered its drop zone
    assert frame.evaluate("() => window.__hpoDropSeen") is True, frame.evaluate("() => window.__hpoLog")
    assert frame.evaluate("() => document.querySelectorAll('input[type=file]').length") == 0
    assert frame.evaluate("() => document.body.className") == ""  # nor its full-screen class
    assert frame.evaluate("() => document.getElementById('status').textContent") == ""
    stage = frame.locator("#stage").bounding_box()
    assert stage["width"] > 300 and stage["height"] > 200, stage  # laid out as usual, not full-screen
    assert v.canvas() is not None
    assert len(v.scene_fetches()) == 1
    v.close()
