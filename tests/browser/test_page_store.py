"""The page state's store (js/store.js) and its one path in index.html (app.js):
store.set -> URL/localStorage -> compute -> render.

Expected values come from the store's contract (the keys it was made with; a key changes
when its value is not Object.is the old one) and the page's (the URL holds only values Python
accepted; one compute per change; the trace options in the link, ?trace.<key path>=, only when
they differ from their rows' defaults, TRACE_PARAMS of js/params.js)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from kvcalc.limits import LIMITS
from kvcalc.trace.fleet import ROUTINGS
from kvcalc.trace.loaders import FORMATS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402

TIMEOUT_MS = 120_000
pytestmark = pytest.mark.browser

# Counts the compute requests the page sends to the worker (app.js calls app.client.compute).
COUNT_COMPUTES = """() => {
  const c = __kvcalc.client;
  const send = c.compute;
  window.__computes = [];
  c.compute = (req, opts) => { __computes.push(req); return send.call(c, req, opts); };
}"""


def query(pg) -> dict:
    return parse_qs(urlparse(pg.url).query)


def test_store_contract(ctx, server):
    """set tells subscribers the keys that changed (and only when something did), refuses an
    unknown key without changing anything, and tells a subscriber's own set after the round."""
    pg = ctx.new_page()
    pg.goto(f"{server}i18n/en.json")   # any page of the origin: the module is imported alone
    r = pg.evaluate("""async () => {
      const { createStore, touches } = await import('/js/store.js');
      const b0 = { x: 1 };
      const s = createStore({ a: 1, b: b0 });
      const seen = [];
      s.subscribe((changed, st, before) => seen.push(['first', changed, st.a, before.a]));
      s.subscribe((changed, st) => { if (st.a === 4 && changed.includes('a')) s.set({ b: 'after' }); });
      s.subscribe((changed, st) => seen.push(['third', changed, st.b === 'after']));
      const r1 = s.set({ a: 2, b: b0 });                 // b is the same object: not a change
      const r2 = s.set({ a: 2 });                         // nothing changed: nobody told
      let refused = null;
      try { s.set({ a: 3, c: 1 }); } catch (e) { refused = e.message; }
      const afterRefused = s.get('a');
      let unknownGet = null;
      try { s.get('c'); } catch (e) { unknownGet = e.message; }
      const n = seen.length;
      s.set({ a: 4 });
      return { r1, r2, refused, afterRefused, unknownGet, frozen: Object.isFrozen(s.state),
               first: seen.slice(0, n), nested: seen.slice(n), b: s.get('b'),
               touches: [touches(['a', 'b'], 'b'), touches(['a'], 'b', 'c')] };
    }""")
    assert r["r1"] == ["a"] and r["r2"] == []
    assert r["first"] == [["first", ["a"], 2, 1], ["third", ["a"], False]]
    assert r["refused"] is not None and '"c"' in r["refused"]
    assert r["afterRefused"] == 2                         # the refused set changed nothing, not even a
    assert r["unknownGet"] is not None and r["frozen"] is True
    # the set made inside the round ({b}) is told after every subscriber heard of {a}
    assert r["nested"] == [["first", ["a"], 4, 2], ["third", ["a"], False],
                           ["first", ["b"], 4, 4], ["third", ["b"], True]]
    assert r["b"] == "after" and r["touches"] == [True, False]
    pg.close()


def test_page_set_writes_the_url_then_computes_once(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    pg.evaluate(COUNT_COMPUTES)
    n = pg.evaluate("__kvcalc.requested")

    # the tab: URL and localStorage at once, then one compute that asks for the tornado
    pg.evaluate("__kvcalc.store.set({ tab: 'tornado' })")
    assert query(pg)["tab"] == ["tornado"]
    assert json.loads(pg.evaluate("localStorage.getItem('kvcalc:v1')"))["$tab"] == "tornado"
    wait_js(pg, f"__kvcalc.requested > {n} && {SETTLED}", timeout=TIMEOUT_MS)
    computes = pg.evaluate("__computes")
    assert len(computes) == 1 and "tornado" in computes[0]["figures"]
    assert pg.evaluate("__kvcalc.result.figures.tornado !== undefined")

    # an input: the URL keeps the accepted value until Python accepts the new one, then has it
    before = query(pg)["workload.gap_mean_s"]
    assert before != ["240"]
    now = pg.evaluate("""async () => {
      const { applyPatch } = await import('/js/state.js');
      const s = __kvcalc.store;
      const k = 'workload.gap_mean_s';
      s.set({ inputs: applyPatch(s.get('inputs'), { [k]: '240' }, __kvcalc.options), edit: { keys: [k], mode: null, patched: [k] } });
      return new URLSearchParams(location.search).get(k);
    }""")
    assert [now] == before
    wait_js(pg, f"__kvcalc.resultRequest.workload.gap_mean_s === 240 && {SETTLED}", timeout=TIMEOUT_MS)
    computes = pg.evaluate("__computes")
    assert len(computes) == 2 and computes[1]["workload"]["gap_mean_s"] == 240
    assert query(pg)["workload.gap_mean_s"] == ["240"] and query(pg)["tab"] == ["tornado"]
    assert json.loads(pg.evaluate("localStorage.getItem('kvcalc:v1')"))["workload.gap_mean_s"] == 240
    assert pg.input_value('[data-param="workload.gap_mean_s"][data-role="box"]') == "240"   # the form follows

    # an unknown key is refused: nothing changes, nothing is computed
    err = pg.evaluate("() => { try { __kvcalc.store.set({ tab: 'curve', tabb: 1 }); return null; } catch (e) { return e.message; } }")
    assert err and "tabb" in err
    assert pg.evaluate("__kvcalc.store.get('tab')") == "tornado" and query(pg)["tab"] == ["tornado"]
    pg.wait_for_timeout(300)
    assert len(pg.evaluate("__computes")) == 2
    pg.close()


def test_trace_options_round_trip_through_the_store_and_the_url(ctx, server):
    # an older link: trace.instances / trace.routing are read as trace.cluster.instances / .routing
    url = f"{server}index.html?lang=en&trace.instances=3&trace.routing=random&trace.bogus=1"
    pg = open_page(ctx, url)
    pg.evaluate(COUNT_COMPUTES)
    opts = pg.evaluate("__kvcalc.store.get('trace')")
    assert opts["trace.cluster.instances"] == 3 and opts["trace.cluster.routing"] == "random"
    # defaults: Python's table (limits.json "choices"; no tier)
    assert opts["trace.format"] == "auto" and opts["trace.tiers[1].capacity_gib"] is None
    q = query(pg)
    assert q["trace.cluster.instances"] == ["3"] and q["trace.cluster.routing"] == ["random"]
    assert "trace.instances" not in q and "trace.routing" not in q                # written under the rows' keys
    assert "trace.bogus" not in q                                          # refused, said on the tab

    # a set elsewhere: the link at once, no compute of the calculator
    pg.evaluate("__kvcalc.store.set({ trace: { ...__kvcalc.store.get('trace'), 'trace.tiers[1].capacity_gib': 64 } })")
    assert query(pg)["trace.tiers[1].capacity_gib"] == ["64"]
    # the tab's controls show the store's options; its notice names the refused entry
    pg.click('[role="tab"][data-tab="trace"]')
    wait_js(pg, "document.querySelector('#trace-root input[name=\"trace.tiers[1].capacity_gib\"]')", timeout=TIMEOUT_MS)
    assert pg.input_value("#trace-root input[name='trace.tiers[1].capacity_gib']") == "64"
    assert pg.input_value("#trace-root input[name='trace.cluster.instances']") == "3"
    assert pg.input_value("#trace-root select[name='trace.cluster.routing']") == "random"
    assert "trace.bogus" in pg.inner_text("[data-role=trace-url-notice]")
    # a control: the store, then the link (back at the default: out of the link)
    pg.fill("#trace-root input[name='trace.cluster.instances']", "1")
    pg.dispatch_event("#trace-root input[name='trace.cluster.instances']", "change")
    assert pg.evaluate("__kvcalc.store.get('trace')['trace.cluster.instances']") == 1
    q = query(pg)
    assert "trace.cluster.instances" not in q and q["trace.tiers[1].capacity_gib"] == ["64"] and q["tab"] == ["trace"]
    # a value outside Python's range is refused at the box with the page's own message (state.*),
    # the store and the link keep the last valid value
    pg.fill("#trace-root input[name='trace.warmup_fraction']", "1")
    pg.dispatch_event("#trace-root input[name='trace.warmup_fraction']", "change")
    assert pg.get_attribute("#trace-root input[name='trace.warmup_fraction']", "aria-invalid") == "true"
    assert "< 1" in pg.inner_text("#trace-root label:has(input[name='trace.warmup_fraction']) .kvt-msg")
    assert pg.evaluate("__kvcalc.store.get('trace')['trace.warmup_fraction']") == 0
    # the store changed from outside: the control follows
    pg.evaluate("__kvcalc.store.set({ trace: { ...__kvcalc.store.get('trace'), 'trace.cluster.instances': 5 } })")
    assert pg.input_value("#trace-root input[name='trace.cluster.instances']") == "5"
    assert len(pg.evaluate("__computes")) == 0
    saved = pg.evaluate("__kvcalc.store.get('trace')")
    link = pg.url
    pg.close()

    # the link brings the same options back
    pg = open_page(ctx, link)
    assert pg.evaluate("__kvcalc.store.get('trace')") == saved
    wait_js(pg, "document.querySelector('#trace-root input[name=\"trace.cluster.instances\"]')", timeout=TIMEOUT_MS)
    assert pg.input_value("#trace-root input[name='trace.cluster.instances']") == "5"
    assert pg.is_hidden("[data-role=trace-url-notice]")
    pg.close()


def test_trace_options_come_from_python_tables(ctx, server):
    """The trace tab's options are rows of the page's one parameter table (TRACE_PARAMS of
    js/params.js): every number's range and default is a row of Python's table of limits, the
    selects' and check boxes' choices and defaults are its "choices" (Python's formats and routings,
    and kvcalc.trace.api's defaults)."""
    from kvcalc.limits import CHOICE_DEFAULTS
    pg = ctx.new_page()
    pg.goto(f"{server}i18n/en.json")
    got = pg.evaluate("""async () => {
      const p = await import('/js/params.js');
      return { rows: p.TRACE_PARAMS.map(({ key, kind, limit, default: d, options, words, lo, hi, loOpen, hiOpen, integer }) =>
                 ({ key, kind, limit: limit ?? key, d, options, words: words ?? null, lo, hi, loOpen, hiOpen, integer })),
               defaults: p.traceDefaults(), calc: p.PARAMS.filter(r => r.key.startsWith('trace.')).length };
    }""")
    pg.close()
    assert got["calc"] == 0                                    # not in the calculator's form
    rows = {r["key"]: r for r in got["rows"]}
    numbers = [r for r in got["rows"] if r["kind"] == "number"]
    assert [r["key"] for r in numbers] == ["trace.block_size_tokens", "trace.warmup_fraction", "trace.sampling",
                                           "trace.cluster.instances", "trace.tiers[1].capacity_gib"]
    for r in numbers:
        lim = LIMITS[r["limit"]]
        assert (r["lo"], r["hi"], r["loOpen"], r["hiOpen"], r["integer"]) == \
            (lim.lo, lim.hi, lim.lo_open, lim.hi_open, lim.integer), r
        if r["words"] is None:
            assert r["d"] == lim.default, r                   # None where Python has no default
    assert got["defaults"]["trace.warmup_fraction"] == 0 and got["defaults"]["trace.cluster.instances"] == 1
    for key, default in CHOICE_DEFAULTS.items():
        assert got["defaults"][key] == default, key
    assert rows["trace.format"]["options"] == list(FORMATS)
    assert rows["trace.cluster.routing"]["options"] == list(ROUTINGS)
    assert rows["trace.sampling"]["words"] == ["auto", "exact"]
    assert all(LIMITS["trace.sampling"].contains(x) for x in rows["trace.sampling"]["options"])
