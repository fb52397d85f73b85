"""Helpers shared by the browser tests (imported by name: tests/browser is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = "tests/browser/harness.html"
START_TIMEOUT_MS = 90_000


def open_harness(page, base: str, query: str = "", wait_ready: bool = True) -> dict:
    """Open the harness page and (by default) wait until the worker is ready or failed."""
    page.goto(f"{base}{HARNESS}{query}")
    if not wait_ready:
        return {}
    page.wait_for_function("window.__harness && (window.__harness.ready || window.__harness.fatal)",
                           timeout=START_TIMEOUT_MS)
    h = page.evaluate("({ready: __harness.ready, fatal: __harness.fatal, events: __harness.events})")
    if h["fatal"]:
        pytest.fail(f"worker start-up failed: {h['fatal']}\nconsole:\n" +
                    "\n".join(page.console_lines[-30:]))
    return h
