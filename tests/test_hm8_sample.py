"""trace.sample (SHARDS) by its behaviour, not its internals.

Second methods: a plain-Python splitmix64 and BLAKE2b (with Vigna's published first outputs of
splitmix64 seeded 0), ``np.isin`` and ``np.unique`` counts, the exact LRU curve and the
OrderedDict replay (a rate of 1 keeps every reference, so the sampled curve must be the exact
one), the loaded trace sampled after loading (vs the streaming scan), and HyperLogLog's
stated error (1.04 / sqrt(m)) for the sketch.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace import loads_trace, lru_curve
from kvcalc.trace import sample as smp
from kvcalc.trace.curve import lru_replay

M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _hash(v, seed: int) -> int:
    if isinstance(v, str):
        v = int.from_bytes(hashlib.blake2b(v.encode("utf-8"), digest_size=8).digest(), "little")
    s = (seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & M64
    return _splitmix64((v & M64) ^ s)


def test_splitmix64_published_outputs():
    # splitmix64 seeded 0 (Vigna, prng.di.unimi.it/splitmix64.c): first outputs
    assert _splitmix64(0) == 0xE220A8397B1DCDAF
    assert _splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4
    s0 = 0x632BE59BD9B4E019                     # the seed-0 key: id s0 hashes like state 0
    assert int(smp.hash_ids(np.array([s0], np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_hash_ids_equals_plain_python_for_every_input_type():
    vals = [0, 1, 7, 12345678901, (1 << 63) - 1, 2 ** 40 + 3]
    for seed in (0, 1, 99):
        want = [_hash(v, seed) for v in vals]
        assert smp.hash_ids(np.array(vals, np.int64), seed).tolist() == want
        assert smp.hash_ids(np.array(vals, np.uint64), seed).tolist() == want
        assert smp.hash_ids(vals, seed).tolist() == want
        small = [0, 1, 7, 2 ** 31 - 1]
        assert smp.hash_ids(np.array(small, np.int32), seed).tolist() == [_hash(v, seed) for v in small]
        neg = [-1, -(1 << 63)]
        assert smp.hash_ids(np.array(neg, np.int64), seed).tolist() == [_hash(v, seed) for v in neg]
        assert smp.hash_ids(neg, seed).tolist() == [_hash(v, seed) for v in neg]
        assert smp.hash_ids(["a", "système", 5], seed).tolist() == [_hash("a", seed), _hash("système", seed),
                                                                    _hash(5, seed)]
    assert smp.hash_ids(np.array([1, 2], np.int64)).dtype == np.uint64
    assert smp.hash_ids([]).size == 0


def test_threshold_rate_and_bits():
    P = 1 << 24
    assert smp.HASH_BITS == 24
    assert smp.sample_threshold(1.0) == P and smp.sample_threshold(0.5) == P // 2
    assert smp.sample_threshold(0.01) == round(0.01 * P) == 167772
    assert smp.sample_threshold(1e-12) == 1 and smp.sample_threshold(2.0) == P
    h = np.array([0, (1 << 40) - 1, 1 << 40, M64], np.uint64)
    assert smp._sample_bits(h).tolist() == [0, 0, 1, P - 1]
    assert smp.check_rate(1) == 1.0 and smp.check_rate(0.25) == 0.25 and smp.check_rate(1 / P) == 1 / P
    for bad, code in ((0, "trace_sampling_rate"), (1.01, "trace_sampling_rate"), (True, "trace_sampling_rate"),
                      (float("nan"), "trace_sampling_rate"), ("0.1", "trace_sampling_rate"),
                      (0.5 / P, "trace_sampling_rate_small")):
        with pytest.raises(InputError) as ei:
            smp.check_rate(bad, "x.rate")
        assert ei.value.code == code and ei.value.field == "x.rate"


def test_hll_count_within_its_stated_error():
    m = 1 << smp.HLL_BITS
    assert smp.HLL_REL_SE == pytest.approx(1.04 / math.sqrt(m))
    reg = np.zeros(m, np.uint8)
    assert smp.hll_count(reg) == 0.0
    smp.hll_add(reg, np.zeros(0, np.uint64))
    assert not reg.any()
    for n in (1, 1000, 50_000, 2_000_000):           # linear counting, then raw HyperLogLog (n > 5 m ln 5)
        reg = np.zeros(m, np.uint8)
        h = smp.hash_ids(np.arange(n, dtype=np.int64), seed=5)
        smp.hll_add(reg, h[: n // 2])
        smp.hll_add(reg, h)                            # repeats change nothing
        est = smp.hll_count(reg)
        # 7 standard errors (HLL: 1.04/sqrt(m) = 0.2 %; linear counting is tighter below)
        assert abs(est - n) <= max(7 * smp.HLL_REL_SE * n, 0.5), (n, est)
    # registers only grow: adding a subset again leaves them unchanged
    before = reg.copy()
    smp.hll_add(reg, h[:1000])
    assert np.array_equal(reg, before)


def test_is_member_and_hot_blocks_against_numpy():
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 50, 400)
    s = np.unique(rng.integers(0, 60, 12))
    assert np.array_equal(smp.is_member(ids, s), np.isin(ids, s))
    assert not smp.is_member(ids, np.zeros(0, np.int64)).any()
    assert smp.is_member(np.array([5, 100]), np.array([100])).tolist() == [False, True]
    for n_req in (10, 3000):
        need = max(smp.HOT_MIN_REFS, math.ceil(smp.HOT_MIN_SHARE * n_req))      # 8, then 15
        ids = np.concatenate([rng.integers(0, 200, 600), np.full(need, 7), np.full(need - 1, 8)])
        u, c = np.unique(ids, return_counts=True)
        got, cnt = smp.hot_blocks(ids, smp.hash_ids(ids), n_req)
        assert got.tolist() == u[c >= need].tolist() and cnt.tolist() == c[c >= need].tolist()
        assert 7 in got.tolist()
    e = smp.hot_blocks(np.zeros(0, np.int64), np.zeros(0, np.uint64), 5)
    assert e[0].size == 0 and e[1].size == 0


def test_promote_hot_adds_the_hottest_within_room(monkeypatch):
    ids = np.array([1] * 12 + [2] * 9 + [3] * 20 + [4] * 3)
    h = smp.hash_ids(ids)
    heavy, hv = smp.promote_hot(np.zeros(0, np.int64), ids, h, 10)
    assert heavy.tolist() == [1, 2, 3] and hv.tolist() == (ids != 4).tolist()
    heavy2, hv2 = smp.promote_hot(np.array([4]), ids, h, 10)          # 4 already heavy: flagged too
    assert heavy2.tolist() == [1, 2, 3, 4] and hv2.all()
    monkeypatch.setattr(smp, "HEAVY_MAX_BLOCKS", 2)
    heavy3, hv3 = smp.promote_hot(np.zeros(0, np.int64), ids, h, 10)
    assert heavy3.tolist() == [1, 3]                                   # the two hottest: 20 and 12 refs
    assert hv3.tolist() == np.isin(ids, [1, 3]).tolist()
    full = np.array([5, 6])
    heavy4, hv4 = smp.promote_hot(full, ids, h, 10)                    # no room: unchanged
    assert heavy4 is full and not hv4.any()
    heavy5, hv5 = smp.promote_hot(np.array([9]), np.array([1, 2, 9]), smp.hash_ids(np.array([1, 2, 9])), 10)
    assert heavy5.tolist() == [9] and hv5.tolist() == [False, False, True]


# ----------------------------------------------------------------------------- whole curves

BS = 4


def _trace(n=400, seed=0, partial=True):
    """A Mooncake trace: sessions that extend a shared 2-block prompt, with partial last blocks."""
    rng = np.random.default_rng(seed)
    lines, convs, nid = [], [], [1000]
    for i in range(n):
        if convs and rng.random() < 0.6:
            c = convs[int(rng.integers(0, len(convs)))]
        else:
            c = [1, 2]
            convs.append(c)
        for _ in range(int(rng.integers(1, 4))):
            nid[0] += 1
            c.append(nid[0])
        x = BS * len(c) - (int(rng.integers(0, BS)) if partial else 0)
        lines.append(json.dumps({"timestamp": 10 * i, "input_length": x, "output_length": 3, "hash_ids": list(c)}))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("warm", [0.0, 0.3])
def test_rate_one_is_the_exact_curve(full, warm):
    tr = loads_trace(_trace(), block_size_tokens=BS)
    exact = lru_curve(tr, full_blocks_only=full, warmup_fraction=warm)
    refs = smp.refs_from_trace(tr, 1.0, full_blocks_only=full)
    assert refs.rate == 1.0 and refs.threshold == 1 << 24
    caps = [0, 1, 2, 3, 5, 8, 13, 40, 100, 300, 10 ** 6]
    sc = smp.shards_curve(refs, warmup_fraction=warm, capacities_blocks=caps)
    b, t = exact.rates_at(caps)
    assert sc["block_hit_rate"] == pytest.approx(b.tolist(), abs=1e-12)
    assert sc["token_hit_rate"] == pytest.approx(t.tolist(), abs=1e-12)
    assert sc["ideal_block_hit_rate"] == pytest.approx(exact.ideal_block_hit_rate, abs=1e-12)
    assert sc["ideal_token_hit_rate"] == pytest.approx(exact.ideal_token_hit_rate, abs=1e-12)
    assert sc["saturation_capacity_blocks"] == exact.saturation_capacity_blocks
    assert sc["blocks_looked_up"] == exact.blocks_total and sc["prompt_tokens"] == exact.tokens_total
    assert sc["rate"] == 1.0 and sc["resolved_from_capacity_blocks"] == 0 and sc["heavy_references"] == 0
    assert sc["capacities_blocks"] == caps
    # and the OrderedDict replay at two capacities (a third method)
    for c in (5, 40):
        r = lru_replay(tr, c, full_blocks_only=full, warmup_fraction=warm)
        assert sc["token_hit_rate"][caps.index(c)] == pytest.approx(r["token_hit_rate"], abs=1e-12)


def test_rate_one_states_no_error():
    """Regression: at R = 1 every reference is kept and the curve is exact (above), yet the
    stated error was that of the eight hash groups (each a sample at R / 8): 15-18 pp here."""
    tr = loads_trace(_trace(), block_size_tokens=BS)
    sc = smp.shards_curve(smp.refs_from_trace(tr, 1.0), max_points=40)
    assert sc["error_bound_pp"] == 0.0 and sc["error_mean_pp"] == 0.0
    assert sc["standard_error_token"] == [0.0] * len(sc["capacities_blocks"])
    assert "accuracy_warning" not in sc
    assert "standard_error_token" not in smp.shards_curve(smp.refs_from_trace(tr, 1.0), with_error=False)


def test_rate_one_default_grid_and_streaming_equal_the_loaded_trace():
    data = _trace(300, seed=3)
    tr = loads_trace(data, block_size_tokens=BS)
    exact = lru_curve(tr)
    refs, info, stats = smp.load_sampled(data, 1.0, block_size_tokens=BS)
    assert info["loader"].startswith("fast path with sampling") and info["n_requests"] == 300
    assert stats["n_requests"] == 300 and stats["sessions"] is None
    assert stats["n_blocks_total"] == tr.n_blocks_total == info["n_blocks_total"]
    assert stats["duration_s"] == pytest.approx(2.99)
    sc = smp.shards_curve(refs, max_points=50)
    b, t = exact.rates_at(sc["capacities_blocks"])
    assert sc["capacities_blocks"][0] == 0 and sc["capacities_blocks"][-1] == exact.saturation_capacity_blocks
    assert sc["token_hit_rate"] == pytest.approx(t.tolist(), abs=1e-12)
    assert sc["block_hit_rate"] == pytest.approx(b.tolist(), abs=1e-12)
    # the streamed sample holds what the loaded one holds (same ids up to numbering: compare per request)
    loaded = smp.refs_from_trace(tr, 1.0)
    assert refs.req.tolist() == loaded.req.tolist() and refs.weight.tolist() == loaded.weight.tolist()
    assert refs.m_all.tolist() == loaded.m_all.tolist()


@pytest.mark.parametrize("rate, seed", [(0.5, 0), (0.25, 1)])
def test_sample_keeps_whole_blocks_by_hash(rate, seed):
    tr = loads_trace(_trace(), block_size_tokens=BS)
    all_refs = smp.refs_from_trace(tr, 1.0, seed=seed)
    refs = smp.refs_from_trace(tr, rate, seed=seed, heavy_budget_refs=0)
    t = smp.sample_threshold(rate)
    keep = (all_refs.hashes >> np.uint64(40)).astype(np.int64) < t
    assert refs.ids.tolist() == all_refs.ids[keep].tolist()
    assert refs.req.tolist() == all_refs.req[keep].tolist() and not refs.heavy.any()
    # every reference of a kept block is kept
    kept = set(refs.ids.tolist())
    assert all((i in kept) == k for i, k in zip(all_refs.ids.tolist(), keep.tolist()))
    # lowering the threshold keeps exactly the references below it
    low = refs.lowered(t // 4)
    assert low.ids.tolist() == all_refs.ids[(all_refs.hashes >> np.uint64(40)).astype(np.int64) < t // 4].tolist()
    assert low.threshold == t // 4 and low.rate == (t // 4) / (1 << 24)


def test_heavy_blocks_kept_whole_and_counts_by_hand():
    tr = loads_trace(_trace(), block_size_tokens=BS)
    all_refs = smp.refs_from_trace(tr, 1.0)
    n = all_refs.ids.size
    refs = smp.refs_from_trace(tr, 0.25)
    # blocks 1 and 2 (the shared prompt, every request) have >= 1 / R = 4 references: heavy
    first = tr.blocks_of(0)[:2].tolist()
    hv_ids = set(refs.ids[refs.heavy].tolist())
    assert set(first) <= hv_ids
    assert int(refs.heavy.sum()) == int(np.isin(all_refs.ids, list(hv_ids)).sum())
    counts = np.bincount(all_refs.ids)
    assert all(counts[i] >= 4 for i in hv_ids) and int(counts[list(hv_ids)].sum()) <= max(2 * 0.25 * n, 0.5 * n)
    # last uses: per request, the blocks whose last reference it holds (a plain dict)
    last = {}
    for i, r in zip(all_refs.ids.tolist(), all_refs.req.tolist()):
        last[i] = r
    want = np.bincount(list(last.values()), minlength=tr.n_requests)
    assert refs.last_uses.tolist() == want.tolist() and int(refs.last_uses.sum()) == len(last)
    # looked-up tokens per request: full blocks x 4
    assert refs.m_all.tolist() == (tr.input_tokens // BS).tolist()
    # a budget too small for any heavy block: none
    assert not smp.refs_from_trace(tr, 0.25, heavy_budget_refs=1).heavy.any()


def test_sampled_curve_within_its_stated_bound():
    """The module's claim: |estimate - exact| <= error_bound_pp (|bias| + 3 SE + hand-over)."""
    tr = loads_trace(_trace(1500, seed=7), block_size_tokens=BS)
    exact = lru_curve(tr)
    for rate, resolved in ((0.5, 2), (0.2, 6)):   # 0.2 is T = round(0.2 x 2^24) = 3355443: 1 / R = 5.0000005
        sc = smp.shards_curve(smp.refs_from_trace(tr, rate, seed=2), max_points=60)
        _, t = exact.rates_at(sc["capacities_blocks"])
        err_pp = 100 * np.abs(np.array(sc["token_hit_rate"]) - t).max()
        assert err_pp <= sc["error_bound_pp"] + 1e-9, (rate, err_pp, sc["error_bound_pp"])
        assert sc["ideal_token_hit_rate"] == pytest.approx(exact.ideal_token_hit_rate, abs=0.02)
        assert sc["expected_references"] == pytest.approx(rate * exact.blocks_total)
        assert sc["resolved_from_capacity_blocks"] == resolved
        assert len(sc["standard_error_token"]) == len(sc["capacities_blocks"])


def test_fit_size_halves_to_the_bound():
    data = _trace(500, seed=4)
    refs, info, _ = smp.load_sampled(data, 1.0, max_refs=200, block_size_tokens=BS, format="mooncake")
    hashed = refs.ids.size - (0 if refs.heavy is None else int(refs.heavy.sum()))
    assert hashed <= 200 and refs.threshold < 1 << 24
    # the halving stops at the first threshold that fits: twice it would not
    all_refs = smp.refs_from_trace(loads_trace(data, block_size_tokens=BS), 1.0)
    with pytest.raises(InputError) as ei:
        smp.load_sampled(data, 1.0, max_refs=0, block_size_tokens=BS)
    assert ei.value.field == "sampling_max_refs"
    assert all_refs.ids.size > 200
    # a non-canonical input is loaded exactly, then sampled (and says so)
    alt = data.replace(b'"timestamp": 0,', b'"timestamp":0,')
    r2, info2, _ = smp.load_sampled(alt, 1.0, max_refs=200, block_size_tokens=BS)
    assert info2["loader"].endswith("then sampled (memory as in exact mode: not a canonical Mooncake file)")
    heavy2 = np.zeros(r2.ids.size, bool) if r2.heavy is None else r2.heavy
    assert r2.ids.size - int(heavy2.sum()) <= 200
    doubled = r2.threshold * 2
    bits = (all_refs.hashes >> np.uint64(40)).astype(np.int64)
    assert int((bits[~np.isin(all_refs.ids, r2.ids[heavy2])] < doubled).sum()) > 200
