"""The page's prose numbers are Python's (issue 10): the legacy formula's error, the sample
traces' sizes, the number of simulated points and the scenarios' sizes, in both languages.
The Python side and the catalogue scan are tests/test_prose_numbers.py."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402

from kvcalc.explain import VALIDATION_SUMMARY  # noqa: E402
from kvcalc.figure_data import SIMULATION_POINTS  # noqa: E402
from kvcalc.limits import LIMITS  # noqa: E402
from kvcalc.trace.sample_traces import describe_samples  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 120_000
pytestmark = pytest.mark.browser
SCENARIOS = json.loads((ROOT / "py/kvcalc/scenarios.json").read_text())["scenarios"]


def test_prose_numbers_are_pythons(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    # the Simulate button: as many points as Python chose
    assert pg.evaluate("__kvcalc.result.figures.curve.simulation_capacity_tokens.length") == SIMULATION_POINTS
    assert pg.inner_text("#simulate") == f"Simulate {SIMULATION_POINTS} points"
    # the legacy formula's mean error, rounded half up as Intl does
    seed_pp = math.floor(VALIDATION_SUMMARY["seed"]["mean_error_pp"] + 0.5)
    pg.click("#how-computed > summary")
    assert f"off by {seed_pp} percentage points on average" in pg.inner_text("#explain-body")
    g = VALIDATION_SUMMARY["grid"]
    assert (f"Checked on {g['points']} workloads: {g['turns_mean_min']:g} to {g['turns_mean_max']:g} turns, gaps of "
            f"{g['gap_mean_s_min']:g} s to {g['gap_mean_s_max']:g} s (exponential, fixed, lognormal), "
            f"{g['conversation_rate_per_s_min']:g} to {g['conversation_rate_per_s_max']:g} conversations per second, "
            f"blocks of {g['block_size_tokens_min']} to {g['block_size_tokens_max']} tokens, caches from "
            f"{g['pressure_gaps_min']:g} to {g['pressure_gaps_max']:g} gaps of traffic") in pg.inner_text("#explain-body")
    # a scenario's sizes are its preset's
    n = pg.evaluate("__kvcalc.renderCount")
    pg.select_option('[data-param="scenario"]', "coding_agent")
    wait_js(pg, f"__kvcalc.renderCount > {n} && " + SETTLED, timeout=TIMEOUT_MS)
    w = SCENARIOS["coding_agent"]["workload"]
    help_text = pg.inner_text("#scenario-help")
    assert f"({int(w['system_prompt_tokens']):,} tokens)" in help_text and f"many turns ({int(w['turns_mean'])})" in help_text
    # the sample buttons' hints: Python's request counts and spans
    pg.click('[role="tab"][data-tab="trace"]')
    wait_js(pg, "document.querySelector('button[data-sample=conversation][title]')", timeout=TIMEOUT_MS)
    for name, info in describe_samples().items():
        title = pg.get_attribute(f"button[data-sample={name}]", "title")
        assert title.startswith(f"{info['requests']:,} requests, {info['duration_minutes']} min"), title
    assert "{" not in pg.inner_text("body")
    auto = pg.evaluate("[...document.querySelectorAll('select[name=\"trace.sampling\"] option')].find(o => o.value === 'auto').textContent")
    # the page's own setting (the page_default of Python's limits row), not typed in the catalogue
    mib = LIMITS["trace.sampling_auto_above_mib"].page_default
    assert auto == f"auto (exact up to {mib:,} MiB)", auto
    # Chinese: the same numbers through the zh-CN catalogue
    pg.select_option("#lang", "zh-CN")
    wait_js(pg, "document.documentElement.lang === 'zh-CN'", timeout=TIMEOUT_MS)
    conv = describe_samples()["conversation"]
    wait_js(pg, "document.querySelector('button[data-sample=conversation]').title.includes('个请求')", timeout=TIMEOUT_MS)
    assert pg.get_attribute("button[data-sample=conversation]", "title") == \
        f"{conv['requests']:,} 个请求，聊天服务的 {conv['duration_minutes']} 分钟"
    assert pg.inner_text("#simulate") == f"模拟 {SIMULATION_POINTS} 个点"
    assert f"平均偏差 {seed_pp} 个百分点" in pg.inner_text("#explain-body")
