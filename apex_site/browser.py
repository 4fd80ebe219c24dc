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


# axe-core's impacts that fail a page: "minor" and "moderate" are reported only.
AXE_BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page, *, disabled_rules: dict[str, str] | None = None) -> list[dict]:
    """axe-core's violations on ``page`` as it is now (every rule axe runs by
    default: WCAG 2.x A/AA and best practices), through axe-playwright-python,
    which ships ``axe.min.js``. ``disabled_rules`` maps a rule id to the reason
    it is off; each entry is a decision to justify, not a way to pass."""
    from axe_playwright_python.sync_playwright import Axe

    options: dict = {"resultTypes": ["violations"]}
    if disabled_rules:
        options["rules"] = {rule: {"enabled": False} for rule in disabled_rules}
    return list(Axe().run(page, options=options).response["violations"])


def axe_summary(violations: list[dict]) -> str:
    """One line per violation and up to three of its elements, for a failure."""
    lines = []
    for v in violations:
        targets = ", ".join(str(n["target"]) for n in v["nodes"][:3])
        lines.append(
            f"{v['id']} ({v['impact']}, {len(v['nodes'])}x): {v['help']} — {targets}"
        )
    return "\n".join(lines)
