"""The page's Fleet section (issue 7) in headless Chromium.

The Fleet inputs drive compute(): the request the page sends carries cluster / tiers /
price_per_gpu_hour, and the numbers shown equal kvcalc.api.compute() run here in CPython
for that request (Pyodide's numpy vs the host's: equal to float noise). Opening the section
asks for the sizing table and the recommendations; every row of the sizing table that names
a deployment, re-computed through compute() with that row's settings (TP, instances, a CPU
tier of the row's GiB), gives the row's hit rate. The recommendations are listed with the
engine flags they name, and a link restores the fleet (section open, same request, same
numbers). At the defaults the request has no fleet key (the single-instance page is
unchanged)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.api import compute  # noqa: E402
from kvcalc.engine_flags import FLAGS  # noqa: E402
from browser_helpers import PAGE_SETTLED, guarded_context, open_page, page_at, wait_js  # noqa: E402

pytestmark = pytest.mark.browser

# issue 7's example: Qwen3-32B on H100 at TP=2, 3 new chats/s, 6 turns, 45 s think time, 800-token prompt
QUERY = ("model=Qwen%2FQwen3-32B&gpu=h100-sxm-80gb&tensor_parallel=2&workload.conversation_rate_per_s=3"
         "&workload.turns_mean=6&workload.gap_mean_s=45&workload.system_prompt_tokens=800")
FLEET_KEYS = ("cluster", "tiers", "tier_mode", "price_per_gpu_hour", "sizing")


@pytest.fixture(scope="module")
def ctx(browser):
    yield from guarded_context(browser, viewport={"width": 1280, "height": 1000})


@pytest.fixture(scope="module")
def page(ctx, server):
    yield from page_at(ctx, f"{server}?{QUERY}&lang=en")


def settle(pg, before: int):
    wait_js(pg, f"__kvcalc.requested > {before}", timeout=10_000)
    wait_js(pg, PAGE_SETTLED, timeout=90_000)


def box(key: str) -> str:
    return f'#form [data-param="{key}"][data-role="box"]'


def fleet_drawn(pg, before: int = 0):
    wait_js(pg, f"Number(document.querySelector('#fleet-root').dataset.drawn || 0) > {before}", timeout=60_000)


def test_defaults_send_no_fleet_key_and_keep_the_section_closed(page):
    request = page.evaluate("__kvcalc.resultRequest")
    assert not any(k in request for k in FLEET_KEYS), request
    assert page.evaluate("document.getElementById('fleet-section').open") is False
    # the Fleet inputs are in the form, in their own group
    keys = page.evaluate("[...document.querySelectorAll('fieldset.group-fleet [data-param]')].map(n => n.dataset.param)")
    for key in ("cluster.instances", "cluster.routing", "tiers[0].capacity_gib", "tiers[1].capacity_gib",
                "price_per_gpu_hour"):
        assert key in keys


def test_fleet_inputs_drive_compute(page):
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("cluster.instances"), "4")
    page.select_option('#form select[data-param="cluster.routing"]', "random")
    page.fill(box("tiers[0].capacity_gib"), "64")
    page.fill(box("price_per_gpu_hour"), "2.5")
    settle(page, n)
    wait_js(page, "__kvcalc.resultRequest.price_per_gpu_hour === 2.5", timeout=60_000)
    request = page.evaluate("__kvcalc.resultRequest")
    assert request["cluster"] == {"instances": 4, "routing": "random"}
    assert request["tiers"] == [{"name": "cpu", "capacity_gib": 64}]
    assert request["price_per_gpu_hour"] == 2.5
    ref = compute(copy.deepcopy(request))
    shown = page.evaluate("__kvcalc.result")
    assert shown["token_hit_rate"] == pytest.approx(ref["token_hit_rate"], rel=1e-9)
    assert shown["tier_token_hit_rates"] == pytest.approx(ref["tier_token_hit_rates"], rel=1e-9, abs=1e-12)
    # the headline is the fleet's total over tiers (two tiers here: GPU and CPU)
    head = float(page.get_attribute('.big-value[data-result="token_hit_rate"]', "data-value"))
    assert head == pytest.approx(ref["token_hit_rate"], rel=1e-9)
    assert len(ref["tier_token_hit_rates"]) == 2
    # 4 instances under random routing lose own-history reuse: below the same fleet with affinity
    assert ref["fleet"]["affinity_token_hit_rate"] > ref["token_hit_rate"]


def test_open_section_shows_tiers_sizing_and_recommendations(page):
    n = page.evaluate("__kvcalc.requested")
    page.click("#fleet-section > summary")
    settle(page, n)
    wait_js(page, "__kvcalc.resultRequest.sizing !== undefined && __kvcalc.result.fleet_options !== undefined",
            timeout=90_000)
    fleet_drawn(page)
    request = page.evaluate("__kvcalc.resultRequest")
    assert request["sizing"] == {} and "fleet" in request["figures"]
    ref = compute(copy.deepcopy(request))
    # summary and per-tier rows: Python's numbers
    shown = float(page.get_attribute('#fleet-root [data-fleet="token_hit_rate"]', "data-value"))
    assert shown == pytest.approx(ref["token_hit_rate"], rel=1e-9)
    cost = float(page.get_attribute('#fleet-root [data-fleet="cost_per_hour"]', "data-value"))
    assert cost == pytest.approx(2.5 * 4 * 2)          # price x instances x TP
    tiers = page.evaluate("""[...document.querySelectorAll('#fleet-root [data-fleet=tiers] tbody tr')]
        .map(tr => [tr.dataset.tier, Number(tr.querySelector('[data-value]').dataset.value), tr.cells[6].textContent])""")
    assert [t[0] for t in tiers] == ["gpu", "cpu"]
    assert [t[1] for t in tiers] == pytest.approx(ref["tier_token_hit_rates"], rel=1e-9, abs=1e-12)
    assert "TTFT" in tiers[1][2]                       # the CPU tier's verdict, from msg.tier_*
    # the two charts: hit rate vs K (one line per routing) and the tier split (one area per tier)
    k = page.evaluate("document.getElementById('chart-fleet-k').data.map(d => [d.name, d.y])")
    fig = ref["fleet_figures"]["hit_rate_vs_instances"]
    assert [y for _, y in k[:4]] == [pytest.approx(fig["routing"][r], rel=1e-9) for r in fig["routing"]]
    split = page.evaluate("document.getElementById('chart-fleet-tiers').data.map(d => d.y)")
    assert split == [pytest.approx(t["token_hit_rate"], rel=1e-9, abs=1e-12)
                     for t in ref["fleet_figures"]["tier_split"]["tiers"]]


def test_every_sizing_row_reproduces_through_compute(page):
    request = page.evaluate("__kvcalc.resultRequest")
    rows = page.evaluate("""[...document.querySelectorAll('#fleet-root [data-fleet=sizing] tbody tr')]
        .map(tr => ({tp: Number(tr.dataset.tp), instances: tr.dataset.instances === '' ? null : Number(tr.dataset.instances),
                     gib: Number(tr.dataset.tierGib), fits: tr.dataset.fits === 'true', code: tr.dataset.code,
                     hit: tr.cells[4].dataset.value === '' ? null : Number(tr.cells[4].dataset.value),
                     verdict: tr.cells[7].textContent}))""")
    assert len(rows) == len(compute(copy.deepcopy(request))["fleet_options"])
    deployable = [r for r in rows if r["instances"] is not None]
    assert any(r["fits"] for r in deployable), rows
    base = {k: v for k, v in request.items() if k not in ("sizing", "figures", "tiers")}
    for r in deployable:
        option = {**copy.deepcopy(base), "tensor_parallel": r["tp"],
                  "cluster": {"instances": r["instances"], "routing": request["cluster"]["routing"]}}
        if r["gib"]:
            option["tiers"] = [{"name": "cpu", "capacity_gib": r["gib"]}]
        assert compute(option)["token_hit_rate"] == pytest.approx(r["hit"], rel=1e-9), r
    # fitting rows first, then the rest; every row says why in words (no raw template)
    fits = [r["fits"] for r in rows]
    assert fits == sorted(fits, reverse=True)
    for r in rows:
        assert r["verdict"] and "{" not in r["verdict"], r


def test_recommendations_listed_with_their_flags(page):
    ref = page.evaluate("__kvcalc.result.recommendations")
    items = page.evaluate("""[...document.querySelectorAll('#fleet-root [data-fleet=recommendations] > li')]
        .map(li => ({code: li.dataset.code, text: li.querySelector('.lever-text').textContent,
                     flags: [...li.querySelectorAll('.flags li')].map(f => f.textContent)}))""")
    assert [i["code"] for i in items] == [x["code"] for x in ref]
    assert "affinity_routing" in [i["code"] for i in items]        # random routing with 4 instances
    for item, lever in zip(items, ref):
        assert item["text"] and "{" not in item["text"]
        assert len(item["flags"]) == len(lever["settings"])
        for text, s in zip(item["flags"], lever["settings"]):
            assert (s["engine"], s["flag"]) in FLAGS and s["flag"] in text and text.startswith(s["engine"])


def test_link_restores_the_fleet(page, ctx, server):
    url = page.url
    q = parse_qs(urlsplit(url).query)
    assert q["cluster.instances"] == ["4"] and q["cluster.routing"] == ["random"]
    assert q["tiers[0].capacity_gib"] == ["64"] and q["price_per_gpu_hour"] == ["2.5"]
    other = open_page(ctx, url)
    try:
        wait_js(other, "document.getElementById('fleet-section').open", timeout=10_000)
        wait_js(other, "__kvcalc.resultRequest.sizing !== undefined", timeout=90_000)
        fleet_drawn(other)
        assert other.evaluate("__kvcalc.resultRequest") == page.evaluate("__kvcalc.resultRequest")
        assert other.get_attribute('#fleet-root [data-fleet="token_hit_rate"]', "data-value") == \
            page.get_attribute('#fleet-root [data-fleet="token_hit_rate"]', "data-value")
        assert other.input_value(box("tiers[0].capacity_gib")) == "64"
    finally:
        other.close()


def test_sensitivity_and_tornado_cover_the_fleet(page):
    for tab, key in (("sweeps", "sweeps"), ("tornado", "tornado")):
        n = page.evaluate("__kvcalc.requested")
        page.click(f"#tab-{tab}")
        settle(page, n)
        wait_js(page, f"__kvcalc.result.figures.{key} !== undefined", timeout=90_000)
        wait_js(page, PAGE_SETTLED, timeout=90_000)
        ref = compute(copy.deepcopy(page.evaluate("__kvcalc.resultRequest")))["figures"][key]
        if tab == "sweeps":
            names = page.evaluate("document.getElementById('chart-sweeps').data.map(d => d.name)")
            ys = page.evaluate("document.getElementById('chart-sweeps').data.map(d => d.y)")
            assert "Instances" in names and any(x.startswith("CPU tier") for x in names), names
            i = names.index("Instances")
            assert ys[i] == pytest.approx(ref["cluster.instances"]["token_hit_rate"], rel=1e-9)
        else:
            labels = page.evaluate("document.getElementById('chart-tornado').layout.yaxis.ticktext")
            assert any(x.startswith("Instances") for x in labels), labels
            assert any(r["parameter"] == "cluster.instances" for r in ref["rows"])
    page.click("#tab-curve")


def test_overload_is_explained_with_the_memory_that_ends_it(page):
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("workload.conversation_rate_per_s"), "30")
    page.fill(box("workload.service_time_s"), "20")
    settle(page, n)
    wait_js(page, "__kvcalc.resultRequest.workload.service_time_s === 20 && __kvcalc.result.fleet.overload", timeout=90_000)
    wait_js(page, PAGE_SETTLED, timeout=90_000)
    ref = compute(copy.deepcopy(page.evaluate("__kvcalc.resultRequest")))["fleet"]
    assert ref["overload"]
    text = page.text_content("#fleet-root .fleet-overload")
    # Python's GiB per GPU and tokens per instance, formatted (2 decimals; separators)
    assert f"{ref['overload_ends_at_kv_gib_per_gpu']:,.2f} GiB" in text, text
    assert f"{ref['overload_ends_at_capacity_tokens']:,.0f}" in text, text
    assert "queue" in text
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("workload.conversation_rate_per_s"), "3")
    page.fill(box("workload.service_time_s"), "2")
    settle(page, n)
    wait_js(page, "__kvcalc.resultRequest.workload.service_time_s === 2", timeout=90_000)
    wait_js(page, PAGE_SETTLED, timeout=90_000)
    assert page.query_selector("#fleet-root .fleet-overload") is None


def test_fleet_section_in_chinese(page):
    """Switching to zh-CN re-renders the section from the same result (no recompute): no English
    word left but the terms engineers keep (tests/i18n_terms.py); engine flags are code."""
    import re
    from i18n_terms import TERMS
    n = page.evaluate("__kvcalc.requested")
    page.select_option("#lang", "zh-CN")
    wait_js(page, "document.documentElement.lang === 'zh-CN'", timeout=10_000)
    wait_js(page, "document.querySelector('#fleet-section summary').textContent.includes('集群')", timeout=10_000)
    text = page.evaluate("""(() => { const out = [];
        const walk = document.createTreeWalker(document.getElementById('fleet-section'), NodeFilter.SHOW_TEXT);
        while (walk.nextNode()) if (!walk.currentNode.parentElement.closest('.flags, .chart')) out.push(walk.currentNode.data);
        return out.join(' '); })()""")
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_\-]*[A-Za-z0-9]", text))
    words = {w for w in words if not re.fullmatch(r"[A-Za-z]{1,2}\d*|[a-z]+\d+", w)}
    assert words <= TERMS, sorted(words - TERMS)
    assert page.evaluate("__kvcalc.requested") == n
    page.select_option("#lang", "en")
    wait_js(page, "document.documentElement.lang === 'en'", timeout=10_000)


def test_bad_fleet_input_is_refused_at_its_box(page):
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("cluster.instances"), "0")
    wait_js(page, "document.querySelector('[data-field=\"cluster.instances\"]').classList.contains('invalid')",
            timeout=10_000)
    assert page.evaluate("__kvcalc.requested") == n          # not sent
    # a tier smaller than one block: Python refuses it and names the field
    page.fill(box("cluster.instances"), "4")
    settle(page, n)
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("tiers[0].capacity_gib"), "0.000001")
    wait_js(page, f"__kvcalc.requested > {n}", timeout=10_000)
    wait_js(page, "document.querySelector('#results').dataset.stale === 'true'", timeout=60_000)
    msg = page.evaluate("(document.querySelector('#compute-error').hidden ? '' : document.querySelector('#compute-error').textContent)"
                        " + document.querySelector('[data-field=\"tiers[0].capacity_gib\"] .msg').textContent")
    assert "tiers[0]" in msg or "block" in msg, msg
    n = page.evaluate("__kvcalc.requested")
    page.fill(box("tiers[0].capacity_gib"), "64")
    settle(page, n)
    assert page.get_attribute("#results", "data-stale") == "false"


def test_an_unknown_tier_name_never_reaches_the_chart_raw(page):
    """A tier name from an API user (not the page's cpu/ssd) is labelled "tier n" (its place,
    the GPU being tier 1): Plotly's text never shows the name as given (it would render markup)."""
    names = page.evaluate("""async () => {
        const f = await import('/js/fleet-figures.js');
        const result = {cache_capacity_tokens: 1000, fleet_figures: {tier_split: {capacity_tokens: [1, 10],
            tiers: [{name: 'gpu', token_hit_rate: [0.1, 0.2]}, {name: 'cpu', token_hit_rate: [0, 0.1]},
                    {name: '<b>nvme</b>', token_hit_rate: [0, 0.05]}]}}};
        const fig = f.tierSplitFigure(result, {theme: 'light', width: 800});
        return fig.data.map(d => [d.name, d.hovertemplate]);
    }""")
    assert [n for n, _ in names] == ["GPU", "CPU DRAM", "tier 3"]
    assert all("<b>" not in h for _, h in names)
