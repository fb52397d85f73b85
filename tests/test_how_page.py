"""The How it works pages are generated from the validation data, and the data is true to the code.

scripts/gen_how.py writes how.html and how.zh-CN.html from data/validation/model_vs_sim.json
(bench/validate_model.py --json) and the shipped Mooncake trace. These tests run the script and
compare with the committed pages, recompute the data's model columns, and re-simulate one point.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kvcalc.validation import compare, grid, summarise

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "validation" / "model_vs_sim.json"


@pytest.fixture(scope="module")
def doc():
    return json.loads(DATA.read_text())


def test_committed_pages_are_the_scripts_output(tmp_path):
    """Regenerate with: python scripts/gen_how.py"""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_how.py"), "--out", str(tmp_path)], check=True,
                   timeout=300)
    for name in ("how.html", "how.zh-CN.html"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (ROOT / name).read_text(encoding="utf-8"), name


def test_data_model_columns_are_the_codes_values(doc):
    """The analytic columns recomputed now (the models are deterministic) equal the stored ones."""
    from kvcalc.hitrate import hit_rates
    points = grid()
    assert len(doc["rows"]) == len(points) == 72
    for pt, row in zip(points, doc["rows"]):
        assert row["variant"] == pt["variant"] and row["capacity_tokens"] == float(pt["cache"].capacity_tokens)
        for m in ("refined", "che", "seed"):
            assert row[m] == pytest.approx(float(hit_rates(pt["workload"], pt["cache"], m)["token_hit_rate"]),
                                           rel=1e-9, abs=1e-12), (row["variant"], m)
    assert doc["summary"] == summarise(doc["rows"])


def test_one_simulated_point_reproduces(doc):
    """The simulator is seeded: point 0 with the stored requests and seed gives the stored value."""
    row = compare(grid()[0], doc["requests"], doc["seed"] + 0)
    assert row["sim"] == doc["rows"][0]["sim"]


@pytest.mark.parametrize("name", ["how.html", "how.zh-CN.html"])
def test_pages_show_the_summary_and_no_script(doc, name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert "<script" not in text
    for m, s in doc["summary"].items():
        li = re.search(rf'<li data-model="{m}" data-mae-pp="([^"]+)"', text)
        assert li and float(li.group(1)) == s["mae_pp"]
        assert f"{s['mae_pp']:.2f}" in text
    # 72 points of the scatter (3 models each) and the replay points of the trace figure
    assert text.count('class="pt refined"') == 73      # + the legend's dot
    assert text.count('class="pt replay"') == 7        # 6 capacities + the legend's


def test_the_pages_validation_figures_are_the_datas(doc):
    """The calculator's "How the number is computed" panel quotes kvcalc.explain.VALIDATION_SUMMARY."""
    from kvcalc.explain import VALIDATION_SUMMARY
    assert VALIDATION_SUMMARY["points"] == len(doc["rows"])
    for m in ("refined", "che", "seed"):
        assert VALIDATION_SUMMARY[m]["mean_error_pp"] == round(doc["summary"][m]["mae_pp"], 2)
        assert VALIDATION_SUMMARY[m]["max_error_pp"] == round(doc["summary"][m]["max_pp"], 2)


def test_every_workload_name_has_its_chinese():
    """Each workload of the grid has its name in both catalogues: the English one as it is written."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_how
    from kvcalc.validation import VARIANTS
    for name, _, _ in VARIANTS:
        key = gen_how.variant_key(name)
        assert gen_how.CATALOGUES["en"][key] == name
        assert gen_how.CATALOGUES["zh-CN"][key] != name, key
