"""Sizing a deployment (sizing.py), recommendations (recommend.py), tier load vs
recompute (tiers.py) and the documented engine settings (engine_flags.py)."""

import dataclasses

import pytest

from kvcalc.benefit import prefill_flops
from kvcalc.engine_flags import FLAGS
from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates
from kvcalc.memory import memory_report
from kvcalc.presets import get_gpu, get_model
from kvcalc.recommend import Setup, recommend
from kvcalc.sizing import size_fleet
from kvcalc.tiers import tier_load_report
from kvcalc.workload import CacheConfig, Workload

QWEN = get_model("Qwen/Qwen3-32B")
H100 = get_gpu("h100-sxm-80gb")
# issue 7's example: 3 new chats/s, 6 turns, 45 s think time, 800-token system prompt
W7 = Workload(conversation_rate_per_s=3, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)


@pytest.fixture(scope="module")
def options():
    return size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.8,
                      tier_gib_per_instance=(0.0, 256.0), price_per_gpu_hour=2.5)


def test_every_fitting_option_reaches_the_target_with_the_fewest_instances(options):
    fitting = [r for r in options if r["fits"]]
    assert fitting
    for r in fitting:
        assert r["token_hit_rate"] >= 0.8
        assert r["gpus"] == r["instances"] * r["tensor_parallel"]
        assert r["cost_per_hour"] == pytest.approx(2.5 * r["gpus"])
        # recomputed independently: the fleet at that capacity reaches the target
        cap = memory_report(QWEN, H100, tensor_parallel=r["tensor_parallel"])["kv_capacity_tokens"]
        tiers = (TierConfig("cpu", r["tier_capacity_tokens_per_instance"]),) if r["tier_gib_per_instance"] else ()
        h = fleet_hit_rates(W7, CacheConfig(capacity_tokens=cap), FleetConfig(r["instances"], "affinity", tiers))
        assert h["token_hit_rate"] == pytest.approx(r["token_hit_rate"], abs=1e-12)
        if r["sized_for"] == "hit_rate":   # (rows sized for the traffic have more instances on purpose)
            fewer = fleet_hit_rates(W7, CacheConfig(capacity_tokens=cap),
                                    FleetConfig(max(r["instances"] - 1, 1), "affinity", tiers))
            assert r["instances"] == 1 or fewer["token_hit_rate"] < 0.8
    # cheapest first
    gpus = [r["gpus"] for r in fitting]
    assert gpus == sorted(gpus)
    assert options.index(fitting[-1]) < min([options.index(r) for r in options if not r["fits"]] or [len(options)])


def test_options_that_cannot_work_say_why():
    big = get_model("meta-llama/Llama-3.1-405B")
    rows = size_fleet(big, H100, W7, CacheConfig(capacity_tokens=1.0), 0.8, tensor_parallel_sizes=(1, 8))
    tp1 = [r for r in rows if r["tensor_parallel"] == 1]
    assert tp1 and not tp1[0]["fits"] and tp1[0]["code"] == "weights_do_not_fit"
    assert "weights" in tp1[0]["reason"]
    # above the ideal: no number of instances reaches it
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.99, tensor_parallel_sizes=(2,),
                      max_instances=16)
    assert rows[0]["code"] == "target_not_reached" and not rows[0]["fits"]


def test_every_recommended_flag_is_documented_with_a_source():
    s = Setup(QWEN, H100, 2, 0.9, "auto", W7, CacheConfig(capacity_tokens=1.0), FleetConfig(2, "random"))
    levers = recommend(s)
    codes = [x["code"] for x in levers]
    for code in ("raise_gpu_memory_utilization", "fp8_kv_cache", "more_tensor_parallel", "affinity_routing",
                 "more_replicas_affinity", "cpu_tier", "smaller_block"):
        assert code in codes
    for x in levers:
        assert set(x) >= {"code", "params", "message"}
        for st in x["settings"]:
            assert (st["engine"], st["flag"]) in FLAGS
            assert st["source"].startswith("https://")
    deltas = [x["delta_pp"] for x in levers]
    assert deltas == sorted(deltas, reverse=True)
    # fp8 halves the bytes per token: the lever equals the fleet model at the fp8 capacity
    fp8 = next(x for x in levers if x["code"] == "fp8_kv_cache")
    cap = memory_report(QWEN, H100, tensor_parallel=2, kv_cache_dtype="fp8")["kv_capacity_tokens"]
    assert fp8["token_hit_rate"] == pytest.approx(
        fleet_hit_rates(W7, CacheConfig(capacity_tokens=cap), FleetConfig(2, "random"))["token_hit_rate"], abs=1e-12)


def test_ceiling_reached_is_said_when_memory_stops_helping():
    tiny = Workload(conversation_rate_per_s=0.01, turns_mean=4, gap_mean_s=30)
    s = Setup(QWEN, H100, 2, 0.9, "auto", tiny, CacheConfig(capacity_tokens=1.0), FleetConfig())
    assert recommend(s)[0]["code"] == "ideal_ceiling_reached"
    busy = Setup(QWEN, H100, 2, 0.9, "auto", W7, CacheConfig(capacity_tokens=1.0), FleetConfig())
    assert "ideal_ceiling_reached" not in [x["code"] for x in recommend(busy)]


def test_tier_load_against_recompute_by_hand():
    # 1000-token prompt, GPU hits 300, CPU tier 200 tokens at 64 GB/s, 131072 B/token per GPU:
    # load = 200 * 131072 / 64e9 = 0.4096 ms; recompute = FLOPs of tokens [300, 500) / (2 * 989.4e12 * 0.4).
    rows = tier_load_report(QWEN, H100, 2, 131072.0, [TierConfig("cpu", 1e6, 64.0), TierConfig("ssd", 1e6, 0.001)],
                            [0.3, 0.2, 0.1], 1000.0)
    assert rows[0]["load_s_per_request"] == pytest.approx(200 * 131072 / 64e9)
    assert rows[0]["recompute_s_per_request"] == pytest.approx(
        prefill_flops(QWEN, 500.0, 300.0) / (2 * 989.4e12 * 0.4))
    assert rows[0]["helps_ttft"] and rows[0]["code"] == "tier_helps_ttft"
    # a 1 MB/s "tier" is slower than recomputing
    assert not rows[1]["helps_ttft"] and rows[1]["code"] == "tier_slower_than_recompute"
