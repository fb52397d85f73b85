"""kvcalc.hitrate.occupancy against Campbell's sums written out by hand and T by plain bisection.

Occupancy of a TTL-g cache (MODEL.md): O(g) = pinned + P_s h_s + lambda A1 E[min(G, g)] +
lambda A2 g, with pinned = lambda S sum_k P(N>=k) Bpin_k (Little's law on running requests),
A1 = sum_k P(N>k) B_k (chains that return), A2 = sum_k P(N=k) B_k (finished ones); its variance
lambda (A1sq E[min(G,g)] + A2sq g) + pin_var + P_s^2 h_s (1 - h_s); T solves O(T) = C_b
(found here by bisection, not Newton); O(0) > C_b is an overload (T = 0) and a cache holding
everything ever touched (no finished chains, A2 = 0) has T = inf.

Workload: fixed 3 turns, lambda 0.5/s, S 2 s, tau 30 s (exponential: E[min(G,g)] =
tau (1 - e^(-g/tau))), b 16, P 64 (P_s = 4), u 100, o 60: Z_k = 64 + 160 k = 224, 384, 544 tokens,
B_k = Bpin_k = 10, 20, 30 (whole blocks); P(N>k) = 1, 1, 0; P(N=k) = 0, 0, 1:
A1 = 30, A2 = 30, A1sq = 500, A2sq = 900, pinned = 0.5 x 2 x 60 = 60, pin_var = 1400.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kvcalc.hitrate import characteristic_time_s, hit_rates, occupancy_blocks, occupancy_variance_blocks2, structure
from kvcalc.hitrate.occupancy import (occupancy_parts_blocks, occupancy_slope_blocks_per_s,
                                      overload_ends_at_capacity_tokens, shared_prompt_hit_blocks,
                                      shared_prompt_presence)
from kvcalc.workload import CacheConfig, Workload

LAM, S, TAU = 0.5, 2.0, 30.0


def _w(P=64, turns=3.0, dist="fixed", gap="exponential"):
    return Workload(conversation_rate_per_s=LAM, turns_mean=turns, turns_distribution=dist, gap_mean_s=TAU,
                    gap_distribution=gap, user_tokens_per_turn=100, output_tokens_per_turn=60,
                    system_prompt_tokens=P, service_time_s=S)


def _emin(g):
    return TAU * (1.0 - math.exp(-g / TAU))


def _O(g, hs=1.0, Ps=4):
    return 60.0 + Ps * hs + LAM * 30 * _emin(g) + LAM * 30 * g


@pytest.mark.parametrize("g", [0.0, 7.5, 30.0, 200.0])
def test_occupancy_parts_and_variance_by_hand(g):
    st = structure(_w(), CacheConfig(capacity_tokens=16_000, block_size_tokens=16))
    parts = occupancy_parts_blocks(st, g)
    assert float(parts["pinned"]) == pytest.approx(60.0, rel=1e-12)
    assert float(parts["system_prompt"]) == pytest.approx(4.0, rel=1e-12)      # LRU: h_s = 1
    assert float(parts["returning"]) == pytest.approx(LAM * 30 * _emin(g), rel=1e-12, abs=1e-12)
    assert float(parts["finished"]) == pytest.approx(LAM * 30 * g, rel=1e-12, abs=1e-12)
    assert float(occupancy_blocks(st, g)) == pytest.approx(_O(g), rel=1e-12)
    var = LAM * (500 * _emin(g) + 900 * g) + 1400.0          # h_s (1 - h_s) = 0 under LRU
    assert float(occupancy_variance_blocks2(st, g)) == pytest.approx(var, rel=1e-12)
    # dO/dg = lambda A1 P(G > g) + lambda A2
    assert float(occupancy_slope_blocks_per_s(st, g)) == pytest.approx(LAM * 30 * math.exp(-g / TAU) + LAM * 30,
                                                                        rel=1e-12)


def test_occupancy_under_a_ttl_and_at_infinity():
    """TTL 10 s: h_s = 1 - exp(-lambda E[N] (ttl + S)) = 1 - e^-18; the variance gains
    P_s^2 h_s (1 - h_s). At g = inf: returning chains fill lambda A1 tau = 450 blocks and finished
    ones grow without bound (A2 > 0). Without a shared prompt its part and presence are 0."""
    st = structure(_w(), CacheConfig(capacity_tokens=16_000, block_size_tokens=16, eviction="ttl", ttl_s=10.0))
    hs = 1.0 - math.exp(-LAM * 3 * 12.0)
    assert float(shared_prompt_presence(st, 5.0)) == pytest.approx(hs, rel=1e-15)
    assert shared_prompt_presence(st, np.array([1.0, 2.0])).shape == (2,)
    assert float(occupancy_blocks(st, 5.0)) == pytest.approx(_O(5.0, hs), rel=1e-12)
    var = LAM * (500 * _emin(5.0) + 900 * 5.0) + 1400.0 + 16 * hs * (1 - hs)
    assert float(occupancy_variance_blocks2(st, 5.0)) == pytest.approx(var, rel=1e-12)
    inf = occupancy_parts_blocks(st, math.inf)
    assert float(inf["returning"]) == pytest.approx(LAM * 30 * TAU, rel=1e-12)
    assert float(inf["finished"]) == math.inf
    st0 = structure(_w(P=0), CacheConfig(capacity_tokens=16_000, block_size_tokens=16))
    assert float(shared_prompt_presence(st0, 5.0)) == 0.0
    assert float(occupancy_parts_blocks(st0, 5.0)["system_prompt"]) == 0.0


@pytest.mark.parametrize("cap_blocks", [100, 400, 1500, 5000])
def test_characteristic_time_by_bisection(cap_blocks):
    """T with O(T) = C_b, O increasing: bisection on [0, C_b / (lambda A2)] to 1e-13."""
    st = structure(_w(), CacheConfig(capacity_tokens=cap_blocks * 16, block_size_tokens=16))
    T, overload = characteristic_time_s(st)
    lo, hi = 0.0, cap_blocks / (LAM * 30)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _O(mid) < cap_blocks:
            lo = mid
        else:
            hi = mid
    assert not bool(overload)
    assert float(T) == pytest.approx(0.5 * (lo + hi), rel=1e-9)
    # warm start from a known lower bound gives the same root
    T2, _ = characteristic_time_s(st, start_s=0.5 * float(T))
    assert float(T2) == pytest.approx(float(T), rel=1e-9)


def test_overload_and_everything_fits():
    """O(0) = 60 + 4 = 64 blocks: C_b = 63 is an overload (T = 0), C_b = 64 is not (T = 0 solves
    it). Everything fits only when no finished chain holds a block (A2 = 0): fixed 1 turn of 6 + 4
    tokens after P = 64 (B_1 = 0): O(inf) = pinned 1 + shared 4, and T = inf from C_b = 5 up."""
    st = structure(_w(), CacheConfig(capacity_tokens=63 * 16, block_size_tokens=16))
    T, overload = characteristic_time_s(st)
    assert bool(overload) and float(T) == 0.0
    T, overload = characteristic_time_s(structure(_w(), CacheConfig(capacity_tokens=64 * 16, block_size_tokens=16)))
    assert not bool(overload) and float(T) == pytest.approx(0.0, abs=1e-9)
    # overload ends at the smallest capacity above O(0): (floor(64) + 1) x 16 tokens
    assert float(overload_ends_at_capacity_tokens(st)) == 65 * 16
    tiny = Workload(conversation_rate_per_s=LAM, turns_mean=1.0, turns_distribution="fixed", gap_mean_s=TAU,
                    user_tokens_per_turn=6, output_tokens_per_turn=4, system_prompt_tokens=64, service_time_s=S)
    st = structure(tiny, CacheConfig(capacity_tokens=1000 * 16, block_size_tokens=16))
    # Z_1 = 74 tokens: B_1 = floor(74/16) - 4 = 0, Bpin_1 = ceil(74/16) - 4 = 1: pinned 0.5 x 2 x 1 = 1
    assert float(st.A2) == 0.0 and float(st.pin_mean) == pytest.approx(1.0)
    T, overload = characteristic_time_s(st)
    assert float(T) == math.inf and not bool(overload)
    # C_b = 5 = pinned 1 + shared 4 exactly: fits (<=); C_b = 4 is an overload
    T, overload = characteristic_time_s(structure(tiny, CacheConfig(capacity_tokens=5 * 16, block_size_tokens=16)))
    assert float(T) == math.inf and not bool(overload)
    assert bool(characteristic_time_s(structure(tiny, CacheConfig(capacity_tokens=4 * 16, block_size_tokens=16)))[1])


def test_shared_prompt_hit_blocks_by_hand():
    """C_b >= P_s: h_s P_s. C_b < P_s: all P_s while someone runs (1 - e^(-lambda E[N] S), M/G/inf
    with E[N] = 3: 1 - e^-3), the first C_b otherwise: P_s (1 - e^-3) + C_b e^-3."""
    big = structure(_w(P=1000), CacheConfig(capacity_tokens=16_000, block_size_tokens=16))
    assert float(big.Ps) == 62
    assert float(shared_prompt_hit_blocks(big, 0.5)) == pytest.approx(31.0, rel=1e-15)
    small = structure(_w(P=1000), CacheConfig(capacity_tokens=40 * 16, block_size_tokens=16))
    idle = math.exp(-LAM * 3 * S)
    assert float(shared_prompt_hit_blocks(small, 1.0)) == pytest.approx(62 * (1 - idle) + 40 * idle, rel=1e-12)
    edge = structure(_w(P=1000), CacheConfig(capacity_tokens=62 * 16, block_size_tokens=16))
    assert float(shared_prompt_hit_blocks(edge, 1.0)) == 62.0


def test_hit_rates_report_the_occupancy_parts_capped_at_the_capacity():
    """hit_rates' occupancy_* keys are the parts at T, each capped at C_b: at C_b = 400 blocks the
    parts sum to 400 (T solves O(T) = C_b); the Che token hit rate is (P_s b E[N] + b A1 F_G(T))
    / prompt tokens, prompts 164 + 324 + 484 = 972 per conversation."""
    r = hit_rates(_w(), CacheConfig(capacity_tokens=400 * 16, block_size_tokens=16), "che")
    total = sum(float(r[f"occupancy_{p}_blocks"]) for p in ("pinned", "system_prompt", "returning", "finished"))
    assert total == pytest.approx(400.0, rel=1e-9)
    T = float(r["characteristic_time_s"])
    assert float(r["token_hit_rate"]) == pytest.approx((4 * 16 * 3 + 16 * 30 * (1 - math.exp(-T / TAU))) / 972,
                                                       rel=1e-9)


@pytest.mark.parametrize("kw", [
    dict(gap_distribution="lognormal", gap_lognormal_sigma=2.0),    # slope from the lognormal CDF
    dict(gap_distribution="lognormal", gap_lognormal_sigma=0.4),
    dict(conversation_rate_per_s=0.001),                             # slope below 1 block/s
    # 10 tokens a turn, 1.5 turns: B_k = floor(10 k / 16) = 0, 1, 1, 2 ... so A2 = sum P(N=k) B_k < 1
    dict(turns_mean=1.5, user_tokens_per_turn=6, output_tokens_per_turn=4, system_prompt_tokens=0),
])
def test_characteristic_time_by_bisection_of_the_occupancy(kw):
    """T with O(T) = C_b, O from occupancy_blocks (checked by hand above), found by bisection on
    [0, 2^k] (O increasing): the Newton solve must land on the same root to 1e-9."""
    w = Workload(**kw)
    for cap in (3e4, 3e5, 3e6):
        st = structure(w, CacheConfig(capacity_tokens=cap))
        T, overload = characteristic_time_s(st)
        target = float(st.Cb)
        if float(occupancy_blocks(st, 0.0)) > target:
            assert bool(overload) and float(T) == 0.0
            continue
        hi = 1.0
        while float(occupancy_blocks(st, hi)) < target:
            hi *= 2.0
        lo = 0.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if float(occupancy_blocks(st, mid)) < target:
                lo = mid
            else:
                hi = mid
        assert float(T) == pytest.approx(0.5 * (lo + hi), rel=1e-9), cap
    if "turns_mean" in kw:
        assert 0.0 < float(st.A2) < 1.0


def test_finished_chains_at_an_infinite_window():
    """At g = inf finished chains fill an unbounded cache when they hold any block (A2 > 0, here
    A2 < 1: 10-token turns) and nothing when none does (A2 = 0: one 10-token turn after a 64-token
    prompt). hit_rates reports the parts at T, capped at C_b: with everything fitting (T = inf)
    the finished part is 0 blocks, not a NaN from 0 x inf. An overload answers T = 0 whatever the
    warm start."""
    small = structure(Workload(turns_mean=1.5, user_tokens_per_turn=6, output_tokens_per_turn=4,
                               system_prompt_tokens=0), CacheConfig(capacity_tokens=1e6))
    assert 0.0 < float(small.A2) < 1.0
    assert float(occupancy_parts_blocks(small, math.inf)["finished"]) == math.inf
    tiny = Workload(conversation_rate_per_s=LAM, turns_mean=1.0, turns_distribution="fixed", gap_mean_s=TAU,
                    user_tokens_per_turn=6, output_tokens_per_turn=4, system_prompt_tokens=64, service_time_s=S)
    st = structure(tiny, CacheConfig(capacity_tokens=1000 * 16, block_size_tokens=16))
    assert float(occupancy_parts_blocks(st, math.inf)["finished"]) == 0.0
    r = hit_rates(tiny, CacheConfig(capacity_tokens=1000 * 16, block_size_tokens=16), "che")
    assert float(r["characteristic_time_s"]) == math.inf
    assert float(r["occupancy_finished_blocks"]) == 0.0 and float(r["occupancy_returning_blocks"]) == 0.0
    over = structure(_w(), CacheConfig(capacity_tokens=63 * 16, block_size_tokens=16))
    T, overload = characteristic_time_s(over, start_s=5.0)
    assert bool(overload) and float(T) == 0.0
