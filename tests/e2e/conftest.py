"""Fixtures for tests that run ``flaskserve serve`` as a real process (see ``tests/live_server.py``).

``start_server(*flags, workers=2, model_path=None, env=None)`` starts one on a
free port and returns a ``RunningServer`` once ``/v2/health/ready`` answers 200;
``server`` is the test repository served by two workers, and ``shared_server`` the
same, started once per test module (for tests that only read, or that compare
metrics before and after). Every server is stopped when its test (or module)
ends. Mark the tests ``e2e``.

``browser`` is Debian's Chromium driven by Playwright, once per module, and
``tab`` a fresh page in it that records its errors (``tests/chromium.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from chromium import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, BrowserLog, BrowserPage
from live_server import RunningServer, ServerLauncher


@pytest.fixture
def start_server(repository: Path, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    launcher = ServerLauncher(repository, tmp_path)
    yield launcher.start
    launcher.stop_all()


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """The test repository served by two workers."""
    return start_server()


@pytest.fixture(scope="module")
def shared_server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One two-worker server for a whole test module: compare metrics before and after, not absolute."""
    launcher = ServerLauncher(repository, tmp_path_factory.mktemp("shared-server"))
    yield launcher.start()
    launcher.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{NO_CHROMIUM} (CI is set: the browser tests must run)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Browser, tmp_path: Path) -> Iterator[BrowserPage]:
    """A fresh page that records its errors; its last view is saved as ``page.png`` in the test's folder."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log = BrowserLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    yield BrowserPage(page, log)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    context.close()
