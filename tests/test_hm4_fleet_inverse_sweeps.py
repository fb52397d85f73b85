"""kvcalc.fleet_inverse and kvcalc.fleet_sweeps against independent values: the inverse against
a brute-force scan of the forward curve over whole blocks; sweeps and tornado rows of a pooled
fleet against the single cache at K x C (MODEL.md: a pooled store is one cache of K x C), and
the grids and +-X % values by hand.
"""

import dataclasses

import numpy as np
import pytest

from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates
from kvcalc.fleet_inverse import FLEET_CURVE_POINTS, fleet_curve, fleet_inverse_result
from kvcalc.fleet_sweeps import (FLEET_SWEEP_POINTS, SCATTERED_SWEEP_POINTS, _instances_values, fleet_is_set,
                                 fleet_sweeps, fleet_tornado)
from kvcalc.hitrate import hit_rates
from kvcalc.limits import LIMITS
from kvcalc.sweeps import SWEEP_PARAMS, curve_vs_capacity
from kvcalc.workload import CacheConfig, Workload

W = Workload(conversation_rate_per_s=2.0, gap_mean_s=30.0, turns_mean=4.0)
BLOCK = 1024


def _scan(fleet, target, block=BLOCK, model="refined", n_max=4000):
    """Brute force: the forward fleet token hit rate at 1, 2, 3, ... blocks; the first that reaches."""
    for n in range(1, n_max):
        c = CacheConfig(capacity_tokens=float(n * block), block_size_tokens=block)
        if fleet_hit_rates(W, c, fleet, model)["token_hit_rate"] >= target:
            return n * block
    return None


@pytest.mark.parametrize("fleet,target", [
    (FleetConfig(2, "random"), 0.45),
    (FleetConfig(3, "affinity", tiers=(TierConfig("cpu", 20 * BLOCK),)), 0.6),
    (FleetConfig(2, "pooled"), 0.5),
])
def test_inverse_is_the_first_capacity_of_a_scan(fleet, target):
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=BLOCK)
    inv = fleet_inverse_result(W, c, fleet, target, "refined")
    want = _scan(fleet, target)
    assert want is not None and want > BLOCK
    assert inv["capacity_tokens"] == float(want)
    assert inv["status"] == "ok" and inv["reachable"] is True and inv["fleet"] is True
    assert inv["model"] == "refined" and inv["target_token_hit_rate"] == target
    one = CacheConfig(capacity_tokens=float(BLOCK), block_size_tokens=BLOCK)
    assert inv["ideal_token_hit_rate"] == fleet_hit_rates(W, one, fleet, "refined")["ideal_token_hit_rate"]
    assert "detail" not in inv


def test_inverse_at_one_block_when_the_tiers_hold_it_all():
    fleet = FleetConfig(2, "affinity", tiers=(TierConfig("cpu", 1e8),))
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=BLOCK)
    # the tier alone reaches 80 % of the default-sized conversations; a scan stops at 1 block
    assert _scan(fleet, 0.6) == BLOCK
    inv = fleet_inverse_result(W, c, fleet, 0.6, "che")
    assert inv["capacity_tokens"] == float(BLOCK) and inv["status"] == "ok" and inv["model"] == "che"


@pytest.mark.parametrize("target", [-0.1, 0.999])
def test_targets_outside_zero_to_ideal_are_unreachable(target):
    fleet = FleetConfig(4, "random")
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=BLOCK)
    inv = fleet_inverse_result(W, c, fleet, target, "refined")
    assert inv["status"] == "unreachable" and inv["reachable"] is False and inv["capacity_tokens"] is None
    assert inv["detail"]["code"] == "inverse_above_ideal"
    assert inv["detail"]["params"]["ideal_token_hit_rate"] == inv["ideal_token_hit_rate"]
    assert "model" not in inv


def test_target_just_under_the_ceiling_is_reachable():
    fleet = FleetConfig(2, "random")
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=BLOCK)
    ideal = fleet_inverse_result(W, c, fleet, 0.1, "refined")["ideal_token_hit_rate"]
    inv = fleet_inverse_result(W, c, fleet, ideal - 0.02, "refined")
    assert inv["status"] == "ok"
    below = CacheConfig(capacity_tokens=inv["capacity_tokens"] - BLOCK, block_size_tokens=BLOCK)
    assert fleet_hit_rates(W, below, fleet)["token_hit_rate"] < ideal - 0.02


def test_beyond_range():
    # conversations that come back after 1e5 s at 1e4 per second: ~1e13 tokens idle at once,
    # so 99.9 % of the ceiling needs more than the 1e13-token limit
    w = Workload(conversation_rate_per_s=1e4, gap_mean_s=1e5, turns_mean=50)
    fleet = FleetConfig(2, "affinity")
    c = CacheConfig(capacity_tokens=1e5, block_size_tokens=BLOCK)
    ideal = fleet_inverse_result(w, c, fleet, 0.0, "che")["ideal_token_hit_rate"]
    inv = fleet_inverse_result(w, c, fleet, round(ideal - 0.001, 5), "che")
    hi = LIMITS["cache.capacity_tokens"].hi
    assert inv["status"] == "beyond_range" and inv["capacity_tokens"] is None and inv["reachable"] is False
    assert inv["capacity_limit_tokens"] == hi and inv["detail"]["code"] == "inverse_beyond_range"
    assert f"{hi:g}" in inv["message"]


def test_fleet_curve_is_the_fleets_at_kept_points():
    c = CacheConfig(capacity_tokens=1e5)
    base = curve_vs_capacity(W, c, model="che", points=120)
    n = len(base["capacity_tokens"])
    fleet = FleetConfig(2, "pooled")
    out = fleet_curve(W, c, fleet, "refined", dict(base))
    # kept indices round(i (n - 1) / 39), i = 0..39: both ends, 40 distinct points
    keep = sorted({int(round(i * (n - 1) / (FLEET_CURVE_POINTS - 1))) for i in range(FLEET_CURVE_POINTS)})
    assert len(keep) == FLEET_CURVE_POINTS and keep[0] == 0 and keep[-1] == n - 1
    assert out["capacity_tokens"] == [base["capacity_tokens"][i] for i in keep]
    assert out["seed_token_hit_rate"] == [base["seed_token_hit_rate"][i] for i in keep]
    for x, h in zip(out["capacity_tokens"], out["token_hit_rate"]):
        assert h == pytest.approx(float(hit_rates(W, CacheConfig(capacity_tokens=2 * x))["token_hit_rate"]), abs=1e-12)
    assert out["current_token_hit_rate"] == pytest.approx(
        float(hit_rates(W, CacheConfig(capacity_tokens=2e5))["token_hit_rate"]), abs=1e-12)
    assert out["ideal_token_hit_rate"] == fleet_hit_rates(W, c, fleet, "refined")["ideal_token_hit_rate"]
    assert "request_hit_rate" not in out and out["fleet"] is True and out["model"] == "refined"
    from kvcalc.figure_data import simulation_capacities
    assert out["simulation_capacity_tokens"] == simulation_capacities(out["capacity_tokens"])
    assert out["current_capacity_tokens"] == 1e5      # scalars ride along


def test_fleet_curve_under_random_routing_and_short_curves():
    from kvcalc.fleet import scattered_hit_rates
    c = CacheConfig(capacity_tokens=1e5)
    base = curve_vs_capacity(W, c, model="che", capacities_tokens=[5e4, 2e5])
    out = fleet_curve(W, c, FleetConfig(3, "random"), "refined", dict(base))
    assert out["capacity_tokens"] == [5e4, 2e5]
    assert out["token_hit_rate"] == [scattered_hit_rates(W, CacheConfig(capacity_tokens=x), 3)["token_hit_rate"]
                                     for x in (5e4, 2e5)]
    assert out["current_token_hit_rate"] == scattered_hit_rates(W, c, 3)["token_hit_rate"]
    one = fleet_curve(W, c, FleetConfig(3, "random"), "refined",
                      dict(curve_vs_capacity(W, c, model="che", capacities_tokens=[7e4])))
    assert one["capacity_tokens"] == [7e4]
    # random routing with a tier: the tier split's total (GPU + tier = one stack of C + C1)
    fl = FleetConfig(3, "random", tiers=(TierConfig("cpu", 1e5),))
    t = fleet_curve(W, c, fl, "refined", dict(base))
    assert t["token_hit_rate"] == pytest.approx(
        [scattered_hit_rates(W, CacheConfig(capacity_tokens=x + 1e5), 3)["token_hit_rate"] for x in (5e4, 2e5)],
        abs=1e-12)


# ----------------------------------------------------------------------------- sweeps

def test_fleet_is_set():
    assert not fleet_is_set(FleetConfig())
    assert not fleet_is_set(FleetConfig(1, "random"))
    assert fleet_is_set(FleetConfig(2))
    assert fleet_is_set(FleetConfig(1, "pooled"))
    assert fleet_is_set(FleetConfig(tiers=(TierConfig("cpu", 1.0),)))


def test_instances_values_by_hand():
    # geomspace(1, 64, 12) = 64^(i/11): 1, 1.46, 2.13, 3.11, 4.54, 6.62, 9.67, 14.1, 20.6, 30.1, 43.9, 64
    assert _instances_values(1) == [1, 2, 3, 5, 7, 10, 14, 21, 30, 44, 64]
    # K = 20: up to max(64, 80) = 80, K itself added
    v = _instances_values(20)
    assert v[0] == 1 and v[-1] == 80 and 20 in v
    assert v == sorted({int(round(80 ** (i / 11))) for i in range(12)} | {20})


def test_pooled_sweeps_are_the_single_cache_at_K_times_C():
    c = CacheConfig(capacity_tokens=5e4, block_size_tokens=16)
    fleet = FleetConfig(2, "pooled", tiers=(TierConfig("cpu", 1e5),))
    out = fleet_sweeps(W, c, fleet, "che", gib_per_token_per_instance=2.0, points=5)
    assert out["model"] == "che"
    for k, scale in SWEEP_PARAMS.items():
        sw = out[k]
        assert sw["parameter"] == k and sw["scale"] == scale and sw["current"] == float(getattr(W, k))
        assert len(sw["values"]) == len(sw["token_hit_rate"]) >= 3
        for v, h in zip(sw["values"][::2], sw["token_hit_rate"][::2]):
            # pooled with an exclusive tier: one cache of K (C + C1)
            want = float(hit_rates(dataclasses.replace(W, **{k: v}), CacheConfig(capacity_tokens=2 * (5e4 + 1e5)),
                                   "che")["token_hit_rate"])
            assert h == pytest.approx(want, abs=1e-12), (k, v)
    inst = out["cluster.instances"]
    assert inst["values"] == [float(k) for k in _instances_values(2)] and inst["current"] == 2.0
    assert inst["scale"] == "log"
    for k, h in zip(inst["values"], inst["token_hit_rate"]):
        assert h == pytest.approx(float(hit_rates(W, CacheConfig(capacity_tokens=k * 1.5e5), "che")["token_hit_rate"]),
                                  abs=1e-12)
    tier = out["tiers[0].capacity_gib"]
    assert "tiers[0].capacity_tokens" not in out
    # tier sizes: whole blocks of 16 of geomspace(1e4, 1e6, 5) = 1e4, 31622, 1e5, 316227, 1e6
    toks = [10000.0, 31616.0, 100000.0, 316224.0, 1000000.0]
    assert tier["values"] == pytest.approx([2.0 * x for x in toks], rel=1e-12)
    assert tier["current"] == 2.0e5 and tier["scale"] == "log"
    for x, h in zip(toks, tier["token_hit_rate"]):
        assert h == pytest.approx(float(hit_rates(W, CacheConfig(capacity_tokens=2 * (5e4 + x)), "che")["token_hit_rate"]),
                                  abs=1e-12)
    plain = fleet_sweeps(W, c, fleet, "che", points=3)
    assert plain["tiers[0].capacity_tokens"]["values"] == [10000.0, 100000.0, 1000000.0]
    assert "cluster.instances" in plain and "tiers[0].capacity_tokens" not in fleet_sweeps(W, c, FleetConfig(2), "che",
                                                                                         points=3)


def test_scattered_sweeps_use_fewer_points():
    c = CacheConfig(capacity_tokens=1e5)
    out = fleet_sweeps(W, c, FleetConfig(2, "random"), "che", points=FLEET_SWEEP_POINTS)
    assert 3 <= len(out["gap_mean_s"]["values"]) <= SCATTERED_SWEEP_POINTS
    aff = fleet_sweeps(W, c, FleetConfig(2, "affinity"), "che", points=10)
    assert len(aff["gap_mean_s"]["values"]) > SCATTERED_SWEEP_POINTS


def test_tornado_values_by_hand():
    c = CacheConfig(capacity_tokens=5e4)
    fleet = FleetConfig(5, "pooled", tiers=(TierConfig("cpu", 1e5),))
    t = fleet_tornado(W, c, fleet, 0.2, "che", gib_per_token_per_instance=3.0)
    assert t["change_fraction"] == 0.2 and t["model"] == "che"
    assert t["base_token_hit_rate"] == pytest.approx(
        float(hit_rates(W, CacheConfig(capacity_tokens=5 * 1.5e5), "che")["token_hit_rate"]), abs=1e-12)
    rows = {r["parameter"]: r for r in t["rows"]}
    assert list(rows) == [r["parameter"] for r in sorted(t["rows"], key=lambda r: -r["swing"])]
    g = rows["gap_mean_s"]
    assert (g["low_value"], g["high_value"]) == pytest.approx((24.0, 36.0))
    assert g["low_token_hit_rate"] == pytest.approx(float(hit_rates(
        dataclasses.replace(W, gap_mean_s=24.0), CacheConfig(capacity_tokens=7.5e5), "che")["token_hit_rate"]), abs=1e-12)
    assert g["high_token_hit_rate"] == pytest.approx(float(hit_rates(
        dataclasses.replace(W, gap_mean_s=36.0), CacheConfig(capacity_tokens=7.5e5), "che")["token_hit_rate"]), abs=1e-12)
    assert g["high_token_hit_rate"] < g["low_token_hit_rate"]     # longer gaps, fewer hits
    assert g["swing"] == pytest.approx(abs(g["high_token_hit_rate"] - g["low_token_hit_rate"]))
    cap = rows["capacity_tokens"]
    assert (cap["low_value"], cap["high_value"]) == (4e4, 6e4)
    assert cap["low_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=5 * (4e4 + 1e5)), "che")["token_hit_rate"]), abs=1e-12)
    assert cap["high_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=5 * (6e4 + 1e5)), "che")["token_hit_rate"]), abs=1e-12)
    k = rows["cluster.instances"]
    assert (k["low_value"], k["high_value"]) == (4.0, 6.0)           # round(5 x 0.8), round(5 x 1.2)
    assert k["low_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=4 * 1.5e5), "che")["token_hit_rate"]), abs=1e-12)
    tier = rows["tiers[0].capacity_gib"]
    assert (tier["low_value"], tier["high_value"]) == pytest.approx((8e4 * 3.0, 1.2e5 * 3.0))
    assert tier["high_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=5 * (5e4 + 1.2e5)), "che")["token_hit_rate"]), abs=1e-12)
    assert tier["low_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=5 * (5e4 + 8e4)), "che")["token_hit_rate"]), abs=1e-12)


def test_tornado_small_K_and_limits():
    c = CacheConfig(capacity_tokens=5e4)
    t = fleet_tornado(W, c, FleetConfig(2, "affinity"), 0.2, "che")
    rows = {r["parameter"]: r for r in t["rows"]}
    # K = 2: low max(1, round(1.6)) = 2, high max(3, round(2.4)) = 3
    assert (rows["cluster.instances"]["low_value"], rows["cluster.instances"]["high_value"]) == (2.0, 3.0)
    assert "tiers[0].capacity_tokens" not in rows and "tiers[0].capacity_gib" not in rows
    t1 = fleet_tornado(W, c, FleetConfig(1, "pooled", tiers=(TierConfig("cpu", 1e4),)), 0.9, "che")
    r1 = {r["parameter"]: r for r in t1["rows"]}
    assert (r1["cluster.instances"]["low_value"], r1["cluster.instances"]["high_value"]) == (1.0, 2.0)
    assert (r1["tiers[0].capacity_tokens"]["low_value"], r1["tiers[0].capacity_tokens"]["high_value"]) == \
        pytest.approx((1e3, 1.9e4))
    # a value at its limit is clamped: turns_mean 1 lowered 90 % stays at the lowest allowed
    from kvcalc.workload import WORKLOAD_LIMITS
    w1 = dataclasses.replace(W, turns_mean=1.0)
    rt = {r["parameter"]: r for r in fleet_tornado(w1, c, FleetConfig(2), 0.9, "che")["rows"]}
    lo_lim, hi_lim, lo_open = WORKLOAD_LIMITS["turns_mean"]
    assert rt["turns_mean"]["low_value"] == pytest.approx(max(0.1, lo_lim if not lo_open else 1e-9))
    assert rt["turns_mean"]["high_value"] == pytest.approx(1.9)
    wo = dataclasses.replace(W, output_tokens_per_turn=0.0)
    ro = {r["parameter"]: r for r in fleet_tornado(wo, c, FleetConfig(2), 0.2, "che")["rows"]}
    assert (ro["output_tokens_per_turn"]["low_value"], ro["output_tokens_per_turn"]["high_value"]) == (0.0, 0.0)


def test_tornado_and_sweeps_defaults():
    # defaults: +-20 % and the Che model; sweeps: 12 points
    c = CacheConfig(capacity_tokens=5e4)
    fleet = FleetConfig(2, "pooled")
    assert fleet_tornado(W, c, fleet) == fleet_tornado(W, c, fleet, 0.2, "che")
    d = fleet_sweeps(W, c, fleet)
    assert d == fleet_sweeps(W, c, fleet, "che", None, FLEET_SWEEP_POINTS) and d["model"] == "che"


def test_tornado_instances_of_ten():
    # K = 10, +-20 %: round(8) = 8 and round(12) = 12 instances
    t = fleet_tornado(W, CacheConfig(capacity_tokens=5e4), FleetConfig(10, "pooled"), 0.2, "che")
    k = {r["parameter"]: r for r in t["rows"]}["cluster.instances"]
    assert (k["low_value"], k["high_value"]) == (8.0, 12.0)
    assert k["high_token_hit_rate"] == pytest.approx(float(hit_rates(
        W, CacheConfig(capacity_tokens=12 * 5e4), "che")["token_hit_rate"]), abs=1e-12)
