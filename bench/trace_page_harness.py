"""The trace tab standalone in headless Chromium, shared by bench_trace_page.py and
bench_trace_page_upload.py (imported by name: a script's own folder is on sys.path).

:func:`open_trace_harness` builds the local runtime/ if needed, serves the repository on
127.0.0.1, opens tests/browser/trace_harness.html with a query in Chromium (every request not
to 127.0.0.1 is refused and listed) and waits until the tab is mounted and its worker ready
(memory context computed unless ?memory=none). :func:`wait_trace_state` waits for the tab's state to reach one of a few.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HARNESS = "tests/browser/trace_harness.html"
STATE = "document.getElementById('trace-root').dataset.state"


class HarnessError(RuntimeError):
    """The runtime could not be built or the tab's worker failed to start."""


@contextmanager
def open_trace_harness(query: str = ""):
    """Yield ``(page, blocked, ready_s)``: the mounted trace tab, the list of refused requests
    (filled as the run goes) and the seconds from opening the page to the tab being ready."""
    from playwright.sync_api import sync_playwright

    if subprocess.run(["bash", str(ROOT / "scripts" / "build_runtime.sh"), "--quiet"]).returncode != 0:
        raise HarnessError("scripts/build_runtime.sh failed")
    srv = serve.serve_in_thread(root=ROOT, port=0)
    blocked: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                ctx = browser.new_context()

                def guard(route):
                    u = urlsplit(route.request.url)
                    if u.scheme in ("data", "blob") or u.hostname == "127.0.0.1":
                        route.fallback()
                    else:
                        blocked.append(route.request.url)
                        route.abort("blockedbyclient")

                ctx.route("**/*", guard)
                page = ctx.new_page()
                t_open = time.perf_counter()
                page.goto(f"http://127.0.0.1:{srv.server_port}/{HARNESS}{query}")
                # mounted and the worker ready: with ?memory=none the tab mounts before the worker has
                # started, and a file chosen then waits for the start-up (10-17 s on a busy machine),
                # which is not the analysis being timed
                page.wait_for_function("window.__trace && ((window.__trace.mounted && window.__trace.ready)"
                                       " || window.__trace.fatal)", timeout=120_000)
                if page.evaluate("__trace.fatal"):
                    raise HarnessError(f"worker failed: {page.evaluate('__trace.fatal')}")
                yield page, blocked, time.perf_counter() - t_open
            finally:
                browser.close()
    finally:
        srv.shutdown()
        srv.server_close()


def wait_trace_state(page, states: tuple[str, ...], timeout_s: float = 120, polling_ms: int | None = None) -> str:
    """Wait until the tab's state is one of ``states``; return it."""
    options = {"timeout": timeout_s * 1000, **({"polling": polling_ms} if polling_ms else {})}
    page.wait_for_function(f"{list(states)!r}.includes({STATE})", **options)
    return page.evaluate(STATE)
