"""A drag render drawn in the SVG on screen (js/drag-draw.js moveTraces) is Plotly's drawing.

moveTraces rewrites each scatter trace's line path and marker positions from the axes' data ->
pixel maps instead of running Plotly's update. The second method here is Plotly itself: the
same data (gd.data after the drag render) drawn by Plotly.react on the same axis ranges must
give the same picture: every vertex of one path within 0.5 px of the other path's polyline
(Plotly drops points on a straight run, so the vertex lists differ), the same segments (a
tornado bar is one; Plotly draws a path per segment), and every marker at the same place. The release draws the full figure
through Plotly again.
"""

from __future__ import annotations

import math
import re

import pytest

from browser_helpers import DRAG, RELEASE, SLIDER, PAGE_SETTLED as SETTLED, drag_page, wait_js  # noqa: E402

KEY = "workload.gap_mean_s"

# Every scatter trace's drawing: line path segments (lists of [x, y]) and marker positions.
SNAPSHOT = """(tab) => { const gd = document.getElementById(`chart-${tab}`);
  return gd._fullData.map((fd) => {
    const g = gd.querySelector(`g.trace${CSS.escape(fd.uid)}`);
    return {line: g ? [...g.querySelectorAll('path.js-line')].map((p) => p.getAttribute('d')).join('') : null,
            points: g ? [...g.querySelectorAll('path.point')].map((p) => p.getAttribute('transform')) : []};
  }); }"""

# The same data redrawn by Plotly on the ranges on screen.
REDRAW = """async (tab) => { const gd = document.getElementById(`chart-${tab}`);
  const layout = JSON.parse(JSON.stringify(gd.layout));
  for (const k of Object.keys(gd._fullLayout).filter((k) => /^[xy]axis\\d*$/.test(k))) {
    layout[k] = {...(layout[k] || {}), range: gd._fullLayout[k].range.slice(), autorange: false};
  }
  layout.datarevision = 'test-' + Math.random();
  await __kvcalc.plotly.react(gd, gd.data, layout);
}"""


@pytest.fixture(scope="module")
def page(browser, server):
    yield from drag_page(browser, server)


def segments(d):
    if not d:
        return []
    out = []
    for part in re.findall(r"M[^M]*", d):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", part)]
        out.append(list(zip(nums[0::2], nums[1::2])))
    return out


def translate(t):
    return tuple(float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", t)[:2])


def dist_to_polyline(p, pts):
    if len(pts) == 1:
        return math.dist(p, pts[0])
    best = math.inf
    for a, b in zip(pts, pts[1:]):
        ax, ay = a
        dx, dy = b[0] - ax, b[1] - ay
        L = dx * dx + dy * dy
        u = 0.0 if L == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / L))
        best = min(best, math.dist(p, (ax + u * dx, ay + u * dy)))
    return best


def assert_same_picture(ours, plotly):
    assert len(ours) == len(plotly)
    for a, b in zip(ours, plotly):
        sa, sb = segments(a["line"]), segments(b["line"])
        assert len(sa) == len(sb)
        for pa, pb in zip(sa, sb):
            assert max(dist_to_polyline(p, pb) for p in pa) <= 0.5
            assert max(dist_to_polyline(p, pa) for p in pb) <= 0.5
            assert math.dist(pa[0], pb[0]) <= 0.5 and math.dist(pa[-1], pb[-1]) <= 0.5
        assert len(a["points"]) == len(b["points"])
        for ta, tb in zip(a["points"], b["points"]):
            assert math.dist(translate(ta), translate(tb)) <= 0.5


def show(page, tab):
    if page.evaluate("__kvcalc.tab") == tab:
        return
    n = page.evaluate("__kvcalc.requested")
    page.click(f'[role="tab"][data-tab="{tab}"]')
    wait_js(page, f"(__kvcalc.requested > {n} || document.getElementById('chart-{tab}').dataset.rendered) && ({SETTLED})",
            timeout=60_000)


def drag_to(page, fraction):
    sel = SLIDER.format(key=KEY)
    lo, hi = page.evaluate(f"[Number(document.querySelector('{sel}').min), Number(document.querySelector('{sel}').max)]")
    count = page.evaluate("__kvcalc.previewCount")
    page.evaluate(DRAG, [sel, lo + (hi - lo) * fraction])
    wait_js(page, f"__kvcalc.previewCount > {count} && __kvcalc.previewSeq === __kvcalc.requested", timeout=60_000)


@pytest.mark.parametrize("tab", ["curve", "sweeps", "tornado"])
def test_drag_render_drawn_in_the_svg_is_plotlys_drawing_and_release_is_plotlys(page, tab):
    show(page, tab)
    before = page.evaluate(SNAPSHOT, tab)
    drag_to(page, 0.45)
    drag_to(page, 0.5)
    state = page.evaluate(f"(() => {{ const gd = document.getElementById('chart-{tab}'); "
                          "return [gd.dataset.draw, gd.dataset.drawPath]; })()")
    assert state == ["moved", "svg"]
    ours = page.evaluate(SNAPSHOT, tab)
    assert ours != before   # the drawing moved
    page.evaluate(REDRAW, tab)
    assert_same_picture(ours, page.evaluate(SNAPSHOT, tab))

    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, SLIDER.format(key=KEY))
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)
    state = page.evaluate(f"(() => {{ const gd = document.getElementById('chart-{tab}'); "
                          "return [gd.dataset.draw, gd.dataset.drawPath, gd.calcdata.length === gd.data.length]; })()")
    assert state == ["drawn", "plotly", True]


def test_a_sweep_whose_data_left_its_axis_is_reranged_to_pythons_range(page):
    # the gap sweep's grid is the value / 10 .. x 10: a drag over three decades leaves the range
    # drawn at the start; that subplot's axis then takes Python's range (kvcalc.figure_data:
    # the data's extent and half its span spare on each side), the others keep theirs
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "py"))
    from kvcalc.api import compute

    show(page, "sweeps")
    drag_to(page, 0.05)
    axes = page.evaluate("""(() => { const gd = document.getElementById('chart-sweeps');
      return Object.keys(gd._fullLayout).filter((k) => /^xaxis\\d*$/.test(k)).sort()
        .map((k) => [k, gd._fullLayout[k].range.slice()]); })()""")
    drag_to(page, 0.95)
    req = page.evaluate("__kvcalc.lastPreviewRequest")
    sw = compute(req)["figures"]["sweeps"]
    names = [k for k in sw if isinstance(sw[k], dict) and "values" in sw[k]]
    after = dict(page.evaluate("""(() => { const gd = document.getElementById('chart-sweeps');
      return Object.keys(gd._fullLayout).filter((k) => /^xaxis\\d*$/.test(k))
        .map((k) => [k, gd._fullLayout[k].range.slice()]); })()"""))
    gap_axis = "xaxis" + ("" if names.index("gap_mean_s") == 0 else str(names.index("gap_mean_s") + 1))
    assert after[gap_axis] == pytest.approx(sw["gap_mean_s"]["x_range"], rel=1e-12)
    lo, hi = sw["gap_mean_s"]["x_range"]
    d0, d1 = math.log10(min(sw["gap_mean_s"]["values"])), math.log10(max(sw["gap_mean_s"]["values"]))
    assert lo == pytest.approx(d0 - 0.5 * (d1 - d0)) and hi == pytest.approx(d1 + 0.5 * (d1 - d0))
    # an input whose grid does not move (the rate's) keeps the range drawn at the start
    rate_axis = "xaxis" + ("" if names.index("conversation_rate_per_s") == 0 else str(names.index("conversation_rate_per_s") + 1))
    assert after[rate_axis] == dict(axes)[rate_axis]
    assert page.evaluate("document.getElementById('chart-sweeps').dataset.drawPath") == "svg"
    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, SLIDER.format(key=KEY))
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)


# The heatmap's image: the colour at each cell's centre pixel (row-major over z), read back from
# the drawn image (either method: one pixel a cell stretched, or Plotly's full-size bricks).
HEAT_COLOURS = """async (tab) => { const gd = document.getElementById(`chart-${tab}`);
  const img = [...gd.querySelectorAll('g.hm')].filter((g) => !g.closest('g.contour'))[0].querySelector('image');
  const src = img.getAttribute('href') || img.getAttribute('xlink:href');
  const im = new Image(); im.src = src; await im.decode();
  const c = document.createElement('canvas'); c.width = im.naturalWidth; c.height = im.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(im, 0, 0);
  const x0 = Number(img.getAttribute('x')), y0 = Number(img.getAttribute('y'));
  const w = Number(img.getAttribute('width')), h = Number(img.getAttribute('height'));
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, d = gd.data[0];
  const out = [];
  for (const yv of d.y) for (const xv of d.x) {
    const px = Math.floor((xa.c2p(xv) - x0) * im.naturalWidth / w), py = Math.floor((ya.c2p(yv) - y0) * im.naturalHeight / h);
    out.push(Array.from(ctx.getImageData(px, py, 1, 1).data));
  }
  return {colours: out, contourShown: [...gd.querySelectorAll('g.contour')].every((g) => g.style.display !== 'none')};
}"""


def test_heatmap_drag_render_draws_plotlys_colours_and_hides_the_contour_until_release(page):
    show(page, "heatmap")
    drag_to(page, 0.45)
    drag_to(page, 0.5)
    state = page.evaluate("(() => { const gd = document.getElementById('chart-heatmap'); "
                          "return [gd.dataset.draw, gd.dataset.drawPath]; })()")
    assert state == ["moved", "svg"]
    ours = page.evaluate(HEAT_COLOURS, "heatmap")
    assert not ours["contourShown"]
    page.evaluate(REDRAW, "heatmap")
    plotly = page.evaluate(HEAT_COLOURS, "heatmap")   # (REDRAW is Plotly's alone: the contour stays hidden)
    assert len(ours["colours"]) == len(plotly["colours"]) == 100
    for a, b in zip(ours["colours"], plotly["colours"]):
        assert a[3] == b[3] == 255
        assert max(abs(p - q) for p, q in zip(a[:3], b[:3])) <= 2, (a, b)
    # the colours change across the map (a test of the colour scale, not of one flat colour)
    assert len({tuple(c) for c in ours["colours"]}) > 20
    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, SLIDER.format(key=KEY))
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)
    assert page.evaluate(HEAT_COLOURS, "heatmap")["contourShown"]
    assert page.evaluate("document.getElementById('chart-heatmap').dataset.drawPath") == "plotly"


def test_heatmap_whose_cells_left_the_axis_takes_pythons_cell_range(page):
    # the capacity grid follows the think time; a drag far enough that less than half of the
    # cells are on screen re-ranges the capacity axis to Python's: the cells' outer edges
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "py"))
    from kvcalc.api import compute

    show(page, "heatmap")
    drag_to(page, 0.02)
    drag_to(page, 0.98)
    req = page.evaluate("__kvcalc.lastPreviewRequest")
    hm = compute(req)["figures"]["heatmap"]
    gd = page.evaluate("""(() => { const gd = document.getElementById('chart-heatmap');
      return {range: gd._fullLayout.xaxis.range, x: gd.data[0].x, path: gd.dataset.drawPath}; })()""")
    key = "capacity_gib" if "capacity_gib" in hm else "capacity_tokens"
    assert gd["path"] == "svg"
    lo, hi = sorted(gd["range"])
    d0, d1 = math.log10(hm[key][0]), math.log10(hm[key][-1])
    # at least half of the cells on screen: re-ranged to Python's range, or still inside the old one
    assert min(d1, hi) - max(d0, lo) >= 0.5 * (d1 - d0) - 1e-9
    step = (d1 - d0) / (len(hm[key]) - 1)
    assert hm["x_range_log10"][key] == pytest.approx([d0 - step / 2, d1 + step / 2], rel=1e-12, abs=1e-12)
    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, SLIDER.format(key=KEY))
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)
