"""kvcalc.trace.curve against hand counts and a plain OrderedDict replay written here.

The module's own ``lru_replay`` is the reference the other trace tests compare the
one-pass curve with; here both are checked against values counted by hand on a
six-request trace (stack distances written out below) and against a replay that
shares no code with the module (``_plain_replay``), on seeded random chained traces.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace.curve import (HitCurve, _stable_order, capacity_for_hit_rate, counting_rule_text, fifo_replay,
                                hit_rate_curve, ideal_hit_rates, lookup_distances, lru_curve, lru_replay)
from kvcalc.trace.loaders import Trace

BS = 2
# (input tokens, block ids head first). Ids are prefix-chained (each id at one position,
# after one predecessor). The last block of r0, r2 and r4/r5 is partial (5, 7, 5 tokens).
ROWS = [(5, [0, 1, 2]), (4, [0, 1]), (7, [0, 3, 4, 5]), (6, [0, 1, 6]), (5, [0, 3, 7]), (5, [0, 3, 7])]
# Full blocks only (m = input // 2): looked up r0 [0 1], r1 [0 1], r2 [0 3 4], r3 [0 1 6],
# r4 [0 3], r5 [0 3]; each request then inserts its blocks tail first (head most recent).
# LRU stack (oldest .. newest) after each request, and the lookup distances:
#   r0: all new                              stack 1 0
#   r1: 0 -> 1, 1 -> 2                       stack 1 0
#   r2: 0 -> 1, 3 new, 4 new                 stack 1 4 3 0
#   r3: 0 -> 1, 1 -> 4 (0 3 4 1), 6 new      stack 4 3 6 1 0
#   r4: 0 -> 1, 3 -> 4 (0 1 6 3)             stack 4 6 1 3 0
#   r5: 0 -> 1, 3 -> 2                       stack 4 6 1 3 0
# Distances of the hit-able blocks: 1 x5, 2 x2, 4 x2; every one a full block (2 tokens).
FULL_BLOCKS_TOTAL = 2 + 2 + 3 + 3 + 2 + 2          # 14 looked-up blocks
PROMPT_TOKENS = 5 + 4 + 7 + 6 + 5 + 5              # 32
FULL_HITS = {0: 0, 1: 5, 2: 7, 3: 7, 4: 9, 5: 9, 100: 9}
# All blocks (partial too): looked up r0 [0 1 2], r1 [0 1], r2 [0 3 4 5], r3 [0 1 6], r4 [0 3 7], r5 [0 3 7]
#   r1: 0 -> 1, 1 -> 2;  r2: 0 -> 1;  r3: 0 -> 1, 1 -> 5 (0 3 4 5 1);  r4: 0 -> 1, 3 -> 4 (0 1 6 3)
#   r5: 0 -> 1, 3 -> 2, 7 -> 3 (7 is r4's partial last block: 1 token)
# Distances: 1 x5, 2 x2, 3 (1 token), 4, 5; the others 2 tokens each.
ALL_BLOCKS_TOTAL = 3 + 2 + 4 + 3 + 3 + 3           # 18
ALL_HITS = {0: (0, 0), 1: (5, 10), 2: (7, 14), 3: (8, 15), 4: (9, 17), 5: (10, 19), 9: (10, 19)}


def _trace(rows, bs=BS) -> Trace:
    off = [0]
    for _, ids in rows:
        off.append(off[-1] + len(ids))
    n = len(rows)
    return Trace(timestamps_s=np.arange(n, dtype=np.float64), input_tokens=np.array([r[0] for r in rows], dtype=np.int64),
                 output_tokens=np.ones(n, dtype=np.int64), block_offsets=np.array(off, dtype=np.int64),
                 block_ids=np.array([b for _, ids in rows for b in ids], dtype=np.int64), block_size_tokens=bs,
                 format="kvcalc", session_ids=np.full(n, -1, dtype=np.int64), parent_index=np.full(n, -1, dtype=np.int64))


def _plain_replay(rows, bs, cap, full_only, n_warm, refresh=True):
    """The counting rules as a plain loop: (block hits, token hits, blocks looked up)."""
    cache, hb, ht, nb = OrderedDict(), 0, 0, 0
    for r, (x, ids) in enumerate(rows):
        looked = ids[:x // bs] if full_only else ids
        h = 0
        for b in looked:
            if b not in cache:
                break
            h += 1
        if r >= n_warm:
            nb += len(looked)
            hb += h
            ht += sum(min(bs, x - i * bs) for i in range(h))   # a partial last block counts its own tokens
        for b in reversed(looked):
            if b in cache:
                if refresh:
                    cache.move_to_end(b)
            else:
                cache[b] = True
                while len(cache) > cap:
                    cache.popitem(last=False)
    return hb, ht, nb


def _random_rows(rng, n, bs, alphabet, max_blocks):
    """Random prompts over a small alphabet of block contents, chained by their prefix (a dict)."""
    chain: dict = {}
    rows = []
    for _ in range(n):
        k = int(rng.integers(0, max_blocks + 1))
        content = tuple(int(v) for v in rng.integers(0, alphabet, k))
        ids = [chain.setdefault(content[:i + 1], len(chain)) for i in range(k)]
        x = (k - 1) * bs + int(rng.integers(1, bs + 1)) if k else 0
        rows.append((x, ids))
    return rows


# ----------------------------------------------------------------------------- hand counts

def test_full_block_curve_by_hand():
    tr = _trace(ROWS)
    c = lru_curve(tr)
    assert c.distances.tolist() == [1, 1, 1, 1, 1, 2, 2, 4, 4]
    assert c.cum_tokens.tolist() == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert (c.blocks_total, c.tokens_total) == (FULL_BLOCKS_TOTAL, PROMPT_TOKENS)
    assert (c.n_requests, c.n_requests_counted, c.n_blocks_total, c.block_size_tokens) == (6, 6, 18, BS)
    assert (c.ideal_block_hits, c.ideal_token_hits, c.saturation_capacity_blocks) == (9, 18, 4)
    assert c.ideal_block_hit_rate == 9 / 14 and c.ideal_token_hit_rate == 18 / 32
    caps = list(FULL_HITS)
    b, t = c.hits_at(caps)
    assert b.tolist() == [FULL_HITS[k] for k in caps]
    assert t.tolist() == [2 * FULL_HITS[k] for k in caps]
    rb, rt = c.rates_at(caps)
    assert rb.tolist() == [FULL_HITS[k] / 14 for k in caps] and rt.tolist() == [2 * FULL_HITS[k] / 32 for k in caps]
    # a capacity is a whole number of blocks: 1.9 blocks hold one
    assert c.hits_at([1.9, 3.99])[0].tolist() == [5, 7]
    for cap in caps:
        ref = lru_replay(tr, cap)
        assert (ref["block_hits"], ref["token_hits"]) == (FULL_HITS[cap], 2 * FULL_HITS[cap])
        assert (ref["blocks_looked_up"], ref["prompt_tokens"]) == (14, 32)
        assert ref["block_hit_rate"] == FULL_HITS[cap] / 14 and ref["token_hit_rate"] == 2 * FULL_HITS[cap] / 32
        assert ref["policy"] == "lru" and ref["capacity_blocks"] == cap
        assert _plain_replay(ROWS, BS, cap, True, 0)[:2] == (FULL_HITS[cap], 2 * FULL_HITS[cap])


def test_partial_block_curve_by_hand():
    tr = _trace(ROWS)
    c = lru_curve(tr, full_blocks_only=False)
    assert c.distances.tolist() == [1, 1, 1, 1, 1, 2, 2, 3, 4, 5]
    assert (c.blocks_total, c.tokens_total, c.ideal_block_hits, c.ideal_token_hits) == (ALL_BLOCKS_TOTAL, 32, 10, 19)
    caps = list(ALL_HITS)
    b, t = c.hits_at(caps)
    assert list(zip(b.tolist(), t.tolist())) == [ALL_HITS[k] for k in caps]
    for cap in caps:
        ref = lru_replay(tr, cap, full_blocks_only=False)
        assert (ref["block_hits"], ref["token_hits"]) == ALL_HITS[cap]
        assert ref["blocks_looked_up"] == ALL_BLOCKS_TOTAL
        assert _plain_replay(ROWS, BS, cap, False, 0)[:2] == ALL_HITS[cap]
    ideal = ideal_hit_rates(tr, full_blocks_only=False)
    assert ideal == {"ideal_block_hits": 10, "ideal_token_hits": 19, "blocks_looked_up": 18, "prompt_tokens": 32,
                     "ideal_block_hit_rate": 10 / 18, "ideal_token_hit_rate": 19 / 32}


def test_warmup_requests_replayed_but_not_counted():
    # floor(0.49 x 6) = 2 warm-up requests (rounding would give 3): r2..r5 counted, whose
    # hit-able distances are 1 (r2), 1 4 (r3), 1 4 (r4), 1 2 (r5); 3+3+2+2 = 10 blocks, 7+6+5+5 = 23 tokens.
    tr = _trace(ROWS)
    c = lru_curve(tr, warmup_fraction=0.49)
    assert c.distances.tolist() == [1, 1, 1, 1, 2, 4, 4]
    assert (c.blocks_total, c.tokens_total, c.n_requests, c.n_requests_counted) == (10, 23, 6, 4)
    assert c.hits_at([1, 2, 4])[0].tolist() == [4, 5, 7]
    for cap, hits in ((1, 4), (2, 5), (4, 7)):
        ref = lru_replay(tr, cap, warmup_fraction=0.49)
        assert (ref["block_hits"], ref["token_hits"], ref["blocks_looked_up"], ref["prompt_tokens"]) == \
            (hits, 2 * hits, 10, 23)
        f = fifo_replay(tr, cap, warmup_fraction=0.49)
        assert (f["blocks_looked_up"], f["prompt_tokens"]) == (10, 23)
    ideal = ideal_hit_rates(tr, warmup_fraction=0.49)
    assert ideal == {"ideal_block_hits": 7, "ideal_token_hits": 14, "blocks_looked_up": 10, "prompt_tokens": 23,
                     "ideal_block_hit_rate": 0.7, "ideal_token_hit_rate": 14 / 23}
    assert "the first 49 % of requests" in c.counting_rule
    # no warm-up: said as such, not "the first 0 % of requests replayed but not counted"
    assert "every request counted (no warm-up)" in lru_curve(tr).counting_rule
    assert "the first 0 %" not in lru_curve(tr).counting_rule


def test_fifo_is_not_lru_by_hand():
    # One block per request, A B A C A (ids 0 1 0 2 0), capacity 2:
    #   LRU: A B | A hit, refreshed (B A) | C evicts B | A hit          -> 2 hits
    #   FIFO: A B | A hit, not refreshed (A B) | C evicts A | A misses  -> 1 hit
    rows = [(1, [0]), (1, [1]), (1, [0]), (1, [2]), (1, [0])]
    tr = _trace(rows, bs=1)
    assert lru_replay(tr, 2)["block_hits"] == 2 and fifo_replay(tr, 2)["block_hits"] == 1
    f = fifo_replay(tr, 2)
    assert (f["policy"], f["token_hits"], f["blocks_looked_up"], f["block_hit_rate"]) == ("fifo", 1, 5, 0.2)
    assert lru_curve(tr).hits_at([1, 2])[0].tolist() == [0, 2]
    assert _plain_replay(rows, 1, 2, True, 0, refresh=False)[0] == 1


def test_lookup_distances_by_hand():
    # ROWS' full-block lookups, head first per request (the table above): INF for a first use.
    inf = np.iinfo(np.int64).max
    looked = [[0, 1], [0, 1], [0, 3, 4], [0, 1, 6], [0, 3], [0, 3]]
    ids = np.array([b for r in looked for b in r])
    m = np.array([len(r) for r in looked])
    req = np.repeat(np.arange(len(looked)), m)
    starts = np.concatenate([[0], np.cumsum(m)])
    d = lookup_distances(ids, req, m, starts)
    assert d.tolist() == [inf, inf, 1, 2, 1, inf, inf, 1, 4, inf, 1, 4, 1, 2]
    assert lookup_distances(ids[:0], req[:0], m[:0] * 0, starts[:1]).tolist() == []


# ----------------------------------------------------------------------------- second method

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_traces_against_a_plain_replay(seed):
    rng = np.random.default_rng(seed)
    bs = [1, 3, 4][seed - 1]
    rows = _random_rows(rng, 40, bs, alphabet=3, max_blocks=6)
    tr = _trace(rows, bs)
    for full in (True, False):
        for warm in (0.0, 0.3):
            n_warm = math.floor(warm * len(rows))
            c = lru_curve(tr, full_blocks_only=full, warmup_fraction=warm)
            caps = list(range(0, tr.n_blocks_unique + 2))
            b, t = c.hits_at(caps)
            for cap in caps:
                hb, ht, nb = _plain_replay(rows, bs, cap, full, n_warm)
                assert (int(b[cap]), int(t[cap])) == (hb, ht), (full, warm, cap)
                ref = lru_replay(tr, cap, full_blocks_only=full, warmup_fraction=warm)
                assert (ref["block_hits"], ref["token_hits"], ref["blocks_looked_up"]) == (hb, ht, nb)
                f = fifo_replay(tr, cap, full_blocks_only=full, warmup_fraction=warm)
                assert (f["block_hits"], f["token_hits"]) == _plain_replay(rows, bs, cap, full, n_warm, False)[:2]
            assert c.blocks_total == nb
            assert c.tokens_total == sum(x for x, _ in rows[n_warm:])


def test_stable_order_with_values_beyond_31_bits_and_int32_input():
    x = np.array([5, 1 << 33, 5, 0, 1 << 33, 2], dtype=np.int64)
    order, xs = _stable_order(x)
    assert order.tolist() == [3, 5, 0, 2, 1, 4] and xs.tolist() == [0, 2, 5, 5, 1 << 33, 1 << 33]
    y = np.array([7, 0, 7, 3], dtype=np.int32)
    order, ys = _stable_order(y)
    assert order.tolist() == [1, 3, 0, 2] and ys.tolist() == [0, 3, 7, 7] and ys.dtype == np.int32


# ----------------------------------------------------------------------------- dict, grid, inverse

def test_to_dict_by_hand():
    tr = _trace(ROWS)
    d = hit_rate_curve(tr, [3, 3, 1])
    assert d["capacities_blocks"] == [0, 1, 2, 3, 4]            # 0, the steps 1 2 4, and the asked 3
    assert d["block_hits"] == [0, 5, 7, 7, 9] and d["token_hits"] == [0, 10, 14, 14, 18]
    assert d["block_hit_rate"] == [h / 14 for h in d["block_hits"]]
    assert d["token_hit_rate"] == [h / 32 for h in d["token_hits"]]
    assert d["at_capacities"] == [{"capacity_blocks": 1, "block_hit_rate": 5 / 14, "token_hit_rate": 10 / 32},
                                  {"capacity_blocks": 3, "block_hit_rate": 7 / 14, "token_hit_rate": 14 / 32}]
    expect = {"policy": "lru", "ideal_block_hit_rate": 9 / 14, "ideal_token_hit_rate": 18 / 32,
              "saturation_capacity_blocks": 4, "full_blocks_only": True, "warmup_fraction": 0.0,
              "n_requests": 6, "n_requests_counted": 6, "n_blocks_total": 18, "blocks_looked_up": 14,
              "prompt_tokens": 32, "block_size_tokens": BS, "counting_rule": counting_rule_text(True, 0.0)}
    assert {k: d[k] for k in expect} == expect
    assert "at_capacities" not in hit_rate_curve(tr)
    p = hit_rate_curve(tr, full_blocks_only=False, warmup_fraction=0.49)
    assert p["full_blocks_only"] is False and p["warmup_fraction"] == 0.49 and p["n_requests_counted"] == 4
    assert "partial blocks too" in p["counting_rule"] and "full blocks only" in d["counting_rule"]


def test_grid_thins_log_uniformly_and_keeps_the_ends():
    # Distances 1..300 (each once): the grid at 20 points is, for each of 20 log-spaced
    # targets between 1 and 300 (rounded), the largest step at or below it, plus 300.
    d = np.arange(1, 301, dtype=np.int64)
    c = HitCurve(distances=d, cum_tokens=np.cumsum(np.full(300, 2)), blocks_total=300, tokens_total=600,
                 n_requests=1, n_requests_counted=1, n_blocks_total=300, block_size_tokens=2,
                 full_blocks_only=True, warmup_fraction=0.0)
    targets = sorted({round(1 * (300 / 1) ** (i / 19)) for i in range(20)})
    assert c.grid(20).tolist() == targets and len(targets) <= 20 and targets[0] == 1 and targets[-1] == 300
    assert c.grid(300).tolist() == list(range(1, 301)) and c.grid().size == 300
    # repeated distances step once each
    c2 = HitCurve(distances=np.array([2, 2, 5, 5, 5, 9]), cum_tokens=np.arange(1, 7), blocks_total=6, tokens_total=6,
                  n_requests=1, n_requests_counted=1, n_blocks_total=6, block_size_tokens=1,
                  full_blocks_only=True, warmup_fraction=0.0)
    assert c2.grid().tolist() == [2, 5, 9] and c2.grid(2).tolist() == [2, 9]
    assert c2.to_dict(max_points=2)["capacities_blocks"] == [0, 2, 9]


def test_capacity_for_hit_rate_by_hand():
    c = lru_curve(_trace(ROWS))       # token hits 10 14 18 (of 32) at 1 2 4 blocks; block hits 5 7 9 (of 14)
    assert capacity_for_hit_rate(c, 0.5) == {"capacity_blocks": 4, "hit_rate": 18 / 32, "exact": True,
                                             "ceiling": 18 / 32}
    assert capacity_for_hit_rate(c, 14 / 32)["capacity_blocks"] == 2          # reached exactly at 2
    assert capacity_for_hit_rate(c, 10 / 32)["capacity_blocks"] == 1
    assert capacity_for_hit_rate(c, 10 / 32 + 1e-6)["capacity_blocks"] == 2
    assert capacity_for_hit_rate(c, 0.0) == {"capacity_blocks": 0, "hit_rate": 0.0, "exact": True, "ceiling": 18 / 32}
    blk = capacity_for_hit_rate(c, 0.5, "block_hit_rate")                      # 7 of 14 blocks at 2
    assert blk == {"capacity_blocks": 2, "hit_rate": 0.5, "exact": True, "ceiling": 9 / 14}
    assert capacity_for_hit_rate(c, 9 / 14, metric="block_hit_rate")["capacity_blocks"] == 4
    above = capacity_for_hit_rate(c, 0.6)
    assert above == {"capacity_blocks": None, "hit_rate": None, "exact": True, "ceiling": 18 / 32,
                     "reason": "above the ceiling of 56.25 %"}
    assert capacity_for_hit_rate(c, 1, "block_hit_rate")["reason"] == "above the ceiling of 64.29 %"
    g = c.to_dict()                   # grid 0 1 2 4
    assert capacity_for_hit_rate(g, 0.5) == {"capacity_blocks": 4, "hit_rate": 18 / 32, "exact": False,
                                             "ceiling": 18 / 32}
    assert capacity_for_hit_rate(g, 14 / 32)["capacity_blocks"] == 2
    assert capacity_for_hit_rate(g, 0.5, "block_hit_rate")["capacity_blocks"] == 2
    assert capacity_for_hit_rate(g, 0.6) == {"capacity_blocks": None, "hit_rate": None, "exact": False,
                                             "ceiling": 18 / 32, "reason": "above the ceiling of 56.25 %"}
    assert capacity_for_hit_rate(g, 0.7, "block_hit_rate")["reason"] == "above the ceiling of 64.29 %"
    for bad in ((1.5, "token_hit_rate"), (-0.1, "token_hit_rate"), (True, "token_hit_rate"), ("0.5", "token_hit_rate")):
        with pytest.raises(InputError) as e:
            capacity_for_hit_rate(c, *bad)
        assert e.value.field == "target"
    with pytest.raises(InputError) as e:
        capacity_for_hit_rate(c, 0.5, "request_hit_rate")
    assert e.value.field == "metric"
    assert capacity_for_hit_rate(c, 1)["capacity_blocks"] is None


def test_no_looked_up_blocks():
    # Prompts shorter than a block: nothing looked up with full blocks only.
    tr = _trace([(1, [0]), (1, [0])])
    c = lru_curve(tr)
    assert (c.blocks_total, c.tokens_total, c.ideal_block_hits, c.ideal_token_hits) == (0, 2, 0, 0)
    assert (c.ideal_block_hit_rate, c.ideal_token_hit_rate, c.saturation_capacity_blocks) == (0.0, 0.0, 0)
    b, t = c.hits_at([0, 5])
    assert b.tolist() == [0, 0] and t.tolist() == [0, 0]
    rb, rt = c.rates_at([0, 5])
    assert rb.tolist() == [0.0, 0.0] and rt.tolist() == [0.0, 0.0]
    assert c.grid().tolist() == [] and c.to_dict()["capacities_blocks"] == [0]
    assert capacity_for_hit_rate(c, 0.1)["capacity_blocks"] is None
    assert capacity_for_hit_rate(c, 0.1, "block_hit_rate")["capacity_blocks"] is None
    assert ideal_hit_rates(tr)["ideal_block_hit_rate"] == 0.0 and ideal_hit_rates(tr)["ideal_token_hit_rate"] == 0.0
    r = lru_replay(tr, 3)
    assert (r["block_hit_rate"], r["token_hit_rate"]) == (0.0, 0.0)
    # partial blocks: the second request hits its one-token block
    p = lru_curve(tr, full_blocks_only=False)
    assert (p.blocks_total, p.ideal_block_hits, p.ideal_token_hits) == (2, 1, 1)
    # an empty trace
    e = _trace([])
    assert lru_curve(e).blocks_total == 0 and lru_replay(e, 1)["token_hit_rate"] == 0.0
    assert ideal_hit_rates(e)["ideal_token_hit_rate"] == 0.0


# ----------------------------------------------------------------------------- refusals

def test_options_and_capacity_are_checked():
    tr = _trace(ROWS)
    for fn in (lru_curve, ideal_hit_rates):
        for bad in (1, None, "true"):
            with pytest.raises(InputError) as e:
                fn(tr, full_blocks_only=bad)
            assert e.value.field == "full_blocks_only"
        for bad in (1.0, -0.01, True, "0.1", None):
            with pytest.raises(InputError) as e:
                fn(tr, warmup_fraction=bad)
            assert e.value.field == "warmup_fraction"
    assert lru_curve(tr, warmup_fraction=0).warmup_fraction == 0.0
    assert isinstance(lru_curve(tr, warmup_fraction=0).warmup_fraction, float)
    assert lru_curve(tr, warmup_fraction=0.999).n_requests_counted == 1       # floor(5.994) = 5 warm
    for bad in (-1, True, 2.0, "2", None):
        with pytest.raises(InputError) as e:
            lru_replay(tr, bad)
        assert e.value.field == "capacity_blocks"
    assert lru_replay(tr, np.int64(2))["block_hits"] == 7 and lru_replay(tr, 0)["block_hits"] == 0
    with pytest.raises(InputError) as e:
        fifo_replay(tr, 2, full_blocks_only=0)
    assert e.value.field == "full_blocks_only"


@pytest.mark.parametrize("rows", [
    [(4, [0, 1]), (4, [1, 0])],        # id 1 at positions 1 and 0
    [(4, [0, 2]), (4, [1, 2])],        # id 2 after 0 and after 1
    [(2, [5]), (4, [7, 5])],           # id 5 at positions 0 and 1
])
def test_unchained_ids_are_refused(rows):
    with pytest.raises(InputError) as e:
        lru_curve(_trace(rows))
    assert e.value.field == "trace"


def test_count_earlier_smaller_by_brute_force():
    from kvcalc.trace.curve import _count_earlier_smaller
    assert _count_earlier_smaller(np.array([5, 3, 9, 0, 4, 8, 1])).tolist() == [0, 0, 2, 0, 2, 4, 1]   # by hand
    assert _count_earlier_smaller(np.array([0, 1, 2, 3])).tolist() == [0, 1, 2, 3]
    assert _count_earlier_smaller(np.zeros(0, dtype=np.int64)).shape == (0,)
    assert _count_earlier_smaller(np.array([3, 2, 1, 0])).tolist() == [0, 0, 0, 0]
    rng = np.random.default_rng(11)
    for n in (1, 2, 9, 64, 333):
        a = rng.permutation(4 * n)[:n]
        assert _count_earlier_smaller(a).tolist() == [int((a[:t] < a[t]).sum()) for t in range(n)]


def _refused(fn, field, value, allowed, code):
    with pytest.raises(InputError) as e:
        fn()
    err = e.value
    assert (err.field, err.allowed, err.code) == (field, allowed, code)
    assert err.value is value or err.value == value
    return err


def test_inverse_refusals_name_the_field_value_and_range():
    c = lru_curve(_trace(ROWS))
    _refused(lambda: capacity_for_hit_rate(c, 0.5, "hit_rate"), "metric", "hit_rate",
             "token_hit_rate or block_hit_rate", "unknown_value")
    _refused(lambda: capacity_for_hit_rate(c, 1.5), "target", 1.5, "a number in [0, 1]", "out_of_range")
    _refused(lambda: capacity_for_hit_rate(c, True), "target", True, "a number in [0, 1]", "out_of_range")


def test_inverse_steps_and_rounding_allowance():
    c = lru_curve(_trace(ROWS))       # block hits 5 7 9 of 14 at 1 2 4 blocks
    # 6 of 14 blocks is more than capacity 1 gives (5): capacity 2
    assert capacity_for_hit_rate(c, 6 / 14, "block_hit_rate")["capacity_blocks"] == 2
    # between the ceiling's 9 blocks and a 10th that does not exist: unreachable
    assert capacity_for_hit_rate(c, 9.5 / 14, "block_hit_rate")["capacity_blocks"] is None
    # a target within 1e-9 of the total (float rounding of target x total) above a reached level
    # counts as reached: 14 / 32 + 1e-10 needs 14.0000000032 tokens, capacity 2 gives 14
    assert capacity_for_hit_rate(c, 14 / 32 + 1e-10)["capacity_blocks"] == 2
    assert capacity_for_hit_rate(c, 14 / 32 + 1e-6)["capacity_blocks"] == 4
    # one counted block (the warm-up request holds it, the counted one hits it at capacity 1):
    # the whole total of 1 is reachable
    one = lru_curve(_trace([(2, [0]), (2, [0])]), warmup_fraction=0.5)
    assert (one.blocks_total, one.tokens_total) == (1, 2)
    assert capacity_for_hit_rate(one, 1.0, "block_hit_rate")["capacity_blocks"] == 1
    unit = lru_curve(_trace([(1, [0]), (1, [0])], bs=1), warmup_fraction=0.5)
    assert unit.tokens_total == 1 and capacity_for_hit_rate(unit, 1.0)["capacity_blocks"] == 1


def test_grid_defaults_to_400_points_and_capacities_are_integers():
    # single-block requests over 3000 ids: hundreds of distinct stack distances
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 3000, 20000).tolist()
    tr = _trace([(1, [b]) for b in ids], bs=1)
    c = lru_curve(tr)
    assert np.unique(c.distances).size > 1000
    assert c.grid().tolist() == c.grid(400).tolist() != c.grid(401).tolist()
    d = hit_rate_curve(tr, [7])
    assert d["capacities_blocks"] == c.to_dict([7], max_points=400)["capacities_blocks"] == \
        c.to_dict([7])["capacities_blocks"]
    assert d["capacities_blocks"] != c.to_dict([7], max_points=401)["capacities_blocks"]
    assert all(type(x) is int for x in d["capacities_blocks"] + d["block_hits"] + d["token_hits"])
    assert hit_rate_curve(_trace(ROWS), max_points=2)["capacities_blocks"] == [0, 1, 4]


def test_replay_refusal_and_an_empty_trace_rates():
    tr = _trace(ROWS)
    _refused(lambda: lru_replay(tr, -3), "capacity_blocks", -3, "an integer >= 0", "out_of_range")
    _refused(lambda: fifo_replay(tr, 1.5), "capacity_blocks", 1.5, "an integer >= 0", "out_of_range")
    e = lru_curve(_trace([]))
    assert (e.blocks_total, e.tokens_total) == (0, 0)
    rb, rt = e.rates_at([0, 3])
    assert rb.tolist() == [0.0, 0.0] and rt.tolist() == [0.0, 0.0]


def test_hits_are_integers_at_one_step():
    # one counted hit block (2 tokens) at distance 1: k = 1 block, its 2 tokens
    one = lru_curve(_trace([(2, [0]), (2, [0])]), warmup_fraction=0.5)
    b, t = one.hits_at([0, 1, 2])
    assert b.tolist() == [0, 1, 1] and t.tolist() == [0, 2, 2]
    assert b.dtype.kind == "i" and t.dtype.kind == "i"
    empty = lru_curve(_trace([(1, [0])]))          # nothing looked up
    b, t = empty.hits_at([0, 4])
    assert t.tolist() == [0, 0] and t.dtype.kind == "i"
    d = empty.to_dict([4])
    assert all(type(x) is int for x in d["capacities_blocks"] + d["block_hits"] + d["token_hits"])


def test_grid_inverse_allows_1e_12_of_rounding():
    g = lru_curve(_trace(ROWS)).to_dict()       # block rate 7/14 = 0.5 at capacity 2
    assert capacity_for_hit_rate(g, 0.5 + 1e-12, "block_hit_rate")["capacity_blocks"] == 2
    assert capacity_for_hit_rate(g, 0.5 + 1e-9, "block_hit_rate")["capacity_blocks"] == 4


def test_empty_prompts_change_no_count():
    # ROWS with an empty request first and one right after r4 (whose partial last block 7, 1 token,
    # r5 hits at capacity >= 3): the same hits as ALL_HITS; an empty prompt looks up nothing.
    # (and one last, right after r5, whose partial block 7 hit counts 1 token)
    rows = [(0, [])] + ROWS[:5] + [(0, [])] + ROWS[5:] + [(0, [])]
    tr = _trace(rows)
    c = lru_curve(tr, full_blocks_only=False)
    assert (c.blocks_total, c.tokens_total, c.ideal_token_hits, c.n_requests) == (ALL_BLOCKS_TOTAL, 32, 19, 9)
    b, t = c.hits_at(list(ALL_HITS))
    assert list(zip(b.tolist(), t.tolist())) == list(ALL_HITS.values())
    assert ideal_hit_rates(tr, full_blocks_only=False)["ideal_token_hits"] == 19
    assert lru_curve(tr).hits_at([4])[1].tolist() == [18]


def test_a_single_reference():
    inf = np.iinfo(np.int64).max
    assert lookup_distances(np.array([4]), np.array([0]), np.array([1]), np.array([0, 1])).tolist() == [inf]
    c = lru_curve(_trace([(2, [0])]))
    assert (c.blocks_total, c.ideal_block_hits, c.distances.tolist()) == (1, 0, [])


def test_option_refusals_name_the_value_and_range():
    tr = _trace(ROWS)
    err = _refused(lambda: lru_curve(tr, full_blocks_only="yes"), "full_blocks_only", "yes", "true or false", "invalid")
    assert err.problem == "not a boolean"
    _refused(lambda: lru_curve(tr, warmup_fraction=1.0), "warmup_fraction", 1.0, "a number in [0, 1)", "out_of_range")
    err = _refused(lambda: lru_curve(_trace([(4, [0, 1]), (4, [1, 0])])), "trace", "block ids",
                   "prefix-chained ids (load with the trace loaders)", "invalid")
    assert err.problem == "block ids are not prefix-chained"


def test_stable_order_at_the_31_bit_edge():
    # 2^31 and 2^31 + 5 do not fit the packed 31-bit key: they must still sort (the fallback)
    x = np.array([3, (1 << 31) + 5, 1 << 31, 1, 3], dtype=np.int64)
    order, xs = _stable_order(x)
    assert order.tolist() == [3, 0, 4, 2, 1] and xs.tolist() == [1, 3, 3, 1 << 31, (1 << 31) + 5]
    edge = np.array([1 << 31, 0, 5], dtype=np.int64)            # max exactly 2^31: no packing
    assert _stable_order(edge)[0].tolist() == [1, 2, 0] and _stable_order(edge)[1].tolist() == [0, 5, 1 << 31]
    top = np.array([(1 << 31) - 1, 0], dtype=np.int64)          # the largest packed value
    assert _stable_order(top)[0].tolist() == [1, 0] and _stable_order(top)[1].tolist() == [0, (1 << 31) - 1]
