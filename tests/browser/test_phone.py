"""The page on a phone (390 x 844 CSS px, touch; issue 9, item 7), in headless Chromium.

* Nothing is wider than the screen (no horizontal scrolling), on every tab, in both languages.
* Every chart tab is on screen and reachable (the strip wraps instead of cutting "Trace").
* The results are one tap away: the sticky bar under the header shows the headline and jumps
  to the results.
* Plotly's toolbar does not cover a legend (the legend goes under the plot on narrow charts)
  and the tornado's labels are inside its chart.
"""

from __future__ import annotations

import pytest

from browser_helpers import open_page, wait_js

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
TABS = ["curve", "sweeps", "tornado", "heatmap", "trace"]


@pytest.fixture(scope="module", params=["en", "zh-CN"])
def phone(request, browser, server):
    ctx = browser.new_context(**PHONE)
    pg = open_page(ctx, server + f"index.html?lang={request.param}")
    yield pg
    ctx.close()


def show_tab(pg, tab: str) -> None:
    pg.click(f"#tab-{tab}")
    if tab == "trace":
        wait_js(pg, "document.querySelector('#trace-root .kvt')")
    else:
        wait_js(pg, f"document.getElementById('chart-{tab}').dataset.rendered === String(__kvcalc.resultSeq)", timeout=30_000)


def test_no_horizontal_overflow_on_any_tab(phone):
    for tab in TABS:
        show_tab(phone, tab)
        widths = phone.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"tab {tab}: the page is {widths[0]} px wide on a {widths[1]} px screen"
        wide = phone.evaluate("""() => [...document.querySelectorAll('body *')].filter((e) => {
            if (!e.checkVisibility()) return false; const r = e.getBoundingClientRect();
            // (anything far left, like Plotly's measuring svg at -10000 px, makes no scrollbar)
            return r.width > 0 && r.right > document.documentElement.clientWidth + 1
              && !e.closest('.visually-hidden, .skip-link'); }).map((e) => e.tagName + '.' + e.className).slice(0, 5)""")
        assert not wide, f"tab {tab}: elements past the screen edge: {wide}"


def test_every_tab_is_on_screen_and_reachable(phone):
    rects = phone.evaluate("""[...document.querySelectorAll('[role=tab]')].map((b) => {
        const r = b.getBoundingClientRect(); return {tab: b.dataset.tab, left: r.left, right: r.right, width: r.width}; })""")
    vw = phone.evaluate("document.documentElement.clientWidth")
    for r in rects:
        assert r["left"] >= 0 and r["right"] <= vw and r["width"] > 20, f"tab {r['tab']} is cut: {r}"
    for tab in reversed(TABS):        # tapping each one selects it
        phone.tap(f"#tab-{tab}")
        assert phone.get_attribute(f"#tab-{tab}", "aria-selected") == "true"
    show_tab(phone, "curve")


def test_results_are_one_tap_away(phone):
    phone.evaluate("window.scrollTo(0, 0)")
    bar = phone.evaluate("""(() => { const r = document.getElementById('mini').getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, visible: document.getElementById('mini').checkVisibility()}; })()""")
    assert bar["visible"] and 0 <= bar["top"] and bar["bottom"] <= 400, f"the results bar is not near the top: {bar}"
    # the headline number is on the bar from the start
    assert phone.get_attribute("#mini [data-result=token_hit_rate]", "data-value") == \
        phone.get_attribute("#results .big-value", "data-value")
    phone.tap("#mini")
    wait_js(phone, "location.hash === '#results'")
    wait_js(phone, "(() => { const r = document.getElementById('results-h').getBoundingClientRect(); "
                   "return r.top >= 0 && r.bottom <= document.documentElement.clientHeight; })()", timeout=5000)
    # the bar stays on top while scrolling and does not hide the results heading
    top = phone.evaluate("document.getElementById('results-h').getBoundingClientRect().top")
    bar_bottom = phone.evaluate("document.getElementById('mini').getBoundingClientRect().bottom")
    assert top >= bar_bottom - 1, f"the results heading ({top}) is under the sticky bar ({bar_bottom})"


def _boxes(pg, chart_id: str):
    return pg.evaluate(f"""(() => {{
      const c = document.getElementById('{chart_id}');
      const box = (e) => {{ if (!e) return null; const r = e.getBoundingClientRect(); return {{l: r.left, r: r.right, t: r.top, b: r.bottom}}; }};
      const legend = c.querySelector('g.legend');
      return {{chart: box(c), modebar: box(c.querySelector('.modebar')), legend: legend ? box(legend) : null,
               plot: box(c.querySelector('.nsewdrag')),
               yticks: [...c.querySelectorAll('.ytick text, .yaxislayer-above .ytick text')].map(box)}};
    }})()""")


def _overlap(a, b) -> bool:
    return a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]


@pytest.mark.parametrize("tab", ["curve", "tornado"])
def test_toolbar_does_not_cover_the_legend(phone, tab):
    show_tab(phone, tab)
    phone.tap(f"#chart-{tab} .nsewdrag", position={"x": 5, "y": 5})   # a tap shows Plotly's toolbar
    wait_js(phone, f"document.querySelector('#chart-{tab} .modebar')")
    b = _boxes(phone, f"chart-{tab}")
    assert b["legend"] and b["modebar"], b
    assert b["modebar"]["r"] > b["modebar"]["l"], "the toolbar has no size"
    assert not _overlap(b["legend"], b["modebar"]), f"the toolbar covers the legend: {b}"
    assert not _overlap(b["legend"], b["plot"]), f"the legend covers the plot: {b}"
    assert b["legend"]["r"] <= b["chart"]["r"] + 1 and b["legend"]["b"] <= b["chart"]["b"] + 1, f"legend cut: {b}"
    show_tab(phone, "curve")


def test_tornado_labels_are_readable(phone):
    show_tab(phone, "tornado")
    b = _boxes(phone, "chart-tornado")
    assert len(b["yticks"]) >= 5, b
    for t in b["yticks"]:
        assert t["l"] >= b["chart"]["l"] - 1, f"a tornado label is cut at the left: {t} vs {b['chart']}"
        assert t["r"] <= b["plot"]["l"] + 1, f"a tornado label runs into the bars: {t}"
    sizes = phone.evaluate("[...document.querySelectorAll('#chart-tornado .ytick text')].map((e) => parseFloat(getComputedStyle(e).fontSize))")
    assert min(sizes) >= 10, sizes
    show_tab(phone, "curve")


def test_trace_results_fit_the_screen(phone):
    show_tab(phone, "trace")
    phone.tap("#trace-root button[data-sample]")
    wait_js(phone, "document.getElementById('trace-root').dataset.state === 'done'", timeout=120_000)
    widths = phone.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the analysed trace makes the page {widths[0]} px wide on a {widths[1]} px screen"
    show_tab(phone, "curve")
