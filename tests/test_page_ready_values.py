"""Values Python sends ready for the page (issue 10: JavaScript only formats), each derived here
a second way: percentage points of a comparison, the engine log's relative differences in
percent and the reserve to adopt, a tier's load and recompute times in ms, whether the
sliding-window series differs from the full one, the trace fit as the page's boxes take it, and
the page's own rows of the limits table (PAGE_TIERS, page_default, page_integer)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kvcalc.api import compute
from kvcalc.benefit import prefill_flops
from kvcalc.enginelog import compare_with_estimate, parse_engine_log
from kvcalc.fleet import TierConfig
from kvcalc.limits import LIMITS, PAGE_TIERS, page_inputs
from kvcalc.memory import memory_report
from kvcalc.presets import get_gpu, get_model
from kvcalc.tiers import default_read_gb_per_s, tier_load_report
from kvcalc.trace.api import trace_analyze

LLAMA = "meta-llama/Llama-3.1-8B"
H100 = "h100-sxm-80gb"
DATA = Path(__file__).resolve().parent / "data"


def test_compare_sends_rate_differences_in_percentage_points():
    a_req = {"model": LLAMA, "gpu": H100, "workload": {"gap_mean_s": 30}}
    b_req = {"model": LLAMA, "gpu": H100, "workload": {"gap_mean_s": 120}, "compare_with": a_req}
    r = compute(b_req)
    a = compute(a_req)   # A alone, a second computation
    pts = r["compare"]["difference_pct_points"]
    # exactly the rate rows: every *_hit_rate key of the comparison, nothing in tokens or GiB
    assert set(pts) == {"token_hit_rate", "ideal_token_hit_rate", "request_hit_rate"}
    for k in pts:
        assert pts[k] == pytest.approx(100.0 * (r[k] - a[k]), abs=1e-12), k
    assert pts["token_hit_rate"] < 0     # longer gaps, fewer hits


# https://github.com/vllm-project/vllm/issues/21348 (Qwen3-235B-A22B-FP8, TP 4 on H100), as in test_enginelog.py
VLLM_QWEN3_235B = """INFO 07-22 10:01:02 [gpu_worker.py:255] Available KV cache memory: 8.11 GiB
INFO 07-22 10:01:02 [kv_cache_utils.py:833] GPU KV cache size: 178,880 tokens"""


def test_engine_log_sends_percent_and_the_reserve_as_the_box_takes_it():
    model = get_model("Qwen/Qwen3-235B-A22B")
    rep = memory_report(model, H100, tensor_parallel=4, weight_dtype="fp8", context_tokens=4096)
    c = compare_with_estimate(parse_engine_log(VLLM_QWEN3_235B), rep)
    row = c["rows"]["kv_cache_tokens"]
    assert row["relative_difference_pct"] == pytest.approx(100.0 * (rep["kv_capacity_tokens"] - 178880) / 178880)
    row = c["rows"]["kv_cache_gib"]
    assert row["relative_difference_pct"] == pytest.approx(100.0 * (rep["kv_budget_gib"] - 8.11) / 8.11)
    # no engine figure: no difference either
    assert c["rows"]["max_concurrency"]["relative_difference_pct"] is None
    box = c["adopt"]["page_inputs"]
    assert box["cache.capacity_tokens"] == 178880
    exact = rep["usable_gib_per_gpu"] - rep["weights_gib_per_gpu"] - 8.11
    # six significant digits: within half a unit of the sixth digit, and no more digits than six
    assert box["runtime_reserve_gib"] == pytest.approx(exact, abs=0.5 * 10 ** (math.floor(math.log10(exact)) - 5))
    digits = f"{box['runtime_reserve_gib']:.15g}".replace(".", "").lstrip("0")
    assert len(digits) <= 6, box


def test_tier_times_in_ms_by_hand():
    # as tests/test_sizing.py: 1000-token prompt, GPU hits 300, CPU tier 200 tokens at 64 GB/s,
    # 131072 B/token per GPU: load = 200 * 131072 / 64e9 s = 0.4096 ms
    qwen, h100 = get_model("Qwen/Qwen3-32B"), get_gpu(H100)
    rows = tier_load_report(qwen, h100, 2, 131072.0, [TierConfig("cpu", 1e6, 64.0)], [0.3, 0.2], 1000.0)
    assert rows[0]["load_ms_per_request"] == pytest.approx(0.4096)
    assert rows[0]["recompute_ms_per_request"] == pytest.approx(
        1e3 * prefill_flops(qwen, 500.0, 300.0) / (2 * h100.dense_bf16_tflops * 1e12 * 0.4))


@pytest.mark.parametrize("model, windowed", [(LLAMA, False), ("google/gemma-2-9b", True)])
def test_sliding_window_series_drawn_only_for_windowed_models(model, windowed):
    r = compute({"model": model, "gpu": H100, "figures": ["kv_context"]})
    fig = r["figures"]["kv_context"]
    assert fig["draw_sliding_window"] is windowed
    # gemma-2: every other layer holds a 4096-token window, so at its 8192-token context the
    # windowed model holds (4096 + 8192) / (2 * 8192) = 0.75 of the full one
    if windowed:
        i = fig["context_tokens"].index(8192)
        assert fig["sliding_window_bytes"][i] / fig["full_attention_bytes"][i] == pytest.approx(0.75, rel=1e-12)


def test_page_inputs_round_to_whole_numbers_only_where_the_page_wants_them():
    wl = {"turns_mean": 2.5, "user_tokens_per_turn": 200.5, "output_tokens_per_turn": 12.49,
          "system_prompt_tokens": 0.0, "gap_distribution": "lognormal", "gap_mean_s": 7.25}
    assert page_inputs(wl, prefix="workload.") == {
        "workload.turns_mean": 2.5, "workload.user_tokens_per_turn": 201, "workload.output_tokens_per_turn": 12,
        "workload.system_prompt_tokens": 0, "workload.gap_distribution": "lognormal", "workload.gap_mean_s": 7.25}


def test_trace_fit_carries_the_page_inputs():
    res = trace_analyze({"text": (DATA / "trace_mooncake_small.jsonl").read_bytes()})
    fit = res["fit"]
    assert set(fit["page_inputs"]) == {f"workload.{k}" for k in fit["workload"]}
    for k, v in fit["workload"].items():
        box = fit["page_inputs"][f"workload.{k}"]
        if k.endswith("_tokens") or k.endswith("_tokens_per_turn"):
            assert box == math.floor(v + 0.5) and isinstance(box, int), (k, v, box)
        else:
            assert box == v, k


def test_page_rows_of_the_limits_table():
    # the page's auto-sampling threshold is below the CLI's default and valid for the API
    row = LIMITS["trace.sampling_auto_above_mib"]
    assert row.page_default == 64 and row.default == 256 and row.contains(row.page_default)
    # the tiers the page offers: CPU first (its default bandwidth is the GPU's host link), then a
    # tier that reads at the NVMe figure; every slider end valid for the tiers[] rows
    assert [t["name"] for t in PAGE_TIERS] == ["cpu", "ssd"]
    h100 = get_gpu(H100)
    assert default_read_gb_per_s("cpu", h100) == h100.host_link_bandwidth_gb_per_s
    assert default_read_gb_per_s("ssd", h100) == 7.0
    for tier in PAGE_TIERS:
        for field in ("capacity_gib", "read_gb_per_s"):
            lo, hi = tier[f"{field}_slider"]
            assert lo < hi and LIMITS[f"tiers[].{field}"].contains(lo) and LIMITS[f"tiers[].{field}"].contains(hi)
    # page_integer only where Python takes fractions (else it would be integer already)
    assert all(not r.integer for r in LIMITS.values() if r.page_integer)
