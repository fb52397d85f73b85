"""kvcalc.recommend: the CPU tier lever at TP 2 with a block that does not divide the tier, and
the full settings and messages of the routing, replica, tier and ceiling lines.

Tier size by hand: Llama-3.1-8B keeps 32 layers x 8 KV heads x 128 dims x 2 (K and V) x 2 B =
131072 B of KV per token for the whole instance at bf16, whatever the tensor parallelism (TP 2
puts 65536 B on each GPU). A 256 GiB tier per instance holds 256 x 2^30 / 131072 = 2097152
tokens; in whole blocks of 48: floor(2097152 / 48) = 43690 blocks = 2097120 tokens.
GPU capacity by hand (tests/test_hm4_recommend.py's derivation): budget per GPU = the H100's memory x
utilization - 8.03e9 x 2 B / TP - 1.75 GiB, over 65536 B per token per GPU at TP 2.

Engine settings: the values the engines document (kvcalc.engine_flags cites the pages):
vLLM production-stack router `--routing-logic session` (sticky sessions), SGLang router
`--policy cache_aware`, vLLM's LMCache offload `--kv-offloading-backend lmcache` with
`--kv-transfer-config {"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}`.
"""

import math

import pytest

from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates
from kvcalc.presets import get_gpu, get_model
from kvcalc.recommend import Setup, recommend
from kvcalc.workload import CacheConfig, Workload

LLAMA, H100 = get_model("meta-llama/Llama-3.1-8B"), get_gpu("h100-sxm-80gb")
GIB = 2 ** 30
W = Workload(conversation_rate_per_s=6.0, gap_mean_s=60.0)


def _flags(lever):
    return [(st["engine"], st["flag"], st["value"]) for st in lever["settings"]]


def _h(cap, fleet, block):
    c = CacheConfig(capacity_tokens=float(cap), block_size_tokens=block)
    return fleet_hit_rates(W, c, fleet)["token_hit_rate"]


def test_cpu_tier_at_tp2_in_whole_blocks_of_48():
    fleet = FleetConfig(3, "random")
    s = Setup(LLAMA, H100, 2, 0.9, "auto", W, CacheConfig(capacity_tokens=1.0, block_size_tokens=48), fleet)
    by = {x["code"]: x for x in recommend(s)}
    budget = H100.memory_bytes * 0.9 - 8.03e9 * 2 / 2 - 1.75 * GIB
    cap = math.floor(budget / (65536 * 48)) * 48
    base = _h(cap, fleet, 48)
    tier = by["cpu_tier"]
    assert tier["params"] == {"cpu_tier_gib": 256.0, "capacity_tokens": 2097120.0}
    assert "256 GiB per instance (2,097,120 tokens)" in tier["message"]
    want = _h(cap, FleetConfig(3, "random", tiers=(TierConfig("cpu", 2097120.0, 64.0),)), 48)
    assert tier["token_hit_rate"] == pytest.approx(want, abs=1e-12)
    assert tier["delta_pp"] == pytest.approx(100 * (want - base), abs=1e-9)
    assert _flags(tier) == [
        ("vllm", "--kv-offloading-backend", "lmcache"), ("vllm", "--kv-offloading-size", 256.0),
        ("vllm", "--kv-transfer-config", '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'),
        ("sglang", "--enable-hierarchical-cache", None), ("sglang", "--hicache-ratio", round(2097120 / cap, 2))]
    # routing and replica levers: their messages and every setting
    aff = by["affinity_routing"]
    assert aff["message"].startswith("route each conversation to one instance (session affinity) instead of random: ")
    assert _flags(aff) == [("vllm-router", "--routing-logic", "session"), ("sglang-router", "--policy", "cache_aware")]
    rep = by["more_replicas_affinity"]
    assert rep["message"].startswith("3 -> 6 instances with affinity routing (each sees half the conversations): ")
    assert _flags(rep) == [("vllm-router", "--routing-logic", "session"), ("sglang", "--dp-size", 6),
                           ("sglang-router", "--policy", "cache_aware")]
    assert rep["gpus_before"] == 6 and rep["gpus_after"] == 12


def test_ideal_ceiling_message():
    light = Workload(conversation_rate_per_s=0.01)
    s = Setup(LLAMA, H100, 1, 0.9, "auto", light, CacheConfig(capacity_tokens=1.0), FleetConfig())
    first = recommend(s)[0]
    base, ideal = first["token_hit_rate"], first["params"]["ideal_token_hit_rate"]
    assert first["code"] == "ideal_ceiling_reached"
    assert first["message"] == (f"more memory stops helping: {base:.1%} is within a point of the ideal "
                                f"{ideal:.1%} (only turns never seen before miss)")
