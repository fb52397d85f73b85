"""Fleets from a trace, sampled: K instances' LRU curves estimated from one hashed sample.

Every request is routed exactly (:func:`.fleet.route_keys`, the exact replay's routing, seeded;
affinity without sessions reads each request's first block, kept by the streaming scan as one
id a request). Each instance's stream is then sampled by block hash with the estimator of
:mod:`.sample` (:func:`.sample.shards_curve`). The hash and its threshold are the single
cache's, so an instance's sample is the global sample's references of its requests: the
instances share one memory budget (the fixed size bounds their total), and one instance holding
every request gives the single-cache sample itself.

* From the streaming scan (a canonical Mooncake file): the global sample is split by instance
  (stream order kept, request rows renumbered per instance). The distinct-block total of an
  instance, which the regression estimate uses, is apportioned from the sketch's total ``D`` by
  the hashed sample: ``D_k = D x u_k / u`` (``u`` the distinct hash-sampled blocks, ``u_k``
  those in instance k; each sampled block is in instance k with probability ``D_k / D``, so
  the ratio's standard error is ``D sqrt(p (1 - p) / u)``, ``p = u_k / u``; it enters the bound).
  The scan's heavy stratum (:class:`.sample.HotStratum`: each request's run of hot blocks and a
  systematic subsample of the heavy references) is split the same way: an instance keeps its
  requests' runs and the subsample's references of its requests (the hot nodes are shared).
* From a loaded trace (other formats): each instance's sub-trace is sampled as a single cache is
  (:func:`.sample.refs_from_trace`: exact per-instance totals), at the same starting rate; with a
  fixed size the rate is halved for all instances until their hashed references together fit.

Fleet rates at capacity ``C`` per instance = sum of the instances' estimated hits / sum of their
lookups (exact totals). Error: the hash groups (the same low bits of the block hash in every
instance) give one fleet curve per group, so the standard error and bias of the fleet are read
from the fleet's own group curves (instances sharing blocks, as under random routing, are
correlated, and this sees it); the hand-over terms and the distinct-total errors of the
instances add up linearly (no cancellation assumed). ``pooled``: one cache of ``K x C``, the single-cache
sampled curve at ``K x C``.

Exclusive tiers: tier j = H(C1 + ... + Cj) - H(C1 + ... + C(j-1)) from the same per-instance
sampled curves (``H(0) = 0``), so the tiers sum to the fleet's estimate at the summed capacity.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .fleet import first_block_keys, route, route_keys, subtrace
from .sample import HLL_REL_SE, SAMPLE_GROUPS, SampledRefs, _fit_size, _sample_bits, refs_from_trace, shards_curve

__all__ = ["route_sampled", "instance_refs", "instance_refs_from_trace", "sampled_fleet_curves"]


def route_sampled(n_requests: int, instances: int, routing: str, seed: int, *, trace=None,
                  first_ids: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The exact routing of every request, from the loaded trace or the scan's first raw ids."""
    if trace is not None:
        return route(trace, instances, routing, seed)
    return route_keys(n_requests, instances, routing, seed,
                      first_keys=lambda: first_block_keys(first_ids, first_ids >= 0))


def _hashed_distinct(refs: SampledRefs, mask: np.ndarray | None = None) -> int:
    """Distinct blocks kept by their hash (not only as heavy ones) among ``mask``."""
    ids, h = (refs.ids, refs.hashes) if mask is None else (refs.ids[mask], refs.hashes[mask])
    return int(np.unique(ids[_sample_bits(h) < refs.threshold]).size)


def instance_refs(refs: SampledRefs, inst: np.ndarray, instances: int):
    """Yield ``(k, rows, refs_k, distinct_ratio_se)`` per instance holding requests, from the
    global sample of the streaming scan (see the module docstring)."""
    n = inst.shape[0]
    if instances == 1:
        yield 0, np.arange(n, dtype=np.int64), refs, 0.0      # one instance: the sample itself
        return
    it = np.int32 if n < (1 << 31) - 1 else np.int64
    row_order = np.argsort(inst, kind="stable").astype(it)
    row_cuts = np.searchsorted(inst[row_order], np.arange(instances + 1))
    local = np.empty(n, dtype=it)
    ref_inst = inst[refs.req]
    ref_order = np.argsort(ref_inst, kind="stable")
    ref_cuts = np.searchsorted(ref_inst[ref_order], np.arange(instances + 1))
    del ref_inst
    d_all = refs.distinct_estimate
    hot = refs.hot
    if hot is not None:
        runs = hot.run_lengths()
        sub_inst = inst[hot.sub_req]
    u = _hashed_distinct(refs) if d_all is not None else 0
    for k in range(instances):
        rows = row_order[row_cuts[k]:row_cuts[k + 1]]
        if rows.size == 0:
            continue
        local[rows] = np.arange(rows.size, dtype=it)
        sel = ref_order[ref_cuts[k]:ref_cuts[k + 1]]
        d_k, ratio_se = None, 0.0
        if d_all is not None:
            u_k = _hashed_distinct(refs, sel)
            p = u_k / u if u else 1.0
            d_k = d_all * p
            ratio_se = d_all * math.sqrt(p * (1.0 - p) / u) if u else 0.0
        changes = dict(ids=refs.ids[sel], hashes=refs.hashes[sel], req=local[refs.req[sel]], weight=refs.weight[sel],
                       m_all=refs.m_all[rows], tokens=refs.tokens[rows], looked_tokens=refs.looked_tokens[rows],
                       heavy=None if refs.heavy is None else refs.heavy[sel], last_uses=None,
                       pos=None if refs.pos is None else refs.pos[sel], distinct_estimate=d_k)
        if hot is not None:
            # the scan's heavy stratum (runs of hot blocks per request, and a subsample of the heavy
            # references): the instance's requests' runs and its share of the subsample
            m = sub_inst == k
            changes["hot"] = replace(hot, deep=hot.deep[rows], sub_req=local[hot.sub_req[m]].astype(hot.sub_req.dtype),
                                     sub_node=hot.sub_node[m], n_heavy=int(runs[rows].sum(dtype=np.int64)))
        rk = replace(refs, **changes)
        yield k, rows, rk, ratio_se


def instance_refs_from_trace(trace, inst: np.ndarray, instances: int, rate: float, *, seed: int,
                             full_blocks_only: bool, max_refs: int | None):
    """``[(k, rows, refs_k, 0.0)]``: each instance's sub-trace sampled as a single cache, one
    shared fixed size (the rate halved for all until their hashed references fit)."""
    out = []
    for k in range(instances):
        rows = np.flatnonzero(inst == k)
        if rows.size:
            sub = subtrace(trace, rows)
            rk = refs_from_trace(sub, rate, full_blocks_only=full_blocks_only, seed=seed,
                                 heavy_budget_refs=None if max_refs is None else max(1, max_refs // 2 // instances))
            out.append([k, rows, rk, 0.0])
    if max_refs is not None and len(out) == 1:
        out[0][2] = _fit_size(out[0][2], max_refs)
    elif max_refs is not None:
        def hashed(r):
            return r.ids.shape[0] - (int(r.heavy.sum()) if r.heavy is not None else 0)
        while sum(hashed(o[2]) for o in out) > max_refs and out[0][2].threshold > 1:
            t = out[0][2].threshold // 2
            for o in out:
                o[2] = o[2].lowered(t)
    return [tuple(o) for o in out]


def sampled_fleet_curves(parts, capacities_blocks, *, warmup_fraction: float = 0.0) -> dict:
    """The fleet's block and token hit rates at ``capacities_blocks`` per instance, with the error
    (see the module docstring). ``parts``: ``(k, rows, refs_k, distinct_ratio_se)`` per instance
    (an iterable: each instance's sample is let go once its curve is computed)."""
    caps = np.asarray(capacities_blocks, dtype=np.float64)
    m = caps.shape[0]
    hits_b, hits_t = np.zeros(m), np.zeros(m)
    grp_b, grp_t = np.zeros((SAMPLE_GROUPS, m)), np.zeros((SAMPLE_GROUPS, m))
    extra_b, extra_t = np.zeros(m), np.zeros(m)
    dist_b = dist_t = 0.0
    B = T = 0
    rate = None
    counts = []
    for k, rows, rk, ratio_se in parts:
        counts.append((k, int(rows.size)))
        rate = rk.rate
        if rk.ids.size == 0:
            # nothing of this instance in the sample: its hits are unknown, at most all its lookups
            sc = None
            b_k = int(rk.m_all.sum(dtype=np.int64))
            t_k = int(rk.tokens.sum(dtype=np.int64))
            extra_b += b_k
            extra_t += t_k
            B, T = B + b_k, T + t_k
            continue
        sc = shards_curve(rk, warmup_fraction=warmup_fraction, capacities_blocks=caps, with_error=True)
        b_k, t_k = sc["blocks_looked_up"], sc["prompt_tokens"]
        B, T = B + b_k, T + t_k
        hits_b += np.asarray(sc["block_hit_rate"]) * b_k
        hits_t += np.asarray(sc["token_hit_rate"]) * t_k
        grp_b += np.asarray(sc["group_curves_block"]) * b_k
        grp_t += np.asarray(sc["group_curves_token"]) * t_k
        extra_b += np.asarray(sc["extra_error_block"]) * b_k
        extra_t += np.asarray(sc["extra_error_token"]) * t_k
        if sc.get("distinct_blocks_known") and rk.distinct_estimate is not None and rk.last_uses is None:
            # one distinct block more or less moves about one hit (as the sketch's error in shards_curve)
            d_se = math.hypot(HLL_REL_SE * rk.distinct_estimate, ratio_se)
            dist_b += d_se
            dist_t += d_se * (t_k / b_k if b_k else 0.0)
    rb = hits_b / B if B else np.zeros(m)
    rt = hits_t / T if T else np.zeros(m)
    gb = grp_b / B if B else grp_b
    gt = grp_t / T if T else grp_t
    se_b = np.std(gb, axis=0, ddof=1) / math.sqrt(SAMPLE_GROUPS)
    se_t = np.std(gt, axis=0, ddof=1) / math.sqrt(SAMPLE_GROUPS)
    bias_b = (gb.mean(axis=0) - rb) / (SAMPLE_GROUPS - 1)
    bias_t = (gt.mean(axis=0) - rt) / (SAMPLE_GROUPS - 1)
    hand_b = extra_b / B if B else extra_b
    hand_t = extra_t / T if T else extra_t
    d_b = dist_b / B if B else 0.0
    d_t = dist_t / T if T else 0.0
    err_b = np.abs(bias_b) + 3 * np.hypot(se_b, d_b) + hand_b
    err_t = np.abs(bias_t) + 3 * np.hypot(se_t, d_t) + hand_t
    return {
        "block_hit_rate": np.clip(rb, 0.0, 1.0), "token_hit_rate": np.clip(rt, 0.0, 1.0),
        "blocks_looked_up": int(B), "prompt_tokens": int(T), "rate": rate,
        "standard_error_block": se_b, "standard_error_token": se_t, "bias_block": bias_b, "bias_token": bias_t,
        "extra_error_block": hand_b, "extra_error_token": hand_t,
        "error_bound_block": err_b, "error_bound_token": err_t,
        "error_bound_pp": float(100 * max(err_b.max(), err_t.max())) if m else 0.0,
        "error_mean_pp": float(100 * max(np.hypot(np.hypot(bias_b, se_b), hand_b).mean(),
                                         np.hypot(np.hypot(bias_t, se_t), hand_t).mean())) if m else 0.0,
        "requests_per_instance": counts,
    }
