"""The README's screenshots, from a real, well-trained study with every default.

Runs the study a first-time user gets by pressing **Start study** without changing anything
(``StudyConfig.defaults()``: digits, 20 trials of 10 epochs, TPE, successive halving; the same
study ``bench/bench_default_study.py`` measures), through the product's own CLI, then serves the
app on that storage and photographs each screen in headless Chromium:

    docs/screenshots/configure.png  trials.png  trials-phone.png  health.png  learn.png
    viewer.png  compare.png  guide.png  errors.png  inside.png  experiment.png

It also runs a 3-value one-knob experiment (learning rate) from the best trial, by the CLI
(``python -m core experiment``), for experiment.png.

Usage: ``python docs/make_screenshots.py [--home DIR] [--keep]`` (about 3-4 minutes on 2 cores).
``--home`` reuses a folder that already holds the study (nothing is trained again).
Needs Debian's chromium, like the browser tests.
"""

from __future__ import annotations

import argparse
import re
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
STUDY = "first-study"
sys.path.insert(0, str(ROOT))


def train(home: Path) -> None:
    """The default study, by the CLI (every setting left at its default)."""
    from core.config import Settings
    from core.study import list_studies

    url = f"sqlite:///{Settings(home=home).runs_dir / 'studies.db'}"
    if (home / "runs" / "studies.db").exists() and any(s.name == STUDY for s in list_studies(url)):
        print(f"{STUDY} already in {home}: not trained again")
        return
    env = {**os.environ, "HPO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "core", "optimize", "--name", STUDY, "--no-progress"], cwd=ROOT, env=env, check=True)


def experiment(home: Path) -> None:
    """A learning-rate experiment from the best trial (values spread over its range), by the CLI."""
    from core.config import Settings
    from core.experiment import base_params, suggest_values
    from core.study import best_record, config_of, list_studies, load_records, load_study

    url = f"sqlite:///{Settings(home=home).runs_dir / 'studies.db'}"
    if any(s.config is not None and s.config.experiment for s in list_studies(url)):
        print("an experiment is already in", home)
        return
    config = config_of(load_study(STUDY, url))
    best = best_record(load_records(STUDY, url), config)
    values = suggest_values(config.kind, "learning_rate", base_params(config, best).get("learning_rate"))
    env = {**os.environ, "HPO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-m", "core", "experiment", "--study", STUDY, "--trial", str(best.number),
                    "--knob", "learning_rate", "--values", ",".join(str(v) for v in values)],
                   cwd=ROOT, env=env, check=True)


@contextmanager
def browsing(home: Path):
    """(app URL, browser, a 1280x900 page) over ``home``: the app served, headless Chromium with WebGL."""
    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.apprun import WEBGL_ARGS, launch_chromium, served

    with served(home) as url, sync_playwright() as pw:
        browser = launch_chromium(pw, WEBGL_ARGS)
        expect.set_options(timeout=60_000)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(90_000)
        try:
            yield url, browser, page
        finally:
            browser.close()


def section_shot(page, heading: str, path: Path, wait=None) -> None:
    """The viewport with ``heading`` at its top (a screen's section, as a user scrolled to it)."""
    if wait is not None:
        wait.wait_for()  # the screen has rerun to what is shown (a picker change reruns it)
    page.wait_for_timeout(1000)
    page.get_by_role("heading", name=heading).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(2000)
    page.screenshot(path=str(path))
    print("wrote", path.relative_to(ROOT))


def stretch_shot(page, path: Path, ready=None) -> None:
    from tests.e2e.apprun import stretch_screenshot

    stretch_screenshot(page, path, ready, settle_ms=2000, max_height=4000)
    print("wrote", path.relative_to(ROOT))


def photograph(home: Path) -> None:
    from playwright.sync_api import expect

    from tests.e2e.apprun import scene_frame

    SHOTS.mkdir(parents=True, exist_ok=True)
    with browsing(home) as (url, browser, page):
        page.goto(url)
        stretch_shot(page, SHOTS / "configure.png", page.get_by_role("button", name="Start study"))
        page.get_by_text("Guided first study").first.click()  # closed once a study exists
        expect(page.get_by_text("Look inside the network").first).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / "guide.png"))
        print("wrote docs/screenshots/guide.png")

        page.goto(f"{url}/trials")
        expect(page.locator('[class*="st-key-card-"]').first).to_be_visible()
        stretch_shot(page, SHOTS / "trials.png", page.locator('[data-testid="stPlotlyChart"]').first)

        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(f"{url}/trials")
        expect(phone.locator('[class*="st-key-card-"]').first).to_be_visible()
        phone.wait_for_timeout(2500)
        phone.screenshot(path=str(SHOTS / "trials-phone.png"))
        print("wrote docs/screenshots/trials-phone.png")
        phone.close()

        # Compare: opens on the study's top three
        page.goto(f"{url}/health")
        page.get_by_role("tab", name="Compare").click()
        expect(page.get_by_text("Training (dotted) and validation (solid) accuracy")).to_be_visible()
        stretch_shot(page, SHOTS / "compare.png", page.locator("[data-testid='stDataFrame']").first)

        page.goto(f"{url}/health")  # opens on the study's best trial
        expect(page.get_by_text("Six health metrics")).to_be_visible()
        stretch_shot(page, SHOTS / "health.png", page.locator('[data-testid="stPlotlyChart"]').nth(2))

        section_shot(page, "Where the model goes wrong", SHOTS / "errors.png",
                     page.get_by_role("button", name="Look inside").first)

        # inside the network: the most confident mistake, its conv layer's feature maps
        page.get_by_role("button", name="Look inside").first.scroll_into_view_if_needed()
        page.get_by_role("button", name="Look inside").first.click()
        frame = scene_frame(page)
        layers = frame.evaluate("() => window.hpoScene.args.layers.map(l => [l.id, l.name])")
        conv = next(i for i, n in layers if "conv" in n and "act" not in n)
        frame.locator(f'#layers tr[data-layer="{conv}"]').click()  # its row in the table beside the scene
        details = page.locator(".st-key-viewer-layer-details")
        expect(details).to_contain_text("feature maps for this example")
        details.scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        stretch_shot(page, SHOTS / "inside.png", details.locator("img").first)

        page.goto(f"{url}/health")
        page.get_by_role("link", name="Learn").click()
        page.get_by_text("Learning rate ·").click()
        stretch_shot(page, SHOTS / "learn.png", page.locator('[data-testid="stPlotlyChart"]').first)

        page.set_viewport_size({"width": 1280, "height": 1240})  # the scene, its table and legend whole
        page.goto(f"{url}/viewer")
        page.get_by_role("combobox", name="Study").click()  # not the newest study: an experiment may be
        page.get_by_role("option").filter(has_text=re.compile(f"^{re.escape(STUDY)} · digits ")).first.click()
        scene_frame(page)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(SHOTS / "viewer.png"))
        page.set_viewport_size({"width": 1280, "height": 900})
        print("wrote docs/screenshots/viewer.png")


def photograph_experiment(home: Path) -> None:
    """The Health screen's "What does this knob do?" under the best trial, with its experiment's plot."""
    with browsing(home) as (url, _, page):
        page.goto(f"{url}/health")
        page.get_by_role("combobox", name="Study").click()
        page.get_by_role("option").filter(has_text=re.compile(f"^{re.escape(STUDY)} · digits ")).first.click()
        # the form shows the knob of the experiment plotted under it (its default is another knob)
        from tests.e2e.apprun import choose

        page.wait_for_timeout(4000)  # the study's rerun has settled: a knob chosen before it is reset
        choose(page.get_by_role("combobox", name="Knob"), "learning_rate")
        page.mouse.move(5, 5)  # no chart's hover toolbar in the picture
        section_shot(page, "What does this knob do?", SHOTS / "experiment.png",
                     page.locator(".js-plotly-plot").filter(has_text="Accuracy vs learning_rate").first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="HPO_HOME holding (or to hold) the study; default a temp folder")
    ap.add_argument("--keep", action="store_true", help="keep the temp home (its study, models, logs)")
    args = ap.parse_args()
    home = (args.home or Path(tempfile.mkdtemp(prefix="hpo_shots_home_"))).resolve()
    train(home)
    photograph(home)
    experiment(home)  # after the other pictures: screens open on the newest study, and this is one
    photograph_experiment(home)
    print("home:", home, "(kept)" if args.keep or args.home else "")


if __name__ == "__main__":
    main()
