"""Replicas, routing and lower tiers: the fleet model (py/kvcalc/fleet.py) and the
simulator's K instances and tiers (py/kvcalc/simulate.py).

Exact cases first (K = 1 under every routing, pooled = one cache of K x C,
exclusive tiers with no overlap = one cache of the summed capacity), then the
random-routing ceiling L/(L+K-1) (MODEL.md; derivation in the test), then
model against simulator at a few points (the full grid is in
tests/test_model_vs_sim.py).
"""

import dataclasses
import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates, scattered_hit_rates
from kvcalc.hitrate import hit_rates
from kvcalc.simulate import simulate
from kvcalc.workload import CacheConfig, Workload

W = Workload()   # 1 conv/s, L = 5 geometric, 60 s exponential gaps, 200 + 300 tokens, P = 1000, S = 2 s


@pytest.mark.parametrize("routing", ["affinity", "random", "round_robin", "pooled"])
def test_one_instance_is_the_single_cache_under_every_routing(routing):
    c = CacheConfig(capacity_tokens=2e5)
    single = float(hit_rates(W, c)["token_hit_rate"])
    model = fleet_hit_rates(W, c, FleetConfig(1, routing))
    assert model["token_hit_rate"] == single
    assert model["tier_token_hit_rates"] == [single]
    a = simulate(W, c, seed=5, n_conversations=3000)
    b = simulate(W, c, seed=5, n_conversations=3000, fleet=FleetConfig(1, routing))
    assert (a["hit_tokens"], a["prompt_tokens"], a["own_hit_requests"]) == \
           (b["hit_tokens"], b["prompt_tokens"], b["own_hit_requests"])


def test_scattered_model_with_one_instance_is_the_refined_model():
    # The random-routing model's age grid replaces the refined model's gap quadrature;
    # with K = 1 (m = 1 only) both compute the same quantity: agree within 0.05 pp.
    for gap in ("exponential", "lognormal", "deterministic"):
        w = Workload(gap_distribution=gap)
        for cap in (1e5, 3e5, 1e6):
            c = CacheConfig(capacity_tokens=cap)
            a = scattered_hit_rates(w, c, 1)["token_hit_rate"]
            assert a == pytest.approx(float(hit_rates(w, c)["token_hit_rate"]), abs=5e-4)


@pytest.mark.parametrize("K", [2, 4, 8])
def test_random_routing_keeps_L_over_L_plus_K_minus_1_of_own_history_hits(K):
    # Infinite cache, geometric turns (P(N >= k) = q^(k-1), q = 1 - 1/L): turn k reuses
    # own history iff one of its k-1 earlier turns went to the same instance,
    # 1 - r^(k-1) with r = 1 - 1/K. Summing, sum_{k>=2} q^(k-1) r^(k-1) = qr/(1-qr) =
    # (L-1)(K-1)/(K+L-1), against L-1 for the sticky ideal: the share kept is
    # 1 - (K-1)/(K+L-1) = L/(L+K-1) (42 % for K = 8, L = 5; not 1/K).
    L = 5.0
    c = CacheConfig(capacity_tokens=1e13)
    r = fleet_hit_rates(W, c, FleetConfig(K, "random"))
    assert r["random_routing_ceiling"] == pytest.approx(L / (L + K - 1), rel=1e-6)
    assert r["request_hit_rate"] == pytest.approx((1 - 1 / L) * L / (L + K - 1), rel=1e-5)
    sim = simulate(W, c, seed=K, n_conversations=20000, fleet=FleetConfig(K, "random"))
    assert sim["request_hit_rate_ci95_low"] - 0.005 <= (1 - 1 / L) * L / (L + K - 1) \
        <= sim["request_hit_rate_ci95_high"] + 0.005


def test_pooled_is_one_cache_of_K_times_C():
    c = CacheConfig(capacity_tokens=1e5)
    big = CacheConfig(capacity_tokens=4e5)
    fl = FleetConfig(4, "pooled")
    assert fleet_hit_rates(W, c, fl)["token_hit_rate"] == float(hit_rates(W, big)["token_hit_rate"])
    a = simulate(W, big, seed=9, n_conversations=3000)
    b = simulate(W, c, seed=9, n_conversations=3000, fleet=fl)
    assert (a["hit_tokens"], a["prompt_tokens"]) == (b["hit_tokens"], b["prompt_tokens"])


def test_affinity_is_one_cache_per_instance_at_lambda_over_K():
    c = CacheConfig(capacity_tokens=1e5)
    quarter = Workload(conversation_rate_per_s=0.25)
    assert fleet_hit_rates(W, c, FleetConfig(4, "affinity"))["token_hit_rate"] == \
        float(hit_rates(quarter, c)["token_hit_rate"])


def test_exclusive_tiers_without_overlap_are_one_cache_of_the_summed_capacity():
    # With S = 0 no two requests overlap: every block's trip GPU -> tier1 -> tier2 ->
    # out is one LRU stack (demote the GPU's least recent, promote on hit), so the
    # hit tokens equal a single cache of C + C1 + C2, integer for integer.
    w = Workload(service_time_s=0.0, conversation_rate_per_s=0.5)
    fl = FleetConfig(tiers=(TierConfig("cpu", 6e4), TierConfig("ssd", 9e4)))
    tiered = simulate(w, CacheConfig(capacity_tokens=5e4), seed=4, n_conversations=4000, fleet=fl)
    single = simulate(w, CacheConfig(capacity_tokens=5e4 + 6e4 + 9e4), seed=4, n_conversations=4000)
    assert tiered["hit_tokens"] == single["hit_tokens"] and tiered["prompt_tokens"] == single["prompt_tokens"]
    shares = tiered["tier_token_hit_rates"]
    assert len(shares) == 3 and all(x > 0 for x in shares)
    assert sum(shares) == pytest.approx(tiered["token_hit_rate"], abs=1e-12)
    gpu_only = simulate(w, CacheConfig(capacity_tokens=5e4), seed=4, n_conversations=4000)
    assert shares[0] == pytest.approx(gpu_only["token_hit_rate"], abs=0.01)


def test_model_tiers_split_the_stack():
    # Exclusive: tier j = H(C + .. + Cj) - H(C + .. + C(j-1)), GPU first, summing to H(total).
    c = CacheConfig(capacity_tokens=1e5)
    fl = FleetConfig(tiers=(TierConfig("cpu", 2e5), TierConfig("ssd", 3e5)))
    r = fleet_hit_rates(W, c, fl)
    H = hit_rates(W, CacheConfig(capacity_tokens=np.array([1e5, 3e5, 6e5])))["token_hit_rate"]
    assert r["tier_token_hit_rates"] == pytest.approx([H[0], H[1] - H[0], H[2] - H[1]], abs=1e-12)
    assert sum(r["tier_token_hit_rates"]) == pytest.approx(r["token_hit_rate"], abs=1e-12)
    incl = fleet_hit_rates(W, c, dataclasses.replace(fl, tier_mode="inclusive"))
    assert H[0] <= incl["token_hit_rate"] < r["token_hit_rate"]


@pytest.mark.parametrize("fleet,cap", [
    (FleetConfig(4, "random"), 2e5), (FleetConfig(6, "round_robin"), 3e5),
    (FleetConfig(1, tiers=(TierConfig("cpu", 2e5),), tier_mode="inclusive"), 1e5),
])
def test_model_matches_simulator_at_a_few_points(fleet, cap):
    # The grid (50 points) is in tests/test_model_vs_sim.py; here 1.5 pp at 100k requests.
    c = CacheConfig(capacity_tokens=cap)
    m = fleet_hit_rates(W, c, fleet)
    s = simulate(W, c, seed=21, n_conversations=20000, fleet=fleet)
    assert abs(m["token_hit_rate"] - s["token_hit_rate"]) <= 0.015
    for a, b in zip(m["tier_token_hit_rates"], s["tier_token_hit_rates"]):
        assert abs(a - b) <= 0.015


def test_fleet_inputs_are_validated():
    with pytest.raises(InputError) as e:
        FleetConfig(0)
    assert e.value.field == "cluster.instances"
    with pytest.raises(InputError) as e:
        FleetConfig(2, "sticky")
    assert e.value.field == "cluster.routing"
    with pytest.raises(InputError) as e:
        FleetConfig(tier_mode="write-back")
    assert e.value.field == "tier_mode"
    with pytest.raises(InputError) as e:
        TierConfig("cpu", 1e5, read_gb_per_s=0.0)
    assert e.value.field == "tiers.read_gb_per_s"
    with pytest.raises(InputError) as e:
        TierConfig("cpu", -1.0)
    assert e.value.field == "tiers.capacity_tokens"
    with pytest.raises(InputError):
        simulate(W, CacheConfig(capacity_tokens=1e5, eviction="fifo"), seed=1, n_conversations=100,
                 fleet=FleetConfig(tiers=(TierConfig("cpu", 1e5),)))
    with pytest.raises(InputError):
        fleet_hit_rates(Workload(conversation_rate_per_s=[1.0, 2.0]), CacheConfig(capacity_tokens=1e5),
                        FleetConfig(2, "random"))


@pytest.mark.parametrize("routing,eviction", [("affinity", "lru"), ("random", "lru"), ("round_robin", "fifo"),
                                              ("random", "ttl"), ("pooled", "lru")])
def test_fleet_engine_matches_block_reference(routing, eviction):
    # The chain engine with K instances against the block-level reference (per-instance
    # block dicts): identical integer counts, request by request (same routing draws).
    from kvcalc.simulate import draw_trace, simulate_trace
    w = Workload(conversation_rate_per_s=3.0, turns_mean=4, gap_mean_s=20, user_tokens_per_turn=40,
                 output_tokens_per_turn=60, system_prompt_tokens=70, service_time_s=1.5)
    trace = draw_trace(w, 600, np.random.default_rng(3))
    c = CacheConfig(capacity_tokens=3000, block_size_tokens=16, eviction=eviction, ttl_s=15.0)
    fl = FleetConfig(3, routing)
    rf, rr = [], []
    fast = simulate_trace(trace, w, c, warmup_s=trace.arrivals[50], horizon_s=trace.arrivals[-1], record=rf,
                          fleet=fl, routing_rng=np.random.default_rng(9))
    ref = simulate_trace(trace, w, c, warmup_s=trace.arrivals[50], horizon_s=trace.arrivals[-1], record=rr,
                         fleet=fl, routing_rng=np.random.default_rng(9), reference=True)
    assert rf == rr
    assert (fast["hit_tokens"], fast["prompt_tokens"], fast["own_hit_requests"]) == \
           (ref["hit_tokens"], ref["prompt_tokens"], ref["own_hit_requests"])
    assert 0 < fast["token_hit_rate"] < 1


def test_fleet_figures():
    from kvcalc.fleet import hit_rate_vs_instances, tier_split_vs_capacity
    c = CacheConfig(capacity_tokens=2e5)
    f = hit_rate_vs_instances(W, c, FleetConfig(), "che")
    first = {r: v[0] for r, v in f["routing"].items()}
    assert len(set(first.values())) == 1                       # K = 1: every routing the same
    aff, rnd = f["routing"]["affinity"], f["routing"]["random"]
    assert all(b >= a - 1e-12 for a, b in zip(aff, aff[1:]))   # more instances, more cache per conversation
    assert all(r <= a + 1e-12 for r, a in zip(rnd, aff))
    assert f["random_routing_ceiling"][3] == pytest.approx(5 / (5 + 8 - 1))
    fl = FleetConfig(tiers=(TierConfig("cpu", 3e5),))
    caps = [5e4, 2e5, 8e5]
    split = tier_split_vs_capacity(W, c, fl, caps, "che")
    for i, cap in enumerate(caps):
        want = fleet_hit_rates(W, CacheConfig(capacity_tokens=cap), fl, "che")["tier_token_hit_rates"]
        assert [t["token_hit_rate"][i] for t in split["tiers"]] == pytest.approx(want, abs=1e-12)
