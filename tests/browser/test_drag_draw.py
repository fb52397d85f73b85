"""How a drag render draws its chart (js/figures.js drawFigure).

A drag render whose figure differs from the chart on screen only in its scatter traces' x and
y moves those traces (drawn in the SVG, js/drag-draw.js, or Plotly.animate: dataset.draw
"moved"); an x axis is re-ranged to Python's range for it when less than half of its data is
on screen or the data spans less than a third of it (the tornado's only grows). What the chart then holds must
be Python's preview figure of the slider's value (CPython's kvcalc.api.compute of the request
the page sent: the second method), every trace, not only the first. The release draws the
full figure again (Plotly.react: "drawn"), with the axis ranged by Plotly.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.api import compute  # noqa: E402
from browser_helpers import DRAG, RELEASE, SLIDER, PAGE_SETTLED as SETTLED, drag_page, wait_js  # noqa: E402



@pytest.fixture(scope="module")
def page(browser, server):
    yield from drag_page(browser, server)


def drag_to(page, key, fraction):
    sel = SLIDER.format(key=key)
    lo, hi = page.evaluate(f"[Number(document.querySelector('{sel}').min), Number(document.querySelector('{sel}').max)]")
    count = page.evaluate("__kvcalc.previewCount")
    page.evaluate(DRAG, [sel, lo + (hi - lo) * fraction])
    wait_js(page, f"__kvcalc.previewCount > {count} && __kvcalc.previewSeq === __kvcalc.requested", timeout=60_000)
    return page.evaluate("__kvcalc.lastPreviewRequest")


def release(page, key):
    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, SLIDER.format(key=key))
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)


def show(page, tab):
    if page.evaluate("__kvcalc.tab") == tab:
        return
    n = page.evaluate("__kvcalc.requested")
    page.click(f'[role="tab"][data-tab="{tab}"]')
    wait_js(page, f"(__kvcalc.requested > {n} || document.getElementById('chart-{tab}').dataset.rendered) && ({SETTLED})",
            timeout=60_000)


def chart(page, tab):
    return page.evaluate(f"""(() => {{ const gd = document.getElementById('chart-{tab}');
      return {{draw: gd.dataset.draw, data: gd.data.map((d) => ({{x: d.x, y: d.y, name: d.name}})),
               range: gd._fullLayout.xaxis.range, type: gd._fullLayout.xaxis.type}}; }})()""")


def test_curve_drag_moves_the_traces_to_pythons_preview_and_reranges_the_axis(page):
    show(page, "curve")
    key = "workload.gap_mean_s"
    drag_to(page, key, 0.30)
    # a second position far from the first: the curve's capacity grid moves a lot
    req = drag_to(page, key, 0.85)
    c = chart(page, "curve")
    assert c["draw"] == "moved"
    ref = compute(req)
    curve = ref["figures"]["curve"]
    x_key = "capacity_gib" if "capacity_gib" in curve else "capacity_tokens"
    main = c["data"][0]
    assert main["x"] == pytest.approx(curve[x_key], rel=1e-12)
    assert main["y"] == pytest.approx(curve["token_hit_rate"], rel=1e-9, abs=1e-12)
    assert c["data"][1]["y"] == pytest.approx(curve["seed_token_hit_rate"], rel=1e-9, abs=1e-12)
    # the headline marker moved to the preview's exact numbers
    current = [d for d in c["data"] if len(d["x"]) == 1]
    here = ref["cache_capacity_gib"] if x_key == "capacity_gib" else ref["cache_capacity_tokens"]
    assert any(d["x"][0] == pytest.approx(here, rel=1e-12) and d["y"][0] == pytest.approx(ref["token_hit_rate"], rel=1e-12)
               for d in current)
    # at least half of the data's extent is on screen (log axis: the range is in log10 units),
    # and the data spans at least a third of the range (else the axis is re-ranged)
    assert c["type"] == "log"
    lo, hi = sorted(c["range"])
    d0, d1 = math.log10(min(curve[x_key])), math.log10(max(curve[x_key]))
    assert min(d1, hi) - max(d0, lo) >= 0.5 * (d1 - d0) - 1e-9
    assert d1 - d0 >= (hi - lo) / 3 - 1e-9

    release(page, key)
    c = chart(page, "curve")
    assert c["draw"] == "drawn"
    full = compute(page.evaluate("__kvcalc.resultRequest"))["figures"]["curve"]
    assert c["data"][0]["y"] == pytest.approx(full["token_hit_rate"], rel=1e-9, abs=1e-12)
    assert len(c["data"][0]["y"]) > len(curve["token_hit_rate"])


def test_sweeps_drag_moves_every_subplot_and_the_current_value_line(page):
    show(page, "sweeps")
    key = "workload.gap_mean_s"
    drag_to(page, key, 0.40)
    req = drag_to(page, key, 0.60)
    c = chart(page, "sweeps")
    assert c["draw"] == "moved"
    sw = compute(req)["figures"]["sweeps"]
    names = [k for k in sw if isinstance(sw[k], dict) and "values" in sw[k]]
    curves = [d for d in c["data"] if len(d["x"]) > 2]
    lines = [d for d in c["data"] if len(d["x"]) == 2]
    assert len(curves) == len(names) == 7 and len(lines) == 7
    for d, name in zip(curves, names):
        assert d["x"] == pytest.approx(sw[name]["values"], rel=1e-12)
        assert d["y"] == pytest.approx(sw[name]["token_hit_rate"], rel=1e-9, abs=1e-12)
    # the current-value line of each subplot stands at the request's value
    for d, name in zip(lines, names):
        assert d["x"] == pytest.approx([sw[name]["current"]] * 2, rel=1e-12)
    assert lines[names.index("gap_mean_s")]["x"][0] == pytest.approx(req["workload"]["gap_mean_s"], rel=1e-12)
    release(page, key)
    assert chart(page, "sweeps")["draw"] == "drawn"
    show(page, "curve")


def test_tornado_drag_moves_the_bars_the_base_line_and_the_hover_values(page):
    # the rows are numbered and labelled by the input's name alone, and a drag render keeps them
    # where they are on screen (near-equal swings would swap rows at every input): it moves the
    # bars; the input values are hover text. The release puts Python's order back.
    show(page, "tornado")
    key = "workload.gap_mean_s"
    before = page.evaluate("document.getElementById('chart-tornado').layout.meta.tornado_rows")
    drag_to(page, key, 0.40)
    req = drag_to(page, key, 0.55)
    tor = compute(req)["figures"]["tornado"]
    gd = page.evaluate("""(() => { const gd = document.getElementById('chart-tornado');
      return {draw: gd.dataset.draw, data: gd.data.map((d) => ({x: d.x, y: d.y, text: d.text || null})),
              order: gd.layout.meta.tornado_rows, ticktext: gd._fullLayout.yaxis.ticktext,
              range: gd._fullLayout.xaxis.range}; })()""")
    assert gd["draw"] == "moved"
    assert gd["order"] == before
    by_name = {r["parameter"]: r for r in tor["rows"]}
    rows = [by_name[p] for p in before]
    n = len(rows)
    assert sorted(before) == sorted(by_name)
    assert gd["data"][2]["x"] == pytest.approx([r["low_token_hit_rate"] for r in rows], rel=1e-9, abs=1e-12)
    assert gd["data"][3]["x"] == pytest.approx([r["high_token_hit_rate"] for r in rows], rel=1e-9, abs=1e-12)
    assert gd["data"][2]["y"] == list(range(n))
    # the bars run from the base rate to each end, row by row
    assert gd["data"][0]["x"][1::3] == pytest.approx([r["low_token_hit_rate"] for r in rows], rel=1e-9, abs=1e-12)
    assert gd["data"][1]["x"][1::3] == pytest.approx([r["high_token_hit_rate"] for r in rows], rel=1e-9, abs=1e-12)
    assert gd["data"][0]["x"][0::3] == pytest.approx([tor["base_token_hit_rate"]] * n, rel=1e-12)
    assert gd["data"][4]["x"] == pytest.approx([tor["base_token_hit_rate"]] * 2, rel=1e-12)
    # the dragged input's hover values are the request's value moved down and up
    i = before.index("gap_mean_s")
    gap = req["workload"]["gap_mean_s"]
    frac = tor["change_fraction"]
    assert rows[i]["low_value"] == pytest.approx(gap * (1 - frac), rel=1e-12)
    assert rows[i]["high_value"] == pytest.approx(gap * (1 + frac), rel=1e-12)
    # (shown to two decimals at most: fmt.num)
    assert float(gd["data"][2]["text"][i].replace(",", "")) == pytest.approx(gap * (1 - frac), rel=5e-3, abs=5e-3)
    assert float(gd["data"][3]["text"][i].replace(",", "")) == pytest.approx(gap * (1 + frac), rel=5e-3, abs=5e-3)
    # one label a row, without values
    assert len(gd["ticktext"]) == n and gd["ticktext"][i].startswith("Think time") and "→" not in "".join(gd["ticktext"])
    lo, hi = sorted(gd["range"])
    xs = [v for d in gd["data"] for v in d["x"] if v is not None]
    assert lo <= min(xs) and max(xs) <= hi
    release(page, key)
    assert chart(page, "tornado")["draw"] == "drawn"
    full = compute(page.evaluate("__kvcalc.resultRequest"))["figures"]["tornado"]["rows"]
    assert page.evaluate("document.getElementById('chart-tornado').layout.meta.tornado_rows") == [r["parameter"] for r in full]
    show(page, "curve")


def test_heatmap_drag_render_draws_pythons_cells(page):
    # the heatmap's cells are drawn again from Python's preview (js/drag-draw.js: one pixel a
    # cell); gd.data holds them (test_drag_svg.py compares the colours with Plotly's drawing)
    show(page, "heatmap")
    key = "workload.gap_mean_s"
    drag_to(page, key, 0.40)
    req = drag_to(page, key, 0.55)
    assert page.evaluate("document.getElementById('chart-heatmap').dataset.draw") == "moved"
    z = compute(req)["figures"]["heatmap"]["token_hit_rate"]
    zs = page.evaluate("document.getElementById('chart-heatmap').data[0].z")
    assert [v for row in zs for v in row] == pytest.approx([v for row in z for v in row], rel=1e-9, abs=1e-12)
    release(page, key)
    show(page, "curve")
