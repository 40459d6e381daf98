"""Headless Chromium for the browser tests: Debian's own build (`make test` installs it), driven
by Playwright through its executable path; no browser is ever downloaded, and every request that
is not to 127.0.0.1 (textual-serve's page names a web font) is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("GPT_TUI_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def need_chromium() -> None:
    """Skip where Chromium could not be installed (outside Debian, as a user without root), with
    the reason; in CI its absence is a failure, never a silent skip."""
    if os.access(CHROMIUM, os.X_OK):
        return
    reason = f"no Chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _loopback_only(route: Any) -> None:
    url = route.request.url
    local = url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "file:", "data:", "about:"))
    route.continue_() if local else route.abort()


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh headless Chromium (Playwright gives it a profile of its own, removed at close)."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, width: int = 1000, height: int = 700, **options: Any) -> Any:
    """A page in a context of its own (`options`: Playwright's, e.g. java_script_enabled) that
    reaches nothing but 127.0.0.1 and files."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=1, **options
    )
    context.route("**/*", _loopback_only)
    return context.new_page()


@contextmanager
def chromium_page(width: int = 1000, height: int = 700, **options: Any) -> Iterator[Any]:
    """A page of a fresh headless Chromium."""
    with chromium() as browser:
        yield new_page(browser, width, height, **options)
