"""Dragging a slider (app.js): previews while it moves, the full compute when it is let go.

A slider's `input` event asks Python for a preview (the same numbers, only the visible tab's
figure on a coarser grid) and draws only the numbers and that chart; its `change` event (and a
resting slider, after app.previewIdleMs) asks for the full compute and render. The numbers a
preview shows must equal those of a full compute of the same values (CPython's
kvcalc.api.compute here: the second method), and after the release the page must show exactly
what a full compute of the final values gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.api import compute  # noqa: E402
from browser_helpers import DRAG, RELEASE, SLIDER, PAGE_SETTLED as SETTLED, drag_page, wait_js  # noqa: E402

PREVIEWED = "__kvcalc.previewSeq === __kvcalc.requested && __kvcalc.fullSeq < __kvcalc.requested"


@pytest.fixture(scope="module")
def page(browser, server):
    yield from drag_page(browser, server)


def shown(pg) -> dict:
    return pg.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#results [data-result]')]
        .filter((n) => n.dataset.value !== undefined).map((n) => [n.dataset.result, Number(n.dataset.value)]))""")


def get_path(obj, path):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def assert_numbers_are(pg, ref: dict):
    numbers = shown(pg)
    assert len(numbers) >= 20, numbers
    for key, value in numbers.items():
        # Pyodide's numpy 2.0.2 (wasm32) vs the host's numpy: equal to float noise
        assert value == pytest.approx(get_path(ref, key), rel=1e-9, abs=1e-12), key


def drag(pg, key: str, positions) -> dict:
    """Sends an input per position, waits for the last one's preview; returns its request."""
    sel = SLIDER.format(key=key)
    for pos in positions:
        pg.evaluate(DRAG, [sel, pos])
    wait_js(pg, PREVIEWED, timeout=30_000)
    return pg.evaluate("__kvcalc.lastPreviewRequest")


@pytest.mark.browser
@pytest.mark.parametrize("tab", ["curve", "sweeps"])
def test_drag_render_numbers_equal_a_full_compute_then_release_shows_the_full_result(page, tab):
    if tab != "curve":
        n = page.evaluate("__kvcalc.requested")
        page.click(f'[role="tab"][data-tab="{tab}"]')
        wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=60_000)
    full_before = page.evaluate("__kvcalc.renderCount")
    url_before = page.url
    sel = SLIDER.format(key="workload.gap_mean_s")
    lo, hi = page.evaluate(f"[Number(document.querySelector('{sel}').min), Number(document.querySelector('{sel}').max)]")
    req = drag(page, "workload.gap_mean_s", [lo + (hi - lo) * f for f in (0.40, 0.45, 0.52)])
    # a preview: the visible tab's figure only, nothing rendered in full, the URL not written
    assert req["preview"] is True and req["figures"] == [tab]
    assert "compare_with" not in req
    assert page.evaluate("__kvcalc.renderCount") == full_before
    assert page.url == url_before
    gap = req["workload"]["gap_mean_s"]
    assert page.input_value('#form [data-param="workload.gap_mean_s"][data-role="box"]') == str(gap) or \
        float(page.input_value('#form [data-param="workload.gap_mean_s"][data-role="box"]')) == gap
    full_req = {k: v for k, v in req.items() if k != "preview"}
    full_req["figures"] = ["curve", "kv_context"] + ([tab] if tab != "curve" else [])
    ref = compute(full_req)
    assert_numbers_are(page, ref)
    # the chart shows the preview's (coarse) figure of these values
    if tab == "curve":
        y = page.evaluate("document.getElementById('chart-curve').data[0].y")
        coarse = compute(req)["figures"]["curve"]["token_hit_rate"]
        assert len(y) == len(coarse) < len(ref["figures"]["curve"]["token_hit_rate"])
        assert y == pytest.approx(coarse, rel=1e-9, abs=1e-12)

    # let go: the full compute of the final values, everything rendered from it
    n = page.evaluate("__kvcalc.requested")
    page.evaluate(RELEASE, sel)
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=30_000)
    final = page.evaluate("__kvcalc.resultRequest")
    assert "preview" not in final and final["workload"]["gap_mean_s"] == gap
    ref = compute(final)
    assert_numbers_are(page, ref)
    chart = "curve" if tab == "curve" else tab
    if tab == "curve":
        y = page.evaluate("document.getElementById('chart-curve').data[0].y")
        assert y == pytest.approx(ref["figures"]["curve"]["token_hit_rate"], rel=1e-9, abs=1e-12)
    assert page.evaluate(f"document.getElementById('chart-{chart}').dataset.rendered") == \
        str(page.evaluate("__kvcalc.resultSeq"))
    assert f"gap_mean_s={gap:g}" in page.url or f"gap_mean_s={gap}" in page.url
    if tab != "curve":
        page.click('[role="tab"][data-tab="curve"]')
        wait_js(page, SETTLED, timeout=30_000)


@pytest.mark.browser
def test_keyboard_step_sends_only_the_full_compute(page):
    sel = SLIDER.format(key="workload.conversation_rate_per_s")
    previews = page.evaluate("__kvcalc.previewCount")
    n = page.evaluate("__kvcalc.requested")
    page.focus(sel)
    page.keyboard.press("ArrowRight")
    wait_js(page, f"__kvcalc.requested > {n} && ({SETTLED})", timeout=30_000)
    # input + change in one step: one compute, the full one (no preview sent or drawn)
    assert page.evaluate("__kvcalc.requested") == n + 1
    assert page.evaluate("__kvcalc.previewCount") == previews
    assert_numbers_are(page, compute(page.evaluate("__kvcalc.resultRequest")))


@pytest.mark.browser
def test_resting_slider_gets_the_full_compute(page):
    page.evaluate("__kvcalc.previewIdleMs = 150")
    try:
        sel = SLIDER.format(key="workload.gap_mean_s")
        n = page.evaluate("__kvcalc.requested")
        page.evaluate(DRAG, [sel, page.evaluate(f"Number(document.querySelector('{sel}').value) + 0.05")])
        # no change event: the idle timer asks for the full compute
        wait_js(page, f"__kvcalc.fullSeq > {n} && ({SETTLED})", timeout=30_000)
        assert_numbers_are(page, compute(page.evaluate("__kvcalc.resultRequest")))
    finally:
        page.evaluate("__kvcalc.previewIdleMs = 600000")
