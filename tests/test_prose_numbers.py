"""Numbers the page states in prose come from Python data, never typed into the page (issue 10).

* the legacy (seed) formula's error against the simulator: ``explain.VALIDATION_SUMMARY``
  (bench/validate_model.py), checked here by a second method;
* the sample traces' sizes: ``data/traces/mooncake/samples.json`` (kvcalc.trace.sample_traces),
  checked against a plain count of the files;
* how many points the Simulate button runs: ``figures.curve.simulation_capacity_tokens``.

The page side (the texts show these values) is tests/browser/test_prose_numbers_page.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kvcalc.api import compute
from kvcalc.explain import VALIDATION_SUMMARY
from kvcalc.figure_data import SIMULATION_POINTS, simulation_capacities
from kvcalc.hitrate import hit_rates
from kvcalc.trace.sample_traces import describe_samples, samples_json
from kvcalc.validation import grid

ROOT = Path(__file__).resolve().parents[1]
#: the page's default question (Llama-3.1-8B on one H100, the chat workload)
REQUEST = {"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "tensor_parallel": 1, "workload": {}}
MOONCAKE = ROOT / "data" / "traces" / "mooncake"
CATALOGUES = [ROOT / "i18n" / "en.json", ROOT / "i18n" / "zh-CN.json"]

#: catalogue keys whose numbers describe data; each must take them as {parameters}
DATA_KEYS = ["res.seed_help", "res.explain.valid_range", "kvt.sample.conversation_hint", "kvt.sample.synthetic_hint", "sim.button",
             "sim.button_idle", "kvt.sampling.auto", "res.scenario.coding_agent_help", "res.scenario.rag_help",
             # the How it works pages (scripts/gen_how.py): the validated ranges, the run, the errors
             "how.assume_3", "how.sim", "how.summary_row", "how.legacy"]


def test_seed_error_summary_agrees_with_a_second_method():
    """Triangle inequality: |seed - sim| and |seed - refined| differ by at most |refined - sim|
    at each point, so their means over the grid differ by at most the refined model's mean error
    (and the maxima by at most its max error). The seed and refined values are analytic (no
    simulator), so this checks the shipped seed error independently of the bench run that wrote
    it; 0.05 pp for its one-decimal rounding."""
    pts = grid()
    assert len(pts) == VALIDATION_SUMMARY["points"]
    err = np.array([100 * abs(float(hit_rates(p["workload"], p["cache"], "seed")["token_hit_rate"])
                              - float(hit_rates(p["workload"], p["cache"], "refined")["token_hit_rate"]))
                    for p in pts])
    ref, seed = VALIDATION_SUMMARY["refined"], VALIDATION_SUMMARY["seed"]
    assert abs(err.mean() - seed["mean_error_pp"]) <= ref["mean_error_pp"] + 0.05
    assert abs(err.max() - seed["max_error_pp"]) <= ref["max_error_pp"] + 0.5


def test_grid_ranges_are_the_grids():
    """The page's "checked on 72 workloads: 2 to 12 turns, ..." is the span of the grid's points."""
    pts = grid()

    def span(values):
        return min(values), max(values)
    g = VALIDATION_SUMMARY["grid"]
    assert g["points"] == len(pts) == VALIDATION_SUMMARY["points"]
    assert (g["turns_mean_min"], g["turns_mean_max"]) == span([float(p["workload"].turns_mean) for p in pts])
    assert (g["gap_mean_s_min"], g["gap_mean_s_max"]) == span([float(p["workload"].gap_mean_s) for p in pts])
    assert (g["conversation_rate_per_s_min"], g["conversation_rate_per_s_max"]) == \
        span([float(p["workload"].conversation_rate_per_s) for p in pts])
    assert (g["block_size_tokens_min"], g["block_size_tokens_max"]) == span([int(p["cache"].block_size_tokens) for p in pts])
    assert (g["pressure_gaps_min"], g["pressure_gaps_max"]) == span([float(p["pressure_gaps"]) for p in pts])
    # by hand from kvcalc.validation.VARIANTS: "turns 2" .. "turns 12", "gap 10 s" .. the base 60 s,
    # "rate 0.1/s" .. "rate 10/s", "block 1 token" .. "block 256", PRESSURE_GAPS 0.1 .. 4
    assert (g["turns_mean_min"], g["turns_mean_max"], g["gap_mean_s_min"], g["gap_mean_s_max"],
            g["conversation_rate_per_s_min"], g["conversation_rate_per_s_max"], g["block_size_tokens_min"],
            g["block_size_tokens_max"], g["pressure_gaps_min"], g["pressure_gaps_max"]) == \
        (2.0, 12.0, 10.0, 60.0, 0.1, 10.0, 1, 256, 0.1, 4.0)


def test_compute_ships_the_seed_error():
    r = compute(REQUEST)
    assert r["explain"]["validation"]["seed"]["mean_error_pp"] == VALIDATION_SUMMARY["seed"]["mean_error_pp"]


def test_samples_json_is_current():
    """The page reads this file; regenerate: PYTHONPATH=py python3 -m kvcalc samples --json > data/traces/mooncake/samples.json"""
    assert (MOONCAKE / "samples.json").read_text() == samples_json()


def test_sample_sizes_match_a_plain_count_of_the_files():
    """Second method: count the JSON lines and take the Mooncake timestamps (ms) directly."""
    d = describe_samples()
    for name, info in d.items():
        rows = [json.loads(line) for line in (MOONCAKE / info["file"]).read_text().splitlines() if line.strip()]
        ts_ms = [r["timestamp"] for r in rows]
        assert info["requests"] == len(rows)
        assert info["duration_s"] == pytest.approx((max(ts_ms) - min(ts_ms)) / 1000, abs=1e-3)
        assert info["duration_minutes"] == round((max(ts_ms) - min(ts_ms)) / 60_000)
    # the published sizes of the shipped copies (wc -l: 12031 and 3993 lines; last timestamps
    # 3,536,999 and 1,022,025 ms)
    assert (d["conversation"]["requests"], d["conversation"]["duration_minutes"]) == (12031, 59)
    assert (d["synthetic"]["requests"], d["synthetic"]["duration_minutes"]) == (3993, 17)


def test_simulation_capacities_are_evenly_spaced_and_include_both_ends():
    caps = list(range(0, 1200, 10))                          # 120 points, as the page's curve
    picks = simulation_capacities(caps)
    assert len(picks) == SIMULATION_POINTS
    # by hand: indices round(i * 119 / 5) = 0, 23.8, 47.6, 71.4, 95.2, 119 -> 0, 24, 48, 71, 95, 119
    assert picks == [0, 240, 480, 710, 950, 1190]
    assert simulation_capacities([5.0, 6.0], 6) == [5.0, 6.0]
    assert simulation_capacities([5.0], 6) == [5.0]
    assert simulation_capacities([], 6) == []


def test_compute_curve_carries_the_simulation_capacities():
    curve = compute({**REQUEST, "figures": ["curve"]})["figures"]["curve"]
    picks = curve["simulation_capacity_tokens"]
    assert len(picks) == SIMULATION_POINTS
    assert set(picks) <= set(curve["capacity_tokens"])
    assert picks[0] == curve["capacity_tokens"][0] and picks[-1] == curve["capacity_tokens"][-1]


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.name)
def test_no_catalogue_string_types_a_data_number(path):
    """The keys that state data sizes carry no digits of their own: every number is a {param}."""
    cat = json.loads(path.read_text())["messages"]
    for key in DATA_KEYS:
        text = re.sub(r"\{[A-Za-z0-9_]+\}", "", cat[key])
        assert not re.search(r"\d", text), (path.name, key, cat[key])
    # and the numbers once typed are nowhere in the catalogue
    for typed in ("18 points", "18 个百分点", "100 turns", "100 轮", "72 workloads", "72 个负载", "2 to 12", "10 to 60 s", "12,031", "3,993", "Simulate 6", "模拟 6"):
        assert not any(typed in v for v in cat.values()), (path.name, typed)


def test_page_sources_type_none_of_these_numbers():
    page = (ROOT / "index.html").read_text()
    assert "Simulate 6" not in page and '"n":6' not in page
    assert "SIM_POINTS" not in (ROOT / "app.js").read_text()
    js = "\n".join(p.read_text() for p in sorted((ROOT / "js").glob("*.js")))
    for typed in ("12031", "12,031", "3993", "3,993"):
        assert typed not in js, typed
