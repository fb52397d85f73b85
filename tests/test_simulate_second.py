"""The simulator (py/kvcalc/simulate.py) against values derived without it.

* A second, plain block-level simulator written here from the module docstring's
  semantics (``_second``: one dict per instance, O(n) eviction by minimum key),
  run on small seeded traces under LRU, TTL and FIFO, tight and loose
  capacities, shared prompts and overlapping requests, K = 2 instances under
  each routing: every request's hit, and the totals, must be identical in
  both engines of the module; the time-average occupancies equal up to
  summation rounding.
* The batch-means confidence interval recomputed from the raw per-batch sums
  with a Student t quantile taken from a printed table (not from the module).
* Little's law on a seeded run: mean pinned blocks = request rate x service
  time x blocks per request.
* The trace generator: Poisson arrivals, turn and gap distributions, the
  stationary pre-history (where a live conversation must stand at time 0).
* Seed determinism and sensitivity, warnings and input errors.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.fleet import FleetConfig, TierConfig
from kvcalc.simulate import Trace, draw_trace, simulate, simulate_blocks_reference, simulate_trace
from kvcalc.workload import CacheConfig, Workload

# Student t quantiles t(0.975, df), df = 1..9: NIST/SEMATECH e-Handbook of Statistical
# Methods, section 1.3.6.7.2 "Critical values of the Student's t distribution" (column 0.025).
T975_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


# --------------------------------------------------------------------------- the second simulator

def _second(trace, P, u, o, b, S, Cb, policy, ttl, t_w, t_e, K=1, node_of=None, nb=10, stack=None):
    """Plain block simulator (see the module docstring of simulate.py for the rules).

    Returns per-request records, per-batch sums and the four occupancy integrals
    (pinned, shared, returning, finished) over [t_w, last event], summed over instances.
    ``stack``: capacities of the GPU and its exclusive tiers, which (no overlap, LRU) are
    the consecutive pieces of one LRU stack of their total Cb: a block hit at recency rank r
    (0 = most recently freed) counts for the first level whose cumulative capacity exceeds r;
    the blocks hit per level are returned in ``sums["level"]``.
    """
    a, Ps = u + o, P // b
    nodes = [{"refs": {}, "cached": {}, "key": {}, "freed": {}} for _ in range(K)]
    finished = set()
    ev, seq = [], 0
    for t, c, k in trace.resume:            # returning turns before arrivals at equal times
        ev.append((t, 1, seq, "start", c, k, None))
        seq += 1
    for c, t in enumerate(trace.arrivals):
        ev.append((t, 2, seq, "start", c, 1, None))
        seq += 1
    heapq.heapify(ev)
    width = (t_e - t_w) / nb
    sums = {"hit": [0] * nb, "prompt": [0] * nb, "req": [0] * nb, "own": [0] * nb, "level": [0] * len(stack or ())}
    records, occ, t_last, counter, shared_hit = [], [0.0] * 4, 0.0, 0, 0

    def blk(c, i):
        return ("shared", i) if i < Ps else (c, i)

    def evict_oldest(nd):
        victim = min(nd["cached"], key=nd["cached"].get)
        del nd["cached"][victim], nd["freed"][victim]
        nd["key"].pop(victim, None)

    while ev and ev[0][0] <= t_e:
        t, _, _, kind, c, k, node = heapq.heappop(ev)
        if t > t_last:
            if t > t_w:
                dt = t - max(t_last, t_w)
                for nd in nodes:
                    occ[0] += len(nd["refs"]) * dt
                    for x in nd["cached"]:
                        occ[1 if x[0] == "shared" else 3 if x[0] in finished else 2] += dt
            t_last = t
        for nd in (nodes if ttl < math.inf else ()):   # TTL: idle longer than ttl since the last free
            for x in [x for x, f in nd["freed"].items() if f + ttl < t]:
                del nd["cached"][x], nd["freed"][x]
                nd["key"].pop(x, None)
        Z = P + k * a
        total = -(-Z // b)
        if kind == "end":
            nd = nodes[node]
            for i in range(total):
                nd["refs"][blk(c, i)] -= 1
                if nd["refs"][blk(c, i)] == 0:
                    del nd["refs"][blk(c, i)]
            if k == trace.turns[c]:
                finished.add(c)
            for i in range(Z // b - 1, -1, -1):    # full blocks, tail first
                x = blk(c, i)
                if x not in nd["refs"]:
                    key = nd["key"].setdefault(x, (counter, -i)) if policy == "fifo" else (counter, -i)
                    nd["cached"][x], nd["freed"][x] = key, t
            counter += 1
            while len(nd["refs"]) + len(nd["cached"]) > Cb and nd["cached"]:
                evict_oldest(nd)
            if k < trace.turns[c]:
                heapq.heappush(ev, (t + trace.gaps[trace.goff[c] + k - 1], 1, seq, "start", c, k + 1, None))
                seq += 1
            continue
        node = node_of(c, k) if node_of else 0
        nd = nodes[node]
        prompt = Z - o
        hit = 0
        while hit < (prompt - 1) // b and (blk(c, hit) in nd["refs"] or blk(c, hit) in nd["cached"]):
            hit += 1
        if stack and t >= t_w:
            rank = {x: r for r, x in enumerate(sorted(nd["cached"], key=nd["cached"].get, reverse=True))}
            for i in range(hit):
                if blk(c, i) in rank:
                    r, level = rank[blk(c, i)], 0
                    while r >= sum(stack[:level + 1]):
                        level += 1
                    sums["level"][level] += 1
        for i in range(total):
            x = blk(c, i)
            if x in nd["cached"]:        # hit blocks are pinned; stale copies beyond the hit dropped
                del nd["cached"][x], nd["freed"][x]
                if i >= hit:
                    nd["key"].pop(x, None)
            nd["refs"][x] = nd["refs"].get(x, 0) + 1
        over = False
        while len(nd["refs"]) + len(nd["cached"]) > Cb:
            if not nd["cached"]:
                over = True
                break
            evict_oldest(nd)
        heapq.heappush(ev, (t + S, 0, seq, "end", c, k, node))
        seq += 1
        records.append((t, c, k, hit, prompt, over))
        if t >= t_w:
            j = min(int((t - t_w) * (1.0 / width)), nb - 1)
            sums["hit"][j] += hit * b
            sums["prompt"][j] += prompt
            sums["req"][j] += 1
            sums["own"][j] += hit > Ps
            shared_hit += min(hit, Ps)
    return records, sums, occ, t_last, shared_hit


def _ci95(num, den, point):
    """Batch means: overall ratio +- t(0.975, m-1) sd / sqrt(m), clipped to [0, 1]."""
    r = [n / d for n, d in zip(num, den) if d]
    m = len(r)
    if m < 2:
        return None, None
    mean = sum(r) / m
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (m - 1))
    half = T975_TABLE[m - 1] * sd / math.sqrt(m)
    return max(0.0, point - half), min(1.0, point + half)


# Small scenarios: b = 4, P = 10 (Ps = 2 shared blocks, a partial third), u = 3, o = 5,
# S = 1.5 s (requests overlap), about 20 live conversations at a time.
SMALL = Workload(conversation_rate_per_s=1.0, turns_mean=3.0, gap_mean_s=5.0, user_tokens_per_turn=3,
                 output_tokens_per_turn=5, system_prompt_tokens=10, service_time_s=1.5)


def _check_against_second(trace, w, cache, P, u, o, b, *, fleet=None, routing_seed=None, node_of=None, K=1,
                          pooled=1, warm=5):
    t_w, t_e = (trace.arrivals[warm] if warm else 0.0), trace.arrivals[-1]
    Cb = int(cache.capacity_tokens // b) * pooled
    ttl = cache.ttl_s if cache.eviction == "ttl" else math.inf
    recs, sums, occ, t_last, shared_hit = _second(trace, P, u, o, b, w.service_time_s, Cb, cache.eviction, ttl,
                                                  t_w, t_e, K=K, node_of=node_of)
    outs = []
    for reference in (False, True):
        rec = []
        kw = {} if fleet is None else {"fleet": fleet, "routing_rng": np.random.default_rng(routing_seed)}
        out = simulate_trace(trace, w, cache, warmup_s=t_w, horizon_s=t_e, reference=reference, record=rec, **kw)
        assert rec == recs, ("engine", reference)
        H, Q, R, O = (sum(sums[x]) for x in ("hit", "prompt", "req", "own"))
        assert (out["hit_tokens"], out["prompt_tokens"], out["requests"], out["own_hit_requests"]) == (H, Q, R, O)
        assert out["token_hit_rate"] == H / Q and out["request_hit_rate"] == O / R
        assert out["requests_simulated"] == len(recs)
        assert out["overload_requests_simulated"] == sum(r[5] for r in recs)
        assert out["overload_requests"] == sum(r[5] for r in recs if r[0] >= t_w)
        assert out["overload_fraction"] == out["overload_requests"] / R
        Ps = P // b
        assert out["shared_prompt_hit_rate"] == (shared_hit / (Ps * R) if Ps else None)
        lo, hi = _ci95(sums["hit"], sums["prompt"], H / Q)
        assert out["token_hit_rate_ci95_low"] == pytest.approx(lo, abs=1e-12)
        assert out["token_hit_rate_ci95_high"] == pytest.approx(hi, abs=1e-12)
        lo, hi = _ci95(sums["own"], sums["req"], O / R)
        assert out["request_hit_rate_ci95_low"] == pytest.approx(lo, abs=1e-12)
        assert out["request_hit_rate_ci95_high"] == pytest.approx(hi, abs=1e-12)
        span = min(t_e, t_last) - t_w
        assert out["horizon_s"] == min(t_e, t_last) and out["warmup_s"] == t_w
        per = [x / span / K for x in occ]
        got = out["occupancy_blocks"]
        # summation order differs (count x dt per interval here vs. per block): equal up to rounding
        for name, v in zip(("pinned", "shared_prompt", "returning", "finished"), per):
            assert got[name] == pytest.approx(v, rel=1e-9, abs=1e-9), name
        cached = per[1] + per[2] + per[3]
        assert out["mean_cached_blocks"] == pytest.approx(cached, rel=1e-9, abs=1e-9)
        assert out["mean_used_blocks"] == pytest.approx(cached + per[0], rel=1e-9, abs=1e-9)
        if True:
            assert got["free"] == pytest.approx(max(0.0, Cb - cached - per[0]), rel=1e-9, abs=1e-9)
        assert out["capacity_blocks"] == Cb
        outs.append(out)
    return outs


# (dense: ~4 requests running, the shared prompt almost always pinned; sparse: S = 0.2 s at
# half the rate, so the shared prompt is often evictable and is evicted and re-created)
SPARSE = Workload(**{**SMALL.to_dict(), "service_time_s": 0.2, "conversation_rate_per_s": 0.5})
CASES = [(SMALL, seed, cap) for seed in (1, 2) for cap in (0, 6, 14, 40, None)] + \
    [(SPARSE, seed, cap) for seed in (1, 2) for cap in (4, 8, None)]


@pytest.mark.parametrize("eviction", ["lru", "fifo", "ttl"])
@pytest.mark.parametrize("w,seed,capacity_blocks", CASES)
def test_both_engines_match_a_second_simulator(eviction, w, seed, capacity_blocks):
    b, P, u, o = 4, 10, 3, 5
    cap = 1e12 if capacity_blocks is None else capacity_blocks * b + 3   # + 3: floor(C / b) blocks
    cache = CacheConfig(capacity_tokens=cap, block_size_tokens=b, eviction=eviction, ttl_s=4.0)
    trace = draw_trace(w, 40, np.random.default_rng(seed))
    (fast, _) = _check_against_second(trace, w, cache, P, u, o, b)
    if capacity_blocks == 0:
        assert fast["overload_fraction"] == 1.0
    if capacity_blocks is None:
        assert fast["overload_requests_simulated"] == 0 and fast["own_hit_requests"] > 0


def test_rounding_half_up_and_block_boundaries():
    # P = 7.5 -> 8 (half up; Python's round() would give 8 too, so also u = 2.5 -> 3, round() -> 2),
    # o = 0.5 -> 1; b = 4: Ps = 2, a = 4, Z_k = 8 + 4k sits on a block boundary every turn.
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4.0, gap_mean_s=2.0, user_tokens_per_turn=2.5,
                 output_tokens_per_turn=0.5, system_prompt_tokens=7.5, service_time_s=0.7)
    trace = draw_trace(w, 40, np.random.default_rng(5))
    for eviction in ("lru", "fifo"):
        _check_against_second(trace, w, CacheConfig(capacity_tokens=48, block_size_tokens=4, eviction=eviction),
                              8, 3, 1, 4, warm=0)   # measured from t = 0 (first arrival before 1 s)
    assert trace.arrivals[0] < 1.0


@pytest.mark.parametrize("eviction", ["lru", "fifo"])
@pytest.mark.parametrize("routing", ["affinity", "random", "round_robin"])
@pytest.mark.parametrize("sparse", [False, True])
def test_two_instances_match_a_second_simulator(routing, eviction, sparse):
    # (sparse, random / round robin: a chat's chain cached on one instance must count as
    # "finished" once its last turn ends on the other; the chain engine kept it "returning")
    b, P, u, o, K = 4, 10, 3, 5, 2
    w = Workload(**{**SMALL.to_dict(), "conversation_rate_per_s": 2.0, "service_time_s": 0.2 if sparse else 1.5})
    trace = draw_trace(w, 50, np.random.default_rng(7))
    n = len(trace.turns)
    # the routing draws, as the docstring states: affinity one draw per conversation; random one per
    # request, indexed by (conversation, turn); round robin in request-start order
    draws = np.random.default_rng(70).integers(0, K, size=n if routing == "affinity" else len(trace.gaps) + n)
    rr = iter(range(10**9))
    if routing == "affinity":
        def node_of(c, k):
            return int(draws[c])
    elif routing == "random":
        def node_of(c, k):
            return int(draws[trace.goff[c] + c + k - 1])
    else:
        def node_of(c, k):
            return next(rr) % K
    cache = CacheConfig(capacity_tokens=14 * b, block_size_tokens=b, eviction=eviction)
    fast, _ = _check_against_second(trace, w, cache, P, u, o, b, fleet=FleetConfig(K, routing), routing_seed=70,
                                    node_of=node_of, K=K)
    assert fast["instances"] == K and fast["routing"] == routing


def test_pooled_is_one_store_of_k_times_the_capacity():
    b, P, u, o = 4, 10, 3, 5
    trace = draw_trace(SMALL, 40, np.random.default_rng(3))
    pooled, _ = _check_against_second(trace, SMALL, CacheConfig(capacity_tokens=7 * b, block_size_tokens=b),
                                      P, u, o, b, fleet=FleetConfig(3, "pooled"), routing_seed=1, K=1, pooled=3)
    one = simulate_trace(trace, SMALL, CacheConfig(capacity_tokens=21 * b, block_size_tokens=b),
                         warmup_s=trace.arrivals[5], horizon_s=trace.arrivals[-1])
    assert pooled["capacity_blocks"] == 21 and pooled["instances"] == 3
    assert {k: v for k, v in pooled.items() if k not in ("instances", "routing")} == \
        {k: v for k, v in one.items() if k not in ("instances", "routing")}


@pytest.mark.parametrize("P", [0, 10])
def test_exclusive_tiers_without_overlap_are_one_lru_stack(P):
    # S = 0: no two requests overlap, so GPU (10 blocks) -> cpu (5) -> ssd (4) -> out is one LRU
    # stack of 19 blocks (demote the least recent, promote on a hit): the same hits request by
    # request as a single cache of 19 blocks. (3 fixed turns: at most ceil((10 + 24) / 4) = 9
    # blocks a request, so the GPU never overloads.) With P = 0 the GPU always holds the most
    # recent blocks, so the level of each hit block is its recency rank's piece of the stack.
    b, u, o = 4, 3, 5
    w = Workload(**{**SMALL.to_dict(), "service_time_s": 0.0, "system_prompt_tokens": P, "turns_mean": 3,
                    "turns_distribution": "fixed", "conversation_rate_per_s": 2.0})
    trace = draw_trace(w, 80, np.random.default_rng(11 + P))
    t_w, t_e = trace.arrivals[5], trace.arrivals[-1]
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 5 * b + 1), TierConfig("ssd", 4 * b + 2)))
    rec = []
    out = simulate_trace(trace, w, CacheConfig(capacity_tokens=10 * b, block_size_tokens=b), warmup_s=t_w,
                         horizon_s=t_e, record=rec, fleet=fleet)
    recs, sums, *_ = _second(trace, P, u, o, b, 0.0, 19, "lru", math.inf, t_w, t_e, stack=[10, 5, 4])
    assert rec == recs
    Q = sum(sums["prompt"])
    assert out["token_hit_rate"] == sum(sums["hit"]) / Q
    levels = out["tier_token_hit_rates"]
    assert len(levels) == 3 and sum(levels) == pytest.approx(out["token_hit_rate"], abs=1e-12)
    if P == 0:   # (with P = 10 a request's partial last block leaves a GPU slot free at its end,
        # so the GPU may hold fewer than its 10 most recent blocks: ranks no longer give the level)
        assert levels == pytest.approx([x * b / Q for x in sums["level"]], abs=1e-12)
        assert all(x > 0 for x in sums["level"])


@pytest.mark.parametrize("P", [0, 8])
def test_inclusive_tier_without_overlap_is_the_larger_lru(P):
    # Inclusive (write-through): the tier is its own LRU of every freed chain, in the same
    # recency order as the GPU (S = 0, no overlap), so each holds the top of one LRU stack:
    # the hits are those of a single cache of the larger capacity, and the tier's share is
    # the blocks hit beyond the GPU's 10. A tier smaller than the GPU adds nothing.
    # (Z_k = P + 8k is a whole number of 4-token blocks: a partial last block would take a
    # slot of the single cache while its request runs, never one of the write-through tier.)
    b, u, o = 4, 3, 5
    w = Workload(**{**SMALL.to_dict(), "service_time_s": 0.0, "system_prompt_tokens": P, "turns_mean": 3,
                    "turns_distribution": "fixed", "conversation_rate_per_s": 2.0})
    trace = draw_trace(w, 80, np.random.default_rng(21 + P))
    t_w, t_e = trace.arrivals[5], trace.arrivals[-1]
    gpu = CacheConfig(capacity_tokens=10 * b, block_size_tokens=b)
    rec = []
    out = simulate_trace(trace, w, gpu, warmup_s=t_w, horizon_s=t_e, record=rec,
                         fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 16 * b + 3),), "inclusive"))
    recs, sums, *_ = _second(trace, P, u, o, b, 0.0, 16, "lru", math.inf, t_w, t_e, stack=[10, 6])
    assert rec == recs
    Q = sum(sums["prompt"])
    assert out["tier_token_hit_rates"] == pytest.approx([x * b / Q for x in sums["level"]], abs=1e-12)
    assert out["tier_token_hit_rates"][1] > 0
    small = simulate_trace(trace, w, gpu, warmup_s=t_w, horizon_s=t_e,
                           fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 5 * b),), "inclusive"))
    alone = simulate_trace(trace, w, gpu, warmup_s=t_w, horizon_s=t_e)
    assert small["tier_token_hit_rates"] == [alone["token_hit_rate"], 0.0]
    assert small["hit_tokens"] == alone["hit_tokens"]


def test_fifo_request_inside_the_shared_prompt():
    # P = 10, u = 1, o = 0, b = 4: Z = 11 has floor(11/4) = 2 full blocks = the shared prompt's
    # Ps = 2, so a one-turn chat leaves no own block. The second chat hits both shared blocks
    # (its cap is (11 - 1) // 4 = 2). Under every policy.
    w = Workload(system_prompt_tokens=10, user_tokens_per_turn=1, output_tokens_per_turn=0, service_time_s=1.0)
    tr = Trace.from_lists([0.0, 5.0], [1, 1], [[], []])
    for eviction in ("fifo", "lru", "ttl"):
        rec = []
        out = simulate_trace(tr, w, CacheConfig(capacity_tokens=64, block_size_tokens=4, eviction=eviction),
                             record=rec)
        assert [r[3] for r in rec] == [0, 2] and out["shared_prompt_hit_rate"] == 0.5


def test_equal_time_events_run_ends_then_returns_in_order():
    # P = 0, b = 4, u = o = 4: Z_1 = 8 (2 blocks), turn 2 has prompt 12 and Z_2 = 16 (4 blocks); S = 1.
    w = Workload(system_prompt_tokens=0, user_tokens_per_turn=4, output_tokens_per_turn=4, service_time_s=1.0)
    # (1) Two chats arrive together at 0 (conversation 0 first), end together at 1 and return together
    # at 2 in the order they were scheduled: 0 then 1. Capacity 6 blocks: at 2 both chains (4 blocks)
    # are cached; chat 0 hits its 2 and adds 2 (6 used); chat 1 hits its 2 and needs 2 more with
    # nothing evictable: it, the second, overloads.
    tr = Trace.from_lists([0.0, 0.0], [2, 2], [[1.0], [1.0]])
    expect = [(0.0, 0, 1, 0, 4, False), (0.0, 1, 1, 0, 4, False), (2.0, 0, 2, 2, 12, False), (2.0, 1, 2, 2, 12, True)]
    for reference in (False, True):
        rec = []
        simulate_trace(tr, w, CacheConfig(capacity_tokens=24, block_size_tokens=4), record=rec, reference=reference)
        assert rec == expect, reference
    # (3) A return and an arrival at the same time: the return runs first. A: 0 -> 1, back at 2;
    # B arrives at 2. Capacity 4 blocks: A (hit 2, 2 new) fills it, so B, second, overloads.
    tr = Trace.from_lists([0.0, 2.0], [2, 1], [[1.0], []])
    expect = [(0.0, 0, 1, 0, 4, False), (2.0, 0, 2, 2, 12, False), (2.0, 1, 1, 0, 4, True)]
    for reference in (False, True):
        rec = []
        simulate_trace(tr, w, CacheConfig(capacity_tokens=16, block_size_tokens=4), record=rec, reference=reference)
        assert rec == expect, reference
    # (2) An end and a return at the same time: the end runs first. A: 0 -> 1, back at 2; B: 1 -> 2.
    # Capacity 4 blocks: at 2 B's chain is freed first, so A (hit 2, 2 new) evicts it, no overload.
    tr = Trace.from_lists([0.0, 1.0], [2, 1], [[1.0], []])
    expect = [(0.0, 0, 1, 0, 4, False), (1.0, 1, 1, 0, 4, False), (2.0, 0, 2, 2, 12, False)]
    for reference in (False, True):
        rec = []
        simulate_trace(tr, w, CacheConfig(capacity_tokens=16, block_size_tokens=4), record=rec, reference=reference)
        assert rec == expect, reference


def test_ttl_drops_only_blocks_idle_more_than_ttl():
    # One conversation, b = 4, P = 0, u = o = 4: turn 1 at 0 ends at 1 with Z_1 = 8 (2 blocks);
    # turn 2 starts at 1 + gap. "Idle for more than ttl_s" is dropped: idle exactly ttl still hits
    # (2 blocks of turn 2's cap (12 - 1) // 4 = 2), idle ttl + 0.5 does not.
    w = Workload(system_prompt_tokens=0, user_tokens_per_turn=4, output_tokens_per_turn=4, service_time_s=1.0)
    for gap, hit in ((4.0, 2), (4.5, 0)):
        tr = Trace.from_lists([0.0], [2], [[gap]])
        for reference in (False, True):
            rec = []
            simulate_trace(tr, w, CacheConfig(capacity_tokens=64, block_size_tokens=4, eviction="ttl", ttl_s=4.0),
                           record=rec, reference=reference)
            assert [r[3] for r in rec] == [0, hit], (gap, reference)


# --------------------------------------------------------------------------- the confidence interval

def test_batch_means_interval_from_the_raw_batches_with_clipping():
    # Sparse conversations (one per 50 s, each over within a few s) and a window of the last five
    # arrivals: 4 non-empty batches of very different ratios, so the interval is wide (t(0.975, 3)
    # = 3.182) and clipped at 0 and 1 for the request hit rate (checked below on the raw batches).
    w = Workload(conversation_rate_per_s=0.02, turns_mean=3.0, gap_mean_s=1.0, user_tokens_per_turn=8,
                 output_tokens_per_turn=8, system_prompt_tokens=0, service_time_s=0.5)
    trace = draw_trace(w, 12, np.random.default_rng(3))
    t_w, t_e = trace.arrivals[7], trace.arrivals[-1]
    recs, sums, *_ = _second(trace, 0, 8, 8, 4, 0.5, 10**6, "lru", math.inf, t_w, t_e)
    out = simulate_trace(trace, w, CacheConfig(capacity_tokens=4e6, block_size_tokens=4), warmup_s=t_w, horizon_s=t_e)
    H, Q, R, O = (sum(sums[x]) for x in ("hit", "prompt", "req", "own"))
    assert sum(1 for x in sums["req"] if x) == 4
    lo, hi = _ci95(sums["own"], sums["req"], O / R)
    assert (lo, hi) == (0.0, 1.0)   # clipped at both ends
    assert (out["request_hit_rate_ci95_low"], out["request_hit_rate_ci95_high"]) == (lo, hi)
    lo, hi = _ci95(sums["hit"], sums["prompt"], H / Q)
    assert 0.0 < lo and hi == 1.0
    assert (out["token_hit_rate_ci95_low"], out["token_hit_rate_ci95_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert out["ci_batches"] == 10


def test_interval_needs_two_nonempty_batches():
    # One request measured: one non-empty batch, no interval (m = 1); the point estimate stays.
    tr = Trace.from_lists([0.0, 100.0], [1, 1], [[], []])
    w = Workload(system_prompt_tokens=0, user_tokens_per_turn=8, output_tokens_per_turn=0, service_time_s=1.0)
    out = simulate_trace(tr, w, CacheConfig(capacity_tokens=64, block_size_tokens=4), warmup_s=50.0, horizon_s=100.0)
    assert out["requests"] == 1 and out["token_hit_rate"] == 0.0
    assert out["token_hit_rate_ci95_low"] is None and out["request_hit_rate_ci95_high"] is None
    assert out["shared_prompt_hit_rate"] is None   # Ps = 0
    # Two requests in two batches (t = 50 and 100 of [50, 100]: batches 0 and 9), ratios 0 and
    # (8 - 4)/8 ... hand: turn 2 of a 2-turn conversation hits Z_1 = 8 tokens = 2 blocks of its 12.
    tr = Trace.from_lists([50.0], [2], [[48.0]])
    out = simulate_trace(tr, w, CacheConfig(capacity_tokens=64, block_size_tokens=4), warmup_s=50.0, horizon_s=100.0)
    # turn 1 at 50: prompt 8, hit 0; turn 2 at 50 + 1 + 48 = 99: prompt 16, cap (16-1)//4 = 3, hits 2 blocks = 8.
    assert (out["hit_tokens"], out["prompt_tokens"]) == (8, 24)
    # ratios 0 and 0.5: mean 0.25, sd = sqrt(2 * 0.25**2) = 0.35355, half = 12.706 * 0.35355 / sqrt(2) = 3.1765
    assert out["token_hit_rate"] == pytest.approx(1 / 3)
    assert out["token_hit_rate_ci95_low"] == 0.0 and out["token_hit_rate_ci95_high"] == 1.0
    assert out["request_hit_rate"] == 0.5


def test_nothing_measured():
    # The warm-up ends after every request: no measured request, so no rates and no intervals.
    tr = Trace.from_lists([0.0, 1.0], [1, 1], [[], []])
    w = Workload(system_prompt_tokens=8, user_tokens_per_turn=8, output_tokens_per_turn=0, service_time_s=0.5)
    out = simulate_trace(tr, w, CacheConfig(capacity_tokens=64, block_size_tokens=4), warmup_s=5.0, horizon_s=10.0)
    assert (out["requests"], out["requests_simulated"]) == (0, 2)
    for key in ("token_hit_rate", "request_hit_rate", "shared_prompt_hit_rate", "token_hit_rate_ci95_low",
                "request_hit_rate_ci95_high"):
        assert out[key] is None, key
    assert out["overload_fraction"] == 0.0 and out["tier_token_hit_rates"] == [None]
    # the last event (the end at 1.5 s) is before the warm-up: the measured span is empty
    assert out["horizon_s"] == 1.5
    assert out["occupancy_blocks"] == {"pinned": 0.0, "shared_prompt": 0.0, "returning": 0.0, "finished": 0.0,
                                       "free": 16.0}


# --------------------------------------------------------------------------- Little's law

def test_littles_law_pinned_blocks():
    # Infinite cache, b = 1, P = 0: each request pins Z_k = k a tokens = blocks for S seconds, so the
    # time-average pinned blocks = (requests / s) x S x (mean Z per request) (Little's law). Every
    # request after the warm-up is measured; edge effects are one S at each end (S / span ~ 1e-3).
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4, gap_mean_s=6.0, user_tokens_per_turn=30,
                 output_tokens_per_turn=50, system_prompt_tokens=0, service_time_s=3.0)
    out = simulate(w, CacheConfig(capacity_tokens=1e13, block_size_tokens=1), seed=17, n_conversations=1500)
    span = out["horizon_s"] - out["warmup_s"]
    mean_Z = (out["prompt_tokens"] + 50 * out["requests"]) / out["requests"]
    expected = out["requests"] / span * 3.0 * mean_Z
    assert out["occupancy_blocks"]["pinned"] == pytest.approx(expected, rel=0.01)
    # warm-up as asked: 20 % of the horizon (the last arrival)
    assert out["warmup_s"] == pytest.approx(0.2 * out["horizon_s"], rel=1e-12)
    assert out["occupancy_blocks"]["shared_prompt"] == 0.0


def test_littles_law_sample_path_of_every_occupancy():
    # Infinite cache, b = 1, P = 0: a request of turn k pins Z_k = k a blocks during [t, t + S]; its
    # chain is then cached until the next turn starts (returning) or for ever (finished). The
    # time integral of each occupancy is the sum of blocks x time each holds inside the window
    # [warm-up, horizon] (Little's law on the sample path), computed here from the request record.
    a, S = 80, 3.0
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4, gap_mean_s=6.0, user_tokens_per_turn=30,
                 output_tokens_per_turn=50, system_prompt_tokens=0, service_time_s=S)
    trace = draw_trace(w, 300, np.random.default_rng(2))
    rec = []
    t_w, t_e = trace.arrivals[60], trace.arrivals[-1]
    out = simulate_trace(trace, w, CacheConfig(capacity_tokens=1e12, block_size_tokens=1),
                         warmup_s=t_w, horizon_s=t_e, record=rec)
    end = out["horizon_s"]

    def inside(t0, t1):
        return max(0.0, min(t1, end) - max(t0, t_w))

    start = {(c, k): t for t, c, k, *_ in rec}
    pin = ret = fin = 0.0
    for (c, k), t in start.items():
        pin += k * a * inside(t, t + S)
        nxt = start.get((c, k + 1), math.inf)
        if k == trace.turns[c]:
            fin += k * a * inside(t + S, math.inf)
        else:
            ret += k * a * inside(t + S, nxt)
    span = end - t_w
    occ = out["occupancy_blocks"]
    assert occ["pinned"] == pytest.approx(pin / span, rel=1e-9)
    assert occ["returning"] == pytest.approx(ret / span, rel=1e-9)
    assert occ["finished"] == pytest.approx(fin / span, rel=1e-9)
    assert occ["free"] == pytest.approx(1e12 - (pin + ret + fin) / span, rel=1e-12)


# --------------------------------------------------------------------------- the trace generator

def test_trace_distributions():
    n = 40000
    rng = np.random.default_rng(123)
    w = Workload(conversation_rate_per_s=2.5, turns_mean=3.4, turns_distribution="fixed", gap_mean_s=7.0,
                 gap_distribution="lognormal", gap_lognormal_sigma=1.2, service_time_s=1.0)
    tr = draw_trace(w, n, rng, prehistory=False)
    assert list(tr.resume) == [] and not tr.prehistory_truncated
    inter = np.diff([0.0] + tr.arrivals)
    assert np.mean(inter) == pytest.approx(1 / 2.5, rel=0.02)          # Poisson: se 0.5 %
    turns = np.array(tr.turns)
    assert set(turns.tolist()) == {3, 4}                              # floor(3.4) or + 1
    assert np.mean(turns == 4) == pytest.approx(0.4, abs=0.015)       # se 0.25 %
    gaps = np.array(tr.gaps)
    assert len(gaps) == int((turns - 1).sum())
    assert tr.goff == np.concatenate(([0], np.cumsum(turns - 1)[:-1])).tolist()
    assert np.mean(gaps) == pytest.approx(7.0, rel=0.05)              # lognormal with mean tau
    assert np.std(np.log(gaps)) == pytest.approx(1.2, rel=0.02)
    assert np.mean(np.log(gaps)) == pytest.approx(math.log(7.0) - 0.72, abs=0.02)
    g = draw_trace(Workload(turns_mean=2.5, gap_mean_s=3.0), n, rng, prehistory=False)
    assert np.mean(g.turns) == pytest.approx(2.5, rel=0.02) and min(g.turns) == 1
    assert np.mean(g.gaps) == pytest.approx(3.0, rel=0.03)           # exponential, cv 1
    assert np.std(g.gaps) == pytest.approx(3.0, rel=0.05)
    d = draw_trace(Workload(turns_mean=1.0, gap_distribution="deterministic", gap_mean_s=3.0), 50, rng)
    assert d.turns == [1] * 50 and d.gaps == []
    d = draw_trace(Workload(turns_mean=3.0, gap_distribution="deterministic", gap_mean_s=3.0), 50, rng,
                   prehistory=False)
    assert set(d.gaps) == {3.0}


def test_prehistory_conversations_stand_where_stationarity_puts_them():
    # Fixed 3 turns, deterministic gaps: turn k starts at arrival + (k-1)(S + tau), cycle S + tau = 5 s.
    # A conversation alive at 0 with a turn to come arrived in (-10, 0]; its next start is within 5 s,
    # at turn 2 (arrived in (-5, 0]) or 3 (in (-10, -5]): Poisson counts of mean lambda x 5 = 30 each.
    w = Workload(conversation_rate_per_s=6.0, turns_mean=3, turns_distribution="fixed", gap_mean_s=4.0,
                 gap_distribution="deterministic", service_time_s=1.0)
    ks, n_alive = [], []
    for s in range(8):
        tr = draw_trace(w, 30, np.random.default_rng(s))
        n = len(tr.arrivals)
        assert all(0.0 <= t < 5.0 for t, _, _ in tr.resume)
        assert [c for _, c, _ in tr.resume] != [] and sorted(c for _, c, _ in tr.resume) == list(range(n, len(tr.turns)))
        assert len(tr.goff) == len(tr.turns) and len(tr.gaps) == sum(x - 1 for x in tr.turns)
        assert tr.goff == np.concatenate(([0], np.cumsum(np.array(tr.turns) - 1)[:-1])).tolist()
        assert set(tr.gaps) == {4.0}
        ks += [k for _, _, k in tr.resume]
        n_alive.append(len(tr.resume))
        # the time to the next start is uniform on [0, 5): the live conversations' phases are Poisson
        assert not tr.prehistory_truncated
    assert set(ks) == {2, 3}
    assert np.mean(n_alive) == pytest.approx(60, abs=8)       # se sqrt(60 / 8) = 2.7
    assert np.mean(np.array(ks) == 2) == pytest.approx(0.5, abs=0.08)
    # no pre-history when a conversation is one instant long (L = 1, S = 0)
    tr = draw_trace(Workload(turns_mean=1.0, service_time_s=0.0), 20, np.random.default_rng(0))
    assert tr.resume == []


def test_prehistory_cap_is_reported():
    # lambda t_pre = 1 x 20 x (2 x 1 + 1 x 15000) ~ 3e5 conversations > the cap max(4 n, 2e5) = 2e5;
    # 2e5 arrivals at 1/s reach back ~2e5 s < t_pre.
    w = Workload(conversation_rate_per_s=1.0, turns_mean=2, turns_distribution="fixed", gap_mean_s=15000.0,
                 gap_distribution="deterministic", user_tokens_per_turn=10, output_tokens_per_turn=10,
                 system_prompt_tokens=0, service_time_s=1.0)
    tr = draw_trace(w, 10, np.random.default_rng(0))
    assert tr.prehistory_truncated
    # alive at 0: arrived within the last tau + S = 15001 s (Poisson, mean 15001)
    assert len(tr.resume) == pytest.approx(15001, rel=0.05)
    out = simulate(w, CacheConfig(capacity_tokens=1e4, block_size_tokens=16), seed=0, n_conversations=10)
    assert out["warnings"][0].startswith("the stationary pre-history was cut short")
    assert not draw_trace(w, 10, np.random.default_rng(0), prehistory=False).prehistory_truncated


# --------------------------------------------------------------------------- seeds, warnings, errors

WARN_WARMUP = ("warm-up ({:.4g} s) is shorter than 5 mean gaps: raise n_conversations or warmup_fraction")
WARN_BATCHES = ("confidence-interval batches are shorter than 5 mean conversation lifetimes: the interval may be "
                "too narrow; raise n_conversations")


def test_seed_determinism_and_sensitivity_and_warnings():
    # L = 3, tau = 20 s, S = 5 s at 1 chat/s: the warm-up (20 % of the ~n s horizon) should last
    # 5 (tau + S) = 125 s; the 10 batches (80 % of it) 5 lifetimes = 5 (L S + (L - 1) tau) = 275 s.
    w = Workload(conversation_rate_per_s=1.0, turns_mean=3, gap_mean_s=20, user_tokens_per_turn=40,
                 output_tokens_per_turn=40, system_prompt_tokens=64, service_time_s=5.0)
    c = CacheConfig(capacity_tokens=4000, block_size_tokens=16)
    a = simulate(w, c, seed=5, n_conversations=60)
    assert a == simulate(w, c, seed=5, n_conversations=60)
    assert a["hit_tokens"] != simulate(w, c, seed=6, n_conversations=60)["hit_tokens"]
    ref = simulate_blocks_reference(w, c, seed=5, n_conversations=60)
    assert [ref[k] for k in ("hit_tokens", "prompt_tokens", "own_hit_requests", "engine")] == \
        [a[k] for k in ("hit_tokens", "prompt_tokens", "own_hit_requests")] + ["blocks-reference"]
    assert (a["seed"], a["n_conversations"], a["warmup_fraction"], a["engine"]) == (5, 60, 0.2, "chains")
    assert simulate(w, c, rng=np.random.default_rng(5), n_conversations=60)["seed"] is None
    assert a["warnings"] == [WARN_WARMUP.format(a["warmup_s"]), WARN_BATCHES]
    assert a["prehistory_conversations"] > 0
    # one-turn chats have no gap to warm up for, and 5 lifetimes are 25 s
    one = Workload(**{**w.to_dict(), "turns_mean": 1.0})
    assert simulate(one, c, seed=1, n_conversations=2000)["warnings"] == []
    # n = 500: warm-up ~100 s < 125 s (sd of the horizon sqrt(500) s: 0.2 x 22 = 4.5 s)
    x = simulate(w, c, seed=1, n_conversations=500)["warnings"]
    assert x[0] == WARN_WARMUP.format(0.2 * simulate(w, c, seed=1, n_conversations=500)["horizon_s"])
    # n = 800: warm-up ~160 s > 125 s; batches ~64 s < 275 s
    assert simulate(w, c, seed=1, n_conversations=800)["warnings"] == [WARN_BATCHES]
    # n = 3000: batches ~240 s < 275 s (sd 4.4 s); n = 4000: ~320 s, no warning
    assert simulate(w, c, seed=1, n_conversations=3000)["warnings"] == [WARN_BATCHES]
    assert simulate(w, c, seed=1, n_conversations=4000)["warnings"] == []


def test_progress_reports_fractions_then_one():
    seen = []
    simulate(SMALL, CacheConfig(capacity_tokens=200, block_size_tokens=4), seed=1, n_conversations=400,
             progress=seen.append)
    # one call per 1/32 of the horizon at most, then 1.0
    assert 20 <= len(seen) <= 34 and seen[-1] == 1.0
    assert all(0 < x <= 1 for x in seen) and seen == sorted(seen)
    assert seen[0] == pytest.approx(1 / 32, abs=0.02)


def test_input_errors_name_the_field():
    c = CacheConfig(capacity_tokens=100, block_size_tokens=4)
    cases = [
        (lambda: simulate("w", c, seed=1), "workload"),
        (lambda: simulate(SMALL, {"capacity_tokens": 1}, seed=1), "cache"),
        (lambda: simulate(SMALL, c, seed=1, fleet="x"), "fleet"),
        (lambda: simulate(Workload(user_tokens_per_turn=0.4), c, seed=1), "workload.user_tokens_per_turn"),
        (lambda: simulate(SMALL, CacheConfig(eviction="fifo"), seed=1,
                          fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 100.0),))), "cache.eviction"),
        (lambda: simulate(SMALL, c, seed=-1), "seed"),
        (lambda: simulate(SMALL, c, rng=42), "rng"),
        (lambda: simulate(SMALL, c, seed=1, progress=3), "progress"),
        (lambda: simulate(SMALL, c, seed=1, n_conversations=10_000_001), "n_conversations"),
        (lambda: simulate(SMALL, c, seed=1, warmup_fraction=-0.1), "warmup_fraction"),
        (lambda: simulate_trace(Trace.from_lists([0.0], [1], [[]]), SMALL, c, fleet=FleetConfig(2, "random")),
         "routing_rng"),
        (lambda: simulate_trace(Trace.from_lists([0.0], [1], [[]]), SMALL, c, reference=True,
                                fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 100.0),))), "reference"),
        (lambda: simulate(SMALL, CacheConfig(capacity_tokens=np.array([1.0, 2.0])), seed=1), "cache.capacity_tokens"),
        (lambda: simulate(SMALL, CacheConfig(eviction="lfu"), seed=1), "cache.eviction"),
    ]
    for call, field in cases:
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == field
    # the messages say what is allowed and what went wrong
    for call, text in [
        (lambda: simulate(SMALL, c, seed=1, rng=np.random.default_rng(1)),
         "seed: both given: got 1; allowed: either seed or rng, not both"),
        (lambda: simulate(SMALL, c, rng=42), "rng: wrong type: got 42; allowed: a numpy.random.Generator"),
        (lambda: simulate("w", c, seed=1), "workload: wrong type: got 'w'; allowed: a Workload"),
        (lambda: simulate(SMALL, "c", seed=1), "cache: wrong type: got 'c'; allowed: a CacheConfig"),
        (lambda: simulate(SMALL, c, seed=1, fleet="x"), "fleet: wrong type: got 'x'; allowed: a FleetConfig"),
        (lambda: simulate(SMALL, c, seed=1, progress=3),
         "progress: not callable: got 3; allowed: a callable(fraction_done) or None"),
        (lambda: simulate(SMALL, CacheConfig(eviction="fifo"), seed=1,
                          fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 100.0),))),
         "cache.eviction: tiers are simulated below an LRU cache only: got 'fifo'; allowed: lru or ttl with lower tiers"),
        (lambda: simulate(SMALL, CacheConfig(eviction="lfu"), seed=1),
         "cache.eviction: LFU is not simulated (plain LFU is pathological for conversations: see MODEL.md): "
         "got 'lfu'; allowed: lru, ttl or fifo"),
        (lambda: simulate_trace(Trace.from_lists([0.0], [1], [[]]), SMALL, c, fleet=FleetConfig(2, "random")),
         "routing_rng: missing: got None; allowed: a numpy.random.Generator for routing K > 1 instances"),
        (lambda: simulate_trace(Trace.from_lists([0.0], [1], [[]]), SMALL, c, reference=True,
                                fleet=FleetConfig(1, "affinity", (TierConfig("cpu", 100.0),))),
         "reference: the block reference engine: got True; allowed: instances without tiers"),
    ]:
        with pytest.raises(InputError) as e:
            call()
        assert str(e.value) == text
    with pytest.raises(InputError) as e:
        simulate(Workload(turns_mean=[2.0, 3.0]), c, seed=1)
    assert e.value.field == "workload.turns_mean" and e.value.problem == "an array" and \
        e.value.allowed.startswith("a single number")
    with pytest.raises(ValueError, match="^each conversation needs turns - 1 gaps$"):
        Trace.from_lists([0.0], [3], [[1.0]])
    # the fleet is checked before anything else, and used
    with pytest.raises(InputError) as e:
        simulate(SMALL, c, seed=1, n_conversations=0, fleet="x")
    assert e.value.field == "fleet"
    with pytest.raises(InputError) as e:
        simulate(SMALL, c, seed=1, warmup_fraction=1.0)
    assert e.value.field == "warmup_fraction"
    two = simulate(SMALL, c, seed=1, n_conversations=50, fleet=FleetConfig(2, "round_robin"))
    assert (two["instances"], two["routing"]) == (2, "round_robin")
    assert simulate(SMALL, c, seed=1, n_conversations=1)["n_conversations"] == 1
    # warm-up fraction 0 is allowed; a float seed with an integral value is accepted
    assert simulate(SMALL, c, seed=3.0, n_conversations=5, warmup_fraction=0.0)["warmup_s"] == 0.0
    with pytest.raises(InputError):
        simulate(SMALL, c, seed=2**63, n_conversations=5)
    with pytest.raises(InputError):
        simulate(SMALL, c, seed=True, n_conversations=5)
    with pytest.raises(InputError):
        simulate(SMALL, c, seed=1.5, n_conversations=5)


def test_defaults():
    # simulate: 20000 conversations, 20 % warm-up; the block reference: 2000 (one-turn chats: fast)
    w = Workload(turns_mean=1.0, conversation_rate_per_s=5.0, service_time_s=0.1, system_prompt_tokens=16,
                 user_tokens_per_turn=16, output_tokens_per_turn=0)
    c = CacheConfig(capacity_tokens=64, block_size_tokens=16)
    a = simulate(w, c, seed=1)
    assert (a["n_conversations"], a["warmup_fraction"], a["requests_simulated"]) == (20000, 0.2, 20000)
    r = simulate_blocks_reference(w, c, seed=1)
    assert (r["n_conversations"], r["warmup_fraction"], r["requests_simulated"], r["seed"]) == (2000, 0.2, 2000, 1)
    assert r["warmup_s"] == pytest.approx(0.2 * r["horizon_s"], rel=1e-12) and r["engine"] == "blocks-reference"
    seen = []
    r = simulate_blocks_reference(w, c, rng=np.random.default_rng(1), n_conversations=300, warmup_fraction=0.5,
                                  progress=seen.append)
    assert r["seed"] is None and r["warmup_fraction"] == 0.5 and r["requests_simulated"] == 300 and seen[-1] == 1.0
    assert r["horizon_s"] == draw_trace(w, 300, np.random.default_rng(1)).arrivals[-1]   # the rng given is used
    assert r["warmup_s"] == pytest.approx(0.5 * r["horizon_s"], rel=1e-12)


def test_large_seeds_are_used_exactly():
    # Bug fixed: seeds went through a float (require_int), so 2**60 and 2**60 + 1 gave the same run
    # and the documented largest seed 2**63 - 1 was refused (float(2**63 - 1) = 2**63 > the limit).
    c = CacheConfig(capacity_tokens=100, block_size_tokens=4)
    for seed in (2**60, 2**60 + 1, 2**63 - 1, np.int64(2**62 + 3)):
        out = simulate(SMALL, c, seed=seed, n_conversations=30)
        tr = draw_trace(SMALL, 30, np.random.default_rng(int(seed)))
        assert out["horizon_s"] == tr.arrivals[-1] and out["seed"] == seed
    assert simulate(SMALL, c, seed=2**60, n_conversations=30)["horizon_s"] != \
        simulate(SMALL, c, seed=2**60 + 1, n_conversations=30)["horizon_s"]
