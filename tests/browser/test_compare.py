"""Compare A and B (issue 9): both setups' headline numbers and curves, in the URL, after a reload."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402

TIMEOUT_MS = 120_000
pytestmark = pytest.mark.browser


def cells(pg) -> dict:
    return pg.evaluate("""Object.fromEntries([...document.querySelectorAll('#compare-card td[data-cmp]')]
        .map(td => [td.dataset.cmp, {text: td.innerText, value: td.dataset.value === undefined ? null : Number(td.dataset.value)}]))""")


def test_pin_change_compare_reload(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    a_hit = pg.evaluate("__kvcalc.result.token_hit_rate")
    assert pg.is_hidden("#compare-card table")
    pg.click("#pin-a")
    wait_js(pg, "__kvcalc.result.compare && " + SETTLED, timeout=TIMEOUT_MS)
    pg.fill('[data-param="workload.gap_mean_s"][data-role="box"]', "240")
    wait_js(pg, "__kvcalc.result.compare && __kvcalc.lastRequest.workload.gap_mean_s === 240 && " + SETTLED,
            timeout=TIMEOUT_MS)
    b_hit = pg.evaluate("__kvcalc.result.token_hit_rate")
    assert b_hit < a_hit                       # longer gaps: fewer hits
    c = cells(pg)
    assert c["a:token_hit_rate"]["value"] == a_hit
    assert c["b:token_hit_rate"]["value"] == b_hit
    assert c["b:token_hit_rate"]["text"] == pg.inner_text(".big-value")
    # the difference of rates in percentage points, as Python sends it
    assert c["d:token_hit_rate"]["value"] == pg.evaluate("__kvcalc.result.compare.difference_pct_points.token_hit_rate")
    assert c["d:token_hit_rate"]["value"] == pytest.approx(100 * (b_hit - a_hit), abs=1e-12)
    assert c["d:token_hit_rate"]["text"] == f"{(b_hit - a_hit) * 100:.1f} pp".replace("-", "-")
    names = pg.evaluate("document.querySelector('#chart-curve').data.map(d => d.name)")
    assert "setup A" in names and any("curve" in n for n in names)
    # both setups are in the address bar: B as parameters, A as ?a=<A's parameters>
    q = parse_qs(urlparse(pg.url).query)
    assert q["workload.gap_mean_s"] == ["240"]
    assert parse_qs(q["a"][0])["workload.gap_mean_s"] == ["60"]
    # a reload (and so a shared link) shows the same comparison
    url = pg.url
    pg.close()
    pg = open_page(ctx, url)
    wait_js(pg, "__kvcalc.result.compare", timeout=TIMEOUT_MS)
    c2 = cells(pg)
    assert c2["a:token_hit_rate"]["value"] == a_hit and c2["b:token_hit_rate"]["value"] == b_hit
    assert pg.is_visible("#compare-card table") and pg.is_visible("#clear-a")
    # clearing A removes it from the page and the link
    pg.click("#clear-a")
    wait_js(pg, "!__kvcalc.result.compare && " + SETTLED, timeout=TIMEOUT_MS)
    assert pg.is_hidden("#compare-card table")
    assert "a" not in parse_qs(urlparse(pg.url).query)


def test_pinning_a_with_an_engine_log_pasted_keeps_computing(ctx, server):
    """Review finding: A's request was built with the pasted engine log, which compare_with does
    not take, so after "Pin as A" every compute failed ("compare_with.engine_log: unknown key")."""
    pg = open_page(ctx, f"{server}index.html?lang=en")
    log = "INFO 01-01 00:00:00 [gpu_worker.py:1] Available KV cache memory: 54.98 GiB\n"
    pg.fill('textarea[data-param="engine_log"]', log)
    wait_js(pg, "__kvcalc.lastRequest.engine_log && " + SETTLED, timeout=TIMEOUT_MS)
    pg.click("#pin-a")
    wait_js(pg, "__kvcalc.result.compare && " + SETTLED, timeout=TIMEOUT_MS)
    assert pg.evaluate("__kvcalc.lastRequest.compare_with.engine_log") is None
    assert pg.evaluate("__kvcalc.result.compare.a.token_hit_rate") == pg.evaluate("__kvcalc.result.token_hit_rate")
