"""Export (issue 9): every downloaded file parses and holds the values the page shows."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_helpers import PAGE_SETTLED as SETTLED, open_page, wait_js  # noqa: E402

TIMEOUT_MS = 120_000
pytestmark = pytest.mark.browser


def download(pg, selector: str) -> bytes:
    with pg.expect_download(timeout=TIMEOUT_MS) as d:
        pg.click(selector)
    return Path(d.value.path()).read_bytes()


def pct_text(x: float) -> str:
    return f"{x * 100:.1f} %"


def test_json_and_summary_equal_the_headline(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    shown = pg.inner_text(".big-value")
    doc = json.loads(download(pg, "#export-json"))
    assert doc["result"]["token_hit_rate"] == pg.evaluate("__kvcalc.result.token_hit_rate")
    assert pct_text(doc["result"]["token_hit_rate"]) == shown
    assert doc["request"]["model"] == "meta-llama/Llama-3.1-8B" and doc["lang"] == "en"
    assert pg.inner_text('#inverse-sentence [data-slot="gib"]') == f"{doc['result']['inverse']['kv_gib_per_gpu']:.2f} GiB"
    text = download(pg, "#export-summary").decode("utf-8")
    assert f"token hit rate {shown}" in text
    assert "Llama-3.1-8B" in text and "GiB" in text
    # the summary is rendered from the catalogue: in Chinese it is Chinese, same numbers
    pg.select_option("#lang", "zh-CN")
    wait_js(pg, "document.documentElement.lang === 'zh-CN'", timeout=TIMEOUT_MS)
    zh = download(pg, "#export-summary").decode("utf-8")
    assert "命中率" in zh and shown.replace(" ", "") in zh


def rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_csv_equals_the_chart_data(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    curve = rows(download(pg, "#export-csv"))
    fig = pg.evaluate("__kvcalc.result.figures.curve")
    assert [float(r["capacity_gib"]) for r in curve] == fig["capacity_gib"]
    assert [float(r["token_hit_rate"]) for r in curve] == fig["token_hit_rate"]
    # the values Plotly draws are the same numbers
    drawn = pg.evaluate("document.querySelector('#chart-curve').data[0].y")
    assert [float(r["token_hit_rate"]) for r in curve] == drawn
    pg.click('[role="tab"][data-tab="sweeps"]')
    wait_js(pg, SETTLED + " && __kvcalc.result.figures.sweeps && document.querySelector('#chart-sweeps').dataset.rendered",
            timeout=TIMEOUT_MS)
    sweeps = rows(download(pg, "#export-csv"))
    gap = pg.evaluate("__kvcalc.result.figures.sweeps.gap_mean_s")
    assert [float(r["value"]) for r in sweeps if r["parameter"] == "gap_mean_s"] == gap["values"]
    assert [float(r["token_hit_rate"]) for r in sweeps if r["parameter"] == "gap_mean_s"] == gap["token_hit_rate"]


def test_png_and_svg_come_from_plotly_offline(ctx, server):
    pg = open_page(ctx, f"{server}index.html?lang=en")
    png = download(pg, "#export-png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    svg = download(pg, "#export-svg").decode("utf-8")
    assert svg.lstrip().startswith("<svg") and "token hit rate" in svg
