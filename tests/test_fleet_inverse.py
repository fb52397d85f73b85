"""The fleet's ceiling, inverse and main curve through compute() (issue 7): when a fleet is set
the headline is the fleet's, so its ceiling, its "for X % you need" answer and the curve the
headline sits on must be the fleet's too (kvcalc.fleet_inverse)."""

import pytest

from kvcalc.api import compute

BASE = {"workload": {}, "cache": {"capacity_tokens": 1e5}}
RANDOM4 = {"cluster": {"instances": 4, "routing": "random"}}
TIERS = {"cluster": {"instances": 2, "routing": "affinity"}, "tiers": [{"name": "cpu", "capacity_tokens": 2e5}]}


def test_random_ceiling_by_hand():
    # default workload: geometric turns, L = 5, S = 1000 shared tokens, u = 200, o = 300, block 1.
    # Prompt tokens per conversation: L (S + u) + (u + o) E[N(N-1)/2] = 5*1200 + 500*L(L-1) = 16000;
    # shared hits L S = 5000, own-history hits 500 * 20 = 10000 (single ideal 15000/16000 = 0.9375).
    # Random routing over K = 4 keeps L/(L+K-1) = 5/8 of the own history: (5000 + 6250)/16000.
    r = compute({"workload": {}, "cache": {"capacity_tokens": 1e6, "block_size_tokens": 1}, **RANDOM4,
                 "target_token_hit_rate": 0.8})
    assert r["ideal_token_hit_rate"] == pytest.approx(11250 / 16000, abs=1e-5)
    # request ceiling: (L-1)/(L+K-1) of requests find their own history = 4/8
    assert r["ideal_request_hit_rate"] == pytest.approx(0.5, abs=1e-5)
    inv = r["inverse"]
    assert inv["status"] == "unreachable" and inv["capacity_tokens"] is None
    assert inv["ideal_token_hit_rate"] == pytest.approx(11250 / 16000, abs=1e-5)
    assert inv["detail"]["code"] == "inverse_above_ideal"


def test_issue_example_llama_random_four():
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": {}, **RANDOM4,
                 "figures": ["curve"]})
    fleet_ideal = r["fleet"]["ideal_token_hit_rate"]
    assert r["ideal_token_hit_rate"] == fleet_ideal
    assert r["token_hit_rate"] < fleet_ideal < 0.8       # issue: 57.8 % headline, 70.1 % ceiling
    assert r["inverse"]["status"] == "unreachable" and r["inverse"]["ideal_token_hit_rate"] == fleet_ideal
    assert r["inverse"]["detail"]["params"]["ideal_token_hit_rate"] == fleet_ideal
    assert "kv_gib_per_gpu" not in r["inverse"]
    curve = r["figures"]["curve"]
    assert curve["fleet"] is True and curve["ideal_token_hit_rate"] == fleet_ideal
    assert curve["current_token_hit_rate"] == pytest.approx(r["token_hit_rate"], abs=1e-9)


@pytest.mark.parametrize("fleet,target", [(RANDOM4, 0.5), (TIERS, 0.8), (TIERS, 0.4)])
def test_inverse_is_the_smallest_whole_block_capacity(fleet, target):
    r = compute({**BASE, **fleet, "target_token_hit_rate": target})
    inv = r["inverse"]
    assert inv["status"] == "ok" and inv["reachable"]
    cap, block = inv["capacity_tokens"], r["block_size_tokens"]
    assert cap % block == 0
    at = compute({**BASE, **fleet, "cache": {"capacity_tokens": cap}})["token_hit_rate"]
    assert at >= target
    if cap > block:
        below = compute({**BASE, **fleet, "cache": {"capacity_tokens": cap - block}})["token_hit_rate"]
        assert below < target


def test_tiers_can_reach_the_target_with_one_block_of_gpu():
    # a CPU tier of 1e7 tokens per instance holds every history of the default workload there
    # (0.5 conversations/s per instance x ~5 turns x 60 s gaps x < 1e4 tokens each ~ 1.5e6),
    # so one GPU block per instance already gives the 80 % (ceiling 93.75 %)
    r = compute({**BASE, "cluster": {"instances": 2}, "tiers": [{"name": "cpu", "capacity_tokens": 1e7}]})
    assert r["inverse"]["capacity_tokens"] == r["block_size_tokens"]


def test_one_affinity_instance_without_tiers_is_the_single_cache_exactly():
    req = {**BASE, "figures": ["curve"], "target_token_hit_rate": 0.7}
    single = compute(req)
    r = compute({**req, "cluster": {"instances": 1, "routing": "affinity"}})
    assert r["inverse"] == single["inverse"]
    assert r["figures"]["curve"] == single["figures"]["curve"]
    assert "fleet" not in r["figures"]["curve"]
    assert r["ideal_token_hit_rate"] == single["ideal_token_hit_rate"]


@pytest.mark.parametrize("fleet", [RANDOM4, TIERS, {**RANDOM4, "tiers": TIERS["tiers"]}])
def test_curve_is_the_fleets_and_carries_the_headline(fleet):
    r = compute({**BASE, **fleet, "figures": ["curve"]})
    curve = r["figures"]["curve"]
    assert curve["fleet"] is True
    assert curve["current_token_hit_rate"] == pytest.approx(r["token_hit_rate"], abs=1e-9)
    assert curve["ideal_token_hit_rate"] == r["ideal_token_hit_rate"]
    n = len(curve["capacity_tokens"])
    assert len(curve["token_hit_rate"]) == n == len(curve["seed_token_hit_rate"])
    # a point of the curve is compute()'s headline at that capacity (a second path)
    i = n // 3
    at = compute({**BASE, **fleet, "cache": {"capacity_tokens": curve["capacity_tokens"][i]}})
    assert curve["token_hit_rate"][i] == pytest.approx(at["token_hit_rate"], abs=1e-9)
    ys = curve["token_hit_rate"]
    assert all(b >= a - 1e-12 for a, b in zip(ys, ys[1:]))


def test_beyond_range_when_the_target_needs_more_than_the_limit():
    # 1e4 conversations/s with a 1e6 s mean gap: the histories waiting for their next turn
    # alone are ~ rate x gap x (S + u + o) = 1e4 * 1e6 * 1500 = 1.5e13 tokens of the fleet (the
    # own-history part grows from there), beyond the 1e13 tokens the calculator takes
    r = compute({"workload": {"gap_mean_s": 1e6, "conversation_rate_per_s": 1e4}, "cache": {"capacity_tokens": 1e5},
                 **RANDOM4, "target_token_hit_rate": 0.69})
    inv = r["inverse"]
    assert inv["status"] == "beyond_range" and inv["detail"]["code"] == "inverse_beyond_range"
