"""Headless Chromium for browser tests and page screenshots.

Playwright's own browser download does not work on our machines; it drives
Debian's Chromium instead (``APEX_CHROMIUM``, default ``/usr/bin/chromium``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium_page(viewport: dict | None = None) -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("APEX_CHROMIUM", "/usr/bin/chromium")
    with tempfile.TemporaryDirectory(prefix="apex-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport=viewport or {"width": 1280, "height": 900},
            )
            try:
                yield context.new_page()
            finally:
                context.close()
