"""Keyboard, screen readers and axe-core on the page (issue 9, item 6), in headless Chromium.

* Sliders: a log slider moves by 1-2-5 steps on the arrow keys and by a decade on Page Up/Down
  (js/a11y.js); an integer slider with a short range (tensor parallel, 1..64) moves by 1; every
  slider's aria-valuetext is its value with its unit in the page's language, not the log10
  position; the values stay inside the slider's range from js/params.js, within Python's limits.
* A skip link, the first Tab stop, jumps to the results.
* Help tooltips open on keyboard focus, stay inside the viewport (the Model help too, once cut
  off by its panel) and close on Escape.
* Plotly's toolbar speaks the page's language.
* axe-core (pinned in package-lock.json, tests/browser/axe_helpers.py) finds no violation on any
  tab, with the compare card filled (A pinned, B changed) and "How the number is computed" open,
  in the stale state, in English and Chinese, light and dark.

Expected step values are the 1-2-5 series written out by hand (1 -> 2 -> 5 -> 10 ...; 60 lies
between 50 and 100), not the page's output.
"""

from __future__ import annotations

import json
import time

import pytest

from axe_helpers import axe_violations, describe, inject_axe, route_axe
from browser_helpers import PAGE_SETTLED, ROOT, guarded_context, open_page, page_at, wait_js

pytestmark = pytest.mark.browser

TABS = ["curve", "sweeps", "tornado", "heatmap", "trace"]


def slider(key: str) -> str:
    return f'[data-param="{key}"][data-role="slider"]'


def box(key: str) -> str:
    return f'[data-param="{key}"][data-role="box"]'


def settle(pg, key: str, expected) -> None:
    """Wait until the page state holds ``expected`` for ``key`` and the result is drawn."""
    wait_js(pg, f"__kvcalc.state.values[{json.dumps(key)}] === {json.dumps(expected)}", timeout=10_000)


@pytest.fixture(scope="module")
def ctx(browser):
    yield from guarded_context(browser, viewport={"width": 1280, "height": 900})


@pytest.fixture(scope="module")
def pg(ctx, server):
    yield from page_at(ctx, server + "index.html?lang=en")


def press(pg, selector: str, key: str, times: int = 1) -> None:
    pg.focus(selector)
    for _ in range(times):
        pg.keyboard.press(key)


def test_integer_slider_moves_by_one(pg):
    sel = slider("tensor_parallel")
    assert pg.get_attribute(sel, "aria-valuetext") == "1 GPUs"
    press(pg, sel, "ArrowRight", 3)
    settle(pg, "tensor_parallel", 4)
    assert pg.input_value(box("tensor_parallel")) == "4"
    assert pg.get_attribute(sel, "aria-valuetext") == "4 GPUs"
    press(pg, sel, "ArrowLeft")
    settle(pg, "tensor_parallel", 3)
    press(pg, sel, "Home")
    settle(pg, "tensor_parallel", 1)
    press(pg, sel, "ArrowLeft")       # at the lower end: stays
    time.sleep(0.2)
    assert pg.evaluate("__kvcalc.state.values.tensor_parallel") == 1


def test_log_slider_moves_by_125_steps_and_decades(pg):
    key = "workload.conversation_rate_per_s"
    sel = slider(key)
    assert pg.evaluate(f"__kvcalc.state.values[{json.dumps(key)}]") == 1
    for expected in (2, 5, 10):
        press(pg, sel, "ArrowRight")
        settle(pg, key, expected)
        assert pg.input_value(box(key)) == str(expected)
        assert pg.get_attribute(sel, "aria-valuetext") == f"{expected} per s"
    press(pg, sel, "ArrowDown")
    settle(pg, key, 5)
    press(pg, sel, "PageUp")
    settle(pg, key, 50)
    press(pg, sel, "PageDown", 2)
    settle(pg, key, 0.5)
    press(pg, sel, "End")                               # the slider's top: params.js max
    settle(pg, key, 1000)
    hi = pg.evaluate(f"import('./js/params.js').then((m) => m.PARAM_BY_KEY.get({json.dumps(key)}).hi)")
    assert 1000 <= hi                                   # within Python's limit
    press(pg, sel, "ArrowRight")                        # at the top: stays
    time.sleep(0.2)
    assert pg.evaluate(f"__kvcalc.state.values[{json.dumps(key)}]") == 1000
    pg.fill(box(key), "1")
    settle(pg, key, 1)


def test_log_slider_from_a_value_between_steps(pg):
    key = "workload.gap_mean_s"                         # default 60 s: between 50 and 100
    sel = slider(key)
    assert pg.get_attribute(sel, "aria-valuetext") == "60 s (mean)"
    press(pg, sel, "ArrowUp")
    settle(pg, key, 100)
    press(pg, sel, "ArrowDown")
    settle(pg, key, 50)
    pg.fill(box(key), "60")
    settle(pg, key, 60)
    press(pg, sel, "ArrowDown")                         # 60 -> 50, the 1-2-5 value below
    settle(pg, key, 50)
    pg.fill(box(key), "60")
    settle(pg, key, 60)


def test_step_rules_as_functions(pg):
    """js/a11y.js's stepTarget on the edges: outside the range, integers over a wide range."""
    got = pg.evaluate("""import('./js/a11y.js').then(({ stepTarget: s, next125 }) => ({
      up_from_max: s({min: 0.01, max: 1000, scale: 'log', integer: false}, 1000, 'ArrowUp'),
      down_from_above: s({min: 0.01, max: 1000, scale: 'log', integer: false}, 5000, 'ArrowDown'),
      wide_int_up: s({min: 500, max: 5000, scale: 'log', integer: true}, 4000, 'ArrowUp'),
      wide_int_down: s({min: 500, max: 5000, scale: 'log', integer: true}, 4000, 'ArrowDown'),
      linear: s({min: 0.3, max: 0.99, scale: 'linear', integer: false}, 0.9, 'ArrowUp'),
      small: next125(0.03, 1), tiny_down: next125(0.02, -1),
    }))""")
    assert got == {"up_from_max": None, "down_from_above": 1000, "wide_int_up": 5000, "wide_int_down": 2000,
                   "linear": None, "small": 0.05, "tiny_down": 0.01}


def test_every_slider_has_value_text_with_unit(pg, ctx, server):
    texts = pg.evaluate("""[...document.querySelectorAll('input[type=range]')].map((s) => ({
        key: s.dataset.param, text: s.getAttribute('aria-valuetext'), pos: s.value, log: s.dataset.scale === 'log' }))""")
    assert sum(s["log"] for s in texts) >= 5, texts
    for s in texts:
        assert s["text"], s
        if s["log"]:
            assert s["text"] != s["pos"], f"{s['key']}: aria-valuetext is the slider position"
    zh = open_page(ctx, server + "index.html?lang=zh-CN")
    try:
        cat = json.loads((ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))["messages"]
        assert zh.get_attribute(slider("tensor_parallel"), "aria-valuetext") == \
            cat["ui.slider_value"].replace("{value}", "1").replace("{unit}", cat["param.tensor_parallel.unit"])
        assert zh.get_attribute(slider("workload.gap_mean_s"), "aria-valuetext") == \
            cat["ui.slider_value"].replace("{value}", "60").replace("{unit}", cat["param.workload.gap_mean_s.unit"])
        # a language switch re-renders it
        zh.select_option("#lang", "en")
        wait_js(zh, "document.documentElement.lang === 'en'")
        wait_js(zh, f"document.querySelector('{slider('workload.gap_mean_s')}').getAttribute('aria-valuetext') === '60 s (mean)'")
    finally:
        zh.close()


def test_skip_link_is_the_first_stop_and_jumps_to_results(ctx, server):
    p = open_page(ctx, server + "index.html?lang=en")
    try:
        p.keyboard.press("Tab")
        assert p.evaluate("document.activeElement.classList.contains('skip-link')")
        r = p.evaluate("(() => { const b = document.activeElement.getBoundingClientRect(); return [b.top, b.bottom]; })()")
        assert r[0] >= 0 and r[1] > r[0], f"the focused skip link is off screen: {r}"
        p.keyboard.press("Enter")
        wait_js(p, "location.hash === '#results'")
        wait_js(p, "document.activeElement && document.activeElement.id === 'results'", timeout=3000)
        top = p.evaluate("document.getElementById('results-h').getBoundingClientRect().top")
        assert -2 <= top < 900      # at the top of the viewport (sub-pixel rounding aside)
    finally:
        p.close()


TIP_BOX_JS = """() => { const t = document.getElementById('tooltip');
  if (!t || t.hidden) return null; const r = t.getBoundingClientRect();
  return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
          vw: document.documentElement.clientWidth, vh: document.documentElement.clientHeight}; }"""


@pytest.mark.parametrize("width", [1280, 390])
def test_tooltips_open_on_focus_inside_the_viewport_and_close_on_escape(browser, server, width):
    c = browser.new_context(viewport={"width": width, "height": 800})
    try:
        p = open_page(c, server + "index.html?lang=en")
        helps = p.evaluate("[...document.querySelectorAll('[data-tip]')].filter((e) => e.checkVisibility()).length")
        assert helps >= 15
        for i in range(helps):
            p.evaluate(f"[...document.querySelectorAll('[data-tip]')].filter((e) => e.checkVisibility())[{i}].scrollIntoView({{block: 'center'}})")
            p.evaluate(f"[...document.querySelectorAll('[data-tip]')].filter((e) => e.checkVisibility())[{i}].focus()")
            tip = p.evaluate(TIP_BOX_JS)
            owner = p.evaluate(f"[...document.querySelectorAll('[data-tip]')].filter((e) => e.checkVisibility())[{i}].getAttribute('data-tip')")
            assert tip is not None, f"tooltip {i} did not open on focus"
            assert tip["text"] == owner
            assert tip["left"] >= 0 and tip["right"] <= tip["vw"] and tip["top"] >= 0 and tip["bottom"] <= tip["vh"], \
                f"tooltip {i} ({owner[:40]}…) leaves the viewport: {tip}"
            # nothing covers it (no panel clips it): the element at its centre is the box
            hit = p.evaluate("""() => { const t = document.getElementById('tooltip'); const r = t.getBoundingClientRect();
                return t.contains(document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2)); }""")
            assert hit, f"tooltip {i} is covered"
        p.keyboard.press("Escape")
        assert p.evaluate(TIP_BOX_JS) is None
        # the Model help, first of the inputs panel (it was cut off by the panel)
        p.focus('[data-field="model"] [data-tip]')
        tip = p.evaluate(TIP_BOX_JS)
        assert tip and tip["left"] >= 0 and tip["right"] <= tip["vw"]
    finally:
        c.close()


def test_plotly_toolbar_in_the_page_language(ctx, server):
    p = open_page(ctx, server + "index.html?lang=zh-CN")
    try:
        cat = json.loads((ROOT / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))["messages"]
        wait_js(p, "document.querySelector('#chart-curve .modebar-btn')")
        titles = p.evaluate("[...document.querySelectorAll('#chart-curve .modebar-btn')].map((b) => b.getAttribute('data-title'))")
        assert cat["chart.modebar.zoom"] in titles and cat["chart.modebar.reset_axes"] in titles, titles
        assert "Zoom" not in titles
        p.select_option("#lang", "en")
        wait_js(p, "[...document.querySelectorAll('#chart-curve .modebar-btn')].some((b) => b.getAttribute('data-title') === 'Zoom')")
    finally:
        p.close()


# ---------------------------------------------------------------- axe-core

def _axe_clean(p, where: str) -> None:
    v = axe_violations(p)
    assert not v, f"axe-core violations ({where}):\n{describe(v)}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_axe_finds_no_violations(browser, server, lang, scheme):
    c = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    route_axe(c, server)
    try:
        p = open_page(c, server + f"index.html?lang={lang}")
        inject_axe(p, server)
        for tab in TABS:
            p.click(f"#tab-{tab}")
            if tab == "trace":
                wait_js(p, "document.querySelector('#trace-root .kvt')")
            else:
                wait_js(p, f"document.getElementById('chart-{tab}').dataset.rendered === String(__kvcalc.resultSeq)", timeout=30_000)
            _axe_clean(p, f"{lang}, {scheme}, tab {tab}")
        # the trace tab with a sample analysed (its results, notes and charts)
        p.click("#tab-trace")
        p.click("#trace-root button[data-sample]")
        wait_js(p, "document.getElementById('trace-root').dataset.state === 'done'", timeout=120_000)
        _axe_clean(p, f"{lang}, {scheme}, trace analysed")
        # the compare card with A pinned and B changed (js/compare.js), and the open
        # "How the number is computed" panel (js/headline.js)
        p.click("#tab-curve")
        p.click("#pin-a")
        wait_js(p, "__kvcalc.result.compare && " + PAGE_SETTLED, timeout=60_000)
        p.fill(box("workload.gap_mean_s"), "240")
        wait_js(p, "__kvcalc.result.compare && __kvcalc.lastRequest.workload.gap_mean_s === 240 && " + PAGE_SETTLED,
                timeout=60_000)
        wait_js(p, "!document.querySelector('#compare-card table').hidden")
        p.click("#how-computed > summary")
        wait_js(p, "document.getElementById('how-computed').open && document.querySelector('#explain-body dd')")
        _axe_clean(p, f"{lang}, {scheme}, compare pinned, how-computed open")
        # stale: an invalid input greys the results
        p.click("#tab-curve")
        p.fill(box("tensor_parallel"), "abc")
        wait_js(p, "document.getElementById('results').dataset.stale === 'true'")
        _axe_clean(p, f"{lang}, {scheme}, stale")
        # and with a tooltip open
        p.focus('[data-field="model"] [data-tip]')
        _axe_clean(p, f"{lang}, {scheme}, tooltip open")
    finally:
        c.close()


def test_axe_runs_under_the_page_csp(browser, server):
    """The page's CSP is in force (an inline script is refused) and axe still loads and runs."""
    c = browser.new_context()
    route_axe(c, server)
    try:
        p = open_page(c, server + "index.html?lang=en")
        with pytest.raises(Exception, match="Content Security Policy"):
            p.add_script_tag(content="window.__inline = 1")
        inject_axe(p, server)
        assert p.evaluate("axe.run(document, {runOnly: ['color-contrast']}).then((r) => Array.isArray(r.passes))")
    finally:
        c.close()
