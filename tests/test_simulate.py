"""Tests of the discrete-event simulator (py/kvcalc/simulate.py).

Layers: exact hand-worked scenarios, the chain engine against the block-level
reference (identical integers), determinism, limits (infinite / zero /
shared-only capacity), invariants (monotone in capacity), input errors.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.errors import InputError
from kvcalc.simulate import Trace, draw_trace, simulate, simulate_blocks_reference, simulate_trace
from kvcalc.workload import CacheConfig, Workload


# --------------------------------------------------------------------------- hand-worked

# b = 4 tokens, P = 8 (Ps = 2 shared blocks S0 S1), u = 4, o = 4 (a = 8), S = 1 s.
# Turn k: Z_k = 8 + 8k, prompt_k = Z_k - 4, ceil(Z_k/4) blocks, cap (prompt-1)//4.
#   k=1: prompt 12, 4 blocks (S0 S1 x2 x3), cap 2;  k=2: prompt 20, 6 blocks, cap 4;
#   k=3: prompt 28, 8 blocks, cap 6.
# Conversation A arrives at 0 with 3 turns, B at 5 with 2 turns; gaps 10 s, so
# A starts at 0, 11, 22 and B at 5, 16. Capacity 8 blocks (32 tokens).
HAND_WORKLOAD = Workload(system_prompt_tokens=8, user_tokens_per_turn=4, output_tokens_per_turn=4,
                         service_time_s=1.0)
HAND_TRACE = Trace.from_lists([0.0, 5.0], [3, 2], [[10.0, 10.0], [10.0]])


def _hand(eviction):
    record = []
    out = simulate_trace(HAND_TRACE, HAND_WORKLOAD, CacheConfig(capacity_tokens=32, block_size_tokens=4,
                                                                eviction=eviction), record=record)
    return out, [(t, c, k, hit) for t, c, k, hit, _, _ in record]


def test_hand_worked_lru():
    # LRU (least recently freed first, tail first within a free):
    # t=0  A1: empty cache, hit 0; allocates S0 S1 A2 A3.          used 4
    # t=1  A1 ends: LRU order A3 A2 S1 S0.
    # t=5  B1: hits S0 S1 (2 blocks = 8 tokens), allocates B2 B3.   used 6
    # t=6  B1 ends: order A3 A2 B3 B2 S1 S0.
    # t=11 A2: hits S0 S1 A2 A3 (4 blocks = 16), allocates A4 A5.  used 8, no eviction
    # t=12 A2 ends: order B3 B2 A5 A4 A3 A2 S1 S0.
    # t=16 B2: hits S0 S1 B2 B3 (16), allocates B4 B5: evicts A5 A4.
    # t=17 B2 ends: order A3 A2 B5 B4 B3 B2 S1 S0.
    # t=22 A3: hits S0 S1 A2 A3, A4 missing (16); allocates 4: evicts B5 B4 B3 B2.
    # hit tokens 0 + 8 + 16 + 16 + 16 = 56 of 12 + 12 + 20 + 20 + 28 = 92 prompt tokens.
    out, rec = _hand("lru")
    assert rec == [(0.0, 0, 1, 0), (5.0, 1, 1, 2), (11.0, 0, 2, 4), (16.0, 1, 2, 4), (22.0, 0, 3, 4)]
    assert out["hit_tokens"] == 56
    assert out["prompt_tokens"] == 92
    assert out["own_hit_requests"] == 3
    assert out["request_hit_rate"] == pytest.approx(3 / 5)
    assert out["overload_requests"] == 0


def test_hand_worked_fifo():
    # FIFO (first insertion, a hit keeps the key; tail first within one insertion):
    # t=1  A1 ends: key 0 = A3 A2 S1 S0.      t=6 B1 ends: key 1 = B3 B2 (S keeps key 0).
    # t=11 A2 hits 4 blocks, allocates A4 A5 (used 8).  t=12 A2 ends: key 2 = A5 A4.
    # t=16 B2 hits S0 S1 B2 B3 (16); evicts the oldest: A3 A2 (key 0), not A5 A4 as LRU.
    # t=17 B2 ends: key 3 = B5 B4.
    # t=22 A3: hits S0 S1 only (A2 missing, 8 tokens); the stale A4 A5 are dropped and
    #      recomputed; allocates 6, evicts B3 B2 B5 B4.
    # hit tokens 0 + 8 + 16 + 16 + 8 = 48.
    out, rec = _hand("fifo")
    assert rec == [(0.0, 0, 1, 0), (5.0, 1, 1, 2), (11.0, 0, 2, 4), (16.0, 1, 2, 4), (22.0, 0, 3, 2)]
    assert out["hit_tokens"] == 48
    assert out["own_hit_requests"] == 2


def test_hand_worked_infinite_and_ttl():
    out, rec = _hand("lru")
    inf = simulate_trace(HAND_TRACE, HAND_WORKLOAD, CacheConfig(capacity_tokens=1e12, block_size_tokens=4))
    # A3 would hit S0 S1 A2..A5 = 6 blocks: 56 + 8 = 64.
    assert inf["hit_tokens"] == 64
    # TTL 9.5 s < every 10 s gap: each own chain has expired when its turn returns
    # (A freed at 1, back at 11; B freed at 6, back at 16; A freed at 12, back at 22),
    # while the shared prompt is freed at 1, 6, 12, 17 and never idles 9.5 s before a use.
    ttl = simulate_trace(HAND_TRACE, HAND_WORKLOAD, CacheConfig(capacity_tokens=1e12, block_size_tokens=4,
                                                                eviction="ttl", ttl_s=9.5), record=(rec2 := []))
    assert [r[3] for r in rec2] == [0, 2, 2, 2, 2]
    assert ttl["own_hit_requests"] == 0


# --------------------------------------------------------------------------- chains == blocks

workloads = st.builds(
    Workload,
    conversation_rate_per_s=st.sampled_from([0.2, 1.0, 4.0]),
    turns_mean=st.sampled_from([1.0, 2.5, 4.0]),
    turns_distribution=st.sampled_from(["geometric", "fixed"]),
    gap_mean_s=st.sampled_from([0.5, 3.0, 20.0]),
    gap_distribution=st.sampled_from(["exponential", "deterministic", "lognormal"]),
    user_tokens_per_turn=st.integers(1, 40).map(float),
    output_tokens_per_turn=st.integers(0, 40).map(float),
    system_prompt_tokens=st.integers(0, 60).map(float),
    service_time_s=st.sampled_from([0.0, 0.3, 2.0]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=workloads, eviction=st.sampled_from(["lru", "ttl", "fifo"]),
       capacity=st.integers(0, 1500), block=st.sampled_from([1, 3, 4, 16]),
       ttl=st.sampled_from([0.2, 2.0, 15.0]), seed=st.integers(0, 2**32))
def test_chain_engine_matches_block_reference(w, eviction, capacity, block, ttl, seed):
    cache = CacheConfig(capacity_tokens=float(capacity), block_size_tokens=block, eviction=eviction, ttl_s=ttl)
    trace = draw_trace(w, 60, np.random.default_rng(seed))
    rf, rr = [], []
    fast = simulate_trace(trace, w, cache, warmup_s=trace.arrivals[10], horizon_s=trace.arrivals[-1], record=rf)
    ref = simulate_trace(trace, w, cache, warmup_s=trace.arrivals[10], horizon_s=trace.arrivals[-1],
                         reference=True, record=rr)
    assert rf == rr   # every request: same start, hit blocks, prompt, overload
    for key in ("hit_tokens", "prompt_tokens", "own_hit_requests", "overload_requests", "requests",
                "requests_simulated", "shared_prompt_hit_rate"):
        assert fast[key] == ref[key], key
    # Occupancies are time integrals summed in different orders (the chain engine adds
    # count x dt per event interval, the reference adds dt per block), so they agree only
    # up to rounding. Recursive summation of n non-negative terms errs by at most
    # n eps x the sum (Higham, Accuracy and Stability, 2nd ed., eq. 4.4); here
    # n <= (blocks held <= Cb + 1) x (event intervals <= 4 per request + 4), every
    # average is <= Cb + 1, and "free" is Cb minus four such sums: hence the bound below
    # (about 1e-7 blocks at Cb = 852; a wrong count moves an average by >= 1 block x dt / span).
    cb = fast["capacity_blocks"] + 1
    tol = 4 * cb * cb * (4 * max(fast["requests_simulated"], ref["requests_simulated"]) + 4) * np.finfo(float).eps
    for key, value in fast["occupancy_blocks"].items():
        assert abs(value - ref["occupancy_blocks"][key]) <= tol, (key, value, ref["occupancy_blocks"][key], tol)


@pytest.mark.parametrize("eviction", ["lru", "ttl", "fifo"])
def test_public_entry_points_agree(eviction):
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4, gap_mean_s=10, user_tokens_per_turn=50,
                 output_tokens_per_turn=80, system_prompt_tokens=200, service_time_s=1.0)
    cache = CacheConfig(capacity_tokens=12000, block_size_tokens=16, eviction=eviction, ttl_s=8.0)
    fast = simulate(w, cache, seed=3, n_conversations=800)
    ref = simulate_blocks_reference(w, cache, seed=3, n_conversations=800)
    assert fast["hit_tokens"] == ref["hit_tokens"] > 0
    assert fast["own_hit_requests"] == ref["own_hit_requests"] > 0
    assert fast["token_hit_rate"] == ref["token_hit_rate"]


# --------------------------------------------------------------------------- determinism

BASE = Workload(conversation_rate_per_s=1.0, turns_mean=5, gap_mean_s=30, user_tokens_per_turn=150,
                output_tokens_per_turn=250, system_prompt_tokens=500, service_time_s=2.0)


def test_same_seed_same_result_and_seeds_differ():
    cache = CacheConfig(capacity_tokens=150_000, block_size_tokens=16)
    a = simulate(BASE, cache, seed=11, n_conversations=3000)
    b = simulate(BASE, cache, seed=11, n_conversations=3000)
    c = simulate(BASE, cache, seed=12, n_conversations=3000)
    d = simulate(BASE, cache, rng=np.random.default_rng(11), n_conversations=3000)
    assert a == b
    assert a["hit_tokens"] != c["hit_tokens"]
    assert {k: v for k, v in d.items() if k != "seed"} == {k: v for k, v in a.items() if k != "seed"}
    json.dumps(a)   # JSON-simple
    assert a["token_hit_rate_ci95_low"] < a["token_hit_rate"] < a["token_hit_rate_ci95_high"]
    assert a["request_hit_rate_ci95_low"] < a["request_hit_rate"] < a["request_hit_rate_ci95_high"]
    occ = a["occupancy_blocks"]
    assert occ["pinned"] + occ["shared_prompt"] + occ["returning"] + occ["finished"] + occ["free"] \
        == pytest.approx(a["capacity_blocks"])
    assert occ["shared_prompt"] > 0 and occ["returning"] > 0 and occ["finished"] > 0


def test_prehistory_is_stationary():
    # M/G/inf: conversations with a turn still to start at time 0 are Poisson with mean
    # lambda * E[(N - 1)(S + G)] = 1 * 4 * 62 = 248 (geometric L = 5, S = 2, tau = 60).
    w = Workload(conversation_rate_per_s=1.0, turns_mean=5, gap_mean_s=60, service_time_s=2.0)
    counts = [len(draw_trace(w, 100, np.random.default_rng(s)).resume) for s in range(20)]
    assert abs(np.mean(counts) - 248) < 12
    trace = draw_trace(w, 100, np.random.default_rng(0))
    assert [t for t, _, _ in trace.resume] == sorted(t for t, _, _ in trace.resume)
    assert all(0 <= t and 2 <= k <= trace.turns[c] for t, c, k in trace.resume)
    assert not trace.prehistory_truncated


def test_global_random_state_untouched():
    np.random.seed(1)
    before = np.random.random()
    np.random.seed(1)
    simulate(BASE, CacheConfig(capacity_tokens=50_000), seed=4, n_conversations=300)
    assert np.random.random() == before


# --------------------------------------------------------------------------- limits

def _within_ci(out, key, expected, slack=0.002):
    half = (out[f"{key}_ci95_high"] - out[f"{key}_ci95_low"]) / 2
    assert abs(out[key] - expected) <= 2 * half + slack, (out[key], expected, half)


def test_infinite_capacity_geometric_gives_ideal():
    # Geometric turns: sum_k P(N>k)(k a) = a L (L-1), so the ideal is (P + a(L-1)) / (P + a(L-1) + u).
    P, u, o, L = 500, 150, 250, 5
    a = u + o
    out = simulate(BASE, CacheConfig(capacity_tokens=1e12, block_size_tokens=1), seed=5, n_conversations=20000)
    _within_ci(out, "token_hit_rate", (P + a * (L - 1)) / (P + a * (L - 1) + u))
    _within_ci(out, "request_hit_rate", 1 - 1 / L)
    assert out["overload_fraction"] == 0.0


def test_infinite_capacity_fixed_turns_exact_per_request():
    # Fixed L = 4 turns, block 16: turn 1 hits the shared prompt's full blocks, turn k >= 2
    # hits floor(Z_{k-1}/b) blocks, every time (the very first request hits nothing).
    # NB for fixed turns the token ideal is (P + a(L-1)/2) / (P + a(L-1)/2 + u), not the
    # geometric (P + a(L-1)) / (...): sum_k P(N>k) k a = a L(L-1)/2 here.
    w = Workload(conversation_rate_per_s=1.0, turns_mean=4, turns_distribution="fixed", gap_mean_s=20,
                 gap_distribution="deterministic", user_tokens_per_turn=150, output_tokens_per_turn=250,
                 system_prompt_tokens=500, service_time_s=2.0)
    b, P, a, u = 16, 500, 400, 150
    trace = draw_trace(w, 3000, np.random.default_rng(8))
    record = []
    out = simulate_trace(trace, w, CacheConfig(capacity_tokens=1e12, block_size_tokens=b),
                         warmup_s=trace.arrivals[600], horizon_s=trace.arrivals[-1], record=record)
    # Conversations alive at t = 0 (stationary pre-history) join mid-way: their first
    # request here finds no own history and hits the shared prompt only.
    assert trace.resume and all(k > 1 for _, _, k in trace.resume[:5])
    seen = {record[0][1]}
    for t, c, k, hit, prompt, over in record[1:]:
        if c in seen or k == 1:
            assert hit == (P // b if k == 1 else (P + (k - 1) * a) // b)
        else:
            assert hit == P // b
        seen.add(c)
        assert prompt == P + (k - 1) * a + u and not over
    _within_ci(out, "token_hit_rate", (P + a * 1.5) / (P + a * 1.5 + u), slack=0.02)   # b = 16 rounding
    _within_ci(out, "request_hit_rate", 0.75)


def test_capacity_zero_overloads_without_crash():
    w = Workload(conversation_rate_per_s=2.0, turns_mean=3, gap_mean_s=5, user_tokens_per_turn=50,
                 output_tokens_per_turn=50, system_prompt_tokens=100, service_time_s=0.0)
    out = simulate(w, CacheConfig(capacity_tokens=0), seed=1, n_conversations=500)
    assert out["overload_fraction"] == 1.0
    assert out["token_hit_rate"] == 0.0   # nothing is ever cached, no request overlaps (S = 0)
    # With overlapping requests, only the shared prompt held by a running request can hit.
    # ~ lambda L S = 0.6 requests in flight: about half the requests find another one running.
    w = Workload(**{**w.to_dict(), "conversation_rate_per_s": 0.2, "service_time_s": 1.0})
    out = simulate(w, CacheConfig(capacity_tokens=0), seed=1, n_conversations=500)
    assert out["overload_fraction"] == 1.0
    assert out["request_hit_rate"] == 0.0
    assert 0.2 < out["shared_prompt_hit_rate"] < 0.8


def test_capacity_below_pinned_working_set():
    # Mean pinned working set: lambda S sum_k P(N>=k) ceil(200k/16) ~ 8 * 12.5 * E[N(N+1)/2]
    # = 8 * 12.5 * 25 = 2500 blocks; a cache of that size overloads about half the time.
    w = Workload(conversation_rate_per_s=4.0, turns_mean=5, gap_mean_s=10, user_tokens_per_turn=100,
                 output_tokens_per_turn=100, system_prompt_tokens=0, service_time_s=2.0)
    out = simulate(w, CacheConfig(capacity_tokens=2500 * 16), seed=2, n_conversations=2000)
    assert 0.1 < out["overload_fraction"] < 0.9
    assert 0 <= out["token_hit_rate"] < 0.3
    assert out["occupancy_blocks"]["pinned"] == pytest.approx(2500, rel=0.1)


def test_only_shared_prompt_fits():
    # S = 0 (no overlap); capacity = shared prompt + the largest single request: the shared
    # prompt (always the most recently freed chain) stays, own chains are evicted by the
    # next request of any of the ~300 other live conversations.
    P, u, o, b, L = 480, 40, 60, 16, 3
    w = Workload(conversation_rate_per_s=3.0, turns_mean=L, turns_distribution="fixed", gap_mean_s=100,
                 user_tokens_per_turn=u, output_tokens_per_turn=o, system_prompt_tokens=P, service_time_s=0.0)
    Ps, a = P // b, u + o
    cap_blocks = Ps + math.ceil((P + L * a) / b) - Ps
    trace = draw_trace(w, 4000, np.random.default_rng(9))
    record = []
    out = simulate_trace(trace, w, CacheConfig(capacity_tokens=cap_blocks * b, block_size_tokens=b),
                         warmup_s=trace.arrivals[500], horizon_s=trace.arrivals[-1], record=record)
    assert out["overload_fraction"] == 0.0
    assert out["shared_prompt_hit_rate"] == 1.0
    assert all(hit >= Ps for *_, hit, _, _ in [r[:6] for r in record[1:]])
    assert out["request_hit_rate"] < 0.02
    shared_only = Ps * b * out["requests"] / out["prompt_tokens"]
    assert shared_only <= out["token_hit_rate"] < shared_only + 0.01


def test_hit_rate_monotone_in_capacity():
    rates = []
    for cap in (20_000, 60_000, 120_000, 250_000, 1e12):
        out = simulate(BASE, CacheConfig(capacity_tokens=cap), seed=21, n_conversations=4000)
        rates.append((out["token_hit_rate"], out["request_hit_rate"]))
    for (t0, r0), (t1, r1) in zip(rates, rates[1:]):
        assert t1 >= t0 - 0.002 and r1 >= r0 - 0.005
    assert rates[-1][0] - rates[0][0] > 0.2


def test_ttl_infinite_equals_lru_and_short_ttl_kills_own_hits():
    w = Workload(conversation_rate_per_s=1.0, turns_mean=4, gap_mean_s=10, gap_distribution="deterministic",
                 user_tokens_per_turn=50, output_tokens_per_turn=50, system_prompt_tokens=64, service_time_s=1)
    lru = simulate(w, CacheConfig(capacity_tokens=40_000), seed=7, n_conversations=1000)
    ttl_inf = simulate(w, CacheConfig(capacity_tokens=40_000, eviction="ttl"), seed=7, n_conversations=1000)
    assert {k: v for k, v in lru.items() if k != "eviction"} == \
        {k: v for k, v in ttl_inf.items() if k != "eviction"}
    short = simulate(w, CacheConfig(capacity_tokens=40_000, eviction="ttl", ttl_s=9.9), seed=7, n_conversations=1000)
    assert short["request_hit_rate"] == 0.0 < lru["request_hit_rate"]


def test_fifo_below_lru_under_pressure():
    cache = dict(capacity_tokens=100_000, block_size_tokens=16)
    lru = simulate(BASE, CacheConfig(**cache), seed=13, n_conversations=6000)
    fifo = simulate(BASE, CacheConfig(**cache, eviction="fifo"), seed=13, n_conversations=6000)
    assert fifo["token_hit_rate"] < lru["token_hit_rate"]


# --------------------------------------------------------------------------- inputs, progress

def test_input_errors():
    with pytest.raises(InputError, match="LFU is not simulated"):
        simulate(BASE, CacheConfig(eviction="lfu"), seed=1)
    with pytest.raises(InputError, match="workload.turns_mean"):
        simulate(Workload(turns_mean=[2.0, 3.0]), CacheConfig(), seed=1)
    with pytest.raises(InputError, match="cache.capacity_tokens"):
        simulate(BASE, CacheConfig(capacity_tokens=[1e5, 2e5]), seed=1)
    with pytest.raises(InputError, match="seed"):
        simulate(BASE, CacheConfig(), seed=1, rng=np.random.default_rng(1))
    with pytest.raises(InputError, match="n_conversations"):
        simulate(BASE, CacheConfig(), seed=1, n_conversations=0)
    with pytest.raises(InputError, match="warmup_fraction"):
        simulate(BASE, CacheConfig(), seed=1, warmup_fraction=1.0)


def test_progress_callback():
    seen = []
    simulate(BASE, CacheConfig(capacity_tokens=100_000), seed=1, n_conversations=2000, progress=seen.append)
    assert 5 <= len(seen) <= 40
    assert seen == sorted(seen) and seen[-1] == 1.0 and all(0 < x <= 1 for x in seen)
