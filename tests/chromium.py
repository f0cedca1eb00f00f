"""Debian's Chromium, driven with Playwright, for the tests of the server's pages.

The browser is the ``chromium`` package (``/usr/bin/chromium``); Playwright
never downloads one. Without that binary the tests skip on a developer's
machine, and fail under CI (``CI`` set), where ``.ci/services`` installs it.

Every page records the errors its console reports and the exceptions its script
raises; Chromium reports a content security policy violation there too, as a
console error. A test fails on any of them it did not cause on purpose. The
``browser`` and ``tab`` fixtures live in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = f"no Chromium at {CHROMIUM}: install Debian's package with 'apt-get install chromium'"

# The machine may have no network: these flags stop Chromium's own background
# connections (updates, sync, QUIC probes), which are refused and slow it down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class ConsoleError:
    text: str
    url: str


@dataclass
class BrowserLog:
    """What went wrong in a page: console errors (with the URL they are about) and uncaught exceptions."""

    console_errors: list[ConsoleError] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(ConsoleError(message.text, message.location.get("url", "")))

    def on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def unexpected(self, *failed_loads: tuple[int, str]) -> list[str]:
        """Every problem except the failed loads ``(status, url)`` a test caused on purpose, once each."""
        expected = list(failed_loads)
        problems = list(self.page_errors)
        for error in self.console_errors:
            match = next(
                (
                    load
                    for load in expected
                    if error.url == load[1]
                    and error.text.startswith("Failed to load resource")
                    and f"status of {load[0]} " in error.text
                ),
                None,
            )
            if match is None:
                problems.append(f"{error.text} [{error.url}]")
            else:
                expected.remove(match)
        return problems + [f"expected a failed load {status} of {url}" for status, url in expected]


@dataclass
class BrowserPage:
    page: Page
    log: BrowserLog


#: Skips at collection, before any server starts; under CI the browser fixture fails instead.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and "CI" not in os.environ, reason=NO_CHROMIUM)
