"""Headless Chromium for the browser tests: Debian's package driven by Playwright (no browser download).

Usage::

    @pytest.fixture(scope="module")
    def browser(server: SupervisedServer) -> Iterator[Browser]:
        with chromium() as launched:
            yield launched
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from tests.support.services import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_chromium() -> None:
    """Skip (or, under DAGSERVER_REQUIRE_SERVICES=1, fail) when the chromium package is missing."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is not installed (make services installs the chromium package)")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A launched headless Chromium, closed on exit."""
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
