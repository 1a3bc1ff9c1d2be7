"""Fixtures shared by the browser tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.apprun import CHROMIUM, launch_chromium


@pytest.fixture(scope="module")
def browser(request):
    """Headless Debian chromium for a test module; skipped without Playwright or /usr/bin/chromium.

    A module's ``CHROMIUM_EXTRA_ARGS`` (e.g. apprun.WEBGL_ARGS) go before apprun.CHROMIUM_ARGS.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p, getattr(request.module, "CHROMIUM_EXTRA_ARGS", ()))
        yield b
        b.close()
