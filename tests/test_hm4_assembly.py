"""The result assembly modules that compute numbers: memory_answer, inverse_answer, figure_data,
panels, explain, export. Expected values are derived by hand in each test (or re-evaluated
from the user's values by the formula the module documents), never copied from a run.
"""

import csv
import io
import math

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError
from kvcalc.explain import explain
from kvcalc.export import _cell, csv_text, figure_csvs, summary_lines
from kvcalc.figure_data import figures_result, simulation_capacities
from kvcalc.inverse_answer import inverse_result
from kvcalc.limits import LIMITS
from kvcalc.memory_answer import mean_context_tokens, memory_result
from kvcalc.presets import get_gpu
from kvcalc.workload import CacheConfig, Workload

LLAMA, H100 = "meta-llama/Llama-3.1-8B", "h100-sxm-80gb"
GIB = 2 ** 30


# ----------------------------------------------------------------------------- memory_answer

def _llama_blocks(util, tp, reserve_gib, block=16):
    """Llama-3.1-8B (8.03e9 params, bf16 = 2 B each; 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B
    = 131072 B per token, MODEL.md's reference) on the H100 preset: budget per GPU =
    memory x util - weights / TP - reserve; whole blocks of block x bytes per token."""
    mem = get_gpu(H100).memory_bytes
    bpt = 131072 / min(tp, 8)
    budget = mem * util - 8.03e9 * 2 / tp - reserve_gib * GIB
    return math.floor(budget / (bpt * block)), bpt


def test_memory_result_passes_every_memory_setting():
    req = {"model": LLAMA, "gpu": H100, "tensor_parallel": 2, "gpu_memory_utilization": 0.8,
           "runtime_reserve_gib": 3.0, "context_tokens": 8192, "kv_cache_dtype": "auto"}
    report, model, gpu, tp = memory_result(req, Workload(), 32)
    blocks, bpt = _llama_blocks(0.8, 2, 3.0, 32)
    assert tp == 2 and model.id == LLAMA and gpu.id == H100
    assert report["kv_bytes_per_token"] == bpt == 65536
    assert report["kv_capacity_tokens"] == blocks * 32
    assert report["runtime_reserve_gib"] == 3.0
    assert report["max_model_len_tokens"] == 8192


def test_memory_result_defaults_and_mean_context():
    # no TP / utilization / reserve given: TP 1, utilization 0.9 (the limits table's defaults),
    # the model's default reserve; the context is the workload's mean per request, 3500 tokens
    report, _, _, tp = memory_result({"model": LLAMA, "gpu": H100}, Workload(), 16)
    assert tp == LIMITS["tensor_parallel"].default == 1
    blocks, _ = _llama_blocks(LIMITS["gpu_memory_utilization"].default, 1, report["runtime_reserve_gib"])
    assert report["kv_capacity_tokens"] == blocks * 16
    assert report["context_tokens"] == pytest.approx(3500.0, rel=1e-6)
    assert report["kv_cache_bits"] == 16
    # fp8 halves the bytes per token
    fp8, _, _, _ = memory_result({"model": LLAMA, "gpu": H100, "kv_cache_dtype": "fp8"}, Workload(), 16)
    assert fp8["kv_bytes_per_token"] == 65536 and fp8["kv_cache_bits"] == 8
    # a huge workload's mean context (1e7 + 1e7 tokens a turn, 100 turns: 2e7 x 50.5 = 1.01e9)
    # is clamped to the table's largest context
    huge = Workload(turns_mean=100, turns_distribution="fixed", user_tokens_per_turn=1e7,
                    output_tokens_per_turn=1e7, system_prompt_tokens=0)
    assert mean_context_tokens(huge) == pytest.approx(1.01e9)
    r, _, _, _ = memory_result({"model": LLAMA, "gpu": H100}, huge, 16)
    assert r["context_tokens"] == LIMITS["context_tokens"].hi
    # without a workload, the model's own maximum
    r, _, _, _ = memory_result({"model": LLAMA}, None, 16)
    assert r["kv_capacity_tokens"] is None and r["context_tokens"] == 131072


def test_memory_result_weight_dtype_and_group_reach_the_report():
    r, _, _, _ = memory_result({"model": LLAMA, "gpu": H100, "weight_dtype": "int4", "weight_group_size": 64},
                               Workload(), 16)
    assert r["weight_dtype"] == "int4" and r["weight_group_size"] == 64
    # 4-bit weights plus group scales and the unquantized embeddings: between 4 and 8 bits a weight
    assert 8.03e9 * 0.5 / GIB < r["weights_gib_per_gpu"] < 8.03e9 * 1.0 / GIB


def test_memory_result_without_model():
    assert memory_result({}, Workload(), 16) is None
    with pytest.raises(InputError) as e:
        memory_result({"gpu": H100}, Workload(), 16)
    assert e.value.field == "model"


@pytest.mark.parametrize("dist,L,expected", [
    # fixed 3 turns: every request k = 1..3 once, sequence P + k a = 150, 200, 250 -> 200
    ("fixed", 3.0, 200.0),
    # geometric, L = 2: P(N >= k) = 2^-(k-1); sum k q^(k-1) / sum q^(k-1) = 1/(1-q) = L -> P + 2 a
    ("geometric", 2.0, 200.0),
    # fixed 2.5 turns: half 2, half 3: requests k=1 (1), k=2 (1), k=3 (1/2): (150 + 200 + 125) / 2.5
    ("fixed", 2.5, 190.0),
])
def test_mean_context_per_request_by_hand(dist, L, expected):
    w = Workload(turns_mean=L, turns_distribution=dist, system_prompt_tokens=100, user_tokens_per_turn=20,
                 output_tokens_per_turn=30)
    assert mean_context_tokens(w) == pytest.approx(expected, rel=1e-6)


def test_engine_extras_use_the_hub_id_and_the_kv_context_figure():
    cfg = compute({"model": LLAMA, "gpu": H100, "workload": {}, "figures": ["kv_context"]})
    fig = cfg["figures"]["kv_context"]
    assert fig["kv_budget_gib"] == cfg["kv_budget_gib"]
    for key in [k for k in fig if k.endswith("_bytes") and isinstance(fig[k], list)]:
        assert fig[key[:-6] + "_gib"] == pytest.approx([x / GIB for x in fig[key]], rel=1e-15)
    # full attention: 131072 B per token, so the figure's GiB at n tokens is n x 131072 / 2^30
    n = fig["context_tokens"][-1]
    assert fig["full_attention_gib"][-1] == pytest.approx(n * 131072 / GIB, rel=1e-12)
    argv = cfg["engine_commands"]["vllm"]["argv"]
    assert argv[2] == LLAMA
    assert "--max-model-len" not in argv          # no context chosen: the engine's own maximum
    chosen = compute({"model": LLAMA, "gpu": H100, "workload": {}, "context_tokens": 8192})
    a = chosen["engine_commands"]["vllm"]["argv"]
    assert a[a.index("--max-model-len") + 1] == "8192"
    assert "--gpu-memory-utilization" in argv and argv[argv.index("--gpu-memory-utilization") + 1] == "0.9"


# ----------------------------------------------------------------------------- inverse_answer

def test_inverse_is_the_smallest_capacity_by_bisection():
    # a second method: bisect the forward model's token hit rate (it rises with capacity)
    from kvcalc.hitrate import hit_rates
    w = Workload()
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=16)
    inv = inverse_result(w, c, 0.7, "che")
    assert inv["status"] == "ok" and inv["reachable"] is True and "detail" not in inv
    lo, hi = 0.0, 1e7
    for _ in range(80):
        mid = (lo + hi) / 2
        h = float(hit_rates(w, CacheConfig(capacity_tokens=mid, block_size_tokens=16), "che")["token_hit_rate"])
        lo, hi = (lo, mid) if h >= 0.7 else (mid, hi)
    assert inv["capacity_tokens"] == pytest.approx(hi, rel=2e-3, abs=16)


def test_inverse_above_the_ideal_is_unreachable_with_a_detail():
    inv = inverse_result(Workload(), CacheConfig(capacity_tokens=1e5), 0.99, "che")
    # default workload ideal (block 16): well under 99 % (15000/16000 at block 1)
    assert inv["status"] == "unreachable" and inv["reachable"] is False and inv["capacity_tokens"] is None
    d = inv["detail"]
    assert d["code"] == "inverse_above_ideal" and d["message"] == inv["message"]
    assert d["params"]["target_token_hit_rate"] == 0.99
    assert d["params"]["ideal_token_hit_rate"] == inv["ideal_token_hit_rate"] < 0.95
    assert "reason" not in inv


def test_inverse_beyond_the_capacity_limit_is_a_result():
    # 1e4 conversations/s each idle ~1e5 s between turns: ~1e9 live conversations of ~1e4 tokens
    # = ~1e13 tokens for the ceiling's last points; the 1e13-token limit cannot hold 99 % of it
    w = Workload(conversation_rate_per_s=1e4, gap_mean_s=1e5, turns_mean=50)
    c = CacheConfig(capacity_tokens=1e5)
    ideal = inverse_result(w, c, 0.0, "che")["ideal_token_hit_rate"]
    inv = inverse_result(w, c, round(ideal - 0.001, 4), "che")
    hi = LIMITS["cache.capacity_tokens"].hi
    assert inv["status"] == "beyond_range" and inv["capacity_tokens"] is None and inv["reachable"] is False
    assert inv["capacity_limit_tokens"] == hi
    assert inv["detail"]["code"] == "inverse_beyond_range"
    assert inv["detail"]["params"]["capacity_limit_tokens"] == hi
    assert f"{hi:g}" in inv["message"]


# ----------------------------------------------------------------------------- figure_data

def test_simulation_capacities_by_index():
    caps = list(range(100, 110))
    # n = 10, 6 points: index round(i x 9 / 5) = 0, 1.8, 3.6, 5.4, 7.2, 9 -> 0, 2, 4, 5, 7, 9
    assert simulation_capacities(caps) == [100, 102, 104, 105, 107, 109]
    assert simulation_capacities(caps, points=2) == [100, 109]
    assert simulation_capacities(caps, points=1) == [100]
    assert simulation_capacities([5, 6, 7]) == [5, 6, 7]
    assert simulation_capacities([5]) == [5]
    assert simulation_capacities([]) == []


def test_figures_grids_units_and_tornado_fraction():
    w = Workload()
    c = CacheConfig(capacity_tokens=2e5)
    f = figures_result({"figures": ["curve", "sweeps", "tornado", "heatmap", "kv_context"],
                        "tornado_change_fraction": 0.5}, w, c, "refined", 1000.0)
    assert "kv_context" not in f
    curve = f["curve"]
    assert len(curve["capacity_tokens"]) == 120 and curve["model"] == "che"
    assert curve["capacity_gib"] == pytest.approx([x * 1000.0 / GIB for x in curve["capacity_tokens"]], rel=1e-15)
    assert curve["simulation_capacity_tokens"] == simulation_capacities(curve["capacity_tokens"])
    assert len(f["sweeps"]["gap_mean_s"]["values"]) == 40
    rows = {r["parameter"]: r for r in f["tornado"]["rows"]}
    assert rows["gap_mean_s"]["low_value"] == pytest.approx(30.0) and rows["gap_mean_s"]["high_value"] == pytest.approx(90.0)
    hm = f["heatmap"]
    assert len(hm["capacity_tokens"]) == 30 and len(hm["conversation_rate_per_s"]) == 30
    assert hm["capacity_gib"] == pytest.approx([x * 1000.0 / GIB for x in hm["capacity_tokens"]], rel=1e-15)
    # the default tornado fraction is the limits table's; no bytes per token: no GiB axes
    g = figures_result({"figures": ["tornado", "curve"]}, w, c, "che", None)
    frac = LIMITS["tornado_change_fraction"].default
    assert g["tornado"]["change_fraction"] == frac
    assert "capacity_gib" not in g["curve"]
    assert figures_result({}, w, c, "che", None) == {}


def test_fifo_figures_use_coarse_grids():
    w = Workload()
    c = CacheConfig(capacity_tokens=2e5, eviction="fifo")
    f = figures_result({"figures": ["curve", "sweeps", "heatmap"]}, w, c, "refined", None)
    assert f["curve"]["model"] == "fifo" or len(f["curve"]["capacity_tokens"]) == 30
    assert len(f["curve"]["capacity_tokens"]) == 30
    assert len(f["sweeps"]["gap_mean_s"]["values"]) == 10
    assert len(f["heatmap"]["capacity_tokens"]) == 10


# ----------------------------------------------------------------------------- explain

@pytest.mark.parametrize("eviction", ["lru", "ttl"])
def test_explain_formulas_from_the_users_values(eviction):
    # user's values: rate 2 /s, L = 4, gap 50 s, u = 100, o = 150 (s = 250), P = 0, block 1,
    # C = 60000 tokens
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4.0, gap_mean_s=50.0, user_tokens_per_turn=100,
                 output_tokens_per_turn=150, system_prompt_tokens=0)
    c = CacheConfig(capacity_tokens=60000, block_size_tokens=1, eviction=eviction, ttl_s=2.0)
    e = explain(w, c)
    s = e["seed"]
    active = 2.0 * 4.0 * 50.0                     # 400 conversations
    cached = 60000 / (4.0 * 250)                  # 60 conversations
    assert s["active_conversations"] == pytest.approx(active) and s["cached_conversations"] == pytest.approx(cached)
    assert s["first_turn_factor"] == pytest.approx(0.75)
    assert s["cached_fraction"] == pytest.approx(60 / 400)
    assert s["token_hit_rate"] == pytest.approx(0.75 * 60 / 400, rel=1e-12)
    assert (s["turns_mean"], s["tokens_per_turn"], s["capacity_tokens"]) == (4.0, 250.0, 60000.0)
    assert (s["conversation_rate_per_s"], s["gap_mean_s"]) == (2.0, 50.0)
    che = e["che"]
    # own history share (no shared prompt, block 1, geometric L = 4): hits a (L-1) L / 2... per
    # conversation sum_k P(N>=k) (k-1) a = a E[N(N-1)/2] = 250 x L (L-1) = 3000 of prompt tokens
    # sum_k P(N>=k) ((k-1) a + u) = 3000 + 100 L = 3400: own share 3000/3400
    assert che["own_history_share"] == pytest.approx(3000 / 3400, rel=1e-6)
    assert che["shared_prompt_share"] == pytest.approx(0.0, abs=1e-15)
    T = che["characteristic_time_s"]
    if eviction == "ttl":
        assert T == 2.0                           # T_eff = min(T, ttl): LRU alone keeps ~5.7 s
    h = 1.0 - math.exp(-T / 50.0)                 # exponential gaps, mean 50 s
    assert che["gap_within_t_probability"] == pytest.approx(h, rel=1e-9)
    assert che["token_hit_rate"] == pytest.approx(h * 3000 / 3400, rel=1e-6)
    assert che["gap_mean_s"] == 50.0 and che["gap_distribution"] == "exponential"
    assert e["validation"]["points"] == 72


def test_explain_shared_prompt_share_and_deterministic_gaps():
    # P = 1000, u = 200, o = 300, L = 5, block 1: prompt tokens 16000 per conversation, shared
    # 5000 (all present: a huge cache), own 10000; deterministic gaps of 60 s inside T: h = 1
    w = Workload(gap_distribution="deterministic")
    c = CacheConfig(capacity_tokens=1e9, block_size_tokens=1)
    che = explain(w, c)["che"]
    assert che["shared_prompt_share"] == pytest.approx(5000 / 16000, rel=1e-6)
    assert che["own_history_share"] == pytest.approx(10000 / 16000, rel=1e-6)
    assert che["gap_within_t_probability"] == 1.0
    assert che["token_hit_rate"] == pytest.approx(15000 / 16000, rel=1e-6)


def test_explain_fifo_and_nonfinite():
    e = explain(Workload(), CacheConfig(capacity_tokens=1e5, eviction="fifo"))
    assert e["che"] is None
    from kvcalc.explain import _f
    assert _f(float("inf")) is None and _f(float("nan")) is None and _f(2) == 2.0


# ----------------------------------------------------------------------------- export

def test_cells():
    assert [_cell(None), _cell(True), _cell(False), _cell(0.1), _cell(float("inf")), _cell(3), _cell("a b")] == \
        ["", "true", "false", "0.1", "", "3", "a b"]
    assert _cell("x\ny") == '"x\ny"' and _cell("x\ry") == '"x\ry"' and _cell('"') == '""""'
    assert csv_text(["h"], []) == "h\n"
    assert _cell("XX") == "XX" and _cell("a;b") == "a;b"      # only , " CR LF call for quotes


def test_figure_csv_numbers_equal_the_results():
    fig = {"curve": {"capacity_tokens": [1.0, 2.0], "capacity_gib": [0.5, 1.5], "token_hit_rate": [0.1, 0.2],
                     "request_hit_rate": [0.3, 0.4], "seed_token_hit_rate": [0.05, 0.06],
                     "ideal_token_hit_rate": 0.9},
           "sweeps": {"gap_mean_s": {"values": [1.0, 2.0], "token_hit_rate": [0.7, 0.6], "current": 1.5},
                      "model": "che"},
           "tornado": {"rows": [{"parameter": "p", "low_value": 1.0, "high_value": 2.0, "low_token_hit_rate": 0.1,
                                 "high_token_hit_rate": 0.3, "swing": 0.2}]},
           "heatmap": {"conversation_rate_per_s": [1.0, 2.0], "capacity_tokens": [10.0, 20.0, 30.0],
                       "token_hit_rate": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]},
           "other": {}}
    rec = {"curve": {"candidates": [1, 2], "kv_gib_per_gpu_without_sharing": [1.0, 2.0],
                     "kv_gib_per_gpu_with_sharing": [1.0, 1.5], "prefill_s_with_sharing": [0.1, 0.2]}}
    out = figure_csvs({"figures": fig, "recommender": rec})
    assert set(out) == {"curve", "sweeps", "tornado", "heatmap", "recommender"}
    assert out["curve"] == ("capacity_tokens,capacity_gib,token_hit_rate,request_hit_rate,seed_token_hit_rate,"
                            "ideal_token_hit_rate\n1.0,0.5,0.1,0.3,0.05,0.9\n2.0,1.5,0.2,0.4,0.06,0.9\n")
    assert out["sweeps"] == "parameter,value,token_hit_rate,current_value\ngap_mean_s,1.0,0.7,1.5\ngap_mean_s,2.0,0.6,1.5\n"
    assert out["tornado"] == ("parameter,low_value,high_value,low_token_hit_rate,high_token_hit_rate,swing\n"
                              "p,1.0,2.0,0.1,0.3,0.2\n")
    hm = list(csv.reader(io.StringIO(out["heatmap"])))
    assert hm[0] == ["conversation_rate_per_s", "capacity_tokens", "token_hit_rate"]
    assert hm[1:] == [["1.0", "10.0", "0.1"], ["1.0", "20.0", "0.2"], ["1.0", "30.0", "0.3"],
                      ["2.0", "10.0", "0.4"], ["2.0", "20.0", "0.5"], ["2.0", "30.0", "0.6"]]
    assert out["recommender"] == ("candidates,kv_gib_per_gpu_without_sharing,kv_gib_per_gpu_with_sharing,"
                                  "prefill_s_with_sharing\n1,1.0,1.0,0.1\n2,2.0,1.5,0.2\n")
    no_gib = dict(fig["curve"])
    del no_gib["capacity_gib"]
    assert figure_csvs({"figures": {"curve": no_gib}})["curve"].splitlines()[:2] == [
        "capacity_tokens,token_hit_rate,request_hit_rate,seed_token_hit_rate,ideal_token_hit_rate",
        "1.0,0.1,0.3,0.05,0.9"]
    rec_all = {"curve": {"candidates": [3], "kv_gib_per_gpu_without_sharing": [1.0], "kv_gib_per_gpu_with_sharing": [0.5],
                         "prefill_s_without_sharing": [0.25], "prefill_s_with_sharing": [0.125]}}
    assert figure_csvs({"recommender": rec_all})["recommender"] == (
        "candidates,kv_gib_per_gpu_without_sharing,kv_gib_per_gpu_with_sharing,prefill_s_without_sharing,"
        "prefill_s_with_sharing\n3,1.0,0.5,0.25,0.125\n")


def test_summary_lines_by_hand():
    req = {"workload": {"conversation_rate_per_s": 2, "turns_mean": 5, "gap_mean_s": 60}}
    res = {"model_id": "m", "gpu_id": None, "tensor_parallel": 2, "token_hit_rate": 0.6254,
           "ideal_token_hit_rate": 0.9, "cache_capacity_tokens": 1234567.0, "cache_capacity_gib": 3.0,
           "inverse": {"target_token_hit_rate": 0.8, "kv_gib_per_gpu": 12.345},
           "benefit": {"prefill_speedup": 2.5, "prefill_ttft_no_cache_s": 0.5, "prefill_ttft_with_cache_s": 0.2},
           "recommender": {"candidates": 100, "kv_gib_per_gpu_without_sharing": 10.0,
                           "kv_gib_per_gpu_with_sharing": 1.25}}
    lines = {x["code"]: x for x in summary_lines(req, res)}
    assert [x["code"] for x in summary_lines(req, res)] == ["summary_setup", "summary_workload", "summary_hit_rate",
                                                           "summary_memory", "summary_target", "summary_benefit",
                                                           "summary_recommender"]
    assert lines["summary_setup"]["message"] == "m on -, TP 2"
    assert lines["summary_setup"]["params"] == {"model": "m", "gpu": "-", "tensor_parallel": 2}
    assert lines["summary_workload"]["message"] == "workload: 2 conversations/s, 5 turns, 60 s between turns"
    assert lines["summary_workload"]["params"] == {"conversation_rate_per_s": 2, "turns_mean": 5, "gap_mean_s": 60}
    assert lines["summary_hit_rate"]["message"] == "token hit rate 62.5% (ceiling 90.0%)"
    assert lines["summary_hit_rate"]["params"] == {"token_hit_rate": 0.6254, "ideal_token_hit_rate": 0.9}
    assert lines["summary_memory"]["message"] == "cache: 1,234,567 tokens"
    assert lines["summary_memory"]["params"] == {"cache_capacity_tokens": 1234567.0, "cache_capacity_gib": 3.0}
    assert lines["summary_target"]["message"] == "for 80%: 12.35 GiB of KV per GPU"
    assert lines["summary_target"]["params"] == {"target_token_hit_rate": 0.8, "kv_gib_per_gpu": 12.345}
    assert lines["summary_benefit"]["message"] == "prefill 0.5 s -> 0.2 s (2.50x)"
    assert lines["summary_benefit"]["params"] == {"prefill_ttft_no_cache_s": 0.5, "prefill_ttft_with_cache_s": 0.2,
                                                  "prefill_speedup": 2.5}
    assert lines["summary_recommender"]["message"] == \
        "recommender, 100 candidates: KV 10.00 GiB without sharing, 1.25 GiB with"
    assert lines["summary_recommender"]["params"] == {"candidates": 100, "without_sharing_gib": 10.0,
                                                      "with_sharing_gib": 1.25}
    assert summary_lines({}, {"token_hit_rate": 0.5})[0]["message"] == "token hit rate 50.0% (ceiling 0.0%)"
    assert summary_lines({}, {}) == []
    gpu = summary_lines({}, {"model_id": "m", "gpu_id": "g", "tensor_parallel": 1})[0]
    assert gpu["message"] == "m on g, TP 1" and gpu["params"]["gpu"] == "g"


# ----------------------------------------------------------------------------- panels

def test_panels_compare_recommender_and_export():
    a_req = {"workload": {"gap_mean_s": 30}, "cache": {"capacity_tokens": 1e5}}
    r = compute({"model": LLAMA, "gpu": H100, "workload": {"gap_mean_s": 120}, "export": True,
                 "figures": ["curve"], "recommender": {"candidates": 50, "user_tokens": 1000, "item_tokens": 100},
                 "compare_with": a_req})
    a = compute({**a_req, "figures": ["curve"]})
    cmp = r["compare"]
    assert cmp["a"]["token_hit_rate"] == a["token_hit_rate"]
    assert cmp["a"]["cache_capacity_gib"] is None and cmp["difference"]["cache_capacity_gib"] is None
    assert cmp["difference"]["cache_capacity_tokens"] == r["cache_capacity_tokens"] - 1e5
    assert cmp["a_curve"]["capacity_tokens"] == a["figures"]["curve"]["capacity_tokens"]
    assert cmp["a_curve"]["token_hit_rate"] == a["figures"]["curve"]["token_hit_rate"]
    assert "capacity_gib" not in cmp["a_curve"]
    assert cmp["b"]["benefit.prefill_speedup"] == r["benefit"]["prefill_speedup"]
    rec = r["recommender"]
    # 131072 B per token: user 1000 tokens = 0.1220703125 GiB; 50 x (1000 + 100) tokens without
    # sharing, 1000 + 50 x 100 with
    assert rec["candidates"] == 50
    assert rec["kv_gib_per_gpu_without_sharing"] == pytest.approx(50 * 1100 * 131072 / GIB)
    assert rec["kv_gib_per_gpu_with_sharing"] == pytest.approx(6000 * 131072 / GIB)
    assert r["export"]["csv"]["recommender"].startswith("candidates,")
    assert r["summary_details"][-1]["code"] == "summary_recommender"
    d = compute({"model": LLAMA, "gpu": H100, "workload": {}, "recommender": {}})["recommender"]
    n, u, i = (LIMITS[f"recommender.{k}"].default for k in ("candidates", "user_tokens", "item_tokens"))
    assert d["candidates"] == n and d["user_tokens"] == u and d["item_tokens"] == i
    assert d["mfu"] == LIMITS["mfu"].default
    assert "export" not in compute({"workload": {}, "cache": {"capacity_tokens": 1e5}})


def test_engine_log_is_parsed_and_compared():
    # the engine's "GPU KV cache size" taken as the capacity to adopt (enginelog.compare_with_estimate)
    log = "INFO ... GPU KV cache size: 400,000 tokens\nINFO ... Available KV cache memory: 50.00 GiB\n"
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "engine_log": log})
    e = r["engine_log"]
    assert e["parsed"]["kv_cache_tokens"] == 400000
    assert e["parsed"]["available_kv_cache_gib"] == 50.0
    assert e["adopt"]["capacity_tokens"] == 400000
    assert "engine_log" not in compute({"model": LLAMA, "gpu": H100, "workload": {}})


def test_engine_commands_take_the_hub_repo_id_of_a_fetched_config():
    cfg = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 32, "hidden_size": 4096,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
           "vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
    for name, want in (("someone/my-model", "someone/my-model"), ("not a repo id", "<model-path>"),
                       ("a--b/c", "<model-path>")):
        r = compute({"model": {"hf_config": cfg, "name": name}, "gpu": H100, "workload": {}})
        assert r["engine_commands"]["vllm"]["argv"][2] == want, name


def test_trace_curve_csv_by_hand():
    from kvcalc.export import trace_curve_csv
    res = {"curve": {"block_size_tokens": 16, "capacities_blocks": [0, 3], "block_hit_rate": [0.0, 0.5],
                     "token_hit_rate": [0.0, 0.25]}}
    # capacity_tokens = blocks x 16
    assert trace_curve_csv(res) == ("capacity_blocks,capacity_tokens,block_hit_rate,token_hit_rate\n"
                                    "0,0,0.0,0.0\n3,48,0.5,0.25\n")


def test_sweeps_csv_skips_non_panel_entries_anywhere():
    f = {"model": "che", "gap_mean_s": {"values": [1.0], "token_hit_rate": [0.5], "current": 1.0}}
    assert figure_csvs({"figures": {"sweeps": f}})["sweeps"] == \
        "parameter,value,token_hit_rate,current_value\ngap_mean_s,1.0,0.5,1.0\n"
