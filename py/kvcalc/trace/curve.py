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
count done bit by bit in numpy passes (``bit_length(n)`` linear passes, no sort).
With prefix-chained ids a request's own tail blocks used just before block
``i`` were all older than it, so the distance at lookup time is the one at
access time minus ``n - 1 - i``; the loaders guarantee chained ids and
:func:`lru_curve` checks it.
"""

from __future__ import annotations

import math
import sys
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
            + (f"the first {100 * warmup_fraction:g} % of requests replayed but not counted (warm-up); "
               if warmup_fraction > 0 else "every request counted (no warm-up); ") +
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
    ids, req, pos, m, starts = _kept_refs(trace, full_blocks_only)
    return ids, req, pos, _weights(trace, full_blocks_only, m, starts), m, starts


def _kept_refs(trace: Trace, full_blocks_only: bool):
    """:func:`_kept` without the tokens: ``ids, req, pos, m, starts``."""
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
    return ids, req, pos, m, starts


def _weights(trace: Trace, full_blocks_only: bool, m: np.ndarray, starts: np.ndarray,
             dtype=np.int64) -> np.ndarray:
    """Tokens of each looked-up block: the block size, or the partial last block's tokens.

    ``dtype=np.int32`` halves the memory (every value is <= block_size); sums of
    it must then accumulate as int64 explicitly (numpy's default is 32-bit on wasm32).
    """
    bs = trace.block_size_tokens
    if bs >= (1 << 31):  # pragma: no cover - block sizes are far smaller
        dtype = np.int64
    weight = np.full(int(starts[-1]), bs, dtype=dtype)
    if not full_blocks_only:
        inp = trace.input_tokens
        last = starts[1:] - 1
        has = m > 0
        weight[last[has]] = inp[has] - (m[has] - 1) * bs
    return weight


def _stable_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``np.argsort(x, kind="stable")``, ``x`` sorted) for non-negative integers.

    When values and positions fit in 31 bits each, one plain sort of the packed
    keys ``x << 32 | position`` (distinct, so any sort kind gives the stable
    order; numpy's default sort is several times faster than a stable argsort).
    """
    n = x.shape[0]
    if n and n < (1 << 31) and int(x.min()) >= 0 and int(x.max()) < (1 << 31):
        key = x.astype(np.int64)
        key <<= 32
        halves = key.view(np.int32)                 # (low, high) 32-bit words of each key
        lo, hi = (0, 1) if sys.byteorder == "little" else (1, 0)
        halves[lo::2] = np.arange(n, dtype=np.int32)    # the low word: the position
        key.sort()
        order = halves[lo::2].astype(_index_dtype(n))
        xs = halves[hi::2].astype(x.dtype)
        return order, xs
    order = np.argsort(x, kind="stable")
    return order, x[order]


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


def _count_earlier_smaller(a: np.ndarray) -> np.ndarray:
    """#{s < t : a[s] < a[t]} for every t (int32 while it fits), for DISTINCT non-negative integers ``a``.

    Bit by bit from the most significant (a wavelet-tree walk in numpy passes):
    the elements are kept in a stable order by their higher bits (the groups of
    equal higher bits are contiguous, positions ascending inside each); at bit
    ``b`` every element whose bit is 1 counts the earlier elements of its group
    whose bit is 0 (they are earlier and smaller), by one cumulative sum; then
    each group is split stably into its 0s and its 1s by a computed scatter (no
    sort). ``bit_length(max a)`` passes, each linear; int32 arrays while they fit.
    """
    n = a.shape[0]
    it = _index_dtype(max(n, int(a.max()) + 1) if n else 0)
    if n == 0:
        return np.zeros(0, dtype=it)
    v = a.astype(it, copy=False)    # never written: each pass scatters into a new array
    cnt = np.zeros(n, dtype=it)
    cz = np.zeros(n + 1, dtype=it)                  # zeros (bit 0) before each position (then ones)
    flag = np.empty(n, dtype=bool)
    for b in range(int(a.max()).bit_length() - 1, -1, -1):
        bit = ((v >> b) & 1).astype(bool)
        g = v >> (b + 1)
        flag[0] = True
        np.not_equal(g[1:], g[:-1], out=flag[1:])  # an element starting a group
        del g
        np.logical_not(bit, out=cz[1:])            # cast into cz, then summed in place: a cumsum
        np.add.accumulate(cz[1:], out=cz[1:])       # that casts copies its whole input first
        # An element at i of the group [s, e): zeros before it in the group
        # zb = cz[i] - cz[s]; a 0 moves to s + zb, a 1 to s + (zeros of the
        # group) + (ones before it) = cz[e] + (i - cz[i]), ones before i.
        edge = np.arange(n, dtype=it)
        edge *= flag                                # s of each element: its group's start,
        np.maximum.accumulate(edge, out=edge)       # carried forward
        newpos = cz[edge]
        np.subtract(cz[:-1], newpos, out=newpos)    # zb
        np.add(cnt, newpos, out=cnt, where=bit)     # a 1 counts the earlier 0s of its group
        newpos += edge                              # the place of a 0
        edge.fill(n)                                # cz[e] of each element: cz at the next group's
        np.copyto(edge[:-1], cz[1:-1], where=flag[1:])  # start (or the end), carried backward
        edge[-1] = cz[n]                            # (cz never decreases: the nearest is the least)
        np.minimum.accumulate(edge[::-1], out=edge[::-1])
        np.copyto(cz[1:], bit)                      # cz now counts the ones: i - cz[i] before i
        np.add.accumulate(cz[1:], out=cz[1:])
        edge += cz[:-1]                             # the place of a 1: cz[e] + ones before i
        np.copyto(newpos, edge, where=bit)
        del edge, bit
        nv = np.empty_like(v)
        nv[newpos] = v
        v = nv
        nc = np.empty_like(cnt)
        nc[newpos] = cnt
        cnt = nc
        del newpos, nv, nc
    del v, cz, flag
    order, _ = _stable_order(a)                     # final order: by value (distinct)
    out = np.empty(n, dtype=it)
    out[order] = cnt
    return out


def lookup_distances(ids: np.ndarray, req: np.ndarray, m: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """LRU stack distance at lookup time of each reference (``_INF`` for a first use).

    ``ids`` head first per request, ``req`` the request of each reference,
    ``m`` the references per request and ``starts`` their offsets (``m.cumsum()``
    with a leading 0). Each request's references are accessed tail first; the
    distance at lookup is the one at access minus the request's own newer
    references (its tail blocks, used just before).
    """
    return _lookup_distances([ids], req, m, starts)


def _lookup_distances(holder: list, req: np.ndarray, m: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """:func:`lookup_distances` with ``ids`` handed over in a one-item list (freed once read)."""
    ids = holder.pop()                  # the only reference when the caller let go of its own
    total = ids.shape[0]
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    it = _index_dtype(total)
    st = starts.astype(it)
    mi = m.astype(it)
    # Position of each reference in the access sequence (tail first per request):
    # the reversal inside each request, an involution (it maps back the same way).
    acc_index = np.arange(total, dtype=it)
    acc_index -= st[req]
    np.subtract(mi[req] - 1, acc_index, out=acc_index)
    acc_index += st[req]
    x = np.empty(total, dtype=ids.dtype)
    x[acc_index] = ids
    del acc_index, ids
    order, xs = _stable_order(x)
    del x
    same = xs[1:] == xs[:-1]
    del xs
    order = order.astype(it, copy=False)
    prev = np.full(total, -1, dtype=it)
    prev[order[1:][same]] = order[:-1][same]
    del order, same
    # First uses (prev = -1) are smaller than every re-use; the k-th re-use, at
    # access position q[k], has q[k] - k first uses before it. The count runs
    # over the re-uses alone.
    reused = prev >= 0                  # kept as a mask (not its indices) during the count
    pq = prev[reused]
    del prev
    dq = _count_earlier_smaller(pq)
    dq -= pq
    del pq
    q = np.flatnonzero(reused).astype(it, copy=False)
    del reused
    dq += q
    dq -= np.arange(q.shape[0], dtype=it)         # + first uses before: distance at access
    rq = req[q]
    sq = st[rq]
    q -= sq                                       # own blocks accessed before it (its tail)
    dq -= q                                       # distance at lookup
    np.subtract(mi[rq] - 1, q, out=q)
    q += sq                                       # head-first index of each re-use
    del rq, sq
    d = np.full(total, _INF, dtype=np.int64)
    d[q] = dq
    return d


def _stack_distances(trace: Trace, full_blocks_only: bool):
    """Prefix-max LRU stack distance at lookup time for every looked-up block."""
    ids, req, pos, m, starts = _kept_refs(trace, full_blocks_only)
    _check_chained(ids, pos)
    del pos
    total = ids.shape[0]
    weights = lambda: _weights(trace, full_blocks_only, m, starts, np.int32)  # noqa: E731 - made late (memory)
    if total == 0:
        return req, weights(), np.zeros(0, dtype=np.int64)
    holder = [ids]
    del ids                             # lookup frees the ids once it has read them
    d = _lookup_distances(holder, req, m, starts)
    if (d < 1).any():  # pragma: no cover - impossible for chained ids
        raise AssertionError("negative stack distance: ids not prefix-chained")
    # Prefix maximum per request (a no-op for chained ids, where distances rise
    # along the prompt; kept so the prefix rule holds by construction).
    rising = d[1:] >= d[:-1]
    rising |= req[1:] != req[:-1]
    if rising.all():
        return req, weights(), d
    del rising
    cap = total + 2
    dc = np.minimum(d, cap)
    seg = req.astype(np.int64) * (cap + 1)
    pm = np.maximum.accumulate(seg + dc) - seg
    pm = np.where(pm >= cap, _INF, pm)
    return req, weights(), pm


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
        k = k.astype(np.int64)
        if self.cum_tokens.size == 0:
            return k, np.zeros(k.shape, dtype=np.int64)
        # Tokens of the first k blocks (0 for k = 0), read in place: no shifted copy of cum_tokens.
        return k, np.where(k > 0, self.cum_tokens[np.maximum(k - 1, 0)], 0).astype(np.int64, copy=False)

    def rates_at(self, capacities_blocks) -> tuple[np.ndarray, np.ndarray]:
        b, t = self.hits_at(capacities_blocks)
        return (b / self.blocks_total if self.blocks_total else np.zeros(b.shape),
                t / self.tokens_total if self.tokens_total else np.zeros(t.shape))

    def grid(self, max_points: int = 400) -> np.ndarray:
        """Capacities where the curve steps, thinned log-uniformly to <= max_points."""
        d = self.distances                      # sorted: its distinct values without np.unique's sorted copy
        u = d[np.concatenate([[True], d[1:] != d[:-1]])] if d.size else d[:0]
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
    req, weight, pm = _stack_distances(trace, full_blocks_only)
    n = trace.n_requests
    n_warm = _n_warm(n, warmup_fraction)
    counted = req >= n_warm
    del req
    blocks_total = int(counted.sum())
    hit_able = pm != _INF
    hit_able &= counted
    del counted
    d = pm[hit_able]
    del pm
    w = weight[hit_able]
    del weight, hit_able
    if d.size and int(d.max()) < (1 << 31):
        d = d.astype(np.int32)          # distances <= looked-up blocks: sort half-width keys
    order, ds = _stable_order(d)
    del d
    tokens = w[order]
    del w, order
    cum_tokens = tokens.astype(np.int64)    # summed as int64 (int32 weights; 32-bit default on wasm32),
    del tokens
    np.cumsum(cum_tokens, out=cum_tokens)   # in place: a casting cumsum would copy its input first
    return HitCurve(
        distances=ds.astype(np.int64, copy=False),
        cum_tokens=cum_tokens,
        blocks_total=blocks_total,
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
