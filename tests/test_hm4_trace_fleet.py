"""kvcalc.trace.fleet on a hand-written 10-request trace, counted by hand.

The trace (block ids are prefix-chained: an id names its whole prefix; block size 2 tokens,
every prompt whole blocks, so token hits are twice the block hits):

    r0 [0,1]   r1 [2]   r2 [0,1,3]   r3 [2,4]   r4 [0,1,3,5]
    r5 [6]     r6 [2,4,7]   r7 [0,1,3,5,8]   r8 [6,9]   r9 [2,4,7,10]

27 looked-up blocks, 54 prompt tokens. Counts (an LRU cache per instance; a request hits
the longest prefix of its blocks that are cached; then its blocks become most recent, head
first, as vLLM frees tail first):

* one cache, infinite: r2 2, r3 1, r4 3, r6 2, r7 4, r8 1, r9 3 = 16 hits;
* round robin, K = 2 (even rows on 0, odd on 1), infinite: instance 0 r2 2 + r4 3 = 5
  (r6, r8 never saw their heads there), instance 1 r3 1 + r9 2 = 3 (r7 saw no 0 there): 8;
  at 2 blocks per instance: instance 0 r2 2 + r4 2 (3 is third in the stack) = 4, instance 1
  r3 1 (r9's block 2 is seventh in the stack) = 5 in all; at 5 blocks: instance 0 2 + 3,
  instance 1 r3 1 = 6;
* random, K = 2, seed 1: numpy's default_rng(1).integers(0, 2, 10) = 0 1 1 1 0 0 1 1 0 0
  (asserted below): instance 0 gets r0 r4 r5 r8 r9: r4 2 (0, 1), r8 1 = 3; instance 1 gets
  r1 r2 r3 r6 r7: r3 1, r6 2, r7 3 (0, 1, 3 from r2) = 6; 9 in all;
* affinity by first block (no sessions): chains starting at 0, 2 and 6 never share a block,
  so each chain's instance sees all its requests: infinite capacity loses nothing, 16.
"""

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace.curve import lru_curve
from kvcalc.trace.fleet import fleet_at, fleet_curves, parse_cluster, parse_tiers, route, subtrace, tier_split
from kvcalc.trace.loaders import Trace
from kvcalc.units import GIB_BYTES

REQS = [[0, 1], [2], [0, 1, 3], [2, 4], [0, 1, 3, 5], [6], [2, 4, 7], [0, 1, 3, 5, 8], [6, 9], [2, 4, 7, 10]]
BLOCK = 2
N_BLOCKS = 27
INF = 1000


def make_trace(sessions=None) -> Trace:
    n = len(REQS)
    off = np.zeros(n + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for r in REQS])
    return Trace(np.arange(n, dtype=float), np.array([BLOCK * len(r) for r in REQS], dtype=np.int64),
                 np.full(n, 7, dtype=np.int64), off, np.array([b for r in REQS for b in r], dtype=np.int64),
                 BLOCK, "hand", np.full(n, -1, dtype=np.int64) if sessions is None else np.asarray(sessions),
                 np.full(n, -1, dtype=np.int64), {})


def lru_hits(rows, capacity_blocks):
    """A second method: a plain-Python LRU stack (most recent first) replaying ``rows``."""
    stack, hits = [], 0
    for r in rows:
        top = stack[:capacity_blocks]
        for b in REQS[r]:
            if b not in top:
                break
            hits += 1
        stack = list(REQS[r]) + [x for x in stack if x not in REQS[r]]
    return hits


def test_the_reference_lru_counts_the_hand_numbers():
    assert lru_hits(range(10), INF) == 16
    assert lru_hits([0, 2, 4, 6, 8], 2) + lru_hits([1, 3, 5, 7, 9], 2) == 5
    assert sum(len(r) for r in REQS) == N_BLOCKS


def test_one_instance_and_pooled_are_the_single_cache():
    tr = make_trace()
    single = lru_curve(tr)
    caps = [0, 1, 2, 3, 5, 8, INF]
    b1, t1 = single.hits_at(caps)
    assert b1.tolist() == [lru_hits(range(10), c) for c in caps]
    assert b1[-1] == 16
    for routing in ("affinity", "random", "round_robin", "pooled"):
        curves, how = fleet_curves(tr, 1, routing)
        at = fleet_at(curves, caps)
        assert at["block_hits"].tolist() == b1.tolist() and at["token_hits"].tolist() == t1.tolist()
        assert how == "one cache"
    # pooled K = 3: one cache of 3 x C
    curves, how = fleet_curves(tr, 3, "pooled")
    assert how == "one shared pool" and len(curves) == 1
    at = fleet_at(curves, [1, 2], pooled_instances=3)
    assert at["block_hits"].tolist() == [lru_hits(range(10), 3), lru_hits(range(10), 6)]
    assert at["blocks_looked_up"] == N_BLOCKS and at["prompt_tokens"] == BLOCK * N_BLOCKS
    assert at["token_hit_rate"].tolist() == pytest.approx([2 * lru_hits(range(10), c) / 54 for c in (3, 6)])


def test_round_robin_counted_by_hand():
    tr = make_trace()
    inst, how = route(tr, 2, "round_robin")
    assert inst.tolist() == [0, 1] * 5 and how == "request index mod K"
    curves, _ = fleet_curves(tr, 2, "round_robin")
    at = fleet_at(curves, [2, 5, INF])
    assert at["block_hits"].tolist() == [5, 6, 8]            # the module docstring's hand counts
    assert at["token_hits"].tolist() == [10, 12, 16]
    assert at["blocks_looked_up"] == N_BLOCKS and at["prompt_tokens"] == 54
    assert at["block_hit_rate"].tolist() == pytest.approx([5 / 27, 6 / 27, 8 / 27], abs=1e-15)
    assert at["token_hit_rate"].tolist() == pytest.approx([10 / 54, 12 / 54, 16 / 54], abs=1e-15)
    for c in range(0, 9):
        assert fleet_at(curves, [c])["block_hits"][0] == lru_hits([0, 2, 4, 6, 8], c) + lru_hits([1, 3, 5, 7, 9], c)


def test_random_with_a_fixed_seed_counted_by_hand():
    tr = make_trace()
    inst, how = route(tr, 2, "random", seed=1)
    assert inst.tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 0, 0] and how == "uniform (seed 1)"
    assert inst.tolist() == np.random.default_rng(1).integers(0, 2, 10).tolist()
    curves, _ = fleet_curves(tr, 2, "random", seed=1)
    assert fleet_at(curves, [INF])["block_hits"].tolist() == [9]
    r0, r1 = [0, 4, 5, 8, 9], [1, 2, 3, 6, 7]
    for c in range(0, 9):
        assert fleet_at(curves, [c])["block_hits"][0] == lru_hits(r0, c) + lru_hits(r1, c)
    # a different seed routes differently (the seed reaches the generator)
    assert route(tr, 2, "random", seed=7)[0].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]


def test_affinity_keeps_each_chain_on_one_instance():
    tr = make_trace()
    for k in (2, 3, 5):
        inst, how = route(tr, k, "affinity")
        assert how == "hash of the first block (no sessions in the trace)"
        assert inst.min() >= 0 and inst.max() < k
        head = [r[0] for r in REQS]
        for i in range(10):
            for j in range(10):
                if head[i] == head[j]:
                    assert inst[i] == inst[j]
        curves, _ = fleet_curves(tr, k, "affinity")
        assert fleet_at(curves, [INF])["block_hits"].tolist() == [16]
        assert sum(c.n_requests for c in curves) == 10
    # with sessions, the session decides (chain heads 0 and 2 in one session, 6 in another)
    sess = np.array([5 if r[0] in (0, 2) else 9 for r in REQS], dtype=np.int64)
    inst, how = route(make_trace(sess), 4, "affinity", seed=3)
    assert how == "hash of the session"
    assert len({int(inst[i]) for i in range(10) if sess[i] == 5}) == 1
    # a request with no block gets its own key (distinct per row), still a valid instance


def test_subtrace_keeps_the_rows_blocks():
    tr = make_trace()
    sub = subtrace(tr, np.array([1, 4, 9]))
    assert sub.n_requests == 3
    assert [sub.blocks_of(i).tolist() for i in range(3)] == [REQS[1], REQS[4], REQS[9]]
    assert sub.input_tokens.tolist() == [2, 8, 8]
    assert sub.timestamps_s.tolist() == [1.0, 4.0, 9.0]
    assert sub.block_size_tokens == BLOCK


def test_exclusive_tiers_are_differences_of_one_stack():
    tr = make_trace()
    curves, _ = fleet_curves(tr, 2, "round_robin")
    tiers = parse_tiers([{"name": "gpu", "capacity_tokens": 4, "read_gb_per_s": 100},
                         {"name": "cpu", "capacity_tokens": 7, "read_gb_per_s": 1}], BLOCK, 1000.0)
    # 7 tokens are 3 whole blocks of 2: the stack through the CPU tier is 2 + 3 = 5 blocks
    assert [t["capacity_blocks"] for t in tiers] == [2, 3]
    rows = tier_split(curves, tiers, 1, 1000.0, 10)
    gpu, cpu = rows
    assert (gpu["block_hits"], cpu["block_hits"]) == (5, 6 - 5)      # H(2) = 5, H(5) = 6 (docstring)
    assert (gpu["token_hits"], cpu["token_hits"]) == (10, 2)
    assert cpu["cumulative_capacity_blocks"] == 5 and gpu["cumulative_capacity_blocks"] == 2
    assert cpu["block_hit_rate"] == pytest.approx(1 / 27, abs=1e-15)
    assert cpu["token_hit_rate"] == pytest.approx(2 / 54, abs=1e-15)
    assert gpu["token_hit_rate"] == pytest.approx(10 / 54, abs=1e-15)
    # bytes read per request: 2 tokens x 1000 B over 10 requests = 200 B, at 1 GB/s = 2e-7 s
    assert cpu["read_bytes_per_request"] == pytest.approx(200.0)
    assert cpu["read_s_per_request"] == pytest.approx(2e-7, rel=1e-13, abs=0)
    assert gpu["read_s_per_request"] == pytest.approx(10 * 1000 / 10 / 100e9)
    assert cpu["capacity_tokens"] == 7 and cpu["name"] == "cpu"
    # pooled: the stack bounds scale by K
    pooled = tier_split([lru_curve(tr)], tiers, 2)
    assert [r["block_hits"] for r in pooled] == [lru_hits(range(10), 4),
                                                 lru_hits(range(10), 10) - lru_hits(range(10), 4)]
    assert "read_bytes_per_request" not in pooled[0]


def test_tier_without_bandwidth_has_bytes_but_no_time():
    tr = make_trace()
    tiers = parse_tiers([{"capacity_gib": 2.0 * 1000 / GIB_BYTES}], BLOCK, 1000.0)
    assert tiers[0]["name"] == "tier 1"
    assert tiers[0]["capacity_tokens"] == pytest.approx(2.0)         # 2 tokens x 1000 B = 2000 B
    assert tiers[0]["capacity_blocks"] == 1 and tiers[0]["read_gb_per_s"] is None
    row = tier_split([lru_curve(tr)], tiers, 1, 1000.0, 10)[0]
    assert row["read_bytes_per_request"] == pytest.approx(row["token_hits"] * 1000 / 10)
    assert "read_s_per_request" not in row


@pytest.mark.parametrize("value,field", [
    ([], "tiers"), ("x", "tiers"), ([{"capacity_tokens": 1}] * 9, "tiers"), (["x"], "tiers[0]"),
    ([{"capacity_tokens": 1, "bogus": 1}], "tiers[0].bogus"), ([{"name": 5, "capacity_tokens": 1}], "tiers[0].name"),
    ([{"name": "x" * 41, "capacity_tokens": 1}], "tiers[0].name"), ([{"name": "a"}], "tiers[0].capacity_tokens"),
    ([{"capacity_tokens": 1, "capacity_gib": 1}], "tiers[0].capacity_tokens"),
    ([{"capacity_tokens": -1}], "tiers[0].capacity_tokens"), ([{"capacity_tokens": 2e15}], "tiers[0].capacity_tokens"),
    ([{"capacity_gib": 2e7}], "tiers[0].capacity_gib"), ([{"capacity_tokens": 1, "read_gb_per_s": 0}],
                                                         "tiers[0].read_gb_per_s"),
    ([{"capacity_tokens": 1, "read_gb_per_s": 2e6}], "tiers[0].read_gb_per_s"),
])
def test_bad_tiers_name_the_field(value, field):
    with pytest.raises(InputError) as e:
        parse_tiers(value, BLOCK, 1000.0)
    assert e.value.field == field


def test_tier_limits_are_inclusive_and_gib_needs_bytes_per_token():
    assert len(parse_tiers([{"capacity_tokens": 1}] * 8, BLOCK, None)) == 8
    assert parse_tiers([{"name": "x" * 40, "capacity_tokens": 1e15}], BLOCK, None)[0]["capacity_tokens"] == 1e15
    assert parse_tiers([{"capacity_gib": 1e7, "read_gb_per_s": 1e6}], BLOCK, 1.0)[0]["read_gb_per_s"] == 1e6
    with pytest.raises(InputError) as e:
        parse_tiers([{"capacity_gib": 1}], BLOCK, None)
    assert e.value.field == "tiers[0].capacity_gib"


def test_parse_cluster_defaults_and_errors():
    assert parse_cluster({}) == {"instances": 1, "routing": "affinity", "seed": 0}
    assert parse_cluster({"instances": 4096, "routing": "pooled", "seed": 1 << 31}) == \
        {"instances": 4096, "routing": "pooled", "seed": 1 << 31}
    for bad, field in [([], "cluster"), ({"k": 1}, "cluster.k"), ({"instances": 0}, "cluster.instances"),
                       ({"instances": 4097}, "cluster.instances"), ({"routing": "x"}, "cluster.routing"),
                       ({"routing": 3}, "cluster.routing"), ({"seed": -1}, "cluster.seed"),
                       ({"seed": (1 << 31) + 1}, "cluster.seed")]:
        with pytest.raises(InputError) as e:
            parse_cluster(bad)
        assert e.value.field == field, bad


def test_empty_fleet_rates_are_zero():
    at = fleet_at([], [1, 2])
    assert at["block_hit_rate"].tolist() == [0.0, 0.0] and at["token_hit_rate"].tolist() == [0.0, 0.0]
    assert at["blocks_looked_up"] == 0 and at["prompt_tokens"] == 0


def test_warmup_applies_to_each_instances_own_first_requests():
    # round robin K = 2, warm-up 0.4: each instance's first floor(0.4 x 5) = 2 requests are not
    # counted. Instance 0 counts r4 r6 r8 (4 + 3 + 2 blocks; r4 hits 3 at infinite capacity),
    # instance 1 counts r5 r7 r9 (1 + 5 + 4 blocks; r9 hits 2 = blocks 2, 4): 5 of 19
    curves, _ = fleet_curves(make_trace(), 2, "round_robin", warmup_fraction=0.4)
    at = fleet_at(curves, [INF])
    assert at["block_hits"].tolist() == [5] and at["blocks_looked_up"] == 19
    assert at["token_hits"].tolist() == [10] and at["prompt_tokens"] == 38
    assert all(c.warmup_fraction == 0.4 and c.n_requests_counted == 3 for c in curves)
    one, _ = fleet_curves(make_trace(), 1, "random", warmup_fraction=0.4)
    assert one[0].n_requests_counted == 6 and one[0].warmup_fraction == 0.4


def test_partial_blocks_are_counted_only_when_asked():
    # every prompt one token short of whole blocks: its last block is partial (1 token of 2)
    tr = make_trace()
    tr = Trace(tr.timestamps_s, tr.input_tokens - 1, tr.output_tokens, tr.block_offsets, tr.block_ids, BLOCK,
               "hand", tr.session_ids, tr.parent_index, {})
    full, _ = fleet_curves(tr, 2, "round_robin")
    part, _ = fleet_curves(tr, 2, "round_robin", full_blocks_only=False)
    assert all(c.full_blocks_only for c in full) and not any(c.full_blocks_only for c in part)
    # full blocks only: 27 - 10 looked-up blocks; all blocks: 27
    assert fleet_at(full, [INF])["blocks_looked_up"] == 17
    assert fleet_at(part, [INF])["blocks_looked_up"] == 27


def test_empty_prompts_get_their_own_routing_keys():
    n = 40
    off = np.zeros(n + 1, dtype=np.int64)
    tr = Trace(np.arange(n, dtype=float), np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64), off,
               np.zeros(0, dtype=np.int64), BLOCK, "hand", np.full(n, -1, dtype=np.int64),
               np.full(n, -1, dtype=np.int64), {})
    inst, how = route(tr, 8, "affinity")
    # 40 distinct keys over 8 instances: not all on one (a shared key would put them together)
    assert len(set(inst.tolist())) > 1 and inst.min() >= 0 and inst.max() < 8
    assert how == "hash of the first block (no sessions in the trace)"


def test_affinity_seed_and_sessions_spread():
    sess = np.arange(10, dtype=np.int64)
    a = route(make_trace(sess), 7, "affinity", seed=0)[0]
    b = route(make_trace(sess), 7, "affinity", seed=1)[0]
    assert a.tolist() != b.tolist()                       # the seed reaches the hash
    assert len(set(a.tolist())) > 1                       # ten sessions do not share one instance
    # one session missing (-1): back to first blocks
    sess[3] = -1
    assert route(make_trace(sess), 7, "affinity")[1] == "hash of the first block (no sessions in the trace)"
    pooled = route(make_trace(), 4, "pooled")
    assert pooled[0].tolist() == [0] * 10 and pooled[1] == "one shared pool"
    assert pooled[0].dtype == np.int64 and route(make_trace(), 3, "round_robin")[0].dtype == np.int64


def test_subtrace_carries_sessions_and_drops_parents():
    sess = np.arange(10, dtype=np.int64) * 3
    tr = make_trace(sess)
    tr = Trace(tr.timestamps_s, tr.input_tokens, tr.output_tokens + np.arange(10), tr.block_offsets, tr.block_ids,
               BLOCK, "fmt", tr.session_ids, np.arange(10, dtype=np.int64) - 1, {"k": 1})
    sub = subtrace(tr, np.array([2, 5]))
    assert sub.session_ids.tolist() == [6, 15] and sub.parent_index.tolist() == [-1, -1]
    assert sub.output_tokens.tolist() == [9, 12] and sub.format == "fmt" and sub.info == {"k": 1}
    assert sub.block_offsets.tolist() == [0, 3, 4]


def _err(fn, *args):
    with pytest.raises(InputError) as e:
        fn(*args)
    return e.value.field, e.value.value, e.value.allowed, e.value.problem


TIER_KEYS = "name, capacity_tokens, capacity_gib, read_gb_per_s"


def test_tier_errors_tell_the_value_and_what_is_allowed():
    def tiers(v, bpt=1000.0):
        return _err(parse_tiers, v, BLOCK, bpt)
    assert tiers("x") == ("tiers", "x", "a list of 1 to 8 tiers", "not a list of tiers")
    assert tiers([7]) == ("tiers[0]", 7, '{"name", "capacity_tokens" or "capacity_gib", "read_gb_per_s"}',
                          "not an object")
    assert tiers([{"capacity_tokens": 1, "zz": 3}]) == ("tiers[0].zz", 3, TIER_KEYS, "unknown key")
    assert tiers([{"capacity_tokens": 1}, {"capacity_tokens": 1, "read_gb_per_s": 1, "aa": 2, "zz": 3}]) == \
        ("tiers[1].aa", 2, TIER_KEYS, "unknown key")
    assert tiers([{"name": 5, "capacity_tokens": 1}]) == ("tiers[0].name", 5, "a name of at most 40 characters",
                                                          "not a name")
    assert tiers([{"capacity_tokens": 3, "capacity_gib": 1}]) == (
        "tiers[0].capacity_tokens", 3, "exactly one of capacity_tokens, capacity_gib", "capacity missing or given twice")
    assert tiers([{"capacity_gib": 1.5}], None) == (
        "tiers[0].capacity_gib", 1.5, "capacity_tokens, or kv_bytes_per_token in the request",
        "GiB needs kv_bytes_per_token")
    # the ends of the ranges: 1e15 tokens, 1e7 GiB, 1e6 GB/s are allowed, one more is not
    for v in ([{"capacity_tokens": 1e15 + 1}], [{"capacity_gib": 1e7 + 1}],
              [{"capacity_tokens": 1, "read_gb_per_s": 1e6 + 1}]):
        with pytest.raises(InputError):
            parse_tiers(v, BLOCK, 1000.0)
    assert parse_tiers([{"capacity_tokens": 0.5}], BLOCK, None)[0]["capacity_tokens"] == 0.5
    assert parse_tiers([{"capacity_tokens": 0}], BLOCK, None)[0]["capacity_blocks"] == 0


def test_cluster_errors_tell_the_value_and_what_is_allowed():
    assert _err(parse_cluster, [1]) == ("cluster", [1], '{"instances": K, "routing": "affinity"|...}', "not an object")
    assert _err(parse_cluster, {"zz": 4, "bb": 5}) == ("cluster.bb", 5, "instances, routing, seed", "unknown key")
    assert _err(parse_cluster, {"routing": "sticky"}) == (
        "cluster.routing", "sticky", "one of affinity, random, round_robin, pooled", "unknown value")


def test_tier_split_needs_both_bytes_and_requests_for_bytes():
    curves = [lru_curve(make_trace())]
    tiers = parse_tiers([{"capacity_tokens": 4, "read_gb_per_s": 3}], BLOCK, None)
    assert "read_bytes_per_request" not in tier_split(curves, tiers, 1, 1000.0, None)[0]
    assert "read_bytes_per_request" not in tier_split(curves, tiers, 1, None, 10)[0]
    row = tier_split(curves, tiers, 1, 1000.0, 10)[0]
    assert row["capacity_blocks"] == 2
    # H(2) of the single cache, counted by the reference LRU; GB/s is 1e9 bytes per second
    assert row["block_hits"] == lru_hits(range(10), 2)
    assert row["token_hits"] == 2
    assert row["read_s_per_request"] == pytest.approx(2 * 1000 / 10 / 3e9, rel=1e-13, abs=0)
    # defaults: one cache per instance (no pooling), no bytes
    assert tier_split(curves, tiers) == tier_split(curves, tiers, 1)
    assert tier_split(curves, tiers)[0]["block_hits"] == lru_hits(range(10), 2)
    sub = subtrace(make_trace(), np.array([0, 3]))
    assert sub.parent_index.dtype == np.int64 and sub.block_offsets.dtype == np.int64


def test_defaults_dtypes_and_single_cache_options():
    tr = make_trace()
    assert route(tr, 2, "random")[0].tolist() == route(tr, 2, "random", seed=0)[0].tolist()
    a, _ = fleet_curves(tr, 2, "random")
    b, _ = fleet_curves(tr, 2, "random", seed=0)
    assert fleet_at(a, [INF])["block_hits"].tolist() == fleet_at(b, [INF])["block_hits"].tolist()
    for routing in ("random", "affinity", "round_robin"):
        assert route(tr, 3, routing)[0].dtype == np.int64
    at = fleet_at(a, [1, 2])
    assert at["block_hits"].dtype == np.int64 and at["token_hits"].dtype == np.int64
    # a session id of 0 is a session
    sess = np.arange(10, dtype=np.int64)
    assert route(make_trace(sess), 3, "affinity")[1] == "hash of the session"
    # the single-cache path passes the partial-block option on
    short = Trace(tr.timestamps_s, tr.input_tokens - 1, tr.output_tokens, tr.block_offsets, tr.block_ids, BLOCK,
                  "hand", tr.session_ids, tr.parent_index, {})
    for routing in ("pooled", "random"):
        one, _ = fleet_curves(short, 1 if routing == "random" else 3, routing, full_blocks_only=False)
        assert len(one) == 1 and not one[0].full_blocks_only and fleet_at(one, [INF])["blocks_looked_up"] == 27
