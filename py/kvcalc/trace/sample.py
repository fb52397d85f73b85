"""Sampled LRU curves: SHARDS (Waldspurger et al., FAST 2015), spatially hashed sampling.

A block reference is kept iff ``hash(block id) mod P < T`` (``P = 2^24``), so
every reference of a kept block is kept and the kept stream is the trace of a
``R = T / P`` share of the blocks. A kept reference with ``k`` sampled blocks
met since its block's last use stands for ``k / R`` blocks of the full stream.
What this module adds to plain SHARDS (numbers: docs/trace-sampling.md):

* Heavy blocks kept whole: blocks carrying many references (a shared system
  prompt) make a hashed sample jumpy (caught: far too many references; missed:
  their hits unseen). They form a stratum sampled at rate 1: from a loaded
  trace, the most referenced blocks with at least ``1 / R`` references; in the
  streaming scan, every chunk's hot blocks (:func:`promote_hot`), from that
  chunk on (strata set per reference, by the stream's order, never by the
  hash). The streaming scan does not store the heavy references: a request's
  heavy references are its leading run of hot blocks, stored as the run's
  deepest block (:class:`HotRuns`, 2 bytes a request, no budget), and their
  offsets (hot blocks met since a previous use) come from replaying the runs
  with each hot block's last use (:func:`hot_replay`); their hits come from a
  systematic subsample of at most ``2 HEAVY_GROUP_REFS`` of them, each with
  its previous use. Distances count each heavy block once and each sampled one
  ``1 / R`` times.
* Exact totals in a regression estimate: the hits of the sampled stratum are
  estimated by GREG (survey sampling), ``Y/R + beta(C) . (X - X_hat)`` with
  ``X`` the exact number of references (tokens) and of distinct blocks
  (counted exactly from a loaded trace; by a HyperLogLog sketch in the
  streaming scan) and ``beta`` fitted per capacity. ``beta = (1, 0)`` is
  SHARDS-adj (the paper's sample-size correction); the distinct-block total
  makes the ideal hit rate (nearly) exact and removes the variance of the
  blocks used once.
* Window-ratio distances: ``k / R`` is a staircase of step ``1 / R`` (every
  reuse with no sampled block in between reads as distance 0: a bias of
  several points at capacities below a few ``1 / R``). Where the reuse window
  (the full stream's references since the last use, exact from per-request
  counts) is short, the distance is ``rho x window`` with ``rho`` a ratio
  estimate over the references with windows of about the same size.

Fixed size: the rate starts at ``rate`` and is halved (``T`` lowered, kept
references with ``hash >= T`` dropped) whenever more than ``max_refs`` hashed
references are kept, so memory is bounded whatever the trace length (the heavy
stratum costs 2 bytes a request and a fixed subsample).

Error estimate: the kept light blocks are split by other hash bits into
``G = 8`` groups, each (with the heavy stratum) a sample at rate ``R / G``.
Standard error = sd of their curves / sqrt(G); bias = (mean of their curves -
curve) / (G - 1) (a bias falling as 1 / R); hand-over = the curve's change
when the window-ratio distances hand over at half the windows (a bias the
groups do not see), with the change at half-octave window bins and the
spread term (the ratio gives each reference its bin's mean count: to second
order a bias of ``Var(K) / 2 x F''``, read from the curves with the ratio
distances moved by -/+ one standard deviation of ``K``, itself estimated from
the binomial hashed counts); ``error_bound_pp`` = |bias| + 3 standard errors
(with the HyperLogLog error) + hand-over at the worst capacity. When it exceeds 2 pp the
result says so, with the rate that would reach 2 pp.

Hash: splitmix64 of the 64-bit block id (string ids first go through 64 bits
of BLAKE2b), seeded.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from .curve import _INF, _kept, _n_warm, lookup_distances

__all__ = ["SampledRefs", "hash_ids", "sample_threshold", "refs_from_trace", "shards_curve", "HASH_BITS",
           "SAMPLE_GROUPS"]

HASH_BITS = 24
_P = 1 << HASH_BITS
SAMPLE_GROUPS = 8
_M64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def hash_ids(ids, seed: int = 0) -> np.ndarray:
    """64-bit hashes (uint64) of block ids: an int64/uint64 array, or a list of ints / strings."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        x = ids.astype(np.uint64, copy=False) if ids.dtype.kind == "u" else ids.view(np.uint64) \
            if ids.dtype == np.int64 else ids.astype(np.int64).view(np.uint64)
    else:
        vals = []
        for v in ids:
            if isinstance(v, str):
                vals.append(int.from_bytes(hashlib.blake2b(v.encode("utf-8"), digest_size=8).digest(), "little"))
            else:
                vals.append(int(v) & _M64)
        x = np.asarray(vals, dtype=np.uint64)
    s = np.uint64((seed * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _M64)
    with np.errstate(over="ignore"):
        return _splitmix64(x ^ s)


def sample_threshold(rate: float) -> int:
    """T with T / 2^24 the sampling rate actually used (at least 1)."""
    return max(1, min(_P, int(round(rate * _P))))


def _sample_bits(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(64 - HASH_BITS)).astype(np.int64)


def _group_of(h: np.ndarray) -> np.ndarray:
    return (h & np.uint64(SAMPLE_GROUPS - 1)).astype(np.int64)


#: HyperLogLog sketch of the full stream's distinct blocks (streaming scan): 2^18 one-byte
#: registers (256 KiB), relative standard error 1.04 / 2^9 = 0.2 % (linear counting, under
#: 1 % error, up to 5 x 2^18 blocks, where raw HyperLogLog is biased)
HLL_BITS = 18
HLL_REL_SE = 1.04 / math.sqrt(1 << HLL_BITS)


#: bits of the block hash read by the sketch: register index from bits 3.. (above the hash
#: groups' bits), the rank from the next _HLL_W bits (below the 24 sampling bits)
_HLL_W = 64 - HASH_BITS - 3 - HLL_BITS


_RHO: list = []


def _rho_table() -> np.ndarray:
    """rank (position of the first 1 bit from the top, 1-based) of every _HLL_W-bit value (uint8)."""
    if not _RHO:
        w = np.arange(1 << _HLL_W, dtype=np.float64)
        bitlen = np.where(w > 0, np.frexp(w)[1], 0)
        _RHO.append((_HLL_W + 1 - bitlen).astype(np.uint8))
    return _RHO[0]


def hll_add(registers: np.ndarray, hashes: np.ndarray) -> None:
    """Fold block-id hashes (uint64) into HyperLogLog registers (uint8, 2^HLL_BITS), in place.

    Index and rank come from hash bits that neither the sampling (top bits)
    nor the hash groups (low bits) read. Only the references that raise their
    register are scattered (few, once the registers have filled).
    """
    if hashes.size == 0:
        return
    idx = ((hashes >> np.uint64(3)) & np.uint64((1 << HLL_BITS) - 1)).astype(np.intp)
    w = ((hashes >> np.uint64(3 + HLL_BITS)) & np.uint64((1 << _HLL_W) - 1)).astype(np.intp)
    rho = _rho_table()[w]
    up = rho > registers[idx]
    np.maximum.at(registers, idx[up], rho[up])


def hll_count(registers: np.ndarray) -> float:
    """The HyperLogLog estimate (Flajolet et al. 2007) with linear counting for small counts."""
    m = float(registers.shape[0])
    est = 0.7213 / (1 + 1.079 / m) * m * m / float(np.sum(np.exp2(-registers.astype(np.float64))))
    zeros = int((registers == 0).sum())
    if zeros:
        linear = m * math.log(m / zeros)
        if linear <= 5 * m:
            return linear
    return est


#: a block is promoted to the heavy stratum (kept whole from then on) in the streaming scan when
#: one chunk of the stream (~1 MiB of text) holds at least this many of its references ...
HOT_MIN_REFS = 8
#: ... and at least this share of the chunk's requests (a block in 0.5 % of the requests)
HOT_MIN_SHARE = 0.005
#: bits of the hash (below the hash groups' and the sketch's) naming the count cells of the hot filter
_HOT_CELL_BITS = 16


def is_member(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """``np.isin(ids, sorted_ids)`` for a sorted (short) second array, by binary search."""
    if sorted_ids.size == 0:
        return np.zeros(ids.shape, dtype=bool)
    j = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.shape[0] - 1)
    return sorted_ids[j] == ids


def hot_blocks(ids: np.ndarray, hashes: np.ndarray, n_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ids (and reference counts) of the blocks with at least
    ``max(HOT_MIN_REFS, HOT_MIN_SHARE x n_requests)`` references among ``ids`` (one chunk of
    the stream, ``n_requests`` requests).

    Counted with bounded work: references are first counted per cell of ``2^16`` hash cells
    (a block's references all fall in its cell, so a hot block's cell is hot); only the
    references in hot cells are then counted exactly per block.
    """
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if ids.size == 0:
        return none
    need = max(HOT_MIN_REFS, int(math.ceil(HOT_MIN_SHARE * n_requests)))
    cell = (hashes & np.uint64((1 << _HOT_CELL_BITS) - 1)).astype(np.intp)
    per_cell = np.bincount(cell, minlength=1 << _HOT_CELL_BITS)
    cand = per_cell[cell] >= need
    if not cand.any():
        return none
    u, c = np.unique(ids[cand], return_counts=True)
    return u[c >= need].astype(np.int64), c[c >= need].astype(np.int64)


def promote_hot(heavy: np.ndarray, ids: np.ndarray, hashes: np.ndarray, n_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """(heavy ids, mask of the chunk's heavy references): ``heavy`` (sorted ids) with the
    chunk's hot blocks added (:func:`hot_blocks` over the references not yet heavy), at most
    ``HEAVY_MAX_BLOCKS`` in all (the hottest of the chunk first)."""
    hv = is_member(ids, heavy)
    room = HEAVY_MAX_BLOCKS - heavy.shape[0]
    if room <= 0:
        return heavy, hv
    rest = ~hv
    new, c = hot_blocks(ids[rest], hashes[rest], n_requests)
    if new.size == 0:
        return heavy, hv
    if new.size > room:
        new = np.sort(new[np.argsort(-c, kind="stable")[:room]])
    hv |= is_member(ids, new)
    return np.union1d(heavy, new).astype(np.int64), hv


@dataclass(frozen=True, eq=False)
class HotStratum:
    """The heavy stratum of a streaming scan (:class:`HotRuns`), 2 bytes a request.

    ``node_ids`` (block id of each hot node, in promotion order), ``parent`` (hot node before
    it in a request, -1 at the head, -2 none), ``depth`` (its position); per request ``deep``
    (the deepest hot node of its heavy run, -1 none: the run is the path to it); a
    systematic subsample of the heavy references (every ``step``-th in stream order:
    ``sub_node``, ``sub_req``); ``n_heavy`` the heavy references in all.
    """

    node_ids: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    deep: np.ndarray
    sub_node: np.ndarray
    sub_req: np.ndarray
    step: int
    n_heavy: int

    def run_lengths(self) -> np.ndarray:
        """Heavy references of each request (int64)."""
        d = self.deep.astype(np.intp)
        if self.depth.size == 0:          # no hot block promoted: no runs
            return np.zeros(d.shape[0], dtype=np.int32)
        return np.where(d >= 0, (self.depth + 1).astype(np.int32)[np.maximum(d, 0)], 0)

    def ancestors(self) -> np.ndarray:
        """(H, H) bool: ``[u, v]`` iff hot node ``v`` is on the path to ``u`` (itself included)."""
        h = self.parent.shape[0]
        anc = np.eye(h, dtype=bool)
        for u in np.argsort(self.depth, kind="stable").tolist():
            p = int(self.parent[u])
            if p >= 0:
                anc[u] |= anc[p]
        return anc


class HotRuns:
    """The heavy stratum, built chunk by chunk in the streaming scan (2 bytes a request).

    Hot blocks (:func:`promote_hot`, at most ``HEAVY_MAX_BLOCKS``) become nodes, numbered in
    promotion order, with the position (depth) and predecessor (parent) of their first
    reference after promotion. A request's heavy references are its leading run of looked-up
    references, each a hot node at its depth after its parent: in a prefix-chained trace, every
    reference of a hot block whose predecessors are hot (a shared system prompt, whose blocks
    are always hotter than the ones after them). The run is stored as its deepest node (the
    path to it, rebuilt from the parents, is the run). The other references (a block's
    references before its promotion, or a hot block after a cold one) stay in the hashed
    stratum: strata set by the stream, never by the hash. Every ``step``-th heavy reference
    is also kept with its request (``step`` doubles to keep at most ``2 HEAVY_GROUP_REFS``).
    """

    def __init__(self):
        self.sorted_ids = np.zeros(0, np.int64)
        self.sorted_node = np.zeros(0, np.int64)
        self.node_ids = np.zeros(0, np.int64)
        self.parent = np.zeros(0, np.int64)
        self.depth = np.zeros(0, np.int64)
        self.deep_parts: list = []
        self.sub_parts: list = []        # (node, request, index among the heavy references)
        self.n_sub = 0
        self.step = 1
        self.n_heavy = 0

    def _node_of(self, ids: np.ndarray) -> np.ndarray:
        if self.sorted_ids.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        j = np.minimum(np.searchsorted(self.sorted_ids, ids), self.sorted_ids.shape[0] - 1)
        return np.where(self.sorted_ids[j] == ids, self.sorted_node[j], -1)

    def add_chunk(self, ids: np.ndarray, hashes: np.ndarray, req: np.ndarray, pos: np.ndarray, cnt: np.ndarray,
                  looked: np.ndarray, first_req: int) -> np.ndarray:
        """Promote the chunk's hot blocks, record its runs; returns the mask of its heavy references."""
        heavy, _ = promote_hot(self.sorted_ids, ids, hashes, cnt.shape[0])
        if heavy.shape[0] > self.sorted_ids.shape[0]:
            new = np.setdiff1d(heavy, self.sorted_ids)
            base = self.node_ids.shape[0]
            self.node_ids = np.concatenate([self.node_ids, new])
            o = np.argsort(self.node_ids, kind="stable")
            self.sorted_ids, self.sorted_node = self.node_ids[o], o.astype(np.int64)
            # depth and parent from each new node's first reference in the chunk
            where = np.flatnonzero(is_member(ids, new))
            _, first = np.unique(ids[where], return_index=True)   # ids[where] sorted -> new's order
            at = where[first]
            p = pos[at].astype(np.int64)
            before = self._node_of(ids[np.maximum(at - 1, 0)])
            par = np.where(p == 0, -1, np.where(before >= 0, before, -2))
            dep = np.empty(new.shape[0], dtype=np.int64)
            pr = np.empty(new.shape[0], dtype=np.int64)
            order_new = self._node_of(new) - base
            dep[order_new], pr[order_new] = p, par
            self.depth = np.concatenate([self.depth, dep])
            self.parent = np.concatenate([self.parent, pr])
        n = cnt.shape[0]
        if self.node_ids.size == 0 or ids.size == 0:
            self.deep_parts.append(np.full(n, -1, dtype=np.int16))
            return np.zeros(ids.shape, dtype=bool)
        node = self._node_of(ids)
        prev = np.empty_like(node)
        prev[0] = -1
        prev[1:] = node[:-1]
        prev[pos == 0] = -1
        nd = np.maximum(node, 0)
        ok = (node >= 0) & looked & (self.depth[nd] == pos) & (self.parent[nd] == prev)
        # each request's run: its references before the first one not ok
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(cnt, out=starts[1:])
        rl = (req - first_req).astype(np.intp)
        length = cnt.astype(np.int64).copy()
        bad = np.flatnonzero(~ok)
        if bad.size:
            r_bad, first_bad = np.unique(rl[bad], return_index=True)
            length[r_bad] = pos[bad[first_bad]]
        run = pos < length[rl]
        deep = np.full(n, -1, dtype=np.int16)
        has = length > 0
        deep[has] = node[starts[:-1][has] + length[has] - 1]
        self.deep_parts.append(deep)
        nr = int(run.sum())
        if nr:
            g = self.n_heavy + np.arange(nr, dtype=np.int64)
            pick = g % self.step == 0
            self.sub_parts.append((node[run][pick].astype(np.int16), req[run][pick].astype(np.int64), g[pick]))
            self.n_sub += int(pick.sum())
            self.n_heavy += nr
            if self.n_sub > 2 * HEAVY_GROUP_REFS:
                parts = [np.concatenate(x) for x in zip(*self.sub_parts)]
                while parts[0].shape[0] > 2 * HEAVY_GROUP_REFS:
                    self.step *= 2
                    k = parts[2] % self.step == 0
                    parts = [x[k] for x in parts]
                self.sub_parts, self.n_sub = [tuple(parts)], parts[0].shape[0]
        return run

    def finish(self, n_requests: int) -> HotStratum:
        deep = np.concatenate(self.deep_parts) if self.deep_parts else np.zeros(0, np.int16)
        self.deep_parts = []
        if deep.shape[0] < n_requests:  # pragma: no cover - every chunk appends its requests
            deep = np.concatenate([deep, np.full(n_requests - deep.shape[0], -1, dtype=np.int16)])
        sub = [np.concatenate(x) for x in zip(*self.sub_parts)] if self.sub_parts else \
            [np.zeros(0, np.int16), np.zeros(0, np.int64)]
        self.sub_parts = []
        return HotStratum(self.node_ids, self.parent, self.depth, deep[:n_requests], sub[0], sub[1],
                          self.step, self.n_heavy)


def hot_replay(hot: HotStratum, q_req: np.ndarray, q_prev: np.ndarray, h_req: np.ndarray, h_node: np.ndarray,
               block_requests: int | None = None):
    """Heavy offsets by replaying the runs, request by request, in blocks of requests.

    A light reference at request ``r`` whose block was used before at request ``p`` (after
    the run of ``p``, at lookup the run of ``r`` comes after it) has in its window every hot
    node last used (before ``r``) at ``p`` or later: ``#{v : last_r(v) >= p}``. A heavy
    reference of node ``b`` at ``r`` has its previous use at ``p = last_r(b)`` (-1: none);
    in its window every node last used after ``p``, and the nodes on the path to ``b``
    last used at ``p`` (accessed after it there, head last). ``last_r`` (per node, the last
    request before ``r`` using it) is kept as a (requests x nodes used in the block) matrix
    by a running maximum. Returns (light counts, heavy previous requests, heavy counts).
    """
    n = hot.deep.shape[0]
    h = hot.parent.shape[0]
    anc = hot.ancestors()
    strict = anc & ~np.eye(h, dtype=bool)
    state = np.full(h, -1, dtype=np.int64)
    ql = np.argsort(q_req, kind="stable")
    qh = np.argsort(h_req, kind="stable")
    qr_sorted, hr_sorted = q_req[ql], h_req[qh]
    out_l = np.zeros(q_req.shape[0], dtype=np.int64)
    out_hp = np.full(h_req.shape[0], -1, dtype=np.int64)
    out_hc = np.zeros(h_req.shape[0], dtype=np.int64)
    block = block_requests or max(1024, (1 << 22) // max(h, 1))
    it = np.int32 if n < (1 << 31) - 1 else np.int64
    col_of = np.full(h, -1, dtype=np.int64)
    for a in range(0, n, block):
        e = min(a + block, n)
        d = hot.deep[a:e].astype(np.int64)
        rows = np.flatnonzero(d >= 0)
        l0, l1 = np.searchsorted(qr_sorted, [a, e])
        h0, h1 = np.searchsorted(hr_sorted, [a, e])
        if rows.size == 0 and l0 == l1 and h0 == h1:
            continue
        used = np.unique(d[rows])
        cols = np.flatnonzero(anc[used].any(axis=0)) if used.size else np.zeros(0, np.int64)
        rest = np.ones(h, dtype=bool)
        rest[cols] = False
        s_rest = np.sort(state[rest])
        m = np.full((e - a + 1, cols.shape[0]), -1, dtype=it)
        m[0] = state[cols]
        if rows.size:
            m[1 + rows] = np.where(anc[d[rows]][:, cols], (a + rows)[:, None], -1)
        np.maximum.accumulate(m, axis=0, out=m)
        if l1 > l0:
            sel = ql[l0:l1]
            p = q_prev[sel].astype(it)
            last = m[q_req[sel] - a]
            out_l[sel] = (last >= p[:, None]).sum(axis=1) + (s_rest.shape[0] - np.searchsorted(s_rest, p, "left"))
        if h1 > h0:
            sel = qh[h0:h1]
            col_of[cols] = np.arange(cols.shape[0])
            nd = h_node[sel].astype(np.int64)
            last = m[h_req[sel] - a]
            p = last[np.arange(sel.shape[0]), col_of[nd]]
            c = (last > p[:, None]).sum(axis=1) + (s_rest.shape[0] - np.searchsorted(s_rest, p, "right"))
            c += ((last == p[:, None]) & strict[:, cols][nd]).sum(axis=1)
            out_hp[sel] = p
            out_hc[sel] = c
            col_of[cols] = -1
        state[cols] = m[-1]
    return out_l, out_hp, out_hc


@dataclass(frozen=True, eq=False)
class SampledRefs:
    """The kept references of a trace, head first per request, with the trace's totals.

    ``ids`` (block ids), ``hashes`` (uint64), ``req`` (request row), ``weight``
    (tokens) of the kept looked-up references; ``n_requests``; per request the
    looked-up blocks ``m_all`` and prompt tokens ``tokens`` (for the totals).
    ``threshold``: kept iff the top 24 hash bits are below it.
    """

    ids: np.ndarray
    hashes: np.ndarray
    req: np.ndarray
    weight: np.ndarray
    m_all: np.ndarray
    tokens: np.ndarray
    looked_tokens: np.ndarray
    threshold: int
    block_size_tokens: int
    full_blocks_only: bool
    heavy: np.ndarray | None = None
    last_uses: np.ndarray | None = None
    pos: np.ndarray | None = None
    distinct_estimate: float | None = None
    #: the streaming scan's heavy stratum (runs of hot blocks, 2 bytes a request), or None
    hot: HotStratum | None = None

    @property
    def rate(self) -> float:
        return self.threshold / _P

    def lowered(self, threshold: int) -> "SampledRefs":
        keep = _sample_bits(self.hashes) < threshold
        heavy = None
        if self.heavy is not None:
            keep |= self.heavy
            heavy = self.heavy[keep]
        return replace(self, ids=self.ids[keep], hashes=self.hashes[keep], req=self.req[keep],
                       weight=self.weight[keep], threshold=threshold, heavy=heavy,
                       pos=None if self.pos is None else self.pos[keep])


def check_rate(rate, field: str = "sampling") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(float(rate)) \
            or not 0.0 < float(rate) <= 1.0:
        raise InputError(field, rate, "a sampling rate in (0, 1] (e.g. 0.01 for 1 %), 'auto' or 'exact'",
                         "sampling rate outside (0, 1]", code="trace_sampling_rate", params={"lo": 0.0, "hi": 1.0,
                                                                                      "lo_open": True})
    if float(rate) < 1.0 / _P:
        raise InputError(field, rate, f"a rate of at least 2^-{HASH_BITS} = {1 / _P:.3g}", "sampling rate too small",
                         code="trace_sampling_rate_small", params={"lo": 1 / _P})
    return float(rate)


#: the accuracy a sampled curve is meant to reach [percentage points, worst capacity]; a larger
#: stated error is said in the result (accuracy_warning)
ACCURACY_TARGET_PP = 2.0

#: heavy blocks kept whole: at most this many blocks ...
HEAVY_MAX_BLOCKS = 1024
#: ... holding at most this share of the references (or 2 R N if larger)
HEAVY_MAX_SHARE = 0.5


def refs_from_trace(trace, rate: float, *, full_blocks_only: bool = True, seed: int = 0,
                    heavy_budget_refs: int | None = None) -> SampledRefs:
    """Sample a loaded trace's looked-up references by a hash of the (dense) block id.

    The trace is in memory, so two exact totals come for free and make the
    estimate far tighter (see :func:`shards_curve`): the heavy blocks (the most
    referenced ones, each with at least ``1 / R`` references: a shared system
    prompt) are kept whole (stratum sampled at rate 1) within a budget of
    references (``heavy_budget_refs``, default ``max(2 R N, N / 8)``), and per
    request the number of blocks whose last use it holds (so the distinct
    blocks after any warm-up are known exactly).
    """
    rate = check_rate(rate)
    ids, req, pos, weight, m, starts = _kept(trace, full_blocks_only)
    h = hash_ids(ids, seed)
    t = sample_threshold(rate)
    keep = _sample_bits(h) < t
    looked = np.bincount(req.astype(np.intp), weights=weight, minlength=trace.n_requests).astype(np.int64)
    n = ids.shape[0]
    heavy = np.zeros(n, dtype=bool)
    last_uses = np.zeros(trace.n_requests, dtype=np.int64)
    if n:
        _, first_rev, inv, counts = np.unique(ids[::-1], return_index=True, return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)[::-1]
        last_pos = n - 1 - first_rev
        last_uses = np.bincount(req[last_pos].astype(np.intp), minlength=trace.n_requests).astype(np.int64)
        budget = max(2 * rate * n, HEAVY_MAX_SHARE * n) if heavy_budget_refs is None else heavy_budget_refs
        order = np.argsort(-counts, kind="stable")[:HEAVY_MAX_BLOCKS]
        top = order[(counts[order] >= 1.0 / rate) & (np.cumsum(counts[order]) <= budget)]
        if rate < 1.0 and top.size:
            is_heavy = np.zeros(counts.shape[0], dtype=bool)
            is_heavy[top] = True
            heavy = is_heavy[inv]
            keep |= heavy
    return SampledRefs(ids[keep], h[keep], req[keep], weight[keep], m.astype(np.int64),
                       trace.input_tokens.astype(np.int64), looked, t, trace.block_size_tokens, full_blocks_only,
                       heavy[keep], last_uses, pos[keep])


def _distances(ids: np.ndarray, req: np.ndarray, n_requests: int) -> np.ndarray:
    """Lookup stack distances of references in request order (``req`` non-decreasing). Only
    the order of the requests matters: they are renumbered densely (memory per reference,
    not per request of the trace)."""
    if req.size == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(req.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(req[1:], req[:-1], out=new[1:])
    dense = np.cumsum(new, dtype=np.int64) - 1
    m = np.bincount(dense.astype(np.intp)).astype(np.int64)
    starts = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(m, out=starts[1:])
    return lookup_distances(ids, dense, m, starts)


def _scaled(ids: np.ndarray, req: np.ndarray, heavy: np.ndarray | None, n_requests: int,
            d_heavy: np.ndarray | None = None):
    """Stack distances of the kept references split into ``off + k / R``.

    ``k`` counts the sampled (light) blocks met since the last use, each
    standing for ``1 / R`` blocks of the full stream; ``off`` the heavy blocks
    (kept whole, each counting once) plus the reference itself. Without heavy
    blocks ``off = 1``, ``k = d - 1``. With them the distances of the two
    sub-streams give the split. ``k = -1`` marks a first use. Returns
    ``(off, k, d_heavy)`` (the heavy sub-stream's distances, reused by the hash groups).
    """
    d = _distances(ids, req, n_requests)
    inf = d == _INF
    df = np.where(inf, 1, d).astype(np.int64)
    off = np.ones(df.shape, dtype=np.int64)
    if heavy is None or not heavy.any():
        k = df - 1
    else:
        light = ~heavy
        k = np.empty(df.shape, dtype=np.int64)
        dl = _distances(ids[light], req[light], n_requests)
        dl = np.where(dl == _INF, 1, dl).astype(np.int64)
        k[light] = dl - 1
        off[light] = 1 + (df[light] - dl)
        if d_heavy is None:
            d_heavy = _distances(ids[heavy], req[heavy], n_requests)
        dh = np.where(d_heavy == _INF, 1, d_heavy).astype(np.int64)
        k[heavy] = df[heavy] - dh
        off[heavy] = dh
        # A block's first heavy reference (promoted part-way) has no use in the heavy
        # stream before it: booked as a first use (one miss per promoted block).
        inf = inf.copy()
        inf[np.flatnonzero(heavy)[d_heavy == _INF]] = True
    k[inf] = -1
    return off, k, d_heavy


#: the hash groups take at most this many heavy references (a subsample, see shards_curve)
HEAVY_GROUP_REFS = 1 << 18


def _heavy_subsample(ids: np.ndarray, heavy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(chosen, ghost, scale): masks of a subsample of the heavy references (all of them up to
    ``HEAVY_GROUP_REFS``; beyond, every s-th, ``s`` the scale) and of the previous uses of the
    chosen ones not chosen themselves (the "ghosts" that open their windows)."""
    hi = np.flatnonzero(heavy)
    chosen = heavy.copy()
    ghost = np.zeros(heavy.shape, dtype=bool)
    if hi.size <= HEAVY_GROUP_REFS:
        return chosen, ghost, 1.0
    step = int(math.ceil(hi.size / HEAVY_GROUP_REFS))
    pick = hi[::step]
    chosen[:] = False
    chosen[pick] = True
    hid = ids[hi]
    order = np.lexsort((hi, hid))
    prev = np.full(hi.size, -1, dtype=np.int64)
    same = hid[order][1:] == hid[order][:-1]
    prev[order[1:][same]] = hi[order[:-1][same]]
    pp = prev[::step]
    ghost[pp[pp >= 0]] = True
    ghost &= ~chosen
    return chosen, ghost, hi.size / pick.size


def _heavy_offsets(ids: np.ndarray, req: np.ndarray, pos: np.ndarray, heavy: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """``1 +`` the heavy blocks met since the previous use, for the references ``sel`` (indices).

    The heavy part of :func:`_scaled`'s split (``off``: its heavy blocks, each counted once)
    counted against every heavy reference without a stack-distance pass over them: the
    access order is a key per reference (request, then tail first), each heavy block's
    keys are sorted, and a block counts when its first access after the previous use comes
    before the reference's own; minus the request's own heavy blocks accessed just before
    (its tail), as at lookup. A reference without a previous use among ``sel`` gets 1.
    """
    width = int(pos.max()) + 2 if pos.size else 2
    key = req.astype(np.int64) * width + (width - 1 - pos.astype(np.int64))
    hi = np.flatnonzero(heavy)
    hk, hb = key[hi], ids[hi]
    order = np.lexsort((hk, hb))
    hk, hb = hk[order], hb[order]
    cuts = np.flatnonzero(np.concatenate([[True], hb[1:] != hb[:-1], [True]]))
    q_ids, q_key = ids[sel], key[sel]
    o = np.lexsort((np.arange(sel.shape[0]), q_ids))
    prev = np.full(sel.shape[0], -1, dtype=np.int64)
    same = q_ids[o][1:] == q_ids[o][:-1]
    prev[o[1:][same]] = o[:-1][same]
    has = prev >= 0
    kq, kp = q_key[has], q_key[prev[has]]
    count = np.zeros(kq.shape[0], dtype=np.int64)
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        kb = hk[a:b]
        j = np.searchsorted(kb, kp, side="right")
        count += (j < kb.shape[0]) & (kb[np.minimum(j, kb.shape[0] - 1)] < kq)
    all_k = np.sort(hk)
    start = req[sel][has].astype(np.int64) * width
    count -= np.searchsorted(all_k, kq, side="left") - np.searchsorted(all_k, start, side="left")
    off = np.ones(sel.shape[0], dtype=np.int64)
    off[has] = 1 + count
    return off


#: windows below this many sampled blocks' worth (tau / R references) take the window-ratio distance
WINDOW_BELOW = 128


def _windows(ids: np.ndarray, req: np.ndarray, pos: np.ndarray, m_all: np.ndarray,
             heavy: np.ndarray | None = None, runs: np.ndarray | None = None) -> np.ndarray:
    """References of the full stream between a kept reference and its block's previous use (-1: first use).

    The previous request is accessed tail first, so its blocks ahead of the
    block (``pos`` of them) come after it; then every looked-up block of the
    requests in between. Exact from the per-request counts, whatever the rate:
    the full stream's stack distance is at most this.

    With ``heavy`` (mask of the heavy references) and ``runs`` (each request's heavy
    references, its leading run of hot blocks), a heavy reference's window counts the
    light references only: the heavy blocks in it are counted exactly by its offset
    already (counting them again read a reuse with only heavy blocks in between as
    about one block further, -3 pp at C = 4-5 on affinity instances).
    """
    w = np.full(ids.shape[0], -1, dtype=np.int64)
    if ids.size < 2:
        return w
    order = np.lexsort((np.arange(ids.shape[0]), ids))
    same = ids[order][1:] == ids[order][:-1]
    cur, prev = order[1:][same], order[:-1][same]
    st = np.int64 if int(m_all.sum(dtype=np.int64)) >= (1 << 31) - 1 else np.int32   # offsets of the stream
    s = np.zeros(m_all.shape[0] + 1, dtype=st)
    np.cumsum(m_all, dtype=st, out=s[1:])
    rp = req[prev].astype(np.int64)
    w[cur] = np.maximum(pos[prev].astype(np.int64) + s[req[cur].astype(np.int64)] - s[rp + 1], 0)
    if heavy is not None and runs is not None:
        h = heavy[cur]
        if h.any():
            del s
            light = np.zeros(m_all.shape[0] + 1, dtype=st)
            np.cumsum(m_all.astype(st) - runs.astype(st), dtype=st, out=light[1:])
            ch, ph, rph = cur[h], prev[h], rp[h]
            ahead = np.maximum(pos[ph].astype(np.int64) - runs[rph].astype(np.int64), 0)
            w[ch] = np.maximum(ahead + light[req[ch].astype(np.int64)] - light[rph + 1], 0)
    return w


def _window_distances(kcount: np.ndarray, window: np.ndarray, is_heavy: np.ndarray, rate: float,
                      below: float | None = None, per_octave: int = 4, spread: float = 0.0) -> np.ndarray:
    """Sampled-block counts ``k`` turned into full-stream counts ``K`` (float, per reference).

    ``k / R`` is unbiased but a staircase of step ``1 / R``: every reuse with
    no sampled block in its window reads as distance 0. Where the window holds
    fewer than ``WINDOW_BELOW / R`` references, ``K`` is estimated instead as
    ``rho x window``, ``rho = sum(k) / (R sum(window))`` over the references
    with windows of about the same size (quarter-octave bins, per stratum):
    a ratio estimate, consistent since ``E[k] = R K``, that follows the window
    and not the staircase.

    ``spread``: each ratio distance moved by ``spread`` standard deviations of the
    full-stream counts ``K`` around ``rho x window`` in its bin (for the error
    estimate). Hash sampling makes ``k`` binomial given ``K`` (``Var = R (1 - R) K``),
    so the residuals ``r = k - R rho w`` give ``Var(K - rho w) = (mean r^2 - (1 - R)
    mean k) / R^2``.
    """
    k_hat = kcount / rate
    ok = (kcount >= 0) & (window >= 0)
    if rate >= 1.0 or not ok.any():
        return k_hat
    b = np.floor(per_octave * np.log2(np.maximum(window, 0) + 1.0)).astype(np.int64)
    small = ok & (np.exp2((b + 1) / per_octave) - 1 <= (WINDOW_BELOW if below is None else below) / rate)
    if not small.any():
        return k_hat
    key = b * 2 + is_heavy.astype(np.int64)
    kk = np.where(small, key, -1)
    sel = kk >= 0
    _, ginv = np.unique(kk[sel], return_inverse=True)
    ginv = ginv.reshape(-1)
    num = np.bincount(ginv, weights=kcount[sel].astype(np.float64))
    den = np.bincount(ginv, weights=window[sel].astype(np.float64))
    rho = np.where(den > 0, num / np.maximum(den, 1.0) / rate, 0.0)
    k_hat = k_hat.astype(np.float64)
    k_hat[sel] = rho[ginv] * window[sel]
    if spread:
        ks = kcount[sel].astype(np.float64)
        r2 = np.bincount(ginv, weights=(ks - rate * k_hat[sel]) ** 2)
        nb = np.bincount(ginv).astype(np.float64)
        tau = np.sqrt(np.maximum(0.0, (r2 - (1.0 - rate) * num) / (rate * rate * np.maximum(nb, 1.0))))
        k_hat[sel] = np.maximum(0.0, k_hat[sel] + spread * tau[ginv])
    return k_hat


def _estimate(off: np.ndarray, kcount: np.ndarray, ids: np.ndarray, heavy: np.ndarray | None, weight: np.ndarray,
              counted: np.ndarray, rate: float, caps: np.ndarray, totals: dict,
              window: np.ndarray | None = None, heavy_scale: float = 1.0,
              heavy_totals: tuple | None = None, window_below: float | None = None,
              per_octave: int = 4, spread: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Block and token hit rates at capacities ``caps`` [blocks] from the kept references.

    ``heavy_scale``: the heavy references given are a subsample (each stands for this
    many), ``heavy_totals`` then the full heavy stratum's (references, tokens, blocks).

    A reference with ``k`` sampled blocks since its last use is a hit at
    capacity ``C`` when ``off + k / R <= C`` (``k / R`` estimates the full
    stream's count without bias; below ``C ~ 1 / R`` it is a coarse staircase,
    see the error estimate and ``resolved_from_capacity_blocks``).

    Per kept block ``b``: ``y_b(C)`` its counted hits at ``C``,
    ``x_b = (counted references, 1)`` (tokens: ``(counted tokens, 1)``).
    Heavy blocks (kept whole) add their hits exactly; the sampled ones give
    the GREG (generalised regression) estimate of survey sampling,
    ``Y/R + beta(C) . (X - X_hat)``, ``beta`` fitted on the sampled blocks at
    each capacity, ``X`` the exact totals (references or looked-up tokens,
    and distinct blocks where known). With ``beta = (1, 0)`` this is SHARDS-adj
    (the sample-size correction); the distinct-block total removes the
    variance of the cold misses (the ideal hit rate is then exact) and of the
    blocks referenced once.
    """
    caps = np.minimum(np.asarray(caps, dtype=np.float64), 1e300)
    if ids.size == 0:
        z = np.zeros(caps.shape)
        return z, z
    _, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(-1)
    nb = int(inv.max()) + 1
    # Strata per reference: a block promoted to the heavy stratum part-way through a stream
    # has its earlier references in the hashed one. Per block, x counts its hashed references
    # (and tokens); the distinct-block column is 1 for the blocks never heavy (the heavy ones
    # are all known, so the hashed stratum's distinct total is the rest).
    is_h = np.zeros(ids.shape[0], dtype=bool) if heavy is None else heavy.astype(bool)
    cnt = (counted & ~is_h).astype(np.float64)
    wts = weight.astype(np.float64) * cnt
    cb = np.bincount(inv, weights=cnt, minlength=nb)
    wb = np.bincount(inv, weights=wts, minlength=nb)
    hb = np.bincount(inv, weights=is_h, minlength=nb) > 0
    if heavy_totals is None:
        hc = counted & is_h
        heavy_totals = (float(hc.sum()), float(weight[hc].sum()),
                        int(np.count_nonzero(np.bincount(inv, weights=hc, minlength=nb) > 0)))
    lb = cb > 0
    eb = (lb & ~hb).astype(np.float64)
    distinct = totals.get("distinct_blocks")
    use = counted & (kcount >= 0)
    if window is None:
        scaled = off[use] + kcount[use] / rate
    else:
        hr = np.zeros(ids.shape[0], dtype=bool) if heavy is None else heavy
        scaled = off[use] + _window_distances(kcount, window, hr, rate, window_below, per_octave, spread)[use]
    order = np.argsort(scaled, kind="stable")
    k = np.searchsorted(scaled[order], caps, side="right")

    def cum(v):
        """Sum over the counted reuses of v where the reference is a hit at each capacity."""
        return np.concatenate([[0.0], np.cumsum(v[use][order])])[k]

    ones = np.ones(inv.shape)
    rates = []
    for y_w, xb, total, h_total in ((ones, cb, totals["blocks"], heavy_totals[0]),
                                    (weight.astype(np.float64), wb, totals["looked_tokens"], heavy_totals[1])):
        hits_h = cum(np.where(is_h, y_w, 0.0)) * heavy_scale
        yl = np.where(is_h, 0.0, y_w)
        x_light = [xb[lb], eb[lb]]
        known = [total - h_total, None if distinct is None else distinct - heavy_totals[2]]
        cols = [0] if distinct is None else [0, 1]
        xty = np.array([cum(yl * (xb if c == 0 else eb)[inv]) for c in cols])
        xtx = np.array([[float(np.dot(x_light[a], x_light[c])) for c in cols] for a in cols])
        virtual = 0.0
        if distinct is None:
            # No distinct-block total (streaming scan with a warm-up): SHARDS-adj, beta = 1,
            # books the whole shortfall R N - kept as hits (right for a missed heavy block).
            beta = np.ones((1, caps.size))
        else:
            if not totals.get("heavy_checked") and rate < 1.0 and x_light[1].sum() > 0:
                # Heavy blocks not split off (the streaming scan cannot know them): a heavy block
                # the sample missed shows as references missing beyond what the missing distinct
                # blocks explain (gap_refs - mean refs per block x gap_blocks); a fitted beta
                # would lose its hits. Beyond 3 standard errors it is booked as one unsampled
                # block: all its references but the first are hits at every capacity.
                mean_x = x_light[0].sum() / x_light[1].sum()
                short = (known[0] - x_light[0].sum() / rate) - mean_x * (known[1] - x_light[1].sum() / rate)
                sd = math.sqrt((1 - rate) / rate * float(np.sum((x_light[0] - mean_x * x_light[1]) ** 2))
                               + (mean_x * totals.get("distinct_se", 0.0)) ** 2)
                if short > 3 * sd and short > 2 * mean_x:
                    virtual = short
                    known = [known[0] - short, known[1] - 1]
            beta = np.linalg.pinv(xtx) @ xty if xtx.any() else np.zeros((len(cols), caps.size))
        gap = np.array([known[c] - x_light[c].sum() / rate for c in cols])
        # its one cold miss: one reference (blocks) or one reference's mean tokens (tokens)
        first_use = (total / totals["blocks"] if totals["blocks"] else 0.0) if virtual else 0.0
        hits = hits_h + cum(yl) / rate + gap @ beta + np.where(caps >= 1, virtual - first_use, 0.0)
        rates.append(hits)
    rb = rates[0] / totals["blocks"] if totals["blocks"] else np.zeros(caps.shape)
    rt = rates[1] / totals["tokens"] if totals["tokens"] else np.zeros(caps.shape)
    rb = np.maximum.accumulate(np.clip(rb, 0.0, 1.0)) if rb.size else rb
    rt = np.maximum.accumulate(np.clip(rt, 0.0, 1.0)) if rt.size else rt
    return rb, rt


def _loaded_inputs(refs: SampledRefs, n_warm: int):
    """The references the curve is computed from, heavy ones flagged per reference (a loaded trace):
    all of them, or (many heavy references) the hashed ones with a subsample of the heavy ones
    (HEAVY_GROUP_REFS; their offsets counted against every heavy reference, see _heavy_offsets)."""
    n = refs.m_all.shape[0]
    heavy = refs.heavy if refs.heavy is not None and refs.heavy.any() and refs.rate < 1.0 else None
    counted_all = refs.req >= n_warm
    h_ref = np.zeros(refs.ids.shape[0], dtype=bool) if heavy is None else heavy
    chosen, ghost, h_scale = _heavy_subsample(refs.ids, h_ref)
    h_tot = None
    if heavy is not None:
        hc = counted_all & heavy
        h_tot = (float(hc.sum()), float(refs.weight[hc].sum()), int(np.unique(refs.ids[hc]).size))
    if h_scale > 1.0 and refs.pos is not None:
        S = np.flatnonzero(~h_ref | chosen | ghost)
    else:
        S = np.arange(refs.ids.shape[0])
        ghost, h_scale = np.zeros(h_ref.shape, dtype=bool), 1.0
    ids_s, req_s, hv_s = refs.ids[S], refs.req[S], None if heavy is None else heavy[S]
    off, kc, _ = _scaled(ids_s, req_s, hv_s, n)
    if S.shape[0] < refs.ids.shape[0]:
        off = _heavy_offsets(refs.ids, refs.req, refs.pos, h_ref, S)
    counted = counted_all[S] & ~ghost[S]
    window = None if refs.pos is None else _windows(ids_s, req_s, refs.pos[S], refs.m_all)
    n_heavy = int((counted_all & heavy).sum()) if heavy is not None else 0
    n_light = int(counted_all.sum()) - n_heavy
    light_blocks = int(np.unique(refs.ids[~heavy]).size if heavy is not None else np.unique(refs.ids).size)
    return (ids_s, req_s, hv_s, refs.weight[S], off, kc, counted, refs.hashes[S], h_scale, h_tot, window,
            n_heavy, n_light, light_blocks)


def _hot_inputs(refs: SampledRefs, n_warm: int) -> dict:
    """The references the curve is computed from, with the streaming scan's heavy stratum.

    The hashed references, the heavy subsample (each standing for ``n_heavy / subsample``
    heavy references) and the previous use of each ("ghost": opens its window, not counted),
    in access order; heavy blocks under ids of their own (strata kept apart). Offsets from
    :func:`hot_replay`, the hashed counts ``k`` from the stack distances (:func:`_scaled`).
    """
    hot = refs.hot
    bs = refs.block_size_tokens
    n = refs.m_all.shape[0]
    ids, req, pos = refs.ids, refs.req.astype(np.int64), refs.pos.astype(np.int64)
    nl = ids.shape[0]
    # light previous uses (request), by block then stream order
    prev = np.full(nl, -1, dtype=np.int64)
    if nl > 1:
        o = np.lexsort((np.arange(nl), ids))
        same = ids[o][1:] == ids[o][:-1]
        prev[o[1:][same]] = o[:-1][same]
    has = prev >= 0
    ql = np.flatnonzero(has)
    sub_req = hot.sub_req.astype(np.int64)
    sub_node = hot.sub_node.astype(np.int64)
    cl, hp, hc = hot_replay(hot, req[ql], req[prev[ql]], sub_req, sub_node)
    off_l = np.ones(nl, dtype=np.int64)
    off_l[ql] = 1 + cl
    # heavy rows: the subsample and the ghosts (a ghost that is itself in the subsample once)
    depth = hot.depth
    g_ok = hp >= 0
    h_req = np.concatenate([sub_req, hp[g_ok]])
    h_node = np.concatenate([sub_node, sub_node[g_ok]])
    h_isub = np.concatenate([np.ones(sub_req.shape[0], dtype=bool), np.zeros(int(g_ok.sum()), dtype=bool)])
    h_off = np.concatenate([1 + hc, np.ones(int(g_ok.sum()), dtype=np.int64)])
    key = h_req * (int(depth.max()) + 1 if depth.size else 1) + depth[h_node]
    o = np.lexsort((~h_isub, key))           # the subsample's row first among equal keys
    first = np.concatenate([[True], key[o][1:] != key[o][:-1]]) if o.size else np.zeros(0, dtype=bool)
    hk = o[first]
    h_req, h_node, h_isub, h_off = h_req[hk], h_node[hk], h_isub[hk], h_off[hk]
    base = int(max(int(ids.max()) if nl else 0, int(hot.node_ids.max()))) + 1
    h_pos = depth[h_node]
    if refs.full_blocks_only:
        h_w = np.full(h_req.shape[0], bs, dtype=np.int64)
    else:
        c = refs.m_all[h_req].astype(np.int64)
        h_w = np.where(h_pos == c - 1, refs.tokens[h_req].astype(np.int64) - (c - 1) * bs, bs)
    ids_s = np.concatenate([ids.astype(np.int64), base + h_node])
    req_s = np.concatenate([req, h_req])
    pos_s = np.concatenate([pos, h_pos])
    order = np.lexsort((pos_s, req_s))
    ids_s, req_s, pos_s = ids_s[order], req_s[order], pos_s[order]
    hv_s = np.concatenate([np.zeros(nl, dtype=bool), np.ones(h_req.shape[0], dtype=bool)])[order]
    off = np.concatenate([off_l, h_off])[order]
    w_s = np.concatenate([refs.weight.astype(np.int64), h_w])[order]
    hashes_s = np.concatenate([refs.hashes, np.zeros(h_req.shape[0], dtype=np.uint64)])[order]
    isub = np.concatenate([np.zeros(nl, dtype=bool), h_isub])[order]
    counted = (req_s >= n_warm) & (~hv_s | isub)
    _, kc, _ = _scaled(ids_s, req_s, hv_s, n)
    # heavy totals after the warm-up: references, tokens, distinct nodes
    d = hot.deep[n_warm:]
    used, per_node = np.unique(d[d >= 0], return_counts=True)    # int16: no per-request int64 copies
    used = used.astype(np.int64)
    h_refs = float(np.dot(per_node.astype(np.float64), (hot.depth[used] + 1).astype(np.float64)))
    h_tok = float(bs * h_refs)
    if not refs.full_blocks_only:
        run = hot.run_lengths()[n_warm:]
        m_c = refs.m_all[n_warm:].astype(np.int64)
        whole = (run > 0) & (run == m_c)
        part = refs.tokens[n_warm:].astype(np.int64) - (m_c - 1) * bs
        h_tok -= float(np.sum(np.where(whole, bs - part, 0)))
    h_dist = int(hot.ancestors()[used].any(axis=0).sum()) if used.size else 0
    n_sub = int((counted & hv_s).sum())
    return {"ids": ids_s, "req": req_s, "pos": pos_s, "hv": hv_s, "w": w_s, "off": off, "kc": kc,
            "counted": counted, "hashes": hashes_s, "h_scale": h_refs / n_sub if n_sub else 1.0,
            "h_tot": (h_refs, h_tok, h_dist), "n_heavy": int(h_refs),
            "n_light": int((refs.req >= n_warm).sum()), "light_blocks": int(np.unique(ids).size)}


def shards_curve(refs: SampledRefs, *, warmup_fraction: float = 0.0, capacities_blocks=None,
                 max_points: int = 400, with_error: bool = True, extra_capacities=()) -> dict:
    """The SHARDS LRU curve (block and token hit rates) from sampled references.

    See :func:`_estimate` (the estimator) and the module docstring (the error estimate).
    """
    n = refs.m_all.shape[0]
    n_warm = _n_warm(n, warmup_fraction)
    blocks_total = int(refs.m_all[n_warm:].sum(dtype=np.int64))
    tokens_total = int(refs.tokens[n_warm:].sum(dtype=np.int64))
    looked = (refs.block_size_tokens * blocks_total if refs.full_blocks_only
              else int(refs.looked_tokens[n_warm:].sum(dtype=np.int64)))
    distinct, distinct_se = None, 0.0
    if refs.last_uses is not None:
        distinct = int(refs.last_uses[n_warm:].sum())
    elif refs.distinct_estimate is not None and n_warm == 0 and refs.rate < 1.0:
        distinct, distinct_se = refs.distinct_estimate, HLL_REL_SE * refs.distinct_estimate
    totals = {"blocks": blocks_total, "tokens": tokens_total, "looked_tokens": looked, "distinct_blocks": distinct,
              "distinct_se": distinct_se, "heavy_checked": refs.heavy is not None or refs.hot is not None}
    rate = refs.rate
    if refs.hot is not None and refs.hot.node_ids.size and refs.hot.n_heavy:
        z = _hot_inputs(refs, n_warm)
        ids_s, req_s, hv_s, w_s, off, kc, counted = z["ids"], z["req"], z["hv"], z["w"], z["off"], z["kc"], z["counted"]
        hashes_s, h_scale, h_tot = z["hashes"], z["h_scale"], z["h_tot"]
        window = _windows(ids_s, req_s, z["pos"], refs.m_all, heavy=hv_s, runs=refs.hot.run_lengths())
        n_heavy, n_light, light_blocks = z["n_heavy"], z["n_light"], z["light_blocks"]
        del z
    else:
        ids_s, req_s, hv_s, w_s, off, kc, counted, hashes_s, h_scale, h_tot, window, n_heavy, n_light, \
            light_blocks = _loaded_inputs(refs, n_warm)
    fin = counted & (kc >= 0)
    sat = int(math.ceil((off[fin] + kc[fin] / rate).max())) if fin.any() else 0
    if capacities_blocks is None:
        hi = max(sat, 1)
        grid = np.unique(np.concatenate([[0], np.round(np.geomspace(1, hi, max(max_points - 1, 2))),
                                         np.asarray(list(extra_capacities), dtype=np.float64)]))
    else:
        grid = np.asarray(capacities_blocks, dtype=np.float64)
    full_grid = np.concatenate([grid, [1e300]])
    rb_all, rt_all = _estimate(off, kc, ids_s, hv_s, w_s, counted, rate, full_grid, totals, window,
                               heavy_scale=h_scale, heavy_totals=h_tot)
    rb, rt = rb_all[:-1], rt_all[:-1]
    # The window-ratio distances hand over to k / R at windows of WINDOW_BELOW / R references;
    # near the capacities those windows reach, the ratio (one per window size) leaves a bias
    # the hash groups do not see (measured up to 2 pp at 5 %, docs/trace-sampling.md). Its
    # size is read from the curve with the hand-over at half the windows: the difference
    # enters the stated error.
    hand_b = hand_t = np.zeros(grid.shape)
    if with_error and window is not None and rate < 1.0:
        hb_, ht_ = _estimate(off, kc, ids_s, hv_s, w_s, counted, rate, grid, totals, window,
                             heavy_scale=h_scale, heavy_totals=h_tot, window_below=WINDOW_BELOW / 2)
        hand_b, hand_t = np.abs(hb_ - rb), np.abs(ht_ - rt)
        # The ratio is one per window size (quarter octaves): references whose windows hold
        # fewer or more hashed blocks than the average of their size are moved to it, a bias
        # at the small capacities (measured -0.8 pp at C = 4 blocks, 5 %, generated 10^6
        # trace). Read from the curve with half-octave sizes (twice the spread): the difference.
        ob_, ot_ = _estimate(off, kc, ids_s, hv_s, w_s, counted, rate, grid, totals, window,
                             heavy_scale=h_scale, heavy_totals=h_tot, per_octave=2)
        hand_b, hand_t = hand_b + np.abs(ob_ - rb), hand_t + np.abs(ot_ - rt)
        # Below ~1 / R blocks the ratio gives each reference its bin's mean count: the curve
        # is F(off + mean K) where the truth is E F(off + K). To second order the difference
        # is Var(K) / 2 x F'', which the mean of the curves with every ratio distance moved
        # by -/+ one standard deviation of K in its bin (estimated from the residuals, see
        # _window_distances) reproduces: that mean minus the curve enters the bound.
        pb_, pt_ = _estimate(off, kc, ids_s, hv_s, w_s, counted, rate, grid, totals, window,
                             heavy_scale=h_scale, heavy_totals=h_tot, spread=1.0)
        mb_, mt_ = _estimate(off, kc, ids_s, hv_s, w_s, counted, rate, grid, totals, window,
                             heavy_scale=h_scale, heavy_totals=h_tot, spread=-1.0)
        spread_b, spread_t = np.abs(0.5 * (pb_ + mb_) - rb), np.abs(0.5 * (pt_ + mt_) - rt)
        hand_b, hand_t = hand_b + spread_b, hand_t + spread_t
    out = {
        "method": "SHARDS (Waldspurger et al., FAST 2015): spatially hashed sampling of block ids; "
                  + ("heavy blocks kept whole; " if n_heavy else "")
                  + "regression (GREG) estimate on the exact totals of references"
                  + (" and distinct blocks" if totals["distinct_blocks"] is not None else ""),
        "rate": rate,
        "threshold": refs.threshold,
        "hash_bits": HASH_BITS,
        "sampled_references": n_light + n_heavy,
        "heavy_references": n_heavy,
        "expected_references": rate * blocks_total,
        "sampled_blocks": light_blocks,
        "capacities_blocks": grid.astype(np.int64).tolist(),
        "block_hit_rate": rb.tolist(),
        "token_hit_rate": rt.tolist(),
        "saturation_capacity_blocks": sat,
        # below 1 / R blocks a sampled distance cannot tell C from 0 (one sampled block = 1 / R blocks)
        "resolved_from_capacity_blocks": int(math.ceil(1.0 / rate - 1e-9)) if rate < 1.0 else 0,
        "ideal_block_hit_rate": float(rb_all[-1]),
        "ideal_token_hit_rate": float(rt_all[-1]),
        "blocks_looked_up": blocks_total,
        "prompt_tokens": tokens_total,
        "distinct_blocks_known": totals["distinct_blocks"] is not None,
        "heavy_unseen_references": 0,
    }
    # Heavy hitters left in the sampled stratum (no exact totals: the streaming scan): a few
    # blocks carrying a large share of the references make the estimate jumpy. They show as a
    # sample size far from its expectation R * N (hot blocks missed: too few; caught: too many).
    expected = rate * (blocks_total - n_heavy)
    dev = (n_light / expected - 1.0) if expected > 0 else 0.0
    out["sample_size_deviation"] = dev
    out["warning"] = (f"the sample holds {100 * dev:+.0f} % references against its expectation R x N: a few blocks "
                      "shared by many requests (a system prompt) dominate; the sampled curve is unreliable "
                      "(errors of several points, possibly beyond the stated bound); use exact mode or a "
                      "higher rate" if abs(dev) > 0.2 else None)
    if with_error and rate >= 1.0:
        # Every reference kept: the curve is the exact one (the hash groups, each a sample at
        # R / G, would state their own error, about 17 pp on a 400-request trace).
        zero = [0.0] * int(grid.shape[0])
        out.update({"standard_error_block": zero, "standard_error_token": zero, "bias_block": zero,
                    "bias_token": zero, "extra_error_block": zero, "extra_error_token": zero,
                    "error_bound_pp": 0.0, "error_mean_pp": 0.0,
                    "error_estimate": "rate 1: every reference kept, the curve is exact"})
        # a fleet sums the group curves (fleet_sample.py): at rate 1 each is the exact curve
        out["group_curves_block"] = np.tile(np.asarray(rb, dtype=np.float64), (SAMPLE_GROUPS, 1))
        out["group_curves_token"] = np.tile(np.asarray(rt, dtype=np.float64), (SAMPLE_GROUPS, 1))
    elif with_error:
        g = _group_of(hashes_s)
        gr = rate / SAMPLE_GROUPS
        curves_b, curves_t = [], []
        # Each group: its hashed blocks with the heavy references (all, or the subsample with
        # its "ghosts"); the offsets (heavy blocks in a window) are the full sample's, the group
        # only recounts its own hashed blocks.
        hv_g = np.zeros(ids_s.shape[0], dtype=bool) if hv_s is None else hv_s
        for j in range(SAMPLE_GROUPS):
            idx = np.flatnonzero((g == j) & ~hv_g | hv_g)
            if idx.size == 0:
                curves_b.append(np.zeros(grid.shape))
                curves_t.append(np.zeros(grid.shape))
                continue
            hj = None if hv_s is None else hv_s[idx]
            _, kj, _ = _scaled(ids_s[idx], req_s[idx], hj, n)
            bj, tj = _estimate(off[idx], kj, ids_s[idx], hj, w_s[idx], counted[idx], gr, grid, totals,
                               None if window is None else window[idx], heavy_scale=h_scale, heavy_totals=h_tot)
            curves_b.append(bj)
            curves_t.append(tj)
        cb_, ct_ = np.array(curves_b), np.array(curves_t)
        se_b = np.std(cb_, axis=0, ddof=1) / math.sqrt(SAMPLE_GROUPS)
        se_t = np.std(ct_, axis=0, ddof=1) / math.sqrt(SAMPLE_GROUPS)
        # Bias: the groups are samples at R / G; an estimator bias falling as 1 / R (the
        # quantised distances, the fitted coefficients) is G times larger there, so
        # mean(group curves) - curve = (G - 1) x bias(R).
        bias_b = (cb_.mean(axis=0) - rb) / (SAMPLE_GROUPS - 1)
        bias_t = (ct_.mean(axis=0) - rt) / (SAMPLE_GROUPS - 1)
        # An estimated distinct-block total (HyperLogLog) moves the curve by up to its error.
        d_b = distinct_se / blocks_total if blocks_total else 0.0
        d_t = distinct_se * (looked / blocks_total) / tokens_total if blocks_total and tokens_total else 0.0
        err_b = np.abs(bias_b) + 3 * np.hypot(se_b, d_b) + hand_b
        err_t = np.abs(bias_t) + 3 * np.hypot(se_t, d_t) + hand_t
        out["standard_error_block"] = se_b.tolist()
        out["standard_error_token"] = se_t.tolist()
        out["bias_block"] = bias_b.tolist()
        out["bias_token"] = bias_t.tolist()
        out["group_curves_block"], out["group_curves_token"] = cb_, ct_   # arrays (a fleet sums them)
        out["extra_error_block"] = hand_b.tolist()
        out["extra_error_token"] = hand_t.tolist()
        out["error_bound_pp"] = float(100 * max(err_b.max(), err_t.max())) if grid.size else 0.0
        out["error_mean_pp"] = float(100 * max(np.hypot(np.hypot(bias_b, se_b), hand_b).mean(),
                                               np.hypot(np.hypot(bias_t, se_t), hand_t).mean())) \
            if grid.size else 0.0
        bound = out["error_bound_pp"]
        if bound > ACCURACY_TARGET_PP and rate < 1.0:
            need = min(1.0, rate * (bound / ACCURACY_TARGET_PP) ** 2)
            out["accuracy_warning"] = {
                "sampled_blocks": out["sampled_blocks"], "error_bound_pp": round(bound, 1), "target_pp": ACCURACY_TARGET_PP,
                "rate_needed_fraction": need,
                "message": (f"the sample holds {out['sampled_blocks']} distinct blocks: its stated error is up to "
                            f"{bound:.1f} pp, above {ACCURACY_TARGET_PP:g} pp; the error falls as 1/sqrt(rate): a rate "
                            f"of about {need:.2g} (or exact mode) would give {ACCURACY_TARGET_PP:g} pp")}
        out["error_estimate"] = (f"{SAMPLE_GROUPS} disjoint hash groups, each a sample at rate R/{SAMPLE_GROUPS}: "
                                 "standard error = sd of their curves / sqrt(groups); bias = (mean of their curves "
                                 f"- curve) / {SAMPLE_GROUPS - 1}; hand-over = |curve - curve with the window-ratio distances "
                                 "handing over at half the windows| + |curve - curve with half-octave window bins| + "
                                 "|curve - mean of the curves with the window-ratio distances moved by -/+ one standard "
                                 "deviation| (the spread the ratio averages out, below ~1/R blocks); bound = |bias| + 3 "
                                 "standard errors + that at the worst capacity; "
                                 "mean = root mean square of the three over capacities")
    return out


def refs_from_scan(arr: dict, block_size_tokens: int, full_blocks_only: bool) -> SampledRefs:
    """SampledRefs from :func:`.fastload.scan_mooncake` run with a sampling threshold."""
    bs = block_size_tokens
    cnt = arr["counts"]
    inp = arr["input_tokens"]
    # The scan's arrays are taken out of ``arr`` (freed once copied to the kept subset).
    ids, hashes, req, pos = arr.pop("ids"), arr.pop("hashes"), arr.pop("req"), arr.pop("pos")
    if full_blocks_only:
        m_all = np.minimum(inp // bs, cnt)
        keep = pos < m_all[req]
        weight = np.full(int(keep.sum()), bs, dtype=np.int64)
        looked = m_all              # unused with full blocks (looked-up tokens = bs x blocks)
    else:
        m_all = cnt
        keep = np.ones(pos.shape[0], dtype=bool)
        c = cnt[req].astype(np.int64)
        weight = np.where(pos == c - 1, inp[req].astype(np.int64) - (c - 1) * bs, bs).astype(np.int64)
        looked = inp
    # Per-request arrays stay as narrow as the scan made them (sums use int64 accumulators).
    whole = bool(keep.all())
    pick = (lambda a: a) if whole else (lambda a: a[keep])
    return SampledRefs(pick(ids), pick(hashes), pick(req), weight, m_all, inp, looked,
                       int(arr["threshold"]), bs, full_blocks_only, pos=pick(pos),
                       distinct_estimate=hll_count(arr["sketch"]) if arr.get("sketch") is not None else None,
                       hot=arr.get("hot"))


def _light_stats(ts_s: np.ndarray, inp: np.ndarray, out: np.ndarray, n_blocks_total: int, bs: int) -> dict:
    from .stats import _quantiles
    n = int(ts_s.shape[0])
    span = float(ts_s[-1] - ts_s[0]) if n else 0.0
    return {"n_requests": n, "duration_s": span, "arrival_rate_per_s": n / span if span > 0 else None,
            "block_size_tokens": bs, "n_blocks_total": int(n_blocks_total),
            "input_tokens": _quantiles(inp), "output_tokens": _quantiles(out),
            "sessions": None,
            "note": "sampled mode: per-request statistics only (sessions, reuse gaps, shared prefixes and the "
                    "workload fit need every block)"}


def _fit_size(refs: SampledRefs, max_refs: int | None) -> SampledRefs:
    """Halve the rate until at most ``max_refs`` hashed references are kept (heavy ones apart)."""
    def hashed() -> int:
        return refs.ids.shape[0] - (int(refs.heavy.sum()) if refs.heavy is not None else 0)
    while max_refs is not None and hashed() > max_refs and refs.threshold > 1:
        refs = refs.lowered(refs.threshold // 2)
    return refs


def load_sampled(source, rate: float, *, max_refs: int | None = None, seed: int = 0, full_blocks_only: bool = True,
                 fleet_keys: dict | None = None, **load_opts) -> tuple[SampledRefs, dict, dict]:
    """Read a trace keeping only a hashed sample of its block references.

    Canonical Mooncake inputs (path or bytes) are scanned by :mod:`.fastload`
    with the sample filter, so memory holds per-request numbers (4 per
    request) and the sample, never the trace's block ids. Other inputs are
    loaded exactly, then sampled (memory as in exact mode; said in
    ``info["loader"]``). Returns (refs, detection info, light statistics). ``fleet_keys``
    (a dict, for a fleet's routing) receives ``first_ids`` (each request's first raw block id)
    from the scan, or ``trace`` (the loaded trace) otherwise.
    """
    from .fastload import NotCanonical, scan_mooncake
    from .loaders import load_trace
    from .reader import LineReader, ReadLimits, is_restartable

    rate = check_rate(rate)
    if max_refs is not None and (isinstance(max_refs, bool) or not isinstance(max_refs, int) or max_refs < 1):
        raise InputError("sampling_max_refs", max_refs, "a positive integer")
    head_opts = {k: v for k, v in load_opts.items() if k not in ("max_requests", "progress", "cancel", "keep_partial")}
    head = load_trace(source, max_requests=200, fast_path=False, **head_opts)
    bs = head.block_size_tokens
    if head.format == "mooncake" and head.info["chaining"].startswith("verified") \
            and is_restartable(source):
        if True:
            counter = [0]
            reader = LineReader(source, ReadLimits(load_opts.get("max_bytes"), load_opts.get("max_lines"),
                                                   load_opts.get("max_line_bytes")),
                                progress=load_opts.get("progress"), cancel=load_opts.get("cancel"),
                                requests_seen=lambda: counter[0])
            try:
                arr = scan_mooncake(reader, bs, max_requests=load_opts.get("max_requests"),
                                    sample_threshold=sample_threshold(rate), sample_seed=seed,
                                    max_sampled_refs=max_refs, counter=counter,
                                    heavy_detect=sample_threshold(rate) < _P or max_refs is not None,
                                    sketch_full_blocks=full_blocks_only,
                                    keep_first_ids=fleet_keys is not None)
                if fleet_keys is not None:
                    fleet_keys["first_ids"] = arr.pop("first_ids")
                ids, pos = arr["ids"], arr["pos"]
                if ids.size:
                    _, first, inv = np.unique(ids, return_index=True, return_inverse=True)
                    if not np.array_equal(pos[first][inv.reshape(-1)], pos):
                        raise NotCanonical("sampled ids at two positions")
                    del first, inv
                del ids, pos
                refs = refs_from_scan(arr, bs, full_blocks_only)
                ts = arr.pop("ts_ms")
                t0_ms = int(ts[0])
                ts = ts.astype(np.float64)      # one per-request float array (the int64 one let go)
                ts -= t0_ms
                ts *= 1e-3
                info = dict(head.info)
                info.update({"n_requests": int(ts.shape[0]), "n_blocks_total": int(arr["counts"].sum(dtype=np.int64)),
                             "n_blocks_unique": None, "t0_s": t0_ms * 1e-3, "truncated": arr["truncated"],
                             "bytes_read": reader.bytes_in, "stopped": None,
                             "chaining": "verified prefix-chained on the sampled ids",
                             "loader": "fast path with sampling (per-request numbers and the sample kept)",
                             "read": {"bytes_read": reader.bytes_in, "bytes_decompressed": reader.bytes_out,
                                      "gzip": reader.gzip, "lines": arr["lines"], "blank_lines": 0,
                                      "limits": reader.limits.as_dict()}})
                stats = _light_stats(ts, arr["input_tokens"], arr["output_tokens"],
                                     info["n_blocks_total"], bs)
                return refs, info, stats
            except NotCanonical:
                pass
            finally:
                reader.close()
    trace = load_trace(source, **load_opts)
    if fleet_keys is not None:
        fleet_keys["trace"] = trace
    refs = _fit_size(refs_from_trace(trace, rate, full_blocks_only=full_blocks_only, seed=seed,
                                     heavy_budget_refs=None if max_refs is None else max_refs // 2), max_refs)
    info = dict(trace.info)
    info["loader"] = info.get("loader", "") + "; then sampled (memory as in exact mode: not a canonical Mooncake file)"
    stats = _light_stats(trace.timestamps_s, trace.input_tokens, trace.output_tokens, trace.n_blocks_total, bs)
    return refs, info, stats
