"""The calculator page (index.html, app.js, js/*) in headless Chromium.

The numbers on the page must equal kvcalc.api.compute() run here in CPython for the same
request; edits recompute and redraw; a shared URL restores state and result; bad input shows
an inline message, keeps the typed text and marks the results stale; untrusted text (URL,
pasted config.json) never becomes HTML; nothing leaves 127.0.0.1; the simulator's points are
drawn on the curve. One page load serves most tests (module-scoped page), to keep the suite
short.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.api import compute, simulate  # noqa: E402
from kvcalc.figure_data import SIMULATION_POINTS  # noqa: E402
from browser_helpers import PAGE_SETTLED as SETTLED, guarded_context, is_local, open_page, page_at, wait_js  # noqa: E402  (index.html's CSP blocks wait_for_function)

TIMEOUT_MS = 90_000
XSS_PAYLOAD = '<img src=x onerror="window.__xss=1">'

DEFAULT_REQUEST = {
    "model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "tensor_parallel": 1,
    "gpu_memory_utilization": 0.9, "kv_cache_dtype": "auto",
    "workload": {"conversation_rate_per_s": 1, "turns_mean": 5, "turns_distribution": "geometric",
                 "gap_mean_s": 60, "gap_distribution": "exponential", "user_tokens_per_turn": 200,
                 "output_tokens_per_turn": 300, "system_prompt_tokens": 1000, "service_time_s": 2},
    "cache": {"block_size_tokens": 16, "eviction": "lru"},
    "hit_model": "refined", "target_token_hit_rate": 0.8, "tornado_change_fraction": 0.2, "seed": 1, "scenario": "chat",
    "figures": ["curve", "kv_context"],   # the model card's KV-vs-context chart (js/model-panel.js)
}


@pytest.fixture(scope="module")
def ctx(browser):
    yield from guarded_context(browser, viewport={"width": 1400, "height": 1000})


@pytest.fixture(scope="module")
def page(ctx, server):
    yield from page_at(ctx, server, clear_storage=True)


def settle(pg, before: int | None = None):
    """Wait until the newest compute asked for is on screen (numbers and chart)."""
    if before is not None:
        wait_js(pg, f"__kvcalc.requested > {before}", timeout=10_000)
    wait_js(pg, SETTLED, timeout=30_000)


def box(key: str) -> str:
    return f'#form [data-param="{key}"][data-role="box"]'


def set_box(pg, key: str, text: str, wait: bool = True):
    before = pg.evaluate("__kvcalc.requested")
    pg.fill(box(key), text)
    if wait:
        settle(pg, before)


def get_path(obj, path):
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part)
    return obj


def displayed(pg) -> dict:
    """{result key: (raw number, text)} of every number shown in the results."""
    return pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#results [data-result]')]
        .filter((n) => n.dataset.value !== undefined)
        .map((n) => [n.dataset.result, [Number(n.dataset.value), n.textContent]]))""")


def assert_matches_cpython(pg) -> dict:
    request = pg.evaluate("__kvcalc.resultRequest")
    ref = compute(request)
    shown = displayed(pg)
    assert len(shown) >= 20, shown
    for key, (value, text) in shown.items():
        expected = get_path(ref, key)
        assert expected is not None, key
        # Pyodide's numpy 2.0.2 (wasm32) vs the host's numpy: equal to float noise
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), key
    # formatting only: the headline shows Python's fraction as a percentage with one decimal
    value, text = shown["token_hit_rate"]
    assert text == f"{100 * ref['token_hit_rate']:.1f} %"
    assert shown["kv_bytes_per_token"][1] == f"{ref['kv_bytes_per_token']:,.0f}"
    assert shown["inverse.kv_gib_per_gpu"][1] == f"{ref['inverse']['kv_gib_per_gpu']:,.2f} GiB"
    return ref


def curve_y(pg):
    return pg.evaluate("document.getElementById('chart-curve').data[0].y")


@pytest.mark.browser
def test_first_result_equals_cpython(page):
    request = page.evaluate("__kvcalc.resultRequest")
    assert request == DEFAULT_REQUEST
    ref = assert_matches_cpython(page)
    assert page.get_attribute("#results", "data-stale") == "false"
    # the chart is drawn from the same result
    assert curve_y(page) == pytest.approx(ref["figures"]["curve"]["token_hit_rate"], rel=1e-9)
    # every control carries its request key; labels are bound to the boxes
    keys = page.evaluate("[...new Set([...document.querySelectorAll('#form [data-param]')].map(n => n.dataset.param))]")
    assert "workload.conversation_rate_per_s" in keys and "cache.eviction" in keys and "seed" in keys
    assert page.evaluate("[...document.querySelectorAll('#form input[data-role=box], #form select, #form textarea')]"
                         ".every(n => n.labels && n.labels.length === 1)")
    # the start-up bar says ready
    assert page.get_attribute("#status", "data-state") == "ready"


@pytest.mark.browser
def test_edit_recomputes_numbers_and_chart(page):
    before_rate = page.get_attribute('#results [data-result="token_hit_rate"]', "data-value")
    before_curve = curve_y(page)
    set_box(page, "workload.gap_mean_s", "120")
    assert page.evaluate("__kvcalc.resultRequest.workload.gap_mean_s") == 120
    after_rate = page.get_attribute('#results [data-result="token_hit_rate"]', "data-value")
    assert float(after_rate) < float(before_rate)       # longer gaps: fewer hits
    assert curve_y(page) != before_curve
    assert_matches_cpython(page)
    # the slider beside the box moved with it, and dragging it (keyboard) recomputes
    slider = '#form [data-param="workload.conversation_rate_per_s"][data-role="slider"]'
    n = page.evaluate("__kvcalc.requested")
    page.focus(slider)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    settle(page, n)
    rate = page.evaluate("__kvcalc.resultRequest.workload.conversation_rate_per_s")
    assert rate > 1
    assert page.input_value(box("workload.conversation_rate_per_s")) == str(rate) or \
        float(page.input_value(box("workload.conversation_rate_per_s"))) == rate
    assert_matches_cpython(page)
    # the URL follows
    q = parse_qs(urlsplit(page.url).query)
    assert q["workload.gap_mean_s"] == ["120"]
    set_box(page, "workload.conversation_rate_per_s", "1")
    set_box(page, "workload.gap_mean_s", "60")


@pytest.mark.browser
def test_other_tabs_draw_their_figures(page):
    for tab, key in (("sweeps", "sweeps"), ("tornado", "tornado"), ("heatmap", "heatmap")):
        n = page.evaluate("__kvcalc.requested")
        page.click(f'[role="tab"][data-tab="{tab}"]')
        settle(page, n)
        assert key in page.evaluate("__kvcalc.resultRequest.figures")
        wait_js(page, f"document.querySelector('#chart-{tab} .main-svg')")
        ref = compute(page.evaluate("__kvcalc.resultRequest"))
        if tab == "tornado":
            xs = page.evaluate("document.getElementById('chart-tornado').data[0].x")
            lows = [r["low_token_hit_rate"] for r in ref["figures"]["tornado"]["rows"]]
            assert xs[1::3] == pytest.approx(lows, rel=1e-9)
        if tab == "heatmap":
            z = page.evaluate("document.getElementById('chart-heatmap').data[0].z")
            assert z[0] == pytest.approx(ref["figures"]["heatmap"]["token_hit_rate"][0], rel=1e-9)
    page.click('[role="tab"][data-tab="curve"]')
    page.wait_for_timeout(100)


@pytest.mark.browser
@pytest.mark.parametrize("key,text,message", [
    ("workload.gap_mean_s", "", "enter a number"),
    ("workload.gap_mean_s", "-1", "cannot be negative"),
    ("workload.gap_mean_s", "0", "cannot be zero"),
    ("workload.conversation_rate_per_s", "abc", "not a number"),
    ("workload.user_tokens_per_turn", "1e308", "too large"),
    ("tensor_parallel", "1.5", "whole number"),
    ("gpu_memory_utilization", "1.2", "too large"),
])
def test_bad_values_inline_message_keep_text_and_stale(page, key, text, message):
    good = page.input_value(box(key))
    seq = page.evaluate("__kvcalc.requested")
    page.fill(box(key), text)
    msg = page.locator(f'#form [data-field="{key}"] .msg')
    assert message in msg.inner_text()
    assert page.input_value(box(key)) == text                     # what was typed stays
    assert page.get_attribute("#results", "data-stale") == "true"
    assert page.is_visible("#stale")
    assert page.evaluate("__kvcalc.requested") == seq               # nothing sent to Python
    assert parse_qs(urlsplit(page.url).query)[key] == [good]        # the link keeps the valid state
    set_box(page, key, good)
    assert msg.inner_text() == ""
    assert page.get_attribute("#results", "data-stale") == "false"


@pytest.mark.browser
def test_python_error_shown_at_its_field(page):
    """A config.json Python rejects: its InputError lands under the textarea, as text."""
    n = page.evaluate("__kvcalc.requested")
    page.select_option('#form select[data-param="model"]', "custom")
    ta = '#form textarea[data-param="model.hf_config"]'
    assert page.is_visible(ta)
    msg = page.locator('#form [data-field="model.hf_config"] .msg')
    assert "paste" in msg.inner_text()                            # empty textarea: JS says so
    page.fill(ta, json.dumps({"num_hidden_layers": XSS_PAYLOAD, "hidden_size": 4096}))
    wait_js(page, f"__kvcalc.requested > {n}")
    wait_js(page, "document.querySelector('[data-field=\"model.hf_config\"] .msg').textContent.length > 0"
                           " && __kvcalc.serverErrors['model.hf_config']", timeout=30_000)
    assert page.get_attribute("#results", "data-stale") == "true"
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    page.fill(ta, XSS_PAYLOAD)                                    # not JSON at all
    assert "not valid JSON" in msg.inner_text()
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    # a real config.json (Llama 3.1 8B's fields) gives the preset's KV bytes per token
    page.fill(ta, '{"model_type": "llama", "num_hidden_layers": 32, "num_attention_heads": 32, '
                  '"num_key_value_heads": 8, "hidden_size": 4096, "intermediate_size": 14336, '
                  '"vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}')
    settle(page)
    assert page.evaluate("__kvcalc.resultRequest.model.hf_config.num_hidden_layers") == 32
    assert float(page.get_attribute('#results [data-result="kv_bytes_per_token"]', "data-value")) == 131072
    assert_matches_cpython(page)
    n = page.evaluate("__kvcalc.requested")
    page.select_option('#form select[data-param="model"]', "meta-llama/Llama-3.1-8B")
    settle(page, n)
    assert not page.is_visible(ta)
    assert page.get_attribute("#results", "data-stale") == "false"


@pytest.mark.browser
def test_simulate_overlays_points(page):
    page.click('[role="tab"][data-tab="curve"]')
    page.click("#simulate")
    wait_js(page, "__kvcalc.sim && document.getElementById('chart-curve').data"
                           ".some(t => (t.name || '').startsWith('simulator'))", timeout=120_000)
    request = page.evaluate("__kvcalc.lastSimRequest")
    # the capacities Python chose (kvcalc.figure_data.simulation_capacities)
    assert request["simulation"]["capacities_tokens"] == \
        page.evaluate("__kvcalc.result.figures.curve.simulation_capacity_tokens")
    assert len(request["simulation"]["capacities_tokens"]) == SIMULATION_POINTS
    traces = page.evaluate("document.getElementById('chart-curve').data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    points = next(t for t in traces if (t["name"] or "").startswith("simulator ("))
    bars = next(t for t in traces if t["name"] == "simulator 95 % CI")
    ref = simulate(request)
    assert points["y"] == pytest.approx([p["token_hit_rate"] for p in ref["points"]], rel=1e-9)
    assert points["x"] == pytest.approx([p["capacity_gib"] for p in ref["points"]], rel=1e-12)
    assert bars["y"][0::3] == pytest.approx([p["token_hit_rate_ci95_low"] for p in ref["points"]], rel=1e-9)
    assert bars["y"][1::3] == pytest.approx([p["token_hit_rate_ci95_high"] for p in ref["points"]], rel=1e-9)
    # changing an input clears the (now outdated) points
    set_box(page, "workload.turns_mean", "6")
    assert page.evaluate("__kvcalc.sim") is None
    assert not any((t["name"] or "").startswith("simulator") for t in
                   page.evaluate("document.getElementById('chart-curve').data.map(t => ({name: t.name}))"))
    set_box(page, "workload.turns_mean", "5")


@pytest.mark.browser
def test_shared_url_restores_state_and_result(page, ctx):
    set_box(page, "workload.turns_mean", "7")
    set_box(page, "seed", "42")
    page.select_option('#form select[data-param="cache.eviction"]', "ttl")
    set_box(page, "cache.ttl_s", "900")
    page.select_option('#form select[data-param="kv_cache_dtype"]', "fp8")
    settle(page)
    url = page.url
    state = page.evaluate("__kvcalc.state.values")
    state.pop("model.hf_config")      # a preset model: the pasted config is not part of the link
    shown = displayed(page)
    other = open_page(ctx, url)
    try:
        restored = other.evaluate("__kvcalc.state.values")
        assert restored.pop("model.hf_config") == ""
        assert restored == state
        assert other.evaluate("__kvcalc.resultRequest") == page.evaluate("__kvcalc.resultRequest")
        assert displayed(other) == shown
        assert other.input_value(box("seed")) == "42"
        assert other.is_hidden("#url-notice")
    finally:
        other.close()
    # reset: defaults back, and the URL says so
    n = page.evaluate("__kvcalc.requested")
    page.click("#reset")
    settle(page, n)
    assert page.evaluate("__kvcalc.resultRequest") == DEFAULT_REQUEST
    assert parse_qs(urlsplit(page.url).query)["seed"] == ["1"]


@pytest.mark.browser
def test_last_session_restored_from_local_storage(page, ctx, server):
    set_box(page, "workload.system_prompt_tokens", "2500")
    other = open_page(ctx, server)            # no query: the last session
    try:
        assert other.evaluate("__kvcalc.state.values['workload.system_prompt_tokens']") == 2500
        assert other.input_value(box("workload.system_prompt_tokens")) == "2500"
    finally:
        other.close()
    set_box(page, "workload.system_prompt_tokens", "1000")


@pytest.mark.browser
def test_xss_and_bad_url_values_are_text_with_a_notice(ctx, server):
    query = "&".join([
        f"{quote(XSS_PAYLOAD)}=1",
        f"workload.gap_mean_s={quote(XSS_PAYLOAD)}",
        f"model={quote('<script>window.__xss=2</script>')}",
        "workload.turns_mean=-3",
        "workload.conversation_rate_per_s=1e308",
        "seed=7",
    ])
    pg = open_page(ctx, f"{server}?{query}")
    try:
        assert pg.evaluate("window.__xss") is None
        assert pg.evaluate("document.querySelectorAll('img, #url-notice script').length") == 0
        notice = pg.inner_text("#url-notice")
        assert pg.is_visible("#url-notice")
        assert XSS_PAYLOAD in notice                       # shown literally, as text
        assert "workload.turns_mean=-3" in notice and "1e308" in notice
        values = pg.evaluate("__kvcalc.state.values")
        assert values["workload.gap_mean_s"] == 60 and values["workload.turns_mean"] == 5
        assert values["model"] == "meta-llama/Llama-3.1-8B"
        assert values["workload.conversation_rate_per_s"] == 1
        assert values["seed"] == 7                         # the valid ones are kept
        # the rewritten URL holds only known, valid parameters
        q = parse_qs(urlsplit(pg.url).query)
        assert XSS_PAYLOAD not in q and q["workload.gap_mean_s"] == ["60"]
        assert_matches_cpython(pg)
    finally:
        pg.close()


@pytest.mark.browser
def test_no_request_left_localhost(page, ctx):
    assert ctx.blocked == []
    assert ctx.requests and all(is_local(u) for u in ctx.requests)
    assert not [line for line in page.console_lines if line.startswith("pageerror")]


@pytest.mark.browser
def test_start_up_stall_shows_a_message_and_retry(browser, server):
    """A .wasm that never arrives: the watchdog's message in the status bar, and a Retry."""
    context = browser.new_context()
    try:
        context.route("**/*.wasm", lambda route: route.abort())
        pg = context.new_page()
        pg.goto(server)
        wait_js(pg, "document.getElementById('status').dataset.state === 'failed'", timeout=60_000)
        text = pg.inner_text("#status-text")
        assert "stalled" in text or "failed" in text, text
        assert pg.is_visible("#retry")
        assert pg.is_hidden("#compute-error")
    finally:
        context.close()


@pytest.mark.browser
def test_file_protocol_explains_itself(browser):
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto((ROOT / "index.html").as_uri())
        pg.wait_for_selector("#kvcalc-file-protocol", timeout=10_000)
        assert "scripts/serve.py" in pg.inner_text("#kvcalc-file-protocol")
    finally:
        context.close()
