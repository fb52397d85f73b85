"""Scenarios, "how the number is computed" and the recommender card in the page (issue 9)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 120_000
pytestmark = pytest.mark.browser
SCENARIOS = json.loads((ROOT / "py/kvcalc/scenarios.json").read_text())["scenarios"]


def settle(pg, before: int):
    wait_js(pg, f"__kvcalc.renderCount > {before} && " + SETTLED, timeout=TIMEOUT_MS)


def test_each_scenario_gives_its_documented_inputs(ctx, server):
    """Picking a scenario puts kvcalc.scenarios' values in the inputs and Python's result says
    which scenario it computed; the explanation paragraph follows the choice."""
    pg = open_page(ctx, f"{server}index.html?lang=en")
    for name, preset in SCENARIOS.items():
        n = pg.evaluate("__kvcalc.renderCount")
        pg.select_option('[data-param="scenario"]', name)
        settle(pg, n)
        values = pg.evaluate("__kvcalc.state.values")
        for part, fields in preset.items():
            for k, v in fields.items():
                assert values[f"{part}.{k}"] == v, (name, k, values[f"{part}.{k}"], v)
        assert pg.evaluate("__kvcalc.lastRequest.scenario") == name
        assert pg.evaluate("__kvcalc.result.scenario") == name
        assert pg.get_attribute("#scenario-help", "data-scenario") == name
        assert len(pg.inner_text("#scenario-help")) > 80
        assert f"scenario={name}" in pg.url
    # the recommender card: Python's numbers (25.20 GiB without sharing, 1.03 GiB with, by hand
    # in tests/test_scenarios.py for Llama-3.1-8B) as the page shows them
    assert pg.is_visible("#recommender-card")
    assert pg.inner_text('[data-rec="kv_gib_per_gpu_without_sharing"]') == "25.20 GiB"
    assert pg.inner_text('[data-rec="kv_gib_per_gpu_with_sharing"]') == "1.03 GiB"
    wait_js(pg, "document.querySelector('#chart-recommender .main-svg')", timeout=TIMEOUT_MS)
    n = pg.evaluate("__kvcalc.renderCount")
    pg.select_option('[data-param="scenario"]', "chat")
    settle(pg, n)
    assert not pg.is_visible("#recommender-card")


def test_how_the_number_is_computed_shows_the_substituted_formula(ctx, server):
    """The panel's seed line is the user's own values: defaults with 450,352 tokens of capacity
    (Llama-3.1-8B on H100): cached = 450352 / (5 x 500) = 180.1, active = 1 x 5 x 60 = 300."""
    pg = open_page(ctx, f"{server}index.html?lang=en")
    pg.click("#how-computed > summary")
    text = pg.inner_text("#explain-body")
    assert "= 300" in text and "450,352 ÷ (5 × 500) = 180" in text
    seed = pg.evaluate("__kvcalc.result.seed_token_hit_rate")
    assert pg.get_attribute('#explain-body [data-result="seed_token_hit_rate"]', "data-value") == repr(seed) or \
        float(pg.get_attribute('#explain-body [data-result="seed_token_hit_rate"]', "data-value")) == seed
    assert "Assumptions" in text and "Validity" in text
    # the headline card no longer shows the legacy formula or Che; each result has a help text
    head = pg.inner_text(".headline")
    assert "Legacy" not in head and "Che" not in head
    hints = pg.evaluate("[...document.querySelectorAll('#results .card dt')].filter(dt => dt.closest('#explain-body') === null)"
                        ".map(dt => !!dt.querySelector('.hint[data-tip]:not([data-tip=\"\"])'))")   # js/a11y.js shows data-tip
    assert hints and all(hints)
    # in Chinese the panel is Chinese and the numbers are the same
    pg.select_option("#lang", "zh-CN")
    wait_js(pg, "document.documentElement.lang === 'zh-CN'", timeout=TIMEOUT_MS)
    wait_js(pg, "document.querySelector('#explain-body').innerText.includes('可缓存对话数')", timeout=TIMEOUT_MS)
    assert "450,352" in pg.inner_text("#explain-body")


def test_trace_fit_goes_to_the_calculator_and_its_curve_to_csv(browser, server):
    """The trace tab's fit becomes the calculator's traffic inputs ("use this fit"); its exact
    curve downloads as the CSV text Python wrote (kvcalc.export.trace_curve_csv)."""
    import csv
    import io
    from kvcalc.api import trace
    c = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US", accept_downloads=True)
    try:
        pg = open_page(c, f"{server}index.html?lang=en")
        pg.click('[role="tab"][data-tab="trace"]')
        wait_js(pg, "document.querySelector('button[data-sample=conversation]')", timeout=TIMEOUT_MS)
        pg.click("button[data-sample=conversation]")
        wait_js(pg, "__kvcalc.traceTab && __kvcalc.traceTab.result && !document.querySelector('#trace-fit-bar').hidden",
                timeout=TIMEOUT_MS)
        res = pg.evaluate("__kvcalc.traceTab.result")
        with pg.expect_download(timeout=TIMEOUT_MS) as d:
            pg.click("#export-csv")
        text = Path(d.value.path()).read_text()
        assert text == res["curve_csv"]
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [float(r["token_hit_rate"]) for r in rows] == res["curve"]["token_hit_rate"]
        ref = trace({"sample": "conversation"})
        fit = ref["fit"]["workload"]
        n = pg.evaluate("__kvcalc.renderCount")
        pg.click("#use-fit")
        settle(pg, n)
        values = pg.evaluate("__kvcalc.state.values")
        assert values["workload.gap_mean_s"] == pytest.approx(fit["gap_mean_s"], rel=1e-12)
        assert values["workload.conversation_rate_per_s"] == pytest.approx(fit["conversation_rate_per_s"], rel=1e-12)
        assert values["workload.user_tokens_per_turn"] == round(fit["user_tokens_per_turn"])
        assert values["workload.gap_distribution"] == fit["gap_distribution"]
        assert pg.evaluate("__kvcalc.tab") == "curve"
    finally:
        c.close()
