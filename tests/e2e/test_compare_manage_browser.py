"""In a real browser, on a study really trained by the CLI: pick three trials in the gallery and
compare them side by side; then delete the study after its confirmation (storage rows, models and
folder gone).  Screenshots go to tests/e2e/artifacts/ ($HPO_SHOTS), never into docs/.

Run: ``.venv/bin/python -m pytest -m e2e tests/e2e/test_compare_manage_browser.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.apprun import cli_study, click_until, served, shots_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STUDY = "cmp-digits"
N_TRIALS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-trial, 2-epoch digits study trained for real with ``python -m core optimize``."""
    return cli_study(tmp_path_factory.mktemp("cmp_home"), STUDY, trials=N_TRIALS, epochs=2, max_samples=600)


@pytest.fixture(scope="module")
def app_url(trained):
    with served(trained) as url:
        yield url


def test_pick_three_trials_in_the_gallery_and_compare_them(browser, app_url, trained):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/trials")
    add = page.get_by_role("button", name="Add to compare")
    expect(add.first).to_be_visible(timeout=60_000)
    for _ in range(3):
        page.get_by_role("button", name="Add to compare").first.click()
        page.wait_for_timeout(800)
    expect(page.get_by_role("button", name="In comparison")).to_have_count(3)
    page.get_by_role("button", name="Compare 3").click()
    table = page.locator("[data-testid='stDataFrame']").first
    expect(table).to_be_visible(timeout=30_000)
    # three trial columns, each with its accuracy in percent
    header: list[str] = []
    for _ in range(60):  # the grid fills its (accessible) header cells after it is first drawn
        header = table.locator("[role='columnheader']").all_inner_texts()
        if any(h.strip().startswith("#") for h in header):
            break
        page.wait_for_timeout(250)
    assert len([h for h in header if h.strip().startswith("#")]) == 3, header
    expect(page.get_by_text("Training (dotted) and validation (solid) accuracy")).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots_dir() / "compare-three.png"), full_page=True)
    page.close()


def test_delete_asks_first_and_then_removes_the_study(browser, app_url, trained):
    from playwright.sync_api import expect

    from core.config import Settings

    folder = Settings(home=trained).study_dir(STUDY)
    assert list(folder.rglob("*.keras")), "the trained study keeps its models"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    manage = page.get_by_text("Manage", exact=True)
    expect(manage).to_be_visible(timeout=60_000)
    manage.click()
    warning = page.get_by_text("for good?")
    click_until(page.get_by_role("button", name="Delete", exact=True), warning)
    assert f"{N_TRIALS} trials" in warning.inner_text()
    page.screenshot(path=str(shots_dir() / "delete-confirm.png"), full_page=True)
    assert folder.is_dir()  # nothing deleted before the confirmation
    click_until(page.get_by_role("button", name="Delete for good"), page.get_by_text("No studies in this storage yet."),
                wait_ms=30_000)
    assert not folder.exists()
    page.close()
