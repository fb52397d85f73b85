"""The trace tab draws the fitted model only where Python says it holds, says why, says
"every request counted" when there is no warm-up and "all n reuses" when none has a zero gap
(tests/browser/trace_harness.html); on a phone its legend entries fit the chart.

Expected values: kvcalc.trace.api.trace_analyze in CPython (the boundary itself is derived by
hand in tests/test_trace_model_domain.py). Before: the model's curve started at one block (flat
at 41 % on the synthetic sample, where the replay gives 0-8 %) and the counting rule read "the
first 0 % of requests replayed but not counted".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_trace_tab import STATE, TIMEOUT_MS, no_request_left_localhost, open_tab, wait_done  # noqa: E402

from kvcalc.trace.api import trace_analyze  # noqa: E402

pytestmark = pytest.mark.browser
FIG = "document.querySelector('[data-figure=trace-curve]')"


def model_trace(page) -> dict:
    return page.evaluate(f"(() => {{ const t = {FIG}.data[2]; return {{name: t.name, x: Array.from(t.x), y: Array.from(t.y)}}; }})()")


@pytest.mark.parametrize("lang,domain_words,counting_words,not_words", [
    ("en", ["The model's curve starts at 169,472 tokens", "17.48 requests in flight", "6,144-token shared prompt"],
     ["every request counted (no warm-up)"], ["first 0", "0.0 %"]),
    ("zh-CN", ["模型曲线从 169,472 个 token 开始", "17.48 个进行中的请求"], ["所有请求都计入（无预热）"], ["前 0", "0.0 %"]),
])
def test_synthetic_sample_model_starts_at_python_boundary(page, server, lang, domain_words, counting_words, not_words):
    open_tab(page, server, f"?lang={lang}&memory=none")
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    page.select_option("select[name=capacity_axis]", "tokens")
    ref = trace_analyze({"sample": "synthetic", "model_curve": True})
    m = ref["model_curve"]
    assert m["valid_from_capacity_tokens"] == 169472                   # the figure the texts above quote
    caps = ref["curve"]["capacity_tokens"]
    want = [i for i, c in enumerate(caps) if c > 0 and m["in_domain"][i]]
    got = model_trace(page)
    assert got["x"] == pytest.approx([caps[i] for i in want], rel=1e-12)
    assert got["y"] == pytest.approx([m["token_hit_rate"][i] for i in want], rel=1e-9)
    assert min(got["x"]) >= m["valid_from_capacity_tokens"]
    note = page.locator('[data-result="trace.model_curve.domain"]')
    assert float(note.get_attribute("data-value")) == m["valid_from_capacity_tokens"]
    for w in domain_words:
        assert w in note.inner_text(), (w, note.inner_text())
    rule = page.inner_text('[data-result="trace.counting_rule"]')
    for w in counting_words:
        assert w in rule, rule
    for w in not_words:
        assert w not in rule, rule
    # no reuse at the same timestamp: the gaps note says "all n reuses", not "0 of n ... not shown"
    gaps = ref["stats"]["reuse_gap_s"]
    assert gaps["n_zero"] == 0
    text = page.inner_text("#trace-root")
    n = f"{gaps['n']:,}"
    assert (f"all {n} reuses" if lang == "en" else f"全部 {n} 次复用") in text
    assert f"0 of {n}" not in text and f"{n} 次复用中有 0 次" not in text
    no_request_left_localhost(page)


def test_counting_rule_with_warmup_keeps_its_share(page, server):
    open_tab(page, server, "?lang=en&memory=none&trace.warmup_fraction=0.25")
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    rule = page.inner_text('[data-result="trace.counting_rule"]')
    assert "the first 25.0 % of requests replayed but not counted" in rule, rule
    assert page.evaluate(STATE) == "done"


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_phone_legend_entries_fit_the_chart(browser, server, lang):
    """390 px (a phone): every legend entry of the trace curve, the long fleet one included
    ("4 instances, round robin: token hit rate at the capacity per instance"), ends inside the
    chart; it was cut at the right edge before it was broken into lines."""
    from browser_helpers import open_page, wait_js
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = open_page(ctx, f"{server}index.html?lang={lang}&tab=trace&trace.cluster.instances=4"
                        "&trace.cluster.routing=round_robin&trace.sampling=exact")
    wait_js(pg, "document.querySelector('#trace-root button[data-sample=synthetic]')", timeout=TIMEOUT_MS)
    pg.click("#trace-root button[data-sample=synthetic]")
    wait_js(pg, "document.getElementById('trace-root').dataset.state === 'done'", timeout=TIMEOUT_MS)
    got = pg.evaluate("""() => {
      const div = document.querySelector('[data-figure=trace-curve]');
      const right = div.getBoundingClientRect().right;
      const texts = [...div.querySelectorAll('.legend text.legendtext')];
      return { right, n: texts.length, past: texts.filter((e) => e.getBoundingClientRect().right > right + 0.5)
                                                  .map((e) => e.textContent) };
    }""")
    ctx.close()
    assert got["n"] >= 6, got                    # token, block, model, fleet, ceiling, operating point
    assert got["past"] == [], got
