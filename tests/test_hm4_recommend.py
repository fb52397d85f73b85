"""kvcalc.recommend and kvcalc.recommender against hand derivations.

Levers: each lever's hit rate is the fleet model at the capacity the changed setup gives, with
that capacity derived here by hand (MODEL.md's memory side): Llama-3.1-8B has 32 layers x 8 KV
heads x 128 dims x 2 (K and V) x 2 bytes = 131072 B per token at bf16 (fp8 halves it, TP = 2
halves the heads per GPU), 8.03e9 parameters of 2 bytes, and the preset's 1.75 GiB runtime
reserve; budget per GPU = memory x utilization - weights / TP - reserve; capacity = whole
blocks of budget / (bytes per token x block).

Broadcast: KV memory N (U + I) x bytes/token without sharing, (U + N I) x bytes/token with;
prefill FLOPs of positions [c, n) of one sequence F(n, c) = 2 P (n - c) + 4 L d sum_{t=c}^{n-1} t
= 2 P (n - c) + 2 L d (n (n - 1) - c (c - 1)) (two FLOPs per active parameter per token plus
attention to every earlier token, d = heads x head_dim).
"""

import math

import numpy as np
import pytest

from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates
from kvcalc.presets import get_gpu, get_model
from kvcalc.recommend import DEFAULT_CPU_TIER_GIB, LEVER_CODES, Setup, recommend
from kvcalc.recommender import CURVE_POINTS, broadcast_memory_bytes, broadcast_report, simulate_broadcast
from kvcalc.workload import CacheConfig, Workload

LLAMA, H100 = get_model("meta-llama/Llama-3.1-8B"), get_gpu("h100-sxm-80gb")
GIB = 2 ** 30
W = Workload(conversation_rate_per_s=6.0, gap_mean_s=60.0)


def _cap(util, tp, kv_bits, block):
    bpt = 131072 * kv_bits / 16 / tp
    budget = H100.memory_bytes * util - 8.03e9 * 2 / tp - 1.75 * GIB
    return math.floor(budget / (bpt * block)) * block, bpt


def _h(cap, fleet, block=16, w=W):
    return fleet_hit_rates(w, CacheConfig(capacity_tokens=float(cap), block_size_tokens=block), fleet)["token_hit_rate"]


def test_levers_by_hand():
    fleet = FleetConfig(2, "random")
    s = Setup(LLAMA, H100, 1, 0.8, "auto", W, CacheConfig(capacity_tokens=1.0, block_size_tokens=16), fleet)
    levers = recommend(s)
    by = {x["code"]: x for x in levers}
    cap0, bpt0 = _cap(0.8, 1, 16, 16)
    base = _h(cap0, fleet)
    assert set(by) == {"raise_gpu_memory_utilization", "fp8_kv_cache", "more_tensor_parallel", "affinity_routing",
                       "more_replicas_affinity", "cpu_tier", "smaller_block"}
    assert set(by) <= set(LEVER_CODES)
    want = {
        "raise_gpu_memory_utilization": _h(_cap(0.95, 1, 16, 16)[0], fleet),
        "fp8_kv_cache": _h(_cap(0.8, 1, 8, 16)[0], fleet),
        "more_tensor_parallel": _h(_cap(0.8, 2, 16, 16)[0], fleet),
        "affinity_routing": _h(cap0, FleetConfig(2, "affinity")),
        "more_replicas_affinity": _h(cap0, FleetConfig(4, "affinity")),
        "smaller_block": _h(_cap(0.8, 1, 16, 8)[0], fleet, block=8),
    }
    # the CPU tier: 256 GiB / 131072 B = 2097152 tokens, whole blocks of 16
    tier_tokens = float(int(256 * GIB / bpt0) // 16 * 16)
    assert tier_tokens == 2097152.0
    want["cpu_tier"] = _h(cap0, FleetConfig(2, "random", tiers=(TierConfig("cpu", tier_tokens, 64.0),)))
    for code, h in want.items():
        x = by[code]
        assert x["token_hit_rate"] == pytest.approx(h, abs=1e-12), code
        assert x["delta_pp"] == pytest.approx(100 * (h - base), abs=1e-9), code
        assert x["gpus_before"] == 2
        assert x["message"].endswith(f"token hit rate {base:.1%} -> {h:.1%} ({100 * (h - base):+.1f} pp)")
    assert [x["delta_pp"] for x in levers] == sorted((x["delta_pp"] for x in levers), reverse=True)
    assert by["more_tensor_parallel"]["gpus_after"] == 4 and by["more_replicas_affinity"]["gpus_after"] == 4
    assert by["fp8_kv_cache"]["gpus_after"] == 2 and by["cpu_tier"]["gpus_after"] == 2
    assert by["raise_gpu_memory_utilization"]["params"] == {"from": 0.8, "to": 0.95}
    assert by["raise_gpu_memory_utilization"]["message"].startswith("raise gpu_memory_utilization from 0.8 to 0.95: ")
    assert by["smaller_block"]["message"].startswith("block size 16 -> 8 tokens")
    assert by["fp8_kv_cache"]["message"].startswith("store the KV cache in fp8 (half the bytes per token): ")
    assert by["more_tensor_parallel"]["message"].startswith("tensor parallelism 1 -> 2 ")
    assert by["more_tensor_parallel"]["params"] == {"from": 1, "to": 2}
    assert by["more_replicas_affinity"]["params"] == {"from": 2, "to": 4}
    assert by["smaller_block"]["params"] == {"from": 16, "to": 8}
    assert by["affinity_routing"]["params"] == {"from": "random"}
    assert by["fp8_kv_cache"]["params"] == {"kv_cache_dtype": "fp8"}
    assert by["cpu_tier"]["params"] == {"cpu_tier_gib": DEFAULT_CPU_TIER_GIB, "capacity_tokens": tier_tokens}

    def flags(code):
        return {(st["engine"], st["flag"]): st["value"] for st in by[code]["settings"]}
    assert flags("raise_gpu_memory_utilization") == {("vllm", "--gpu-memory-utilization"): 0.95,
                                                     ("sglang", "--mem-fraction-static"): 0.95}
    assert flags("more_tensor_parallel") == {("vllm", "--tensor-parallel-size"): 2, ("sglang", "--tp-size"): 2}
    assert flags("fp8_kv_cache") == {("vllm", "--kv-cache-dtype"): "fp8", ("sglang", "--kv-cache-dtype"): "fp8_e4m3"}
    assert flags("smaller_block") == {("vllm", "--block-size"): 8, ("sglang", "--page-size"): 8}
    assert flags("more_replicas_affinity")[("sglang", "--dp-size")] == 4
    cpu = flags("cpu_tier")
    assert cpu[("vllm", "--kv-offloading-size")] == 256.0
    assert cpu[("sglang", "--hicache-ratio")] == round(tier_tokens / cap0, 2)
    assert "256 GiB per instance (2,097,152 tokens)" in by["cpu_tier"]["message"]


def test_levers_that_do_not_apply_are_left_out():
    # utilization already 0.95, fp8 cache, TP 8, affinity, a tier, block 8: only more replicas remain
    fleet = FleetConfig(1, "affinity", tiers=(TierConfig("cpu", 1e5),))
    s = Setup(LLAMA, H100, 8, 0.95, "fp8", W, CacheConfig(capacity_tokens=1.0, block_size_tokens=8), fleet)
    codes = [x["code"] for x in recommend(s) if x["code"] != "ideal_ceiling_reached"]
    assert codes == ["more_replicas_affinity"]
    # utilization 0.94, TP 4, block 9 and random routing with K = 1: those levers return
    s2 = Setup(LLAMA, H100, 4, 0.94, "fp8", W, CacheConfig(capacity_tokens=1.0, block_size_tokens=9),
               FleetConfig(1, "random", tiers=(TierConfig("cpu", 1e5),)))
    levers2 = [x for x in recommend(s2) if x["code"] != "ideal_ceiling_reached"]
    # one instance of TP 4: 4 GPUs before; TP 8 after the TP lever, 2 x 4 with a second replica
    assert all(x["gpus_before"] == 4 for x in levers2)
    assert {x["code"]: x["gpus_after"] for x in levers2} == {"raise_gpu_memory_utilization": 4,
                                                             "more_tensor_parallel": 8, "more_replicas_affinity": 8,
                                                             "smaller_block": 4}
    assert set(x["code"] for x in recommend(s2)) - {"ideal_ceiling_reached"} == {"raise_gpu_memory_utilization", "more_tensor_parallel",
                                                     "more_replicas_affinity", "smaller_block"}


def test_weights_that_leave_no_kv():
    qwen = get_model("Qwen/Qwen3-32B")     # 32.8e9 parameters x 2 B = 61 GiB > 80 GiB x 0.5
    s = Setup(qwen, H100, 1, 0.5, "auto", W, CacheConfig(capacity_tokens=1.0), FleetConfig())
    out = recommend(s)
    assert len(out) == 1 and out[0]["code"] == "weights_leave_no_kv"
    assert out[0]["token_hit_rate"] is None and out[0]["delta_pp"] is None
    assert out[0]["params"] == {"tensor_parallel": 1}
    assert out[0]["message"] == "the weights leave no KV cache: raise tensor parallelism or use a larger GPU"
    assert {(x["engine"], x["flag"]): x["value"] for x in out[0]["settings"]} == {
        ("vllm", "--tensor-parallel-size"): 2, ("sglang", "--tp-size"): 2}


def test_ideal_ceiling_reached_comes_first():
    # a light load: 0.01 conversations/s, the whole working set fits: base within a point of the ideal
    light = Workload(conversation_rate_per_s=0.01)
    s = Setup(LLAMA, H100, 1, 0.9, "auto", light, CacheConfig(capacity_tokens=1.0), FleetConfig())
    out = recommend(s)
    first = out[0]
    ideal = fleet_hit_rates(light, CacheConfig(capacity_tokens=1e13), FleetConfig())["ideal_token_hit_rate"]
    cap, _ = _cap(0.9, 1, 16, 16)
    base = _h(cap, FleetConfig(), w=light)
    assert base >= ideal - 0.01
    assert first["code"] == "ideal_ceiling_reached" and first["delta_pp"] == 0.0 and first["settings"] == []
    assert first["params"] == {"ideal_token_hit_rate": ideal} and first["token_hit_rate"] == base
    # the busy default is more than a point under its ideal: no such line
    busy = Setup(LLAMA, H100, 1, 0.5, "auto", Workload(conversation_rate_per_s=20.0), CacheConfig(capacity_tokens=1.0),
                 FleetConfig())
    assert "ideal_ceiling_reached" not in [x["code"] for x in recommend(busy)]


# ----------------------------------------------------------------------------- recommender

def _F(n, c, P=8.03e9, L=32, d=32 * 128):
    return 2 * P * (n - c) + 2 * L * d * (n * (n - 1) - c * (c - 1))


def test_broadcast_report_by_hand():
    r = broadcast_report(LLAMA, H100, 2, 65536.0, 10, 1000, 100, 0.5)
    assert r["candidates"] == 10 and r["user_tokens"] == 1000.0 and r["item_tokens"] == 100.0
    assert r["kv_user_gib_per_gpu"] == pytest.approx(1000 * 65536 / GIB, rel=1e-15)
    assert r["kv_item_gib_per_gpu"] == pytest.approx(100 * 65536 / GIB, rel=1e-15)
    assert r["kv_gib_per_gpu_without_sharing"] == pytest.approx(10 * 1100 * 65536 / GIB, rel=1e-15)
    assert r["kv_gib_per_gpu_with_sharing"] == pytest.approx(2000 * 65536 / GIB, rel=1e-15)
    assert r["memory_ratio"] == pytest.approx(11000 / 2000, rel=1e-15)
    user, wo, w = _F(1000, 0), 10 * _F(1100, 0), _F(1000, 0) + 10 * _F(1100, 1000)
    assert r["prefill_flops_user_only"] == pytest.approx(user, rel=1e-12)
    assert r["prefill_flops_without_sharing"] == pytest.approx(wo, rel=1e-12)
    assert r["prefill_flops_with_sharing"] == pytest.approx(w, rel=1e-12)
    assert r["compute_ratio"] == pytest.approx(wo / w, rel=1e-12)
    assert r["extra_prefill_fraction_without_sharing"] == pytest.approx(wo / user - 1, rel=1e-12)
    assert r["extra_prefill_fraction_with_sharing"] == pytest.approx(w / user - 1, rel=1e-12)
    fps = 989.4e12 * 0.5 * 2           # TFLOPS are 1e12 FLOP/s
    assert r["mfu"] == 0.5
    assert r["prefill_s_user_only"] == pytest.approx(user / fps, rel=1e-14, abs=0)
    assert r["prefill_s_without_sharing"] == pytest.approx(wo / fps, rel=1e-14, abs=0)
    assert r["prefill_s_with_sharing"] == pytest.approx(w / fps, rel=1e-14, abs=0)
    cv = r["curve"]
    # geomspace(1, 10, 24) rounded: every integer 1..10
    assert cv["candidates"] == list(range(1, 11))
    n = np.arange(1, 11)
    assert cv["kv_gib_per_gpu_without_sharing"] == pytest.approx(list(n * 1100 * 65536 / GIB), rel=1e-15)
    assert cv["kv_gib_per_gpu_with_sharing"] == pytest.approx(list((1000 + n * 100) * 65536 / GIB), rel=1e-15)
    assert cv["prefill_s_without_sharing"] == pytest.approx([k * _F(1100, 0) / fps for k in n], rel=1e-12)
    assert cv["prefill_s_with_sharing"] == pytest.approx([(_F(1000, 0) + k * _F(1100, 1000)) / fps for k in n],
                                                         rel=1e-12)
    big = broadcast_report(LLAMA, None, 1, 1.0, 1000, 10, 1, 0.4)
    assert len(big["curve"]["candidates"]) <= CURVE_POINTS and big["curve"]["candidates"][-1] == 1000
    assert big["curve"]["candidates"][0] == 1
    assert "prefill_s_with_sharing" not in big and "mfu" not in big
    assert "prefill_s_with_sharing" not in big["curve"]


def test_broadcast_memory_arrays():
    wo, w = broadcast_memory_bytes(2.0, 10, 3, [1, 4])
    assert wo.tolist() == [26.0, 104.0] and w.tolist() == [26.0, 44.0]


@pytest.mark.parametrize("sharing", [True, False])
def test_simulated_broadcast_counted_by_hand(sharing):
    # U = 32, I = 8, N = 3, blocks of 16: the user's two full blocks are shared (one hashed prefix)
    # and each candidate's last 8 tokens are a partial block of its own: 2 + 3 blocks, 32 + 24
    # tokens held with sharing; without, 3 x (2 + 1) blocks and 3 x 40 tokens
    r = simulate_broadcast(LLAMA, 32, 8, 3, 16, np.random.default_rng(0), sharing)
    if sharing:
        assert (r["blocks"], r["held_tokens"]) == (5, 56)
        assert r["prefill_flops"] == pytest.approx(_F(32, 0) + 3 * _F(40, 32), rel=1e-12)
    else:
        assert (r["blocks"], r["held_tokens"]) == (9, 120)
        assert r["prefill_flops"] == pytest.approx(3 * _F(40, 0), rel=1e-12)
    # 17-token blocks: the user's 32 tokens are one full block and a partial one (15 tokens);
    # with sharing the partial user block is keyed per candidate, so the 40 tokens are one full
    # (17) + one full (17, user 15 + item 2) + partial 6 per candidate: 1 + 2 x 3 blocks
    r17 = simulate_broadcast(LLAMA, 32, 8, 3, 17, np.random.default_rng(0), sharing)
    assert r17["blocks"] == (7 if sharing else 9)
    assert r17["held_tokens"] == (17 + 3 * 23 if sharing else 120)


def test_one_candidate_curve_is_one_point():
    r = broadcast_report(LLAMA, None, 1, 100.0, 1, 10, 5, 0.4)
    assert r["curve"]["candidates"] == [1]
    assert r["kv_gib_per_gpu_without_sharing"] == pytest.approx(15 * 100 / GIB, rel=1e-15)
    assert r["memory_ratio"] == 1.0


def test_candidates_differing_by_one_item_token_keep_their_own_blocks():
    # user 15 tokens + item 1 token = one full block of 16 per candidate, distinct by the item's
    # random id (ids from [0, 2^31 - 1): 50 candidates never collide): 50 blocks, 800 tokens
    r = simulate_broadcast(LLAMA, 15, 1, 50, 16, np.random.default_rng(2), True)
    assert (r["blocks"], r["held_tokens"]) == (50, 800)


def test_memory_settings_and_hit_model_reach_every_lever():
    # a 5 GiB runtime reserve (instead of the preset's 1.75) and the Che model
    fleet = FleetConfig(1, "affinity")
    s = Setup(LLAMA, H100, 1, 0.9, "auto", W, CacheConfig(capacity_tokens=1.0, block_size_tokens=16), fleet,
              memory_kwargs=(("runtime_reserve_gib", 5.0),))
    by = {x["code"]: x for x in recommend(s, "che")}
    budget = H100.memory_bytes * 0.9 - 8.03e9 * 2 - 5.0 * GIB
    cap = math.floor(budget / (131072 * 16)) * 16
    want = fleet_hit_rates(W, CacheConfig(capacity_tokens=float(cap)), FleetConfig(2, "affinity"), "che")
    assert by["more_replicas_affinity"]["token_hit_rate"] == pytest.approx(want["token_hit_rate"], abs=1e-12)


def test_round_robin_gets_the_affinity_lever():
    s = Setup(LLAMA, H100, 1, 0.9, "auto", W, CacheConfig(capacity_tokens=1.0), FleetConfig(3, "round_robin"))
    by = {x["code"]: x for x in recommend(s)}
    cap, _ = _cap(0.9, 1, 16, 16)
    assert by["affinity_routing"]["params"] == {"from": "round_robin"}
    assert by["affinity_routing"]["token_hit_rate"] == pytest.approx(_h(cap, FleetConfig(3, "affinity")), abs=1e-12)
