"""Helpers shared by the browser tests (imported by name: tests/browser is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

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


CDN_PYODIDE = "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/"


def route_cdn_to(context, origin: str, tamper: str | None = None) -> list[str]:
    """Answer the pinned Pyodide CDN URLs from ``origin``/runtime/ (a second local origin that
    sends CORS headers, standing in for jsDelivr: no internet here). With ``tamper`` = a file
    name, that file is served with one byte changed. Returns the list of CDN URLs served."""
    served: list[str] = []

    def handler(route):
        name = route.request.url[len(CDN_PYODIDE):].split("?")[0]
        resp = route.fetch(url=f"{origin}runtime/{name}")
        body = resp.body()
        if name == tamper:
            body = bytes([body[0] ^ 0x01]) + body[1:]
        served.append(route.request.url)
        route.fulfill(status=resp.status, headers=resp.headers, body=body)

    context.route(CDN_PYODIDE + "**", handler)
    return served


def wait_js(pg, expression: str, timeout: int = 30_000, interval_s: float = 0.05):
    """Like ``page.wait_for_function(expression)``, for pages under index.html's CSP: Playwright
    polls its predicate through eval, which the CSP blocks (script-src has no 'unsafe-eval'),
    so poll from here with ``page.evaluate`` (a DevTools call the CSP does not govern)."""
    import time
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = pg.evaluate(f"!!({expression})")
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} ms for: {expression}")
        time.sleep(interval_s)


#: The page has drawn the result of its newest compute (index.html, app.js's counters).
PAGE_SETTLED = ("window.__kvcalc && __kvcalc.plotly && __kvcalc.renderedSeq > 0 "
                "&& __kvcalc.renderedSeq === __kvcalc.requested")


def open_page(ctx, url: str, timeout: int = START_TIMEOUT_MS):
    """A new page of ``ctx`` at ``url``, waited until its first result is drawn; on failure the
    test fails with the page's last console lines and status (kept in ``pg.console_lines``)."""
    import pytest
    pg = ctx.new_page()
    pg.console_lines = []
    pg.on("console", lambda m: pg.console_lines.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: pg.console_lines.append(f"pageerror: {e}"))
    pg.goto(url)
    try:
        wait_js(pg, PAGE_SETTLED, timeout=timeout)
    except Exception:  # noqa: BLE001 - say why
        pytest.fail("the page never showed a result:\n" + "\n".join(pg.console_lines[-30:]) +
                    "\nstatus: " + pg.inner_text("#status"))
    return pg


HUB = "https://huggingface.co/"


def is_local(url: str) -> bool:
    """A URL of the test server (127.0.0.1) or of the page itself (data:, blob:, about:, file:)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about", "file") or parts.hostname == "127.0.0.1"


def guarded_context(browser, hub: bool = False, **options):
    """Yield a new browser context (``options`` go to ``new_context``) whose requests off
    127.0.0.1 are aborted: every URL asked for is in ``ctx.requests``, the refused ones in
    ``ctx.blocked``. With ``hub``, the Hugging Face Hub is answered from ``ctx.hub``
    ({url: (status, body, headers)} or "offline"; else 404 EntryNotFound) and its requests are
    in ``ctx.hub_requests`` (never the network). Closed after. For fixtures: ``yield from``."""
    ctx = browser.new_context(**options)
    ctx.requests, ctx.blocked, ctx.hub, ctx.hub_requests = [], [], {}, []

    def guard(route):
        url = route.request.url
        ctx.requests.append(url)
        if is_local(url):
            return route.fallback()
        if hub and url.startswith(HUB):
            ctx.hub_requests.append(url)
            answer = ctx.hub.get(url, (404, '{"error": "Entry not found"}', {"x-error-code": "EntryNotFound"}))
            if answer == "offline":
                return route.abort("internetdisconnected")
            status, body, headers = answer
            return route.fulfill(status=status, body=body, headers={"access-control-allow-origin": "*",
                                                                     "content-type": "application/json", **headers})
        ctx.blocked.append(url)
        return route.abort("blockedbyclient")

    ctx.route("**/*", guard)
    try:
        yield ctx
    finally:
        ctx.close()


def page_at(ctx, url: str, clear_storage: bool = False):
    """Yield ``open_page(ctx, url)`` (first result drawn), localStorage emptied if asked; closed
    after. For fixtures: ``yield from``."""
    pg = open_page(ctx, url)
    if clear_storage:
        pg.evaluate("localStorage.clear()")
    try:
        yield pg
    finally:
        pg.close()


# ---------------------------------------------------------------- dragging a slider
# (test_drag_preview.py, test_drag_draw.py)

SLIDER = '#form [data-param="{key}"][data-role="slider"]'
# Moves the slider to `pos` with one `input` event (what a pointer drag sends).
DRAG = """([sel, pos]) => { const s = document.querySelector(sel); s.value = String(pos);
  s.dispatchEvent(new Event("input", {bubbles: true})); }"""
RELEASE = """(sel) => document.querySelector(sel).dispatchEvent(new Event("change", {bubbles: true}))"""


def drag_page(browser, server):
    """A 1400 x 1000 page whose slider drags stay previews until released: yields the page."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = open_page(ctx, server)
    pg.evaluate("localStorage.clear()")
    pg.evaluate("__kvcalc.previewIdleMs = 600000")   # only the release asks for the full compute
    yield pg
    ctx.close()
