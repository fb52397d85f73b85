"""Exact prefix-cache hit-rate curves of a trace: LRU at every capacity in one pass.

Counting rules (the same in the one-pass curve and in the replay references):

1. A request looks the cache up as it was when it arrived: its hit is the
   longest prefix of its blocks present in the cache. Then all its blocks (hit
   or not) are inserted or refreshed tail-first, as vLLM frees a finished
   request's blocks, so the head ends up most recently used. In-flight
   requests are not pinned (the trace has no completion times).
2. ``full_blocks_only=True`` (vLLM): the last partial block of a prompt is
   neither looked up nor cached; a hit block is worth ``block_size`` tokens.
   ``False``: the partial block is a block too, worth
   ``input_length - (n - 1) * block_size`` tokens.
3. Block hit rate = hit blocks / looked-up blocks; token hit rate = hit tokens
   / prompt tokens (all of them, partial blocks included), both over the
   counted requests: the first ``floor(warmup_fraction * n)`` requests are
   replayed but not counted.

Algorithm (Mattson): under LRU the cache of capacity ``C`` holds the ``C`` most
recently used distinct blocks, so a block is present iff its stack distance
(1 + distinct blocks used since its last use) is <= C. The hit length at C is
the number of leading blocks whose prefix-maximum stack distance is <= C, so
one sort of those prefix maxima gives the hit count at every capacity. The
stack distances come from the access sequence (each request's blocks
tail-first): with ``prev[t]`` the previous use of the block used at ``t``,
``distance = #{s < t : prev[s] < prev[t]} - prev[t]``, an "earlier smaller"
count done by a bottom-up merge sort in numpy (``log2 n`` vectorised passes).
With prefix-chained ids a request's own tail blocks used just before block
``i`` were all older than it, so the distance at lookup time is the one at
access time minus ``n - 1 - i``; the loaders guarantee chained ids and
:func:`lru_curve` checks it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .loaders import Trace

__all__ = ["HitCurve", "lru_curve", "hit_rate_curve", "lru_replay", "fifo_replay",
           "capacity_for_hit_rate", "ideal_hit_rates", "counting_rule_text"]

_INF = np.iinfo(np.int64).max


def counting_rule_text(full_blocks_only: bool, warmup_fraction: float) -> str:
    blocks = ("full blocks only: the last partial block of a prompt is neither hit nor cached, "
              "a hit block counts block_size tokens" if full_blocks_only else
              "partial blocks too: the last block of a prompt is cached and counts "
              "input_length - (n-1)*block_size tokens")
    return ("LRU over blocks; a request hits the longest prefix of its blocks present when it arrives, "
            "then refreshes all its blocks tail-first (head most recent); " + blocks +
            "; token hit rate = hit tokens / all prompt tokens; block hit rate = hit blocks / looked-up blocks; "
            f"the first {100 * warmup_fraction:g} % of requests replayed but not counted (warm-up); "
            "in-flight requests not pinned")


# ----------------------------------------------------------------------------- references

def _check_options(full_blocks_only, warmup_fraction) -> tuple[bool, float]:
    if not isinstance(full_blocks_only, bool):
        raise InputError("full_blocks_only", full_blocks_only, "true or false", "not a boolean")
    if isinstance(warmup_fraction, bool) or not isinstance(warmup_fraction, (int, float)) \
            or not 0.0 <= float(warmup_fraction) < 1.0:
        raise InputError("warmup_fraction", warmup_fraction, "a number in [0, 1)")
    return full_blocks_only, float(warmup_fraction)


def _index_dtype(total: int):
    """int32 for index arrays while they fit (half the memory), else int64."""
    return np.int32 if total < (1 << 31) - 2 else np.int64


def _kept(trace: Trace, full_blocks_only: bool):
    """Per request the looked-up blocks (head first): flat ids, request, position, tokens.

    ``ids``, ``req`` and ``pos`` are int32 while they fit; ``m`` and ``starts`` int64.
    """
    bs = trace.block_size_tokens
    n_ids = np.diff(trace.block_offsets)
    inp = trace.input_tokens
    m = inp // bs if full_blocks_only else n_ids
    m = np.minimum(m, n_ids)
    n = m.shape[0]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(m, out=starts[1:])
    total = int(starts[-1])
    it = _index_dtype(max(total, trace.n_blocks_total, n))
    req = np.repeat(np.arange(n, dtype=it), m.astype(np.intp))
    pos = np.arange(total, dtype=it) - starts[:-1].astype(it)[req]
    ids = trace.block_ids[trace.block_offsets[:-1][req] + pos]
    if ids.size and it is np.int32 and int(ids.max()) < (1 << 31) - 2:
        ids = ids.astype(np.int32)
    weight = np.full(total, bs, dtype=np.int64)
    if not full_blocks_only:
        last = starts[1:] - 1
        has = m > 0
        weight[last[has]] = inp[has] - (m[has] - 1) * bs
    return ids, req, pos, weight, m, starts


def _check_chained(ids: np.ndarray, pos: np.ndarray) -> None:
    """Each id must sit at one position after one predecessor (prefix-chained)."""
    if ids.size == 0:
        return
    pred = np.where(pos > 0, np.roll(ids, 1), -1)
    nu = int(ids.max()) + 1
    for arr in (pos, pred):
        seen = np.full(nu, -2, dtype=np.int64)
        seen[ids] = arr
        if not np.array_equal(seen[ids], arr):
            raise InputError("trace", "block ids", "prefix-chained ids (load with the trace loaders)",
                             "block ids are not prefix-chained")


def _count_within_blocks(a: np.ndarray, block: int) -> np.ndarray:
    """For each t: #{s < t in t's block of ``block`` (a power of 2) positions : a[s] < a[t]}.

    Bottom-up merge sort in numpy passes (one pass per doubling of the block).
    """
    n = a.shape[0]
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    v = a - a.min()
    span = int(v.max()) + 1
    idx = np.arange(n, dtype=np.int64)
    sorted_vals = v.copy()          # sorted within blocks of size 2**shift
    shift = 0
    while (1 << shift) < min(n, block):
        qb = idx >> shift
        odd = (qb & 1) == 1
        if odd.any():
            q = idx[odd]
            left = qb[odd] - 1
            keys = (idx >> shift) * span + sorted_vals     # globally sorted
            out[odd] += np.searchsorted(keys, left * span + v[q], side="left") - (left << shift)
            del keys
        shift += 1
        base = (idx >> shift) * span
        sorted_vals = np.sort(base + sorted_vals, kind="stable") - base
        del base
    return out


#: Block of the merge passes; above, batches are counted against the sorted union of earlier ones.
_LEAF = 1 << 8
_FANOUT = 16


def _count_batched(a: np.ndarray, lo: int, within: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add to ``out[lo:lo+n]`` the counts from earlier batches; return ``a`` sorted and its order."""
    n = a.shape[0]
    if n <= _LEAF:
        out[lo:lo + n] = within[lo:lo + n]
        order = np.argsort(a, kind="stable")
        return a[order], order
    size = max(_LEAF, -(-n // _FANOUT))
    size = 1 << (size - 1).bit_length()          # a multiple of the leaf block
    done_v = np.empty(0, dtype=a.dtype)
    done_i = np.empty(0, dtype=np.int64)
    for s in range(0, n, size):
        bv, bi = _count_batched(a[s:s + size], lo + s, within, out)
        bi = bi + s
        if done_v.size:
            pos = np.searchsorted(done_v, bv, side="left")     # sorted keys: a forward scan
            out[lo + bi] += pos
            pos += np.arange(bv.size)
        else:
            pos = np.arange(bv.size)
        mv = np.empty(done_v.size + bv.size, dtype=a.dtype)
        mi = np.empty(mv.size, dtype=np.int64)
        keep = np.ones(mv.size, dtype=bool)
        keep[pos] = False
        mv[pos] = bv
        mi[pos] = bi
        mv[keep] = done_v
        mi[keep] = done_i
        done_v, done_i = mv, mi
    return done_v, done_i


def _count_earlier_smaller(a: np.ndarray, queries: np.ndarray | None = None) -> np.ndarray:
    """#{s < t : a[s] < a[t]} for every t (or the ``queries`` positions).

    Merge passes inside blocks of ``_LEAF`` positions; above, the sequence is cut
    into up to ``_FANOUT`` batches recursively and each batch is counted
    against the sorted union of the earlier ones by a binary search of its own
    sorted values (a forward scan), then merged into it.
    """
    n = a.shape[0]
    if n == 0:
        return np.zeros(0 if queries is None else queries.shape[0], dtype=np.int64)
    within = _count_within_blocks(a, _LEAF)
    out = np.empty(n, dtype=np.int64)
    _count_batched(a, 0, within, out)
    return out if queries is None else out[queries]


def lookup_distances(ids: np.ndarray, req: np.ndarray, m: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """LRU stack distance at lookup time of each reference (``_INF`` for a first use).

    ``ids`` head first per request, ``req`` the request of each reference,
    ``m`` the references per request and ``starts`` their offsets (``m.cumsum()``
    with a leading 0). Each request's references are accessed tail first; the
    distance at lookup is the one at access minus the request's own newer
    references (its tail blocks, used just before).
    """
    total = ids.shape[0]
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    it = _index_dtype(total)
    st = starts.astype(it)
    back = m.astype(it)[req] - 1 - (np.arange(total, dtype=it) - st[req])   # own blocks used before
    acc_index = st[req] + back              # position of each reference in the access sequence
    del st
    x = np.empty(total, dtype=ids.dtype)
    x[acc_index] = ids
    order = np.argsort(x, kind="stable").astype(it, copy=False)
    same = x[order[1:]] == x[order[:-1]]
    del x
    prev = np.full(total, -1, dtype=it)
    prev[order[1:][same]] = order[:-1][same]
    del order, same
    # First uses (prev = -1) are smaller than every re-use: count them with a
    # cumulative sum and run the merge passes over the re-uses alone.
    first = prev < 0
    q = np.nonzero(~first)[0].astype(it, copy=False)
    firsts_before = (np.cumsum(first, dtype=it) - first)[q]
    del first
    pq = prev[q]
    del prev
    dq = (firsts_before + _count_earlier_smaller(pq).astype(it, copy=False)) - pq
    del firsts_before, pq
    dist_acc = np.full(total, _INF, dtype=np.int64)
    dist_acc[q] = dq
    del dq, q
    d = dist_acc[acc_index]                 # back to head-first order
    del dist_acc, acc_index
    finite = d != _INF
    d[finite] -= back[finite]
    return d


def _stack_distances(trace: Trace, full_blocks_only: bool):
    """Prefix-max LRU stack distance at lookup time for every looked-up block."""
    ids, req, pos, weight, m, starts = _kept(trace, full_blocks_only)
    _check_chained(ids, pos)
    total = ids.shape[0]
    if total == 0:
        return ids, req, pos, weight, np.zeros(0, dtype=np.int64), m
    d = lookup_distances(ids, req, m, starts)
    finite = d != _INF
    if np.any(d[finite] < 1):  # pragma: no cover - impossible for chained ids
        raise AssertionError("negative stack distance: ids not prefix-chained")
    # Prefix maximum per request (a no-op for chained ids, where distances rise
    # along the prompt; kept so the prefix rule holds by construction).
    cap = total + 2
    dc = np.minimum(d, cap)
    seg = req.astype(np.int64) * (cap + 1)
    pm = np.maximum.accumulate(seg + dc) - seg
    pm = np.where(pm >= cap, _INF, pm)
    return ids, req, pos, weight, pm, m


# ----------------------------------------------------------------------------- the curve

@dataclass(frozen=True, eq=False)
class HitCurve:
    """Exact LRU hit counts at every capacity (a step function of capacity in blocks)."""

    distances: np.ndarray        # sorted prefix-max stack distances of counted hit-able blocks
    cum_tokens: np.ndarray       # cumulative tokens of those blocks
    blocks_total: int            # counted looked-up blocks
    tokens_total: int            # counted prompt tokens
    n_requests: int
    n_requests_counted: int
    n_blocks_total: int          # all block ids in the trace (incl. partial blocks)
    block_size_tokens: int
    full_blocks_only: bool
    warmup_fraction: float

    @property
    def ideal_block_hits(self) -> int:
        return int(self.distances.shape[0])

    @property
    def ideal_token_hits(self) -> int:
        return int(self.cum_tokens[-1]) if self.cum_tokens.size else 0

    @property
    def ideal_block_hit_rate(self) -> float:
        return self.ideal_block_hits / self.blocks_total if self.blocks_total else 0.0

    @property
    def ideal_token_hit_rate(self) -> float:
        return self.ideal_token_hits / self.tokens_total if self.tokens_total else 0.0

    @property
    def saturation_capacity_blocks(self) -> int:
        """Smallest capacity reaching the infinite-cache ceiling."""
        return int(self.distances[-1]) if self.distances.size else 0

    @property
    def counting_rule(self) -> str:
        return counting_rule_text(self.full_blocks_only, self.warmup_fraction)

    def hits_at(self, capacities_blocks) -> tuple[np.ndarray, np.ndarray]:
        """Exact (block hits, token hits) at each capacity [blocks]."""
        c = np.asarray(capacities_blocks, dtype=np.float64)
        k = np.searchsorted(self.distances, np.floor(c), side="right")
        cum = np.concatenate([[0], self.cum_tokens]).astype(np.int64)
        return k.astype(np.int64), cum[k]

    def rates_at(self, capacities_blocks) -> tuple[np.ndarray, np.ndarray]:
        b, t = self.hits_at(capacities_blocks)
        return (b / self.blocks_total if self.blocks_total else np.zeros(b.shape),
                t / self.tokens_total if self.tokens_total else np.zeros(t.shape))

    def grid(self, max_points: int = 400) -> np.ndarray:
        """Capacities where the curve steps, thinned log-uniformly to <= max_points."""
        u = np.unique(self.distances)
        if u.size <= max_points:
            return u
        targets = np.unique(np.round(np.geomspace(u[0], u[-1], max_points)))
        k = np.searchsorted(u, targets, side="right") - 1
        return np.unique(np.concatenate([u[np.clip(k, 0, None)], u[-1:]]))

    def to_dict(self, capacities_blocks=(), max_points: int = 400) -> dict:
        grid = self.grid(max_points)
        req = np.asarray(sorted({int(c) for c in capacities_blocks}), dtype=np.int64)
        caps = np.unique(np.concatenate([[0], grid, req]).astype(np.int64))
        bh, th = self.hits_at(caps)
        rb, rt = self.rates_at(caps)
        out = {
            "policy": "lru",
            "capacities_blocks": caps.tolist(),
            "block_hit_rate": rb.tolist(),
            "token_hit_rate": rt.tolist(),
            "block_hits": bh.tolist(),
            "token_hits": th.tolist(),
            "ideal_block_hit_rate": self.ideal_block_hit_rate,
            "ideal_token_hit_rate": self.ideal_token_hit_rate,
            "saturation_capacity_blocks": self.saturation_capacity_blocks,
            "counting_rule": self.counting_rule,
            "full_blocks_only": self.full_blocks_only,
            "warmup_fraction": self.warmup_fraction,
            "n_requests": self.n_requests,
            "n_requests_counted": self.n_requests_counted,
            "n_blocks_total": self.n_blocks_total,
            "blocks_looked_up": self.blocks_total,
            "prompt_tokens": self.tokens_total,
            "block_size_tokens": self.block_size_tokens,
        }
        if req.size:
            b, t = self.rates_at(req)
            out["at_capacities"] = [
                {"capacity_blocks": int(c), "block_hit_rate": float(x), "token_hit_rate": float(y)}
                for c, x, y in zip(req, b, t)]
        return out


def _n_warm(n: int, warmup_fraction: float) -> int:
    return int(math.floor(warmup_fraction * n))


def lru_curve(trace: Trace, *, full_blocks_only: bool = True, warmup_fraction: float = 0.0) -> HitCurve:
    """The exact LRU prefix-cache hit counts of ``trace`` at every capacity, in one pass."""
    full_blocks_only, warmup_fraction = _check_options(full_blocks_only, warmup_fraction)
    ids, req, pos, weight, pm, m = _stack_distances(trace, full_blocks_only)
    n = trace.n_requests
    n_warm = _n_warm(n, warmup_fraction)
    counted = req >= n_warm
    hit_able = counted & (pm != _INF)
    d = pm[hit_able]
    w = weight[hit_able]
    order = np.argsort(d, kind="stable")
    return HitCurve(
        distances=d[order],
        cum_tokens=np.cumsum(w[order]),
        blocks_total=int(counted.sum()),
        tokens_total=int(trace.input_tokens[n_warm:].sum()),
        n_requests=n,
        n_requests_counted=n - n_warm,
        n_blocks_total=trace.n_blocks_total,
        block_size_tokens=trace.block_size_tokens,
        full_blocks_only=full_blocks_only,
        warmup_fraction=warmup_fraction,
    )


def hit_rate_curve(trace: Trace, capacities_blocks=(), *, full_blocks_only: bool = True,
                   warmup_fraction: float = 0.0, max_points: int = 400) -> dict:
    """JSON-simple curve: a grid of <= max_points step capacities plus the requested ones."""
    return lru_curve(trace, full_blocks_only=full_blocks_only,
                     warmup_fraction=warmup_fraction).to_dict(capacities_blocks, max_points)


def ideal_hit_rates(trace: Trace, *, full_blocks_only: bool = True, warmup_fraction: float = 0.0) -> dict:
    """Infinite-capacity ceiling by a direct count: blocks seen before (in any earlier request)."""
    full_blocks_only, warmup_fraction = _check_options(full_blocks_only, warmup_fraction)
    ids, req, pos, weight, m, starts = _kept(trace, full_blocks_only)
    first = np.zeros(ids.shape[0], dtype=bool)
    if ids.size:
        _, first_idx = np.unique(ids, return_index=True)
        first[first_idx] = True
    n_warm = _n_warm(trace.n_requests, warmup_fraction)
    counted = req >= n_warm
    rep = counted & ~first
    blocks_total = int(counted.sum())
    tokens_total = int(trace.input_tokens[n_warm:].sum())
    return {"ideal_block_hits": int(rep.sum()), "ideal_token_hits": int(weight[rep].sum()),
            "blocks_looked_up": blocks_total, "prompt_tokens": tokens_total,
            "ideal_block_hit_rate": float(rep.sum() / blocks_total) if blocks_total else 0.0,
            "ideal_token_hit_rate": float(weight[rep].sum() / tokens_total) if tokens_total else 0.0}


# ----------------------------------------------------------------------------- replays

def _replay(trace: Trace, capacity_blocks: int, full_blocks_only: bool, warmup_fraction: float,
            refresh: bool) -> dict:
    full_blocks_only, warmup_fraction = _check_options(full_blocks_only, warmup_fraction)
    if isinstance(capacity_blocks, bool) or not isinstance(capacity_blocks, (int, np.integer)) or capacity_blocks < 0:
        raise InputError("capacity_blocks", capacity_blocks, "an integer >= 0")
    cap = int(capacity_blocks)
    bs = trace.block_size_tokens
    n = trace.n_requests
    n_warm = _n_warm(n, warmup_fraction)
    offsets = trace.block_offsets.tolist()
    ids_all = trace.block_ids.tolist()
    inp = trace.input_tokens.tolist()
    cache: OrderedDict = OrderedDict()
    block_hits = token_hits = blocks_total = 0
    for r in range(n):
        x = inp[r]
        m = x // bs if full_blocks_only else offsets[r + 1] - offsets[r]
        blocks = ids_all[offsets[r]:offsets[r] + m]
        h = 0
        while h < m and blocks[h] in cache:
            h += 1
        if r >= n_warm:
            blocks_total += m
            block_hits += h
            if h == m and m and not full_blocks_only:
                token_hits += x
            else:
                token_hits += h * bs
        for b in reversed(blocks):
            if b in cache:
                if refresh:
                    cache.move_to_end(b)
                continue
            cache[b] = None
            if len(cache) > cap:
                cache.popitem(last=False)
    tokens_total = int(trace.input_tokens[n_warm:].sum())
    return {"policy": "lru" if refresh else "fifo", "capacity_blocks": cap,
            "block_hits": block_hits, "token_hits": token_hits,
            "blocks_looked_up": blocks_total, "prompt_tokens": tokens_total,
            "block_hit_rate": block_hits / blocks_total if blocks_total else 0.0,
            "token_hit_rate": token_hits / tokens_total if tokens_total else 0.0}


def lru_replay(trace: Trace, capacity_blocks: int, *, full_blocks_only: bool = True,
               warmup_fraction: float = 0.0) -> dict:
    """Reference: a straightforward OrderedDict LRU simulation with the same counting rules."""
    return _replay(trace, capacity_blocks, full_blocks_only, warmup_fraction, refresh=True)


def fifo_replay(trace: Trace, capacity_blocks: int, *, full_blocks_only: bool = True,
                warmup_fraction: float = 0.0) -> dict:
    """FIFO by replay: same lookup rule; missing blocks inserted tail-first, hits not refreshed."""
    return _replay(trace, capacity_blocks, full_blocks_only, warmup_fraction, refresh=False)


# ----------------------------------------------------------------------------- inverse

def capacity_for_hit_rate(curve, target: float, metric: str = "token_hit_rate") -> dict:
    """Smallest capacity [blocks] whose hit rate reaches ``target``.

    ``curve`` is a :class:`HitCurve` (exact) or its ``to_dict()`` (on its grid:
    the smallest grid capacity reaching the target). Above the infinite-cache
    ceiling the answer is ``capacity_blocks: None`` with a reason.
    """
    if metric not in ("token_hit_rate", "block_hit_rate"):
        raise InputError("metric", metric, "token_hit_rate or block_hit_rate", "unknown value")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= target <= 1.0:
        raise InputError("target", target, "a number in [0, 1]")
    if isinstance(curve, HitCurve):
        ceiling = curve.ideal_token_hit_rate if metric == "token_hit_rate" else curve.ideal_block_hit_rate
        if target <= 0.0:
            return {"capacity_blocks": 0, "hit_rate": 0.0, "exact": True, "ceiling": ceiling}
        total = curve.tokens_total if metric == "token_hit_rate" else curve.blocks_total
        cum = curve.cum_tokens if metric == "token_hit_rate" else np.arange(1, curve.distances.size + 1)
        need = target * total
        k = int(np.searchsorted(cum, need - 1e-9 * max(total, 1), side="left"))
        if total == 0 or k >= cum.size:
            return {"capacity_blocks": None, "hit_rate": None, "exact": True, "ceiling": ceiling,
                    "reason": f"above the ceiling of {100 * ceiling:.2f} %"}
        c = int(curve.distances[k])
        rb, rt = curve.rates_at([c])
        return {"capacity_blocks": c, "hit_rate": float(rt[0] if metric == "token_hit_rate" else rb[0]),
                "exact": True, "ceiling": ceiling}
    caps = curve["capacities_blocks"]
    rates = curve[metric]
    ceiling = curve["ideal_token_hit_rate" if metric == "token_hit_rate" else "ideal_block_hit_rate"]
    for c, r in zip(caps, rates):
        if r >= target - 1e-12:
            return {"capacity_blocks": int(c), "hit_rate": float(r), "exact": False, "ceiling": ceiling}
    return {"capacity_blocks": None, "hit_rate": None, "exact": False, "ceiling": ceiling,
            "reason": f"above the ceiling of {100 * ceiling:.2f} %"}
