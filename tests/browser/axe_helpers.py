"""axe-core in the browser tests (tests/browser/test_a11y.py, and any page test that wants it).

axe-core is a test-only tool: package.json pins it (exact version, package-lock.json holds its
integrity hash) and scripts/setup.sh installs it into node_modules/ with ``npm ci``. The page
never loads it. Under index.html's CSP an inline script is refused (so Playwright's
``add_script_tag(path=...)``, which inlines the file, is blocked); the file is instead served at
a same-origin test-only URL by a route of the browser context, which script-src 'self' allows,
so axe runs under the page's real CSP.

Without node_modules/axe-core the tests skip locally and FAIL in CI (CI=true): CI installs it
through scripts/setup.sh, so a missing copy there is a broken set-up, not an optional tool.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from browser_helpers import ROOT

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_URL_PATH = "__test-only__/axe.min.js"   # answered by the route below, never by the server

# WCAG 2.x A and AA rules plus axe's best practices.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                      "wcag22aa", "best-practice"]},
               "resultTypes": ["violations"]}


def axe_source_path() -> Path:
    if AXE_JS.exists():
        return AXE_JS
    msg = ("node_modules/axe-core is missing: run `npm ci` (scripts/setup.sh does) to install "
           "the pinned axe-core of package-lock.json")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def route_axe(context, base: str) -> None:
    """Serve axe-core at ``base`` + AXE_URL_PATH for every page of ``context``."""
    body = axe_source_path().read_bytes()
    context.route(base + AXE_URL_PATH, lambda route: route.fulfill(
        status=200, body=body, content_type="text/javascript"))


def inject_axe(pg, base: str) -> None:
    """Load axe into ``pg`` (its context must have ``route_axe``) as a same-origin script."""
    if not pg.evaluate("typeof window.axe === 'object'"):
        pg.add_script_tag(url=base + AXE_URL_PATH)
    assert pg.evaluate("typeof window.axe === 'object' && typeof axe.run === 'function'"), \
        "axe-core did not load under the page's CSP"


def axe_violations(pg, context_selector: str | None = None) -> list[dict]:
    """axe's violations on ``pg`` as [{id, impact, help, nodes: [{target, summary}]}]."""
    script = """async ([sel, opts]) => {
      const r = await axe.run(sel ? document.querySelector(sel) : document, opts);
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: (n.failureSummary || "").slice(0, 300) })) }));
    }"""
    return pg.evaluate(script, [context_selector, AXE_OPTIONS])


def describe(violations: list[dict], limit: int = 6) -> str:
    out = []
    for v in violations:
        out.append(f"{v['id']} ({v['impact']}, {len(v['nodes'])} nodes): {v['help']}")
        for n in v["nodes"][:limit]:
            out.append(f"    {n['target']}: {n['summary']}")
    return "\n".join(out) or json.dumps(violations)
