"""Seeded discrete-event simulation of the conversation workload on one prefix cache.

The simulator is the yardstick of the analytic hit-rate model (MODEL.md,
"Validation") and a product feature (simulated points beside the curve). It
implements the workload and cache semantics below literally, independently of
any formula.

Workload (one cache, session affinity)
--------------------------------------
Conversations arrive as a Poisson process (rate lambda); conversation ``c`` has
``N_c`` turns (geometric with mean L, or "fixed": floor(L), plus one with
probability L - floor(L)). Turn k (1-based) is one request with prompt
``P + (k-1)*a + u`` tokens; after it the sequence holds ``Z_k = P + k*a``
tokens (P, u, o rounded half-up to integers, a = u + o). Turn 1 starts at the
conversation's arrival; a request runs for ``S`` (deterministic); the gap from
the END of turn k to the START of turn k+1 is drawn i.i.d. (exponential,
deterministic, or lognormal with mean tau and shape sigma).

Blocks and cache
----------------
Block i covers tokens ``[i*b, (i+1)*b)``. The ``Ps = floor(P/b)`` full blocks
of the system prompt are shared by every conversation (identity
``("shared", i)``); blocks from index Ps on are the conversation's own
(identity ``(c, i)``). The cache holds ``C_b = floor(C/b)`` blocks, pinned plus
cached.

* START of turn k: the hit is the longest run of present blocks from block 0
  (stop at the first missing block), capped at ``floor((prompt-1)/b)`` blocks
  (one token is always computed). A block is present if it is cached
  (evictable) or pinned by a running request: the shared prompt blocks a
  running request holds are hit-able by others at once (vLLM registers full
  blocks when they are computed). The hit blocks are pinned (reference counts;
  shared blocks stay pinned until their last user ends); every other block of
  the sequence up to ``ceil(Z_k/b)`` is computed anew: a stale cached copy of
  such a block (present but beyond the first missing block: this only happens
  under FIFO) is dropped, and new blocks are allocated, evicting victims when
  the free pool is empty. When even evicting every evictable block is not
  enough, the request counts as an *overload* and over-allocates, so the run
  goes on.
* END (start + S): the ``floor(Z_k/b)`` full blocks become cached and
  evictable, tail first (the last block of the chain is the first victim, the
  head and the shared prompt the last: vLLM's free-block queue); shared
  blocks only when their last user ends. The partial last block is dropped.
  If an overload left the cache above capacity, victims are evicted until it
  fits again (so capacity 0 caches nothing).

Eviction policies: ``lru`` (least recently freed first, tail first within one
free), ``ttl`` (lru, and a cached block idle for more than ``ttl_s`` since its
last free is dropped; expiry is applied at every event), ``fifo`` (order of
first insertion, i.e. the first time a block becomes cached after it was
created; a hit does not refresh it; a block re-created after eviction gets a new
one; tail first within one insertion). ``lfu`` is refused (MODEL.md: plain LFU is
pathological, so it is not simulated). Equal-time events run in this order:
request ends, returning turns (in the order they were scheduled), arrivals.

Measurement
-----------
Time 0 starts with an empty cache and a stationary conversation population:
the conversations that arrived during a pre-history of 20 mean lifetimes
(L*S + (L-1)*tau) and are still alive join at their first turn starting at or
after 0 (their earlier turns, and a turn running at 0, are not simulated), so
the mix of turn indices is right from the start and only the cache warms up.
Without this, long conversations (which carry most tokens) stay
under-represented for many lifetimes (several points of hit rate).
``n_conversations`` then arrive after 0; the horizon ends at the last
arrival (no event after it is simulated, so the load is stationary to the
end); the warm-up is the first ``warmup_fraction`` of the horizon. Metrics
count the requests that START inside ``[warmup_s, horizon_s]``: a stationary
sample of requests, so turn k is weighted by P(N >= k) as in the model.
Occupancies are time averages over the same window.

* ``token_hit_rate`` = hit tokens / prompt tokens (vLLM prefix_cache_hits /
  queries; shared-prompt hits count);
* ``request_hit_rate`` = share of requests whose hit reaches at least one block
  of their own history (index >= Ps);
* ``shared_prompt_hit_rate`` = shared blocks hit / shared blocks asked
  (None when Ps = 0);
* 95 % confidence intervals by batch means: the window is cut into
  ``CI_BATCHES`` = 10 equal time batches, each gives a ratio estimate; the
  interval is the overall ratio +- t(0.975, m-1) * sd / sqrt(m) over the m
  non-empty batches (clipped to [0, 1]). Batches must be several
  conversation lifetimes long for the interval to be honest (a warning says
  when they are shorter than 5). Checked over 100 seeds with 20000
  conversations (L = 5 geometric, exponential gaps; L = 8 fixed, lognormal
  gaps): coverage 93-97 %; 20 batches gave 89 %.
* ``occupancy_blocks``: time-average blocks that are pinned (running requests,
  shared prompt included while in use), cached shared prompt, cached chains of
  returning conversations (more turns to come), of finished ones, and free;
  ``mean_cached_blocks`` = the three cached parts, ``mean_used_blocks`` adds pinned;
* ``warnings``: short warm-up, short batches, truncated pre-history.

Two engines give identical results: :func:`simulate` keeps the cache as
chains (LRU/TTL: an ordered dict of conversation -> cached prefix length, in
least-recently-freed order, eviction trims the tail of the oldest chain;
FIFO: insertion batches in a heap), and :func:`simulate_blocks_reference` keeps
every block (an evictable set ordered by key, reference counts), slow and
plain, for tests.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from .errors import InputError, require_int, require_number
from .fleet import FleetConfig
from .workload import CacheConfig, Workload

__all__ = [
    "simulate", "simulate_blocks_reference", "simulate_trace", "draw_trace", "Trace",
    "CI_BATCHES",
]

#: Number of time batches of the batch-means confidence interval.
CI_BATCHES = 10

_INF = math.inf
_SHARED = -1  # owner id of the shared system-prompt chain

# Student t quantiles t(0.975, df) for df = 1..30; 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Trace:
    """The random part of a run: arrival times [s], turns, and gaps [s].

    Conversation ``c < len(arrivals)`` arrives at ``arrivals[c]`` (non-decreasing);
    ``gaps[goff[c] + k - 1]`` is the gap after its turn k (``N_c - 1`` gaps).
    ``resume`` lists ``(time, c, k)``, sorted, for conversations ``c >=
    len(arrivals)`` that arrived before time 0 and are still alive: they enter
    at turn k, their first turn starting at or after 0 (stationary pre-history).
    """

    arrivals: list
    turns: list
    gaps: list
    goff: list
    resume: list = ()
    prehistory_truncated: bool = False

    @classmethod
    def from_lists(cls, arrivals, turns, gaps_per_conversation) -> "Trace":
        """Hand-made trace (tests): one list of N_c - 1 gaps per conversation."""
        goff, flat = [], []
        for n, g in zip(turns, gaps_per_conversation):
            if len(g) != n - 1:
                raise ValueError("each conversation needs turns - 1 gaps")
            goff.append(len(flat))
            flat.extend(float(x) for x in g)
        return cls([float(t) for t in arrivals], [int(n) for n in turns], flat, goff)


def _scalar(field: str, value) -> float:
    if isinstance(value, (np.ndarray, list, tuple)):
        raise InputError(field, value, "a single number (the simulator takes scalars; sweep by calling it per point)", "an array")
    return float(value)


def _round_tokens(x: float) -> int:
    return int(math.floor(x + 0.5))


def _params(workload: Workload, cache: CacheConfig, fleet: FleetConfig | None = None) -> dict:
    fleet = FleetConfig() if fleet is None else fleet
    if not isinstance(fleet, FleetConfig):
        raise InputError("fleet", fleet, "a FleetConfig", "wrong type")
    if not isinstance(workload, Workload):
        raise InputError("workload", workload, "a Workload", "wrong type")
    if not isinstance(cache, CacheConfig):
        raise InputError("cache", cache, "a CacheConfig", "wrong type")
    w = {name: _scalar(f"workload.{name}", getattr(workload, name)) for name in (
        "conversation_rate_per_s", "turns_mean", "gap_mean_s", "gap_lognormal_sigma",
        "user_tokens_per_turn", "output_tokens_per_turn", "system_prompt_tokens", "service_time_s")}
    cap = _scalar("cache.capacity_tokens", cache.capacity_tokens)
    if cache.eviction == "lfu":
        raise InputError("cache.eviction", "lfu", "lru, ttl or fifo",
                         "LFU is not simulated (plain LFU is pathological for conversations: see MODEL.md)")
    b = int(cache.block_size_tokens)
    P = _round_tokens(w["system_prompt_tokens"])
    u = _round_tokens(w["user_tokens_per_turn"])
    o = _round_tokens(w["output_tokens_per_turn"])
    if u < 1:
        raise InputError("workload.user_tokens_per_turn", workload.user_tokens_per_turn, "at least 1 token after rounding")
    if fleet.tiers and cache.eviction == "fifo":
        raise InputError("cache.eviction", "fifo", "lru or ttl with lower tiers",
                         "tiers are simulated below an LRU cache only")
    K = fleet.instances
    pooled = fleet.pooled
    scale = K if pooled else 1   # pooled: one store of K x C (and K x each tier)
    return {
        "P": P, "u": u, "o": o, "b": b, "Ps": P // b, "S": w["service_time_s"],
        "Cb": int(cap // b) * scale, "eviction": cache.eviction,
        "instances": 1 if pooled else K, "fleet_instances": K, "routing": fleet.routing,
        "tier_blocks": [int(t.capacity_tokens // b) * scale for t in fleet.tiers],
        "tier_mode": fleet.tier_mode,
        "ttl": float(cache.ttl_s) if cache.eviction == "ttl" else _INF,
        "w": w, "turns_distribution": workload.turns_distribution,
        "gap_distribution": workload.gap_distribution,
    }


def _generator(seed, rng) -> np.random.Generator:
    if rng is not None:
        if seed is not None:
            raise InputError("seed", seed, "either seed or rng, not both", "both given")
        if not isinstance(rng, np.random.Generator):
            raise InputError("rng", rng, "a numpy.random.Generator", "wrong type")
        return rng
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed <= 2**63 - 1:
        seed = int(seed)   # exact: require_int goes through a float, which rounds seeds above 2**53
    elif seed is not None:
        seed = require_int("seed", seed, 0, 2**63 - 1)
    return np.random.default_rng(seed)


#: Pre-history length in mean conversation lifetimes, and its cap in conversations
#: (a multiple of n_conversations, at least PREHISTORY_MIN_CAP); only the live ones are kept.
PREHISTORY_LIFETIMES = 20.0
PREHISTORY_MAX_FACTOR = 4
PREHISTORY_MIN_CAP = 200_000


def _draw_turns_gaps(workload: Workload, w: dict, n: int, rng: np.random.Generator):
    L, tau = w["turns_mean"], w["gap_mean_s"]
    if workload.turns_distribution == "geometric":
        turns = rng.geometric(1.0 / L, size=n) if L > 1.0 else np.ones(n, dtype=np.int64)
    else:
        lo = math.floor(L)
        turns = lo + (rng.random(n) < (L - lo)).astype(np.int64)
    ngaps = turns - 1
    goff = np.concatenate(([0], np.cumsum(ngaps)[:-1])).astype(np.int64) if n else np.zeros(0, np.int64)
    total = int(ngaps.sum())
    if workload.gap_distribution == "exponential":
        gaps = rng.exponential(tau, size=total)
    elif workload.gap_distribution == "deterministic":
        gaps = np.full(total, tau)
    else:
        sigma = w["gap_lognormal_sigma"]
        gaps = rng.lognormal(math.log(tau) - 0.5 * sigma * sigma, sigma, size=total)
    return turns, goff, gaps


def draw_trace(workload: Workload, n_conversations: int, rng: np.random.Generator,
               prehistory: bool = True) -> Trace:
    """Draw ``n_conversations`` arrivals after time 0, their turns and gaps, from ``rng``.

    With ``prehistory`` the conversations that arrived over the previous
    ``PREHISTORY_LIFETIMES`` mean lifetimes (L*S + (L-1)*tau) and are still
    alive at 0 join at their first turn starting at or after 0, so the
    conversation population (and its mix of turn indices) is stationary from
    t = 0 and only the cache needs a warm-up. The pre-history holds at most
    ``max(PREHISTORY_MAX_FACTOR * n_conversations, PREHISTORY_MIN_CAP)`` conversations
    (``prehistory_truncated`` says when that cap cut it short).
    """
    w = {name: _scalar(f"workload.{name}", getattr(workload, name)) for name in (
        "conversation_rate_per_s", "turns_mean", "gap_mean_s", "gap_lognormal_sigma", "service_time_s")}
    n = n_conversations
    lam, L, tau, S = w["conversation_rate_per_s"], w["turns_mean"], w["gap_mean_s"], w["service_time_s"]
    arrivals = np.cumsum(rng.exponential(1.0 / lam, size=n))
    turns, goff, gaps = _draw_turns_gaps(workload, w, n, rng)
    t_pre = PREHISTORY_LIFETIMES * (L * S + (L - 1.0) * tau) if prehistory else 0.0
    resume, truncated = [], False
    if t_pre > 0.0:
        m_max = max(PREHISTORY_MAX_FACTOR * n, PREHISTORY_MIN_CAP)
        m_draw = min(int(lam * t_pre * 1.1 + 10.0 * math.sqrt(lam * t_pre) + 20.0), m_max)
        back = np.cumsum(rng.exponential(1.0 / lam, size=m_draw))
        truncated = m_draw == m_max and back[-1] < t_pre
        back = back[back <= t_pre]
        m = len(back)
        pturns, pgoff, pgaps = _draw_turns_gaps(workload, w, m, rng)
        if m:
            # turn start times: arrival, then + S + gap per turn (segment-wise cumsum)
            first = np.concatenate(([0], np.cumsum(pturns)[:-1]))
            inc = np.empty(int(pturns.sum()))
            is_first = np.zeros(len(inc), dtype=bool)
            is_first[first] = True
            inc[is_first] = -back
            inc[~is_first] = S + pgaps
            cs = np.cumsum(inc)
            base = cs[first] - inc[first]
            starts = cs - np.repeat(base, pturns.astype(np.intp))
            conv = np.repeat(np.arange(m), pturns.astype(np.intp))
            idx = np.flatnonzero(starts >= 0.0)
            alive, pos = np.unique(conv[idx], return_index=True)
            hit = idx[pos]
            k = hit - first[alive] + 1
            # keep only the live conversations, renumbered n, n+1, ... in pre-history order
            keep = np.zeros(m, dtype=bool)
            keep[alive] = True
            kturns = pturns[alive]
            kgaps = pgaps[np.repeat(keep, (pturns - 1).astype(np.intp))]
            kgoff = np.concatenate(([0], np.cumsum(kturns - 1)[:-1])).astype(np.int64) + len(gaps)
            ids = n + np.arange(len(alive))
            order = np.argsort(starts[hit], kind="stable")
            resume = [(float(t), int(j), int(kk))
                      for t, j, kk in zip(starts[hit][order], ids[order], k[order])]
            turns = np.concatenate((turns, kturns))
            goff = np.concatenate((goff, kgoff))
            gaps = np.concatenate((gaps, kgaps))
    return Trace(arrivals.tolist(), turns.tolist(), gaps.tolist(), goff.tolist(), resume, bool(truncated))


# --------------------------------------------------------------------------- measurement

class _Acc:
    """Per-batch sums of the measured requests and time integrals of occupancy."""

    def __init__(self, t_w: float, t_e: float, nb: int = CI_BATCHES):
        self.t_w, self.t_e, self.nb = t_w, t_e, nb
        width = (t_e - t_w) / nb if t_e < _INF else 0.0
        self.inv_width = 1.0 / width if width > 0 else 0.0
        self.hit = [0] * nb      # hit tokens
        self.prompt = [0] * nb   # prompt tokens
        self.req = [0] * nb      # requests
        self.own = [0] * nb      # requests with an own-history hit
        self.shared_hit = 0      # shared blocks hit (measured)
        self.overload = 0        # measured requests that overloaded
        self.overload_all = 0
        self.requests_all = 0
        self.occ = [0.0, 0.0, 0.0, 0.0]  # integrals of pinned, shared, returning, finished
        self.t_last_event = 0.0
        self.tier_hit = []       # blocks hit in each lower tier (measured)


def _finish(acc: _Acc, prm: dict, extra: dict) -> dict:
    nb = acc.nb
    H, Q, R, O = sum(acc.hit), sum(acc.prompt), sum(acc.req), sum(acc.own)
    token = H / Q if Q else None
    request = O / R if R else None

    def ci(num, den, point):
        ratios = [n / d for n, d in zip(num, den) if d > 0]
        m = len(ratios)
        if point is None or m < 2:
            return None, None
        mean = sum(ratios) / m
        sd = math.sqrt(sum((r - mean) ** 2 for r in ratios) / (m - 1))
        half = (_T975[m - 2] if m - 1 <= len(_T975) else 1.96) * sd / math.sqrt(m)
        return max(0.0, point - half), min(1.0, point + half)

    t_lo, t_hi = ci(acc.hit, acc.prompt, token)
    r_lo, r_hi = ci(acc.own, acc.req, request)
    t_end = min(acc.t_e, acc.t_last_event)
    span = t_end - acc.t_w
    K = prm.get("instances", 1)
    pin, sh, ret, fin = (x / span / K if span > 0 else 0.0 for x in acc.occ)   # per instance
    Ps, Cb = prm["Ps"], prm["Cb"]
    tier_tok = [x * prm["b"] / Q if Q else None for x in acc.tier_hit]
    gpu_tok = (token - sum(tier_tok)) if (token is not None and Q) else None
    cached = sh + ret + fin
    return {
        "token_hit_rate": token,
        "token_hit_rate_ci95_low": t_lo,
        "token_hit_rate_ci95_high": t_hi,
        "request_hit_rate": request,
        "request_hit_rate_ci95_low": r_lo,
        "request_hit_rate_ci95_high": r_hi,
        "shared_prompt_hit_rate": (acc.shared_hit / (Ps * R)) if (Ps and R) else None,
        "requests": R,
        "hit_tokens": H,
        "prompt_tokens": Q,
        "own_hit_requests": O,
        "overload_requests": acc.overload,
        "overload_fraction": acc.overload / R if R else 0.0,
        "capacity_blocks": Cb,
        "mean_cached_blocks": cached,
        "mean_used_blocks": cached + pin,
        "occupancy_blocks": {
            "pinned": pin, "shared_prompt": sh, "returning": ret, "finished": fin,
            "free": max(0.0, Cb - cached - pin),
        },
        "warmup_s": acc.t_w,
        "horizon_s": t_end,
        "ci_batches": nb,
        "requests_simulated": acc.requests_all,
        "overload_requests_simulated": acc.overload_all,
        "eviction": prm["eviction"],
        "block_size_tokens": prm["b"],
        "instances": prm.get("fleet_instances", K),   # (occupancies are per store: one when pooled)
        "routing": prm.get("routing", "affinity"),
        "tier_token_hit_rates": [gpu_tok] + tier_tok,
        **extra,
    }


# --------------------------------------------------------------------------- one engine, small policies
#
# The engine (:func:`_run_engine`) owns the events, the measurement and, per
# instance, the pinned count and the shared prompt's reference count. Each
# instance's cached blocks live in a store object (its eviction policy), which
# answers four questions: what prefix of this chain is cached (taking it out
# to pin it), take back a freed chain, evict n blocks, expire idle ones.
# Stores keep ``ncached`` and ``cc`` (cached blocks per category: 0 shared,
# 1 returning, 2 finished) up to date. Routing and lower tiers are objects too.

class _LruStore:
    """LRU (and TTL): owner -> [cached prefix length, last free time, category]
    in least-recently-freed order; eviction trims the tail of the oldest chain.

    Evicted blocks are passed to ``below`` (the next tier, exclusive) when set.
    """

    __slots__ = ("od", "cc", "ncached", "ttl", "below")

    def __init__(self, cc: list, ttl: float = _INF, below=None):
        self.od: OrderedDict = OrderedDict()
        self.cc = cc    # shared by every instance's store: the fleet's totals
        self.ncached = 0
        self.ttl = ttl
        self.below = below

    def expire(self, t: float) -> None:
        od = self.od
        ttl = self.ttl
        while od:
            key = next(iter(od))
            run = od[key]
            if run[1] + ttl < t:
                del od[key]
                self.ncached -= run[0]
                self.cc[run[2]] -= run[0]
            else:
                break

    def take(self, owner) -> int:
        """Remove the owner's cached chain; return its length (a prefix)."""
        run = self.od.pop(owner, None)
        if run is None:
            return 0
        ln = run[0]
        self.ncached -= ln
        self.cc[run[2]] -= ln
        return ln

    def hit_shared(self, Ps: int) -> int:
        run = self.od.pop(_SHARED, None)   # (take(), inlined: this runs at every request)
        if run is None:
            return 0
        ln = run[0]
        self.ncached -= ln
        self.cc[0] -= ln
        return ln

    def hit_own(self, c, Ps: int, whole_shared: bool) -> int:
        # cached length <= floor(Z_{k-1}/b) - Ps <= cap - Ps: the cap never binds;
        # a prefix broken in the shared part makes the own copy stale (dropped)
        run = self.od.pop(c, None)
        if run is None:
            return 0
        ln = run[0]
        self.ncached -= ln
        self.cc[run[2]] -= ln
        return ln if whole_shared else 0

    def free_own(self, c, full: int, Ps: int, t: float, cat: int) -> None:
        if full > Ps:
            ln = full - Ps
            self.od[c] = [ln, t, cat]
            self.ncached += ln
            self.cc[cat] += ln

    def finish(self, c) -> None:
        """Conversation ``c`` ended on another instance: its chain here now counts as finished."""
        run = self.od.get(c)
        if run is not None and run[2] == 1:
            self.cc[1] -= run[0]
            self.cc[2] += run[0]
            run[2] = 2

    def free_shared(self, Ps: int, t: float) -> None:
        self.od[_SHARED] = [Ps, t, 0]
        self.ncached += Ps
        self.cc[0] += Ps

    def evict(self, need: int) -> int:
        """Evict up to ``need`` blocks, least recently freed first; return what is left."""
        od, cc, below = self.od, self.cc, self.below
        popitem = od.popitem
        removed = 0
        while need > 0 and od:
            key, run = popitem(last=False)
            ln = run[0]
            if ln <= need:
                need -= ln
                removed += ln
                cc[run[2]] -= ln
                if below is not None:
                    below.demote(key, 0, ln, run[2])
            else:   # trim the chain's tail; it stays the least recent
                run[0] = ln - need
                od[key] = run
                od.move_to_end(key, last=False)
                removed += need
                cc[run[2]] -= need
                if below is not None:
                    below.demote(key, ln - need, ln, run[2])
                need = 0
        self.ncached -= removed
        if below is not None:
            below.settle()
        return need


class _Batch:
    """Blocks [lo, hi) of one owner, inserted into the FIFO at one event (key)."""

    __slots__ = ("owner", "lo", "hi", "key", "ver", "cat")

    def __init__(self, owner, lo, hi, key, cat):
        self.owner, self.lo, self.hi, self.key, self.ver, self.cat = owner, lo, hi, key, 0, cat


class _FifoStore:
    """FIFO: blocks leave in order of first insertion; a hit does not refresh them.

    chains[c]: the owner's batches in chain order (keys increase along the
    chain); evictable batches sit in a heap as (key, -lo, ver, batch); an entry
    is live iff its ver equals the batch's (pinning, trimming to nothing or
    dropping bump ver). Hit batches keep their key when freed again.
    """

    __slots__ = ("chains", "shared", "heap", "cc", "ncached", "ins", "shared_new_lo", "inflight_lo")

    def __init__(self, cc: list, Ps: int):
        self.chains: dict = {}
        self.shared: list = []
        self.heap: list = []
        self.cc = cc
        self.ncached = 0
        self.ins = 0                 # insertion counter (FIFO key)
        self.shared_new_lo = Ps      # shared blocks [shared_new_lo, Ps) created, not yet inserted
        self.inflight_lo: dict = {}  # conversation -> first own block it created this turn

    def expire(self, t: float) -> None:
        pass

    def _pin(self, chain: list, lo: int, whole: bool) -> int:
        """Pin the contiguous batches from ``lo`` (if ``whole``), drop the stale rest."""
        cur = lo
        keep = 0
        if whole:
            for bt in chain:
                if bt.lo != cur:
                    break
                cur = bt.hi
                keep += 1
        cc = self.cc
        for bt in chain:
            bt.ver += 1
            self.ncached -= bt.hi - bt.lo
            cc[bt.cat] -= bt.hi - bt.lo
        del chain[keep:]
        return cur

    def hit_shared(self, Ps: int) -> int:
        s = self._pin(self.shared, 0, True)
        self.shared_new_lo = s
        return s

    def hit_own(self, c, Ps: int, whole_shared: bool) -> int:
        chain = self.chains.get(c)
        cur = self._pin(chain, Ps, whole_shared) if chain else Ps
        self.inflight_lo[c] = cur
        return cur - Ps

    def free_own(self, c, full: int, Ps: int, t: float, cat: int) -> None:
        """The request of ``c`` ended with ``full`` full blocks: its chain becomes cached."""
        self.ins += 1   # one insertion event per request end (its shared batch shares the key)
        ins = self.ins
        heappush = heapq.heappush
        chain = self.chains.get(c)
        lo_new = self.inflight_lo.pop(c)
        cc = self.cc
        if chain:
            for bt in chain:   # hit blocks keep their insertion key
                bt.cat = cat
                self.ncached += bt.hi - bt.lo
                cc[cat] += bt.hi - bt.lo
                heappush(self.heap, (bt.key, -bt.lo, bt.ver, bt))
        if full > lo_new:
            bt = _Batch(c, lo_new, full, ins, cat)
            if chain is None:
                self.chains[c] = [bt]
            else:
                chain.append(bt)
            self.ncached += full - lo_new
            cc[cat] += full - lo_new
            heappush(self.heap, (ins, -lo_new, 0, bt))
        if cat == 2 and not self.chains.get(c, True):
            del self.chains[c]

    def finish(self, c) -> None:
        """As _LruStore.finish (the chain is not pinned here: its last turn ran elsewhere)."""
        for bt in self.chains.get(c, ()):
            if bt.cat == 1:
                self.cc[1] -= bt.hi - bt.lo
                self.cc[2] += bt.hi - bt.lo
                bt.cat = 2

    def free_shared(self, Ps: int, t: float) -> None:
        heappush = heapq.heappush
        for bt in self.shared:
            heappush(self.heap, (bt.key, -bt.lo, bt.ver, bt))
        lo = self.shared_new_lo
        if lo < Ps:
            bt = _Batch(_SHARED, lo, Ps, self.ins, 0)
            self.shared.append(bt)
            heappush(self.heap, (self.ins, -lo, 0, bt))
            self.shared_new_lo = Ps
        self.ncached += Ps
        self.cc[0] += Ps

    def evict(self, need: int) -> int:
        """Evict up to ``need`` blocks, oldest insertion first; return what is left."""
        heap, cc = self.heap, self.cc
        heappop = heapq.heappop
        while need > 0 and heap:
            key, neg_lo, ver, bt = heap[0]
            if ver != bt.ver:
                heappop(heap)
                continue
            ln = bt.hi - bt.lo
            if ln <= need:
                heappop(heap)
                bt.ver += 1
                need -= ln
                self.ncached -= ln
                cc[bt.cat] -= ln
                # the oldest batch of its owner is the head of its chain
                (self.shared if bt.owner == _SHARED else self.chains[bt.owner]).pop(0)
            else:
                bt.hi -= need
                self.ncached -= need
                cc[bt.cat] -= need
                need = 0
        return need


class _TierStore:
    """An exclusive lower tier (CPU DRAM, SSD) below an LRU store.

    Blocks arrive only by demotion (evicted from the tier above) and leave by
    promotion (a hit pins them in GPU memory again) or eviction (to the next
    tier, or dropped), so LRU order here is demotion order. Only lengths are
    needed: the tier above evicts a chain tail first, so a chain's part in this
    tier is contiguous and starts where its part above ends; the oldest piece
    is its tail, which goes first.
    """

    __slots__ = ("od", "seg", "ncached", "cap", "below", "seq")

    def __init__(self, capacity_blocks: int, below=None):
        self.od: OrderedDict = OrderedDict()   # (owner, seq) -> length, in demotion order
        self.seg: dict = {}                    # owner -> [total length, [seq, ...]]
        self.ncached = 0
        self.cap = capacity_blocks
        self.below = below
        self.seq = 0

    def demote(self, owner, lo: int, hi: int, cat: int) -> None:
        n = hi - lo
        if n <= 0:
            return
        self.seq += 1
        self.od[(owner, self.seq)] = n
        entry = self.seg.get(owner)
        if entry is None:
            self.seg[owner] = [n, [self.seq]]
        else:
            entry[0] += n
            entry[1].append(self.seq)
        self.ncached += n   # (the tier above calls settle() once its evictions are done)

    def settle(self) -> None:
        """Back to capacity: evict the oldest pieces (demoting them further down)."""
        if self.ncached > self.cap:
            self.evict(self.ncached - self.cap)

    def take(self, owner) -> int:
        entry = self.seg.pop(owner, None)
        if entry is None:
            return 0
        for sq in entry[1]:
            self.od.pop((owner, sq), None)
        self.ncached -= entry[0]
        return entry[0]

    def evict(self, need: int) -> None:
        od, below = self.od, self.below
        while need > 0 and od:
            key = next(iter(od))
            ln = od[key]
            owner = key[0]
            entry = self.seg[owner]
            x = ln if ln <= need else need
            if x == ln:
                del od[key]
                entry[1].pop(0)   # the oldest piece overall is its owner's oldest
            else:
                od[key] = ln - x
            entry[0] -= x
            if entry[0] == 0:
                del self.seg[owner]
            self.ncached -= x
            need -= x
            if below is not None:
                below.demote(owner, 0, x, 0)
        if below is not None:
            below.settle()


class _Node:
    """One instance: its store (eviction policy), lower tiers, pinned blocks, shared refs."""

    __slots__ = ("store", "tiers", "pinned", "srefs")

    def __init__(self, store, tiers):
        self.store, self.tiers, self.pinned, self.srefs = store, tiers, 0, 0


class _Router:
    """``affinity``: each conversation sticks to one instance drawn at random
    (each instance sees a Poisson lambda/K); ``random``: every request to an
    instance drawn at random; ``round_robin``: requests in arrival order to
    instances 0, 1, ..., K-1, 0, ... (a load balancer's global rotation).
    Draws come from the run's generator, indexed by (c, k), so a run is a
    function of its seed."""

    __slots__ = ("kind", "K", "draws", "toff", "count")

    def __init__(self, kind: str, K: int, trace: "Trace", rng):
        self.kind, self.K, self.count = kind, K, 0
        n = len(trace.turns)
        self.toff = None
        self.draws = None
        if kind == "affinity" and K > 1:
            self.draws = rng.integers(0, K, size=n).tolist()
        elif kind == "random" and K > 1:
            self.toff = [g + c for c, g in enumerate(trace.goff)]   # first turn's index
            self.draws = rng.integers(0, K, size=len(trace.gaps) + n).tolist()

    def route(self, c: int, k: int) -> int:
        if self.kind == "affinity":
            return self.draws[c]
        if self.kind == "random":
            return self.draws[self.toff[c] + k - 1]
        self.count += 1
        return (self.count - 1) % self.K


def _run_engine(tr: Trace, prm: dict, acc: _Acc, progress, record, router=None) -> None:
    """The event loop, for every eviction policy, K instances and exclusive tiers."""
    P, a, o, b, Ps, S, Cb = prm["P"], prm["u"] + prm["o"], prm["o"], prm["b"], prm["Ps"], prm["S"], prm["Cb"]
    K = prm["instances"]
    fifo = prm["eviction"] == "fifo"
    ttl = prm["ttl"]
    ttl_on = ttl < _INF
    tier_blocks = prm["tier_blocks"]
    ntiers = len(tier_blocks)
    cc = [0, 0, 0]   # cached blocks per category over the fleet
    inclusive = prm["tier_mode"] == "inclusive"
    nodes = []
    for _ in range(K):
        below = None
        tiers = []
        if inclusive:
            # write-through: each tier is its own LRU of every freed chain
            tiers = [_LruStore([0, 0, 0], ttl) for _ in tier_blocks]
        else:
            for cap in reversed(tier_blocks):
                below = _TierStore(cap, below)
                tiers.append(below)
            tiers.reverse()
        store = _FifoStore(cc, Ps) if fifo else _LruStore(cc, ttl, None if inclusive or not tiers else tiers[0])
        nodes.append(_Node(store, tiers))
    node0 = nodes[0]
    expires = [nd.store.expire for nd in nodes]
    route = router.route if (router is not None and K > 1) else None
    arr, turns, gaps, goff = tr.arrivals, tr.turns, tr.gaps, tr.goff
    na = len(arr)
    t_w, t_e, inv_w, nb1 = acc.t_w, acc.t_e, acc.inv_width, acc.nb - 1
    bhit, bprompt, breq, bown = acc.hit, acc.prompt, acc.req, acc.own
    tier_hit = acc.tier_hit = [0] * ntiers
    pinned_all = 0
    heap = [(t, i, c, k) for i, (t, c, k) in enumerate(tr.resume)]   # returning turns,
    seq = len(heap)         # (start time, seq, conversation, turn); sorted, so a heap
    ends: deque = deque()   # running requests: (end time, conversation, turn, node), in time order
    ai = 0
    t_last = 0.0
    o_pin = o_sh = o_ret = o_fin = 0.0
    shared_hit = overload = overload_all = nreq = 0
    step = t_e / 32.0 if (progress is not None and t_e < _INF) else _INF
    next_progress = step
    heappush, heappop = heapq.heappush, heapq.heappop
    while True:
        te = ends[0][0] if ends else _INF
        th = heap[0][0] if heap else _INF
        ta = arr[ai] if ai < na else _INF
        if te <= th and te <= ta:
            kind = 0
            t = te
        elif th <= ta:
            kind = 1
            t = th
        else:
            kind = 2
            t = ta
        if t > t_e or t == _INF:
            break
        if t != t_last:
            if t > t_w:
                dt = t - (t_last if t_last > t_w else t_w)
                o_pin += pinned_all * dt
                o_sh += cc[0] * dt
                o_ret += cc[1] * dt
                o_fin += cc[2] * dt
            t_last = t
        if ttl_on:
            for expire in expires:
                expire(t)
        if kind == 0:
            # ---------------------------------------------------------- request end
            _, c, k, nd = ends.popleft()
            store = nd.store
            Z = P + k * a
            full = Z // b
            rel = (-(-Z // b)) - Ps
            fin = k == turns[c]
            store.free_own(c, full, Ps, t, 2 if fin else 1)
            if fin and route is not None:   # (scattered routing: its chains elsewhere are finished too)
                for other in nodes:
                    if other is not nd:
                        other.store.finish(c)
            srefs = nd.srefs - 1
            nd.srefs = srefs
            last = srefs == 0 and Ps
            if last:
                rel += Ps
                store.free_shared(Ps, t)
            pin = nd.pinned - rel
            nd.pinned = pin
            pinned_all -= rel
            if inclusive and ntiers:
                for j, tier in enumerate(nd.tiers):
                    tier.free_own(c, full, Ps, t, 1)
                    if last:
                        tier.free_shared(Ps, t)
                    if tier.ncached > tier_blocks[j]:
                        tier.evict(tier.ncached - tier_blocks[j])
            need = pin + store.ncached - Cb
            if need > 0:   # back to capacity after an overload
                store.evict(need)
            if not fin:
                heappush(heap, (t + gaps[goff[c] + k - 1], seq, c, k + 1))
                seq += 1
            continue
        # -------------------------------------------------------------- request start
        if kind == 1:
            _, _, c, k = heappop(heap)
        else:
            c = ai
            k = 1
            ai += 1
        nd = node0 if route is None else nodes[route(c, k)]
        store = nd.store
        Z = P + k * a
        prompt = Z - o
        newb = -(-Z // b) - Ps
        s_low = 0
        srefs = nd.srefs
        if srefs:
            s = Ps
        elif Ps:
            s = store.hit_shared(Ps)
            if ntiers:
                for j, tier in enumerate(nd.tiers):
                    x = tier.take(_SHARED)
                    if inclusive:   # a copy: the prefix is the longest one any tier holds
                        x = max(0, min(x, Ps) - s - s_low)
                    elif s == Ps:
                        continue   # (a full GPU copy cannot coexist with a lower one)
                    x = min(x, Ps - s - s_low)
                    s_low += x
                    if t >= t_w:
                        tier_hit[j] += x
                s += s_low
            newb += Ps - s + s_low
        else:
            s = 0
        nd.srefs = srefs + 1
        hit_own = store.hit_own(c, Ps, s == Ps)
        own_low = 0
        if ntiers:
            whole = s == Ps
            for j, tier in enumerate(nd.tiers):
                x = tier.take(c)
                if inclusive:
                    x = max(0, x - hit_own - own_low)
                if whole:
                    own_low += x
                    if t >= t_w:
                        tier_hit[j] += x
        newb -= hit_own
        # pinned now: the GPU's shared hit (when nobody held it), the own hit, then the new blocks
        pin0 = nd.pinned
        pin = pin0 + hit_own + (0 if srefs else s - s_low)
        need = newb - (Cb - pin - store.ncached)
        over = store.evict(need) > 0 if need > 0 else False
        pin += newb
        pinned_all += pin - pin0
        nd.pinned = pin
        ends.append((t + S, c, k, nd))
        hit = s + hit_own + own_low
        nreq += 1
        if over:
            overload_all += 1
        if record is not None:
            record.append((t, c, k, hit, prompt, over))
        if t >= t_w:
            i = int((t - t_w) * inv_w)
            if i > nb1:
                i = nb1
            bhit[i] += hit * b
            bprompt[i] += prompt
            breq[i] += 1
            if hit_own or own_low:
                bown[i] += 1
            shared_hit += s
            if over:
                overload += 1
        if t >= next_progress:
            progress(min(1.0, t / t_e))
            next_progress += step
    acc.occ = [o_pin, o_sh, o_ret, o_fin]
    acc.shared_hit, acc.overload, acc.overload_all, acc.requests_all = shared_hit, overload, overload_all, nreq
    acc.t_last_event = t_last


# --------------------------------------------------------------------------- block-level reference

def _run_reference(tr: Trace, prm: dict, acc: _Acc, progress, record, router=None) -> None:
    """Every block one dict entry; the same semantics, written for clarity, not speed.

    K instances (no tiers): each has its own block dicts and heap; a request
    goes where ``router`` sends it and ends there.

    evictable: block -> eviction key (smallest evicted first); key = (event
    counter, -block index), so one free evicts its tail first. LRU re-keys a
    block at every free; FIFO keys it once, at its first free after creation.
    """
    P, u, o, b, Ps, S, Cb = prm["P"], prm["u"], prm["o"], prm["b"], prm["Ps"], prm["S"], prm["Cb"]
    a = u + o
    fifo = prm["eviction"] == "fifo"
    ttl = prm["ttl"]
    arr, turns, gaps, goff = tr.arrivals, tr.turns, tr.gaps, tr.goff

    K = prm.get("instances", 1)
    # per instance: refs (pinned block -> reference count), evictable (cached block -> key),
    # free_time (cached block -> time of its last free), fifo_key (block -> FIFO key, fifo
    # only, kept while the block exists), kheap ((key, block), lazily invalidated)
    state = [({}, {}, {}, {}, []) for _ in range(K)]
    refs, evictable, free_time, fifo_key, kheap = state[0]
    finished: set = set()  # conversations that have ended their last turn

    def ident(c, i):
        return ("shared", i) if i < Ps else (c, i)

    def forget(blk):
        del evictable[blk]
        del free_time[blk]
        fifo_key.pop(blk, None)

    def evict_one():
        while True:
            key, blk = heapq.heappop(kheap)
            if evictable.get(blk) == key:
                forget(blk)
                return

    def cat(blk):
        if blk[0] == "shared":
            return 0
        return 2 if blk[0] in finished else 1

    events = []   # (time, priority, seq, kind, conversation, turn)
    seq = 0
    for c, t0 in enumerate(arr):
        events.append((t0, 2, seq, "start", c, 1, 0))
        seq += 1
    for t0, c, k in tr.resume:
        events.append((t0, 1, seq, "start", c, k, 0))
        seq += 1
    heapq.heapify(events)
    counter = 0
    t_last = 0.0
    occ = [0.0, 0.0, 0.0, 0.0]
    while events and events[0][0] <= acc.t_e:
        t, _, _, kind, c, k, node = heapq.heappop(events)
        if t > t_last:
            if t > acc.t_w:
                dt = t - max(t_last, acc.t_w)
                for refs, evictable, *_ in state:
                    occ[0] += len(refs) * dt
                    for blk in evictable:
                        occ[1 + cat(blk)] += dt
            t_last = t
        if ttl < _INF:
            for refs, evictable, free_time, fifo_key, kheap in state:
                for blk in [x for x in evictable if free_time[x] + ttl < t]:   # ttl expiry
                    forget(blk)
        if kind == "start" and router is not None and K > 1:
            node = router.route(c, k)
        refs, evictable, free_time, fifo_key, kheap = state[node]   # (the helpers see these)
        Z = P + k * a
        if kind == "end":
            full = Z // b
            for i in range(-(-Z // b)):
                blk = ident(c, i)
                refs[blk] -= 1
                if refs[blk] == 0:
                    del refs[blk]
            if k == turns[c]:
                finished.add(c)
            for i in reversed(range(full)):   # tail first
                blk = ident(c, i)
                if blk in refs:
                    continue   # shared block still used by another request
                if fifo:
                    key = fifo_key.setdefault(blk, (counter, -i))
                else:
                    key = (counter, -i)
                evictable[blk] = key
                free_time[blk] = t
                heapq.heappush(kheap, (key, blk))
            counter += 1
            while len(refs) + len(evictable) > Cb and evictable:
                evict_one()
            if k < turns[c]:
                events_push = (t + gaps[goff[c] + k - 1], 1, seq, "start", c, k + 1, 0)
                heapq.heappush(events, events_push)
                seq += 1
            continue
        prompt = P + (k - 1) * a + u
        total = -(-Z // b)
        cap = (prompt - 1) // b
        hit = 0
        while hit < cap and (ident(c, hit) in refs or ident(c, hit) in evictable):
            hit += 1
        for i in range(hit):
            blk = ident(c, i)
            if blk in evictable:
                del evictable[blk]
                del free_time[blk]
            refs[blk] = refs.get(blk, 0) + 1
        for i in range(hit, total):
            blk = ident(c, i)
            assert blk not in refs, "a block beyond the hit is pinned"
            if blk in evictable:   # stale copy beyond the first missing block
                forget(blk)
        need = (total - hit) - (Cb - len(refs) - len(evictable))
        while need > 0 and evictable:
            evict_one()
            need -= 1
        over = need > 0
        for i in range(hit, total):
            refs[ident(c, i)] = 1
        heapq.heappush(events, (t + S, 0, seq, "end", c, k, node))
        seq += 1
        acc.requests_all += 1
        acc.overload_all += over
        if record is not None:
            record.append((t, c, k, hit, prompt, over))
        if t >= acc.t_w:
            i = min(int((t - acc.t_w) * acc.inv_width), acc.nb - 1)
            acc.hit[i] += hit * b
            acc.prompt[i] += prompt
            acc.req[i] += 1
            acc.own[i] += hit > Ps
            acc.shared_hit += min(hit, Ps)
            acc.overload += over
    acc.occ = occ
    acc.t_last_event = t_last


# --------------------------------------------------------------------------- public API

def simulate_trace(trace: Trace, workload: Workload, cache: CacheConfig, *,
                   warmup_s: float = 0.0, horizon_s: float = _INF,
                   reference: bool = False, progress=None, record: list | None = None,
                   fleet: FleetConfig | None = None, routing_rng: np.random.Generator | None = None) -> dict:
    """Run one engine on a given trace; requests starting in [warmup_s, horizon_s] are measured.

    ``fleet`` (default: one instance, no tiers) sets K instances, the routing and
    exclusive lower tiers; ``routing_rng`` draws the routing when K > 1.

    ``record``, if a list, receives ``(start time, conversation, turn, hit blocks,
    prompt tokens, overloaded)`` for every simulated request (tests).
    """
    prm = _params(workload, cache, fleet)
    acc = _Acc(float(warmup_s), float(horizon_s))
    router = None
    if prm["instances"] > 1:
        if routing_rng is None:
            raise InputError("routing_rng", None, "a numpy.random.Generator for routing K > 1 instances", "missing")
        router = _Router(prm["routing"], prm["instances"], trace, routing_rng)
    if reference:
        if prm["tier_blocks"]:
            raise InputError("reference", True, "instances without tiers", "the block reference engine")
        _run_reference(trace, prm, acc, progress, record, router)
    else:
        _run_engine(trace, prm, acc, progress, record, router)
    return _finish(acc, prm, {"engine": "blocks-reference" if reference else "chains"})


def _simulate(workload, cache, seed, rng, n_conversations, warmup_fraction, progress, reference, fleet=None):
    _params(workload, cache, fleet)   # validate before drawing
    n = require_int("n_conversations", n_conversations, 1, 10_000_000)
    wf = require_number("warmup_fraction", warmup_fraction, 0.0, 1.0, hi_open=True)
    if progress is not None and not callable(progress):
        raise InputError("progress", progress, "a callable(fraction_done) or None", "not callable")
    gen = _generator(seed, rng)
    trace = draw_trace(workload, n, gen)
    horizon = trace.arrivals[-1]
    warmup = wf * horizon
    out = simulate_trace(trace, workload, cache, warmup_s=warmup, horizon_s=horizon,
                         reference=reference, progress=progress, fleet=fleet, routing_rng=gen)
    w = _params(workload, cache)["w"]
    L, tau, S = w["turns_mean"], w["gap_mean_s"], w["service_time_s"]
    warnings = []
    if trace.prehistory_truncated:
        warnings.append("the stationary pre-history was cut short (too many live conversations for "
                        "n_conversations): raise n_conversations")
    if L > 1.0 and warmup < 5.0 * (tau + S):
        warnings.append(f"warm-up ({warmup:.4g} s) is shorter than 5 mean gaps: raise n_conversations "
                        "or warmup_fraction")
    if out["requests"] and (horizon - warmup) / CI_BATCHES < 5.0 * (L * S + (L - 1.0) * tau):
        warnings.append("confidence-interval batches are shorter than 5 mean conversation lifetimes: "
                        "the interval may be too narrow; raise n_conversations")
    out["n_conversations"] = n
    out["prehistory_conversations"] = len(trace.resume)
    out["warmup_fraction"] = wf
    out["seed"] = seed if rng is None else None
    out["warnings"] = warnings
    if progress is not None:
        progress(1.0)
    return out


def simulate(workload: Workload, cache: CacheConfig, *, seed: int | None = None,
             rng: np.random.Generator | None = None, n_conversations: int = 20000,
             warmup_fraction: float = 0.2, progress=None, fleet: FleetConfig | None = None) -> dict:
    """Simulate ``n_conversations`` conversations on one prefix cache (or a fleet); return the metrics.

    Randomness comes only from ``rng`` or ``seed`` (a fresh entropy-seeded
    generator if both are None); the same seed gives the same dict. ``progress``
    is called with the fraction done (at most ~33 times). See the module
    docstring for the semantics, the warm-up and the confidence intervals.
    """
    return _simulate(workload, cache, seed, rng, n_conversations, warmup_fraction, progress, False, fleet)


def simulate_blocks_reference(workload: Workload, cache: CacheConfig, *, seed: int | None = None,
                              rng: np.random.Generator | None = None, n_conversations: int = 2000,
                              warmup_fraction: float = 0.2, progress=None) -> dict:
    """Same as :func:`simulate` with the block-level reference engine (slow; tests)."""
    return _simulate(workload, cache, seed, rng, n_conversations, warmup_fraction, progress, True)
