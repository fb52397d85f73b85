"""kvcalc.fleet_sweeps with two tiers, round-robin routing and a lone instance with a tier,
against independent values: an exclusive stack of tiers under affinity routing is one LRU
cache of C + C1 + C2 per instance at lambda / K (MODEL.md, fleet: exclusive tiers), so every
point is the single-cache model at that capacity and rate."""

import dataclasses

import pytest

from kvcalc.fleet import FleetConfig, TierConfig
from kvcalc.fleet_sweeps import FLEET_SWEEP_POINTS, SCATTERED_SWEEP_POINTS, fleet_sweeps, fleet_tornado
from kvcalc.hitrate import hit_rates
from kvcalc.workload import CacheConfig, Workload

W = Workload(conversation_rate_per_s=2.0, gap_mean_s=30.0, turns_mean=4.0)


def _single(rate_per_s, capacity_tokens):
    """The single cache (Che) at this conversation rate and capacity."""
    w = dataclasses.replace(W, conversation_rate_per_s=rate_per_s)
    return float(hit_rates(w, CacheConfig(capacity_tokens=capacity_tokens), "che")["token_hit_rate"])


def test_tier_panel_and_row_keep_the_second_tier():
    # K = 2 affinity, GPU 5e4, cpu tier swept, disk tier 3e5 fixed: each point is one cache of
    # 5e4 + x + 3e5 tokens at 1 conversation per second (2 / K)
    c = CacheConfig(capacity_tokens=5e4)
    fleet = FleetConfig(2, "affinity", tiers=(TierConfig("cpu", 1e5), TierConfig("disk", 3e5)))
    out = fleet_sweeps(W, c, fleet, "che", points=3)
    tier = out["tiers[0].capacity_tokens"]
    assert tier["parameter"] == "tiers[0].capacity_tokens"
    # geomspace(1e4, 1e6, 3) = 1e4, 1e5, 1e6, whole blocks of 16 already
    assert tier["values"] == [1e4, 1e5, 1e6]
    for x, h in zip(tier["values"], tier["token_hit_rate"]):
        assert h == pytest.approx(_single(1.0, 5e4 + x + 3e5), abs=1e-12), x
    inst = out["cluster.instances"]
    assert inst["parameter"] == "cluster.instances"
    # K instances under affinity: one cache of 4.5e5 at 2 / K conversations per second
    for k, h in zip(inst["values"][:4], inst["token_hit_rate"][:4]):
        assert h == pytest.approx(_single(2.0 / k, 4.5e5), abs=1e-12), k
    rows = {r["parameter"]: r for r in fleet_tornado(W, c, fleet, 0.5, "che")["rows"]}
    row = rows["tiers[0].capacity_tokens"]
    assert (row["low_value"], row["high_value"]) == (5e4, 1.5e5)
    assert row["low_token_hit_rate"] == pytest.approx(_single(1.0, 5e4 + 5e4 + 3e5), abs=1e-12)
    assert row["high_token_hit_rate"] == pytest.approx(_single(1.0, 5e4 + 1.5e5 + 3e5), abs=1e-12)


def test_round_robin_uses_the_scattered_point_count_and_one_instance_does_not():
    c = CacheConfig(capacity_tokens=1e5)
    rr = fleet_sweeps(W, c, FleetConfig(2, "round_robin"), "che", points=FLEET_SWEEP_POINTS)
    assert 3 <= len(rr["gap_mean_s"]["values"]) <= SCATTERED_SWEEP_POINTS
    # one instance (random routing is then no routing) with a tier: the single cache's full grid,
    # each point one cache of C + C1 at the full rate
    one = fleet_sweeps(W, c, FleetConfig(1, "random", tiers=(TierConfig("cpu", 1e5),)), "che",
                       points=FLEET_SWEEP_POINTS)
    g = one["gap_mean_s"]
    assert len(g["values"]) > SCATTERED_SWEEP_POINTS
    for v, h in zip(g["values"][::4], g["token_hit_rate"][::4]):
        w = dataclasses.replace(W, gap_mean_s=v)
        assert h == pytest.approx(float(hit_rates(w, CacheConfig(capacity_tokens=2e5), "che")["token_hit_rate"]),
                                  abs=1e-12)
