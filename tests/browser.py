"""Browser tests' plumbing: the system Chromium, headless, through Playwright.

A pytest plugin (registered in ``tests/conftest.py``): the ``chromium`` and ``pages`` fixtures
for any test module that drives a page. Playwright's own browser download does not work
offline; the system's package does (``apt-get install chromium``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BROWSER_ZONE = "America/Los_Angeles"
"""The browser's own zone, deliberately not the organisation's (UTC)."""
UNREACHABLE_TILES = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
"""Port 9 (discard) is closed on the test machine: every tile request fails at once."""
WAIT_MS = 20_000
"""How long a page test waits for what the server pushes (a socket, a worker's effect)."""


@dataclass
class Pages:
    """Opens pages in one browser and remembers every uncaught script error."""

    browser: Browser
    errors: list[str]

    async def new_page(self, **context: Any) -> Page:
        """A blank page in a fresh context, its clock in ``BROWSER_ZONE``; ``context`` adds to or
        replaces the context's options (a phone's viewport, a position, permissions)."""
        options: dict[str, Any] = {
            "locale": "en-GB",
            "timezone_id": BROWSER_ZONE,
            "viewport": {"width": 1280, "height": 800},
            **context,
        }
        page = await (await self.browser.new_context(**options)).new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    async def open(self, url: str) -> Page:
        """A new page showing ``url``."""
        page = await self.new_page()
        await page.goto(url)
        return page


@pytest.fixture
def chromium() -> Path:
    """The system Chromium; missing, the test is skipped (a failure when ``CI=true``)."""
    if not CHROMIUM.exists():
        reason = f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@contextlib.asynccontextmanager
async def launched(chromium: Path, *extra_args: str) -> AsyncIterator[Pages]:
    """Chromium, headless, with ``extra_args``; on the way out, fails if a page threw."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=[*CHROMIUM_ARGS, *extra_args]
        )
        opened = Pages(browser, [])
        yield opened
        await browser.close()
    assert opened.errors == []


@pytest.fixture
async def pages(chromium: Path) -> AsyncIterator[Pages]:
    """Chromium, headless, for one test; the test fails if a page throws an uncaught error."""
    async with launched(chromium) as opened:
        yield opened
