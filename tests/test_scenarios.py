"""Scenarios, the recommender broadcast, "how the number is computed", exports and compare (issue 9)."""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError
from kvcalc.export import csv_text, figure_csvs, trace_curve_csv
from kvcalc.hitrate import hit_rates
from kvcalc.presets import get_gpu, get_model
from kvcalc.recommender import broadcast_memory_bytes, broadcast_report, simulate_broadcast
from kvcalc.scenarios import SCENARIOS, scenarios_json
from kvcalc.workload import CacheConfig, Workload

ROOT = Path(__file__).resolve().parents[1]
LLAMA = "meta-llama/Llama-3.1-8B"
H100 = "h100-sxm-80gb"
GIB = 2**30


def test_scenarios_json_is_current():
    """The page reads the presets from py/kvcalc/scenarios.json: regenerate with
    PYTHONPATH=py python -m kvcalc.scenarios --json > py/kvcalc/scenarios.json"""
    assert (ROOT / "py/kvcalc/scenarios.json").read_text() == scenarios_json()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_gives_its_documented_workload(name):
    """A request naming a scenario is the same request as one giving the preset's values."""
    preset = SCENARIOS[name]
    a = compute({"cache": {"capacity_tokens": 300000}, "scenario": name})
    b = compute({"cache": {"capacity_tokens": 300000}, "workload": dict(preset["workload"])})
    assert a["scenario"] == name
    assert a["token_hit_rate"] == b["token_hit_rate"]
    assert a["mean_turns"] == pytest.approx(preset["workload"]["turns_mean"], rel=1e-9) or \
        preset["workload"]["turns_distribution"] == "geometric"


def test_scenario_values_documented_in_module():
    """The values the docstring and the help texts state (coding agent: 8,000-token prompt, 30 turns,
    5 s gaps; RAG: one turn over a 6,000-token document; recommender: 100 candidates x 64 tokens)."""
    assert SCENARIOS["coding_agent"]["workload"]["system_prompt_tokens"] == 8000
    assert SCENARIOS["coding_agent"]["workload"]["turns_mean"] == 30
    assert SCENARIOS["coding_agent"]["workload"]["gap_mean_s"] == 5
    assert SCENARIOS["rag"]["workload"]["turns_mean"] == 1
    assert SCENARIOS["rag"]["workload"]["turns_distribution"] == "fixed"
    assert SCENARIOS["rag"]["workload"]["system_prompt_tokens"] == 6000
    assert SCENARIOS["recommender"]["recommender"] == {"candidates": 100, "user_tokens": 2000.0, "item_tokens": 64.0}


def test_rag_ceiling_is_the_shared_document_share():
    """One turn, no own history: the ceiling is the shared prefix's full blocks over the prompt:
    floor(6000/16)*16 / (6000 + 100) = 6000/6100 (hand)."""
    r = compute({"cache": {"capacity_tokens": 300000}, "scenario": "rag"})
    assert r["ideal_token_hit_rate"] == pytest.approx(6000 / 6100, rel=1e-9)


def test_explicit_values_win_over_the_scenario():
    r = compute({"cache": {"capacity_tokens": 300000}, "scenario": "coding_agent", "workload": {"turns_mean": 2}})
    w = dict(SCENARIOS["coding_agent"]["workload"], turns_mean=2)
    assert r["token_hit_rate"] == compute({"cache": {"capacity_tokens": 300000}, "workload": w})["token_hit_rate"]


@pytest.mark.parametrize("bad, field", [
    ({"scenario": "batch"}, "scenario"),
    ({"scenario": 3}, "scenario"),
    ({"recommender": {"n": 3}}, "recommender.n"),
    ({"recommender": {"candidates": 0}}, "recommender.candidates"),
    ({"recommender": {"candidates": 2.5}}, "recommender.candidates"),
    ({"export": "yes"}, "export"),
    ({"compare_with": []}, "compare_with"),
    ({"compare_with": {"workload": {"turns_mean": -1}}}, "compare_with.workload.turns_mean"),
    ({"compare_with": {"compare_with": {}}}, "compare_with.compare_with"),
])
def test_bad_new_fields_name_the_field(bad, field):
    with pytest.raises(InputError) as e:
        compute({"cache": {"capacity_tokens": 1000}, "workload": {}, **bad})
    assert e.value.field == field
    assert e.value.to_dict()["field"] == field


# ---------------------------------------------------------------- recommender

def test_broadcast_memory_by_hand():
    """Llama-3.1-8B bf16: 2 x 8 KV heads x 128 x 32 layers x 2 bytes = 131,072 bytes per token.
    N = 100, U = 2,000, I = 64: without 100 x 2,064 x 131,072 B = 25.1953125 GiB,
    with (2,000 + 6,400) x 131,072 B = 1.025390625 GiB."""
    r = compute({"model": LLAMA, "gpu": H100, "scenario": "recommender"})
    rec = r["recommender"]
    assert r["kv_bytes_per_token"] == 131072
    assert rec["kv_gib_per_gpu_without_sharing"] == 25.1953125
    assert rec["kv_gib_per_gpu_with_sharing"] == 1.025390625
    assert rec["memory_ratio"] == pytest.approx(206400 / 8400, rel=1e-12)
    assert rec["curve"]["candidates"][0] == 1 and rec["curve"]["candidates"][-1] == 100
    # at N = 1 sharing saves nothing
    assert rec["curve"]["kv_gib_per_gpu_with_sharing"][0] == rec["curve"]["kv_gib_per_gpu_without_sharing"][0]


@pytest.mark.parametrize("sharing", [False, True])
def test_broadcast_against_block_level_simulation(sharing):
    """Second method: token sequences with random ids (seeded), hashed block by block as a prefix
    cache does, FLOPs summed position by position. Block 1: held tokens equal the formula exactly;
    FLOPs agree to 1e-12 (the closed sum vs the loop)."""
    model = get_model(LLAMA)
    rep = broadcast_report(model, get_gpu(H100), 1, 131072, 20, 300, 17, 0.4)
    sim = simulate_broadcast(model, 300, 17, 20, 1, np.random.default_rng(7), sharing)
    key = "with_sharing" if sharing else "without_sharing"
    assert sim["held_tokens"] * 131072 / GIB == pytest.approx(rep[f"kv_gib_per_gpu_{key}"], rel=1e-12)
    assert sim["prefill_flops"] == pytest.approx(rep[f"prefill_flops_{key}"], rel=1e-12)


def test_broadcast_blocks_of_16_round_the_partial_block():
    """Block 16: the user's 300 tokens are 18 full blocks + 12 tokens; the partial block holds item
    tokens too, so each candidate owns ceil((12 + 17) / 16) = 2 blocks (32 tokens, not 17)."""
    model = get_model(LLAMA)
    sim = simulate_broadcast(model, 300, 17, 20, 16, np.random.default_rng(3), True)
    assert sim["blocks"] == 18 + 20 * 2
    without, with_ = broadcast_memory_bytes(1.0, 300, 17, 20)
    assert with_ <= sim["held_tokens"] <= with_ + 20 * 16


def test_broadcast_time_uses_benefit_assumptions():
    """Time = FLOPs / (989 TFLOPS x MFU x TP) (H100 dense bf16; same as "what the hits buy")."""
    model, gpu = get_model(LLAMA), get_gpu(H100)
    rep = broadcast_report(model, gpu, 2, 131072, 10, 1000, 50, 0.5)
    assert rep["prefill_s_with_sharing"] == pytest.approx(
        rep["prefill_flops_with_sharing"] / (gpu.dense_bf16_tflops * 1e12 * 0.5 * 2), rel=1e-12)
    assert rep["extra_prefill_fraction_with_sharing"] == pytest.approx(
        rep["prefill_flops_with_sharing"] / rep["prefill_flops_user_only"] - 1, rel=1e-12)
    assert rep["compute_ratio"] > 5


# ---------------------------------------------------------------- how the number is computed

REQ = {"cache": {"capacity_tokens": 200000}, "workload": {"conversation_rate_per_s": 2, "gap_mean_s": 40}}


def test_explain_seed_substitution_reproduces_the_seed_number():
    """(1 - 1/L) x min(1, C/(L s) / (rate L gap)) by hand: L = 5, s = 500, rate 2, gap 40:
    cached = 200000/2500 = 80, active = 400, hit = 0.8 x 0.2 = 0.16."""
    r = compute(REQ)
    e = r["explain"]["seed"]
    assert e["cached_conversations"] == 80 and e["active_conversations"] == 400
    assert e["token_hit_rate"] == pytest.approx(0.16, rel=1e-12)
    assert r["seed_token_hit_rate"] == pytest.approx(0.16, rel=1e-12)


@pytest.mark.parametrize("gap", ["exponential", "deterministic", "lognormal"])
def test_explain_che_parts_recompose_the_che_number(gap):
    r = compute({**REQ, "workload": {**REQ["workload"], "gap_distribution": gap}})
    c = r["explain"]["che"]
    assert c["shared_prompt_share"] + c["gap_within_t_probability"] * c["own_history_share"] == \
        pytest.approx(r["che_token_hit_rate"], abs=1e-12)
    assert c["characteristic_time_s"] == pytest.approx(r["characteristic_time_s"], rel=1e-9)
    if gap == "exponential":
        assert c["gap_within_t_probability"] == pytest.approx(1 - math.exp(-c["characteristic_time_s"] / 40), rel=1e-9)


def test_explain_fifo_has_no_che_formula():
    r = compute({**REQ, "cache": {**REQ["cache"], "eviction": "fifo"}})
    assert r["explain"]["che"] is None and r["explain"]["seed"]["token_hit_rate"] is not None


# ---------------------------------------------------------------- exports

def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_exports_equal_the_result_values():
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "export": True,
                 "figures": ["curve", "sweeps", "tornado", "heatmap"]})
    csvs = r["export"]["csv"]
    curve = _rows(csvs["curve"])
    assert [float(x["capacity_tokens"]) for x in curve] == r["figures"]["curve"]["capacity_tokens"]
    assert [float(x["token_hit_rate"]) for x in curve] == r["figures"]["curve"]["token_hit_rate"]
    assert [float(x["capacity_gib"]) for x in curve] == r["figures"]["curve"]["capacity_gib"]
    sw = _rows(csvs["sweeps"])
    gaps = [x for x in sw if x["parameter"] == "gap_mean_s"]
    assert [float(x["value"]) for x in gaps] == r["figures"]["sweeps"]["gap_mean_s"]["values"]
    tor = _rows(csvs["tornado"])
    assert [x["parameter"] for x in tor] == [row["parameter"] for row in r["figures"]["tornado"]["rows"]]
    hm = _rows(csvs["heatmap"])
    assert len(hm) == len(r["figures"]["heatmap"]["capacity_tokens"]) * len(r["figures"]["heatmap"]["conversation_rate_per_s"])
    assert float(hm[1]["token_hit_rate"]) == r["figures"]["heatmap"]["token_hit_rate"][0][1]


def test_csv_text_quotes_and_blanks():
    assert csv_text(["a", "b"], [["x,y", None], ['q"', float("nan")]]) == 'a,b\n"x,y",\n"q""",\n'
    assert figure_csvs({}) == {}


def test_trace_cli_csv_is_the_shared_writer(capsys):
    from kvcalc.trace.api import trace_analyze
    from kvcalc.trace.cli import main as trace_main
    path = str(ROOT / "data/traces/mooncake/synthetic_trace.jsonl")
    assert trace_main([path, "--csv"]) == 0
    out = capsys.readouterr().out
    res = trace_analyze({"path": path})
    assert out == trace_curve_csv(res)     # the CLI prints the shared writer's text
    rows = _rows(out)
    assert [float(r["token_hit_rate"]) for r in rows] == res["curve"]["token_hit_rate"]
    demo = {"curve": {"block_size_tokens": 16, "capacities_blocks": [1, 2], "block_hit_rate": [0.5, 0.25],
                      "token_hit_rate": [0.4, 0.2]}}
    assert trace_curve_csv(demo) == ("capacity_blocks,capacity_tokens,block_hit_rate,token_hit_rate\n"
                                     "1,16,0.5,0.4\n2,32,0.25,0.2\n")


def test_summary_lines_are_codes_with_the_result_values():
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}})
    lines = {x["code"]: x for x in r["summary_details"]}
    assert lines["summary_hit_rate"]["params"]["token_hit_rate"] == r["token_hit_rate"]
    assert lines["summary_target"]["params"]["kv_gib_per_gpu"] == r["inverse"]["kv_gib_per_gpu"]
    assert all(x["message"] for x in r["summary_details"])


# ---------------------------------------------------------------- compare

def test_compare_a_is_a_computed_alone_and_difference_is_b_minus_a():
    a_req = {"model": LLAMA, "gpu": H100, "workload": {"gap_mean_s": 30}}
    b_req = {"model": LLAMA, "gpu": H100, "workload": {"gap_mean_s": 120}, "compare_with": a_req}
    r = compute(b_req)
    a = compute(a_req)
    cmp = r["compare"]
    assert cmp["a"]["token_hit_rate"] == a["token_hit_rate"]
    assert cmp["b"]["token_hit_rate"] == r["token_hit_rate"]
    assert cmp["difference"]["token_hit_rate"] == r["token_hit_rate"] - a["token_hit_rate"]
    assert cmp["difference"]["token_hit_rate"] < 0          # longer gaps, fewer hits
    assert cmp["a"]["inverse.kv_gib_per_gpu"] == a["inverse"]["kv_gib_per_gpu"]
    assert len(cmp["a_curve"]["token_hit_rate"]) == len(cmp["a_curve"]["capacity_tokens"]) > 10
