"""Shared by the browser tests and benches: start/stop the app, launch Debian's Chromium, check pixels."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Flags measured to work for headless Debian chromium here (DESIGN.md, "Learned here"); Playwright
# makes a fresh profile directory itself, which stands in for --user-data-dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The 3D viewer's WebGL scene: these flags plus an explicit --headless, as the viewer's test and bench
# have always launched it (DESIGN.md, "Learned here").
WEBGL_ARGS = ["--headless"]
SCENE_IFRAME = ".st-key-viewer-scene iframe"
# Inside the scene iframe: true once the synchronised renderer (vtk.js's last) has actors and every
# actor's mapper has its points, i.e. the whole .vtksz scene is decoded and has been rendered.
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


def shots_dir() -> Path:
    """Where browser tests put their screenshots: $HPO_SHOTS, else tests/e2e/artifacts/ (git-ignored).
    The README's screenshots are made from a real, well-trained study by docs/make_screenshots.py."""
    d = Path(os.environ.get("HPO_SHOTS") or ROOT / "tests" / "e2e" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def stretch_screenshot(page, path: Path, ready=None, settle_ms: int = 1500, max_height: int = 6000) -> Path:
    """A screenshot of the whole screen once ``ready`` (a locator) shows.

    Streamlit scrolls inside its main container, so a "full page" screenshot is only the
    viewport: the viewport is stretched to the content's height for the shot instead.
    """
    from playwright.sync_api import expect

    if ready is not None:
        expect(ready).to_be_visible()
    page.wait_for_timeout(settle_ms)  # let charts and images finish their first draw
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...['[data-testid=stMain]', '[data-testid=stAppViewContainer]', 'body']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), max_height))})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_study(home: Path, name: str, *, trials: int, epochs: int, max_samples: int, dataset: str = "digits",
              pruner: str = "none") -> Path:
    """A study really trained by ``python -m core optimize`` into ``home`` (the browser tests' fixture)."""
    env = {**os.environ, "HPO_HOME": str(home), "HPO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HPO_STORAGE", None)
    subprocess.run([sys.executable, "-m", "core", "optimize", "--dataset", dataset, "--trials", str(trials),
                    "--epochs", str(epochs), "--name", name, "--pruner", pruner, "--max-samples", str(max_samples),
                    "--no-progress"], cwd=ROOT, env=env, check=True, timeout=600)
    return home


def start_app(home: Path, port: int, env_extra: dict[str, str] | None = None, timeout_s: float = 90,
              root: Path = ROOT) -> subprocess.Popen:
    """The app as ``make run`` starts it (``python -m app.serve``: ``streamlit run streamlit_app.py``
    with a head start) with ``home`` as HPO_HOME; returns once it answers /health.

    ``root`` is the checkout to run (the bench runs an older one beside this one; one without
    app/serve.py is started with ``streamlit run`` itself).
    """
    env = {**os.environ, "HPO_HOME": str(home), "HPO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    env.pop("HPO_STORAGE", None)
    log = open(home / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", *(("app.serve",) if (root / "app" / "serve.py").exists() else ("streamlit", "run",
                                                                                                 "streamlit_app.py")),
         "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the study's worker processes stop with it
    )
    if not wait_serving(proc, port, timeout_s):
        stop_app(proc)
        raise RuntimeError(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-2000:]}")
    proc.hpo_port = port  # type: ignore[attr-defined] - served() reads it
    return proc


def wait_serving(proc: subprocess.Popen, port: int, timeout_s: float = 90) -> bool:
    """Wait until the Streamlit server ``proc`` answers /health on ``port``: True, or False when
    it exited or ``timeout_s`` passed first."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.5)


@contextmanager
def served(home: Path, env_extra: dict[str, str] | None = None) -> Iterator[str]:
    """The app on a free port over ``home`` (:func:`start_app`), as its URL; stopped afterwards."""
    proc = start_app(home, free_port(), env_extra)
    try:
        yield f"http://127.0.0.1:{proc.hpo_port}"
    finally:
        stop_app(proc)


def stop_app(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def launch_chromium(playwright, extra_args: list[str] | tuple[str, ...] = ()):
    """Headless Debian chromium with CHROMIUM_ARGS; ``extra_args`` (e.g. WEBGL_ARGS) go first."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*extra_args, *CHROMIUM_ARGS])


def scene_frame(page):
    """The viewer's scene iframe's frame once vtk.js has loaded the whole scene.

    Waiting for pixels alone is not enough: vtk.js draws before the scene has finished loading,
    and a drag made then is undone when loading ends and the scene's camera is applied.
    """
    frame = page.wait_for_selector(SCENE_IFRAME, state="attached").content_frame()
    assert frame is not None
    frame.wait_for_function(SCENE_READY_JS, polling="raf")
    return frame


def choose(combobox, value: str, tries: int = 4, shown=None) -> None:
    """Choose `value` in a Streamlit selectbox with the keyboard, as a user who types would.

    A click on the option can land while the page reruns (a fragment refreshing, the option list
    re-rendering), where the pointer is intercepted or the option detached; CI met exactly that.
    Typing filters the list and Enter takes the highlighted option, so nothing depends on where the
    option sits. The gesture waits for the option to be listed before Enter: an Enter that finds no
    highlighted option (the filter not yet applied under load) takes nothing and leaves the typed text
    in the box, which reads exactly like a choice (CI met that too). So the box is then blurred, which
    puts the *chosen* value back in it, and that is what is read; with `shown` (a locator that only
    the new choice draws), the gesture also counts as done only once that is visible. Each failure
    retries the whole gesture.
    """
    page = combobox.page
    for _ in range(tries):
        try:
            if combobox.input_value() != value:
                combobox.click(timeout=10_000)
                combobox.fill(value, timeout=10_000)
                page.get_by_role("option", name=value, exact=True).wait_for(state="visible", timeout=10_000)
                page.wait_for_timeout(200)
                combobox.press("Enter", timeout=10_000)
                combobox.evaluate("el => el.blur()")
                page.wait_for_timeout(300)
            if combobox.input_value() != value:
                raise AssertionError("Enter took nothing")
            if shown is not None:
                shown.wait_for(state="visible", timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - a rerun replaced the widget or ate the key; the loop reads it again
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)
    raise AssertionError(f"could not choose {value!r}: the box still shows {combobox.input_value()!r}")


def click_until(button, shown, tries: int = 3, wait_ms: int = 10_000) -> None:
    """Click ``button`` until ``shown`` (a locator) is visible, as a user clicks again when nothing happened.

    A click that lands while the page is still settling (its first runs, a rerun another widget
    started) can be dropped by Streamlit; under CI's load a Delete click once was, and the test
    waited in vain for the confirmation.  The app must still answer within ``tries`` clicks.
    """
    for _ in range(tries):
        if shown.is_visible():
            return  # the last click was answered, late
        try:
            button.click(timeout=30_000)
            shown.wait_for(state="visible", timeout=wait_ms)
            return
        except Exception:  # noqa: BLE001 - not answered yet, or the button was just replaced: look again
            continue
    if not shown.is_visible():
        raise AssertionError(f"nothing answered {tries} clicks on {button}")


def pixels(png: bytes) -> np.ndarray:
    """A PNG's RGB pixels as int16 (so differences between two pictures do not wrap)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def not_blank(a: np.ndarray) -> bool:
    """A picture with content: not one flat colour."""
    return a.std() > 8 and len(np.unique(a.reshape(-1, 3), axis=0)) > 64
