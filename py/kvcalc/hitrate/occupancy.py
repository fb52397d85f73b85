"""Occupancy of the cache and the characteristic time T (LRU/TTL; Che's approximation, MODEL.md).

O(g): the mean number of distinct blocks touched within a window g (Campbell),
by part (pinned, shared prompt, returning conversations, finished ones); its
variance; T solves O(T) = C_b. The shared prompt's presence h_s and the shared
blocks a request hits are here too: every model uses them.
"""

from __future__ import annotations

import numpy as np

from .gaps import gap_cdf, gap_mean_min
from .structure import Structure

__all__ = ["shared_prompt_presence", "occupancy_parts_blocks", "occupancy_blocks", "occupancy_variance_blocks2",
           "shared_prompt_hit_blocks", "overload_ends_at_capacity_tokens", "occupancy_slope_blocks_per_s",
           "characteristic_time_s"]


def shared_prompt_presence(st: Structure, g):
    """h_s: the chance the shared prompt is cached when a request starts.

    Under LRU it always is: it is pinned while any request runs, and when the
    last one ends it is freed last (the most recent), and nothing touches the
    cache until the next request starts (which uses it). Only a TTL expires it:
    requests arrive at rate lambda*E[N] and hold it for S, so it is gone iff none
    overlapped the last ``ttl_s``: h_s = 1 - exp(-lambda*E[N]*(ttl + S)).
    (``g`` is kept for the shape; the presence does not depend on it.)
    """
    g = np.asarray(g, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        h = -np.expm1(-st.lam * st.EN * (st.ttl_s + st.S))
    return np.where(st.Ps > 0, h, 0.0) + np.zeros(g.shape)


def occupancy_parts_blocks(st: Structure, g) -> dict:
    """Mean occupancy of a TTL-g cache by part (Campbell), in blocks."""
    g = np.asarray(g, dtype=float)
    emin = gap_mean_min(g, st.tau, st.gap_distribution, st.sigma)
    with np.errstate(invalid="ignore"):
        finished = np.where(np.isinf(g), np.where(st.A2 > 0, np.inf, 0.0), st.lam * st.A2 * g)
    return {
        "pinned": st.pin_mean + np.zeros(np.shape(g)),
        "system_prompt": st.Ps * shared_prompt_presence(st, g),
        "returning": st.lam * st.A1 * emin,
        "finished": finished,
    }


def occupancy_blocks(st: Structure, g):
    """O(g): mean number of distinct blocks touched within g (plus pinned ones)."""
    parts = occupancy_parts_blocks(st, g)
    return parts["pinned"] + parts["system_prompt"] + parts["returning"] + parts["finished"]


def occupancy_variance_blocks2(st: Structure, g):
    """Var V(g) (Campbell, compound Poisson), in blocks^2."""
    g = np.asarray(g, dtype=float)
    emin = gap_mean_min(g, st.tau, st.gap_distribution, st.sigma)
    hs = shared_prompt_presence(st, g)
    return (st.lam * (st.A1sq * emin + st.A2sq * g) + st.pin_var
            + st.Ps * st.Ps * hs * (1.0 - hs))


def shared_prompt_hit_blocks(st: Structure, hs):
    """Mean shared blocks a request hits: Ps while the prompt is present.

    A cache smaller than the shared prompt keeps its first C_b blocks when
    nobody runs (probability exp(-lambda*E[N]*S), M/G/inf) and all Ps pinned
    while someone runs.
    """
    idle = np.exp(-st.lam * st.EN * st.S)
    return hs * np.where(st.Cb >= st.Ps, st.Ps, st.Ps * (1.0 - idle) + st.Cb * idle)


def overload_ends_at_capacity_tokens(st: Structure):
    """Smallest capacity (tokens, whole blocks) above the mean in-flight working set O(0).

    O(0) = pinned blocks of running requests + the shared prompt while anyone
    runs; at or below it the cache is in overload (MODEL.md).
    """
    return (np.floor(occupancy_blocks(st, np.zeros(st.shape))) + 1.0) * st.b


def occupancy_slope_blocks_per_s(st: Structure, g):
    """dO/dg: every part of O is concave and increasing in g."""
    g = np.asarray(g, dtype=float)
    survival = 1.0 - gap_cdf(g, st.tau, st.gap_distribution, st.sigma)
    return st.lam * st.A1 * survival + st.lam * st.A2


def characteristic_time_s(st: Structure, iterations: int = 100, rtol: float = 1e-10, start_s=0.0):
    """T with O(T) = C_b, vectorised Newton from ``start_s`` (default 0).

    O is increasing and concave, so Newton started left of the root stays left
    of it and converges monotonically (``start_s`` must be a known lower bound,
    e.g. T at a smaller capacity). Returns (T, overload): T = 0 where even
    the in-flight working set does not fit (overload), T = inf where everything
    ever touched fits.
    """
    target = st.Cb
    o0 = occupancy_blocks(st, np.zeros(st.shape))
    overload = o0 > target
    o_inf = st.pin_mean + st.Ps * (st.Ps > 0) + st.lam * st.A1 * st.tau + np.where(st.A2 > 0, np.inf, 0.0)
    fits_all = o_inf <= target
    T = np.zeros(st.shape) + start_s
    active = ~(overload | fits_all)
    # O(T) and its slope as occupancy_blocks and occupancy_slope_blocks_per_s compute them, the
    # same operations in the same order, with the parts that do not depend on T (the pinned
    # blocks, the shared prompt, lambda * A) computed once: T is finite here (Newton from a
    # finite start), so the finished part is lambda * A2 * T
    fixed = st.pin_mean + st.Ps * shared_prompt_presence(st, 0.0)
    lam_a1 = st.lam * st.A1
    lam_a2 = st.lam * st.A2
    tol_gap = rtol * np.maximum(target, 1.0)
    for _ in range(iterations):
        if not np.any(active):
            break
        o = (fixed + lam_a1 * gap_mean_min(T, st.tau, st.gap_distribution, st.sigma)) + lam_a2 * T
        gap = target - o
        slope = lam_a1 * (1.0 - gap_cdf(T, st.tau, st.gap_distribution, st.sigma)) + lam_a2
        step = np.where(active, gap / np.maximum(slope, 1e-300), 0.0)
        T = T + np.maximum(step, 0.0)
        active = active & (np.abs(gap) > tol_gap) & (step > rtol * np.maximum(T, 1e-12))
    T = np.where(overload, 0.0, np.where(fits_all, np.inf, T))
    return T, overload


