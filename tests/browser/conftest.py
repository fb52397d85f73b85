"""Fixtures for the browser tests: a local static server, headless Chromium, a guarded page.

* ``server``: the repo root served by scripts/serve.py on a free port of 127.0.0.1
  (the same module as ``python scripts/serve.py``); builds runtime/ first when missing.
* ``cors_server``: a second origin (another port) serving the repo with CORS headers,
  to stand in for the CDN.
* ``browser``: Debian's Chromium (/usr/bin/chromium, or $KVCALC_CHROMIUM) through the PyPI
  ``playwright`` package; ``playwright install`` is neither needed nor possible here.
* ``page``: a page in a fresh context whose every request not to 127.0.0.1 is aborted
  and recorded in ``page.blocked`` (covers the worker's requests too), so a forgotten CDN
  URL fails fast instead of hanging.
* ``stub_api``: serves tests/browser/stub_api.py as kvcalc.api (protocol tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from browser_helpers import ROOT, guarded_context  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import serve  # noqa: E402

CHROMIUM = os.environ.get("KVCALC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def pytest_configure(config):
    config.addinivalue_line("markers", "nobrowser: a test in tests/browser/ that needs no browser")


def pytest_collection_modifyitems(config, items):
    # Everything in this folder drives a browser unless it says otherwise.
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/") \
                and "nobrowser" not in item.keywords:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def runtime_dir() -> Path:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_runtime.sh"), "--quiet"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"scripts/build_runtime.sh failed:\n{proc.stdout}\n{proc.stderr}")
    return ROOT / "runtime"


@pytest.fixture(scope="session")
def server(runtime_dir):
    srv = serve.serve_in_thread(root=ROOT, port=0)
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def cors_server(runtime_dir):
    srv = serve.serve_in_thread(root=ROOT, port=0, cors=True)
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def browser():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        # In CI a missing playwright must fail the run, not skip every browser test.
        try:
            import playwright.sync_api as sync_api
        except ImportError as exc:
            pytest.fail(f"CI is set and playwright cannot be imported ({exc}): pip install -e .[test]")
    else:
        sync_api = pytest.importorskip("playwright.sync_api",
                                       reason="pip install -e .[test] (the playwright package)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/setup.sh)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    """A bare context (the harness tests): requests off 127.0.0.1 aborted and listed in .blocked."""
    yield from guarded_context(browser)


@pytest.fixture
def ctx(browser):
    """A fresh context per test for the page (1400 x 1000, en-US, downloads accepted), requests
    off 127.0.0.1 aborted; a module that keeps one page for all its tests defines its own
    module-scoped ctx with guarded_context."""
    yield from guarded_context(browser, viewport={"width": 1400, "height": 1000}, locale="en-US",
                               accept_downloads=True)


@pytest.fixture
def page(context):
    pg = context.new_page()
    pg.blocked = context.blocked
    pg.console_lines = []
    pg.on("console", lambda m: pg.console_lines.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: pg.console_lines.append(f"pageerror: {e}"))
    yield pg


@pytest.fixture
def stub_api(context):
    """Serve tests/browser/stub_api.py as py/kvcalc/api.py (and list it in the manifest)."""
    stub = (ROOT / "tests" / "browser" / "stub_api.py").read_text()

    def manifest(route):
        resp = route.fetch()
        data = resp.json()
        if "py/kvcalc/api.py" not in data["files"]:
            data["files"].append("py/kvcalc/api.py")
        route.fulfill(response=resp, body=json.dumps(data))

    context.route("**/py/kvcalc/MANIFEST.json", manifest)
    context.route("**/py/kvcalc/api.py",
                  lambda route: route.fulfill(status=200, body=stub,
                                              content_type="text/x-python"))
    return stub
