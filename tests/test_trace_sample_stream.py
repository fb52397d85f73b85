"""The streaming sampled scan (#11 item 2): heavy blocks found over the whole stream, the heavy
stratum's offsets and subsample, streaming against whole-file loading, target and bound."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from kvcalc.trace import load_trace, lru_curve
from kvcalc.trace import sample as smp
from kvcalc.trace.fastload import scan_mooncake
from kvcalc.trace.reader import LineReader

REPO = Path(__file__).resolve().parents[1]
CONV = REPO / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
BS = 512


def _late_hot_trace(n: int = 6000, hot_from: int = 3000) -> bytes:
    """n requests of 3 full blocks; from request ``hot_from`` on, every request starts with the
    shared block 1 (then 2 fresh blocks), before it 3 fresh blocks. Every other id is used once."""
    fresh = 1000
    lines = []
    for i in range(n):
        ids = [1] if i >= hot_from else [fresh := fresh + 1]
        ids += [fresh + 1, fresh + 2]
        fresh += 2
        lines.append(json.dumps({"timestamp": i, "input_length": 3 * BS, "output_length": 1, "hash_ids": ids}))
    return ("\n".join(lines) + "\n").encode()


def _unsampled_seed(block_id: int, rate: float) -> int:
    t = smp.sample_threshold(rate)
    return next(s for s in range(100) if int(smp._sample_bits(smp.hash_ids([block_id], s))[0]) >= t)


def _scan(data: bytes, rate: float, seed: int, chunk_bytes: int = 1 << 14):
    reader = LineReader(data, chunk_bytes=chunk_bytes)
    arr = scan_mooncake(reader, BS, sample_threshold=smp.sample_threshold(rate), sample_seed=seed,
                        heavy_detect=True, sketch_full_blocks=True)
    return arr


def test_block_hot_after_the_first_chunk_is_kept_whole_from_then_on():
    """Block 1 appears only in the second half (3,000 of 6,000 requests, in 16 KiB chunks of ~180
    requests). The scan promotes it in the first chunk where it is hot, so its later references
    are in the heavy stratum although its hash is not sampled (before: only the first chunk was
    searched, and the block was lost). By hand: each use of block 1 after the first is a hit at
    every capacity >= 1 (the previous request touched it last), every other block is used once,
    so the exact block hit rate is 2,999 / 18,000 for C >= 1; the estimate misses at most the
    uses before the promoting chunk ended (one chunk's requests, hashed stratum, unsampled) and
    the first heavy use (booked as a first use)."""
    data = _late_hot_trace()
    rate = 0.01
    seed = _unsampled_seed(1, rate)
    arr = _scan(data, rate, seed)
    hot = arr["hot"]
    assert hot.node_ids.tolist() == [1] and hot.depth.tolist() == [0] and hot.parent.tolist() == [-1]
    assert not np.any(arr["ids"] == 1)                     # block 1 never stored per reference
    lines_per_chunk = (1 << 14) // (len(data) // 6000) + 1
    runs = hot.run_lengths()
    assert set(runs.tolist()) <= {0, 1} and hot.n_heavy == int(runs.sum())
    n_heavy = hot.n_heavy
    assert 3000 - lines_per_chunk <= n_heavy <= 3000
    assert np.array_equal(np.flatnonzero(runs), np.arange(6000 - n_heavy, 6000))  # every use from promotion on
    assert np.array_equal(hot.sub_req, np.arange(6000 - n_heavy, 6000)) and hot.step == 1
    refs = smp.refs_from_scan(dict(arr), BS, True)
    sc = smp.shards_curve(refs, capacities_blocks=[1, 10, 1000, 10000])
    exact = 2999 / 18000
    assert sc["heavy_references"] == n_heavy
    for v in sc["block_hit_rate"]:
        assert abs(v - exact) <= (lines_per_chunk + 1) / 18000
    tr = load_trace(data)
    assert lru_curve(tr).rates_at(np.array([1, 10000]))[0] == pytest.approx([exact, exact], abs=1e-12)


def test_heavy_stratum_has_no_budget_and_subsamples_systematically(monkeypatch):
    """The heavy stratum costs 2 bytes a request, not a budget: with the subsample cut to 100
    references, every heavy reference is still counted (n_heavy = the runs' total = every use of
    block 1 from promotion on), the subsample is every step-th of them (step a power of two,
    at most 200 kept) and the curve is unchanged: each use stands for ``step`` (all hits here)."""
    monkeypatch.setattr(smp, "HEAVY_GROUP_REFS", 100)
    data = _late_hot_trace()
    seed = _unsampled_seed(1, 0.01)
    arr = _scan(data, 0.01, seed)
    hot = arr["hot"]
    runs = hot.run_lengths()
    first = int(np.flatnonzero(runs)[0])
    assert hot.n_heavy == 6000 - first == int(runs.sum())
    assert hot.step in (16, 32) and hot.sub_req.size <= 200
    assert np.array_equal(hot.sub_req, np.arange(first, 6000)[::hot.step])
    refs = smp.refs_from_scan(dict(arr), BS, True)
    sc = smp.shards_curve(refs, capacities_blocks=[1, 100, 10000])
    lines_per_chunk = (1 << 14) // (len(data) // 6000) + 1
    exact = 2999 / 18000
    for v in sc["block_hit_rate"]:
        assert abs(v - exact) <= (lines_per_chunk + hot.step + 1) / 18000


def _gen(n: int, seed: int, prompts: int = 16) -> str:
    spec = importlib.util.spec_from_file_location("gen_trace", REPO / "bench" / "gen_trace.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return "".join(mod.generate(n, seed=seed, system_prompts=prompts))


@pytest.fixture(scope="module")
def gen20k(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "gen20k.jsonl"
    path.write_text(_gen(20_000, seed=5))
    return path


@pytest.mark.parametrize("full", [True, False])
def test_streaming_at_rate_one_equals_the_exact_curve(gen20k, full):
    """At rate 1 the streaming scan keeps every reference: its curve is the exact one (whole-file
    loading and lru_curve) to rounding, with full blocks only and with partial blocks."""
    refs, info, _ = smp.load_sampled(gen20k, 1.0, full_blocks_only=full)
    assert info["loader"].startswith("fast path with sampling")
    curve = lru_curve(load_trace(gen20k), full_blocks_only=full)
    caps = curve.grid(120)
    sc = smp.shards_curve(refs, capacities_blocks=caps, with_error=False)
    eb, et = curve.rates_at(caps)
    assert np.allclose(sc["block_hit_rate"], eb, atol=1e-12) and np.allclose(sc["token_hit_rate"], et, atol=1e-12)


def _hot_reference_stream(refs):
    """The whole sample of a streaming scan: its hashed references and every heavy reference
    (rebuilt from the runs: request r holds the path to its deepest node, head first), heavy
    nodes under ids of their own, in access order. Returns (ids, req, hv, base id of the nodes)."""
    hot = refs.hot
    runs = hot.run_lengths()
    rq = np.repeat(np.arange(runs.size), runs)
    dep = np.arange(int(runs.sum())) - np.repeat(np.cumsum(runs) - runs, runs)
    anc = hot.ancestors()
    table = np.full((hot.parent.size, int(hot.depth.max()) + 1), -1)
    for u in range(hot.parent.size):
        on = np.flatnonzero(anc[u])
        table[u, hot.depth[on]] = on
    node = table[hot.deep.astype(np.int64)[rq], dep]
    assert (node >= 0).all()
    base = int(max(refs.ids.max(), hot.node_ids.max())) + 1
    ids = np.concatenate([refs.ids.astype(np.int64), base + node])
    req = np.concatenate([refs.req.astype(np.int64), rq])
    pos = np.concatenate([refs.pos.astype(np.int64), dep])
    hv = np.concatenate([np.zeros(refs.ids.size, bool), np.ones(node.size, bool)])
    o = np.lexsort((pos, req))
    return ids[o], req[o], hv[o], base


def test_hot_replay_equals_the_stack_distance_split(gen20k):
    """hot_replay (per-node last uses, a running maximum over requests) gives every reference's
    heavy offset exactly as the stack distances do (a second method: _scaled on the whole sample
    with every heavy reference rebuilt from the runs: off = 1 + full distance - hashed distance
    for a hashed reference, the heavy stream's distance for a heavy one), for every re-used
    reference of a generated trace (16 system prompts) sampled at 5 %, in small blocks of
    requests (the running state carried between blocks) and in one."""
    refs, _, _ = smp.load_sampled(gen20k, 0.05, seed=1)
    hot = refs.hot
    assert hot.parent.size > 50 and hot.n_heavy > 100_000
    ids, req, hv, base = _hot_reference_stream(refs)
    off, k, _ = smp._scaled(ids, req, hv, refs.m_all.shape[0])
    li = np.flatnonzero(~hv)
    lid = ids[li]
    prev = np.full(li.size, -1)
    o = np.lexsort((np.arange(li.size), lid))
    same = lid[o][1:] == lid[o][:-1]
    prev[o[1:][same]] = o[:-1][same]
    q = np.flatnonzero(prev >= 0)
    hi = np.flatnonzero(hv)
    cl, hp, hc = smp.hot_replay(hot, req[li][q], req[li][prev[q]], req[hi], ids[hi] - base)
    assert np.array_equal(off[li][q], 1 + cl)
    ok = hp >= 0
    assert (~ok).sum() == hot.parent.size and np.all(k[hi][~ok] == -1)   # one first use per node
    assert np.array_equal(off[hi][ok], 1 + hc[ok])
    # the previous heavy use: the previous request holding the node (by sorting)
    hid, hreq = ids[hi], req[hi]
    o = np.lexsort((hreq, hid))
    want = np.full(hi.size, -1)
    same = hid[o][1:] == hid[o][:-1]
    want[o[1:][same]] = hreq[o[:-1][same]]
    assert np.array_equal(hp, want)
    small = smp.hot_replay(hot, req[li][q], req[li][prev[q]], req[hi], ids[hi] - base, block_requests=700)
    assert all(np.array_equal(x, y) for x, y in zip(small, (cl, hp, hc)))


def test_heavy_offsets_equal_the_stack_distance_split():
    """_heavy_offsets (heavy blocks met since the previous use, by sorted access keys) equals the
    offsets of _scaled (stack distances of the whole sample minus those of its hashed part), a
    second method, on every re-used reference of the conversation trace sampled at 5 %."""
    tr = load_trace(CONV)
    refs = smp.refs_from_trace(tr, 0.05, seed=1)
    assert refs.heavy.sum() > 1000
    off, k, _ = smp._scaled(refs.ids, refs.req, refs.heavy, tr.n_requests)
    off2 = smp._heavy_offsets(refs.ids, refs.req, refs.pos, refs.heavy, np.arange(refs.ids.size))
    assert np.array_equal(off[k >= 0], off2[k >= 0])


def test_heavy_subsample_estimates_the_same_curve(monkeypatch):
    """With the heavy stratum cut to a subsample of 5,000 references (every s-th, each with its
    previous use), the curve moves by at most 3 binomial standard errors of a 5,000-reference
    sample of the heavy stratum's hits (sqrt(1/4 / 5000) x its share of the references)."""
    tr = load_trace(CONV)
    refs = smp.refs_from_trace(tr, 0.05, seed=1)
    whole = smp.shards_curve(refs, max_points=80, with_error=False)
    monkeypatch.setattr(smp, "HEAVY_GROUP_REFS", 5000)
    sub = smp.shards_curve(refs, max_points=80, with_error=False)
    share = refs.heavy.sum() / refs.m_all.sum()
    tol = 3 * math.sqrt(0.25 / 5000) * share
    assert np.max(np.abs(np.asarray(sub["token_hit_rate"]) - whole["token_hit_rate"])) <= tol
    assert np.max(np.abs(np.asarray(sub["block_hit_rate"]) - whole["block_hit_rate"])) <= tol


def _err_pp(curve, sc):
    caps = np.asarray(sc["capacities_blocks"])
    eb, et = curve.rates_at(caps)
    d = np.maximum(np.abs(np.asarray(sc["block_hit_rate"]) - eb), np.abs(np.asarray(sc["token_hit_rate"]) - et))
    return 100 * d.mean(), 100 * d.max()


def test_streaming_target_and_bound_on_a_generated_trace(gen20k):
    """16 shared system prompts (~40 % of the references on ~100 blocks), streaming scan: at 5 %
    within #11's target (0.5 pp mean, 2 pp max) for 3 seeds, and at 1 % and 5 % the stated bound
    covers the worst error of each seed."""
    curve = lru_curve(load_trace(gen20k))
    for rate in (0.01, 0.05):
        for seed in range(3):
            refs, _, _ = smp.load_sampled(gen20k, rate, seed=seed)
            assert refs.hot.n_heavy > 0.3 * curve.blocks_total
            sc = smp.shards_curve(refs, max_points=150)
            mean_pp, max_pp = _err_pp(curve, sc)
            assert max_pp <= sc["error_bound_pp"], (rate, seed, mean_pp, max_pp, sc["error_bound_pp"])
            if rate >= 0.05:
                assert mean_pp < 0.5 and max_pp < 2.0, (rate, seed, mean_pp, max_pp)


def test_window_spread_estimates_the_spread_of_full_stream_counts():
    """The ratio distances' spread (``spread`` moves each by one standard deviation of the
    full-stream count K in its window bin) is estimated from hashed counts only: with K ~
    Normal(50, 10) (rounded, one bin: every window 100 references) and k ~ Binomial(K, R) as
    hash sampling makes it, the moved distance minus the ratio distance is SD(K) = 10 within
    10 % (sampling noise of the moment estimate at 40,000 references: ~3 %), at R = 10 % and 5 %;
    without spread among the Ks (all 50) it is below 4 (the binomial part removed; what is left
    is the square root of the moment estimate's noise, sd ~ 7 at 5 %: ~2.6)."""
    rng = np.random.default_rng(11)
    n = 40_000
    window = np.full(n, 100, dtype=np.int64)
    heavy = np.zeros(n, dtype=bool)
    for rate in (0.1, 0.05):
        for sd in (10.0, 0.0):
            big_k = np.maximum(0, np.round(rng.normal(50, sd, n))).astype(np.int64)
            k = rng.binomial(big_k, rate)
            mid = smp._window_distances(k, window, heavy, rate)
            up = smp._window_distances(k, window, heavy, rate, spread=1.0)
            assert np.allclose(mid, mid[0]) and mid[0] == pytest.approx(big_k.mean(), rel=0.05)
            tau = float(np.mean(up - mid))
            if sd:
                assert tau == pytest.approx(big_k.std(), rel=0.1), (rate, tau)
            else:
                assert tau < 4.0, (rate, tau)
