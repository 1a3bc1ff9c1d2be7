"""End to end in a real browser: start a small digits study by clicking, watch it, inspect, download.

Starts ``streamlit run streamlit_app.py`` on a free port with its own HPO_HOME, drives it
with headless Chromium through Playwright, and trains for real (the study runner's local
executor). Screenshots of each screen go to tests/e2e/artifacts/ ($HPO_SHOTS) and must not be blank.

Run: ``.venv/bin/python -m pytest -m e2e tests/e2e``. Takes a minute or two on 2 CPU cores.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.apprun import click_until, not_blank, served, shots_dir, stretch_screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STUDY = "e2e-digits"
N_TRIALS = 3
TRAIN_TIMEOUT_MS = 300_000  # 3 one-epoch trials, worker start included; ~30-60 s measured on 2 cores


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A running app on a free port with a private HPO_HOME; stopped (with its workers) afterwards."""
    with served(tmp_path_factory.mktemp("e2e_home")) as url:
        yield url


def _assert_not_blank(path: Path) -> None:
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"))
    colours = len(np.unique(a.reshape(-1, 3), axis=0))
    assert not_blank(a), f"{path.name} looks blank (std {a.std():.1f}, {colours} colours)"


def _shot(page, name: str, ready=None) -> Path:
    """A screenshot of the whole screen once ``ready`` (a locator) shows, checked not blank."""
    path = stretch_screenshot(page, shots_dir() / f"{name}.png", ready)
    _assert_not_blank(path)
    return path


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")  # number inputs commit on Enter/blur, which reruns the script
    page.wait_for_timeout(400)


def _cards(page):
    return page.locator('[class*="st-key-card-"]')


def test_study_from_configure_to_download(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=30_000)  # reruns wait for a shared 2-core machine
    page.goto(app_url)

    # --- Configure: a tiny digits study, by clicking and typing
    expect(page.get_by_role("heading", name="Configure a study", level=1)).to_be_visible()
    expect(page.get_by_text("1,797 real handwritten digits", exact=False)).to_be_visible()
    expect(page.locator('[data-testid="stImage"] img')).to_have_count(8)  # sample digits
    _shot(page, "configure", ready=page.get_by_role("button", name="Start study"))
    name = page.get_by_label("Study name", exact=True)
    name.fill(STUDY)
    name.press("Enter")
    _set_number(page, "Trials", N_TRIALS)
    _set_number(page, "Epochs per trial", 1)
    _set_number(page, "Max training samples", 300)
    # a second click only after 30 s unanswered: a slow first one cannot start a second study
    click_until(page.get_by_role("button", name="Start study"), page.get_by_role("heading", name="Trials", level=1),
                wait_ms=30_000)

    # --- Trials: the gallery fills in while the study runs
    # a second tab on Health while the study runs: it follows the study without a reload
    health_tab = browser.new_page(viewport={"width": 1280, "height": 900})
    health_tab.goto(f"{app_url}/health")
    expect(health_tab.get_by_text("the study is running", exact=False).first).to_be_visible()
    expect(_cards(page).first).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    first_seen = (_cards(page).count(), page.locator('[class*="st-key-card-"] .stMarkdown').all_inner_texts())
    deadline = time.time() + TRAIN_TIMEOUT_MS / 1000
    changed = False
    while time.time() < deadline:
        now = (_cards(page).count(), page.locator('[class*="st-key-card-"] .stMarkdown').all_inner_texts())
        if now != first_seen:
            changed = True
            break
        page.wait_for_timeout(1000)
    assert changed, f"the gallery did not change while the study ran: {first_seen}"
    expect(page.get_by_text(f"{N_TRIALS}/{N_TRIALS}", exact=True)).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    expect(page.locator('[class*="st-key-card-best"]')).to_have_count(1, timeout=30_000)
    _shot(page, "trials", ready=page.locator('[data-testid="stPlotlyChart"]').first)

    # the Health tab was never reloaded: it reran itself as trials finished and when the study ended
    expect(health_tab.get_by_text("Six health metrics").first).to_be_visible(timeout=60_000)
    expect(health_tab.get_by_text("the study is running", exact=False)).to_have_count(0, timeout=60_000)
    health_tab.close()

    # --- download the best model where the gallery offers it
    with page.expect_download(timeout=60_000) as dl_info:
        page.get_by_role("button", name=re.compile(r"Best model #\d+ \(\.keras\)")).click()
    download = dl_info.value
    assert download.suggested_filename.endswith(".keras")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert zipfile.is_zipfile(saved)
    with zipfile.ZipFile(saved) as z:
        assert {"config.json", "metadata.json"} <= set(z.namelist())

    # --- the phone-width gallery stacks its cards in one column
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(f"{app_url}/trials")
    expect(phone.locator('[class*="st-key-card-"]').first).to_be_visible(timeout=60_000)
    boxes = [phone.locator('[class*="st-key-card-"]').nth(i).bounding_box() for i in range(2)]
    assert abs(boxes[0]["x"] - boxes[1]["x"]) < 5 and boxes[0]["width"] > 250  # stacked, not squeezed
    _shot(phone, "trials-phone", ready=phone.locator('[data-testid="stMetricValue"]').first)
    phone.close()

    # --- Health: open the best trial from its card
    click_until(page.locator('[class*="st-key-card-best"]').get_by_role("button", name="Health", exact=True),
                page.get_by_role("heading", name="Model health", level=1))
    expect(page.get_by_text("Six health metrics")).to_be_visible()
    # the trial shown is the best one: its heading carries the "best" badge
    expect(page.get_by_role("heading", name=re.compile(r"^Trial #\d+ complete .*best$"), level=3)).to_be_visible()
    _shot(page, "health", ready=page.locator('[data-testid="stPlotlyChart"]').nth(2))

    # --- Learn
    page.get_by_role("link", name="Learn").click()
    expect(page.get_by_role("heading", name="Learn", exact=True, level=1)).to_be_visible()
    page.get_by_text("Learning rate ·").click()  # open one entry: its chart comes from this study
    _shot(page, "learn", ready=page.locator('[data-testid="stPlotlyChart"]').first)
    page.close()
