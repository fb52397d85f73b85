"""FIFO eviction: a TTL approximation on insertion time with a renewal recursion over turns.

A chain's head is its oldest block, so a conversation hits while the age of its
chain since the last full re-insertion (a miss) is below the FIFO characteristic
time T_F. Solved point by point (FIFO figures use coarser grids).
"""

from __future__ import annotations

import math

import numpy as np

from .gaps import gap_sum_cdf
from .structure import HitInputs, Structure

__all__ = ["series_inverse", "renewal_inverse", "shared_presence", "fifo_point_hit_rates", "fifo_hit_rates"]


def series_inverse(a, n: int) -> np.ndarray:
    """First n coefficients of 1 / a(z) (a[0] != 0), by Newton doubling: b <- b (2 - a b)."""
    b = np.array([1.0 / a[0]])
    k = 1
    while k < n:
        k = min(2 * k, n)
        t = -_convolve_head(a[:k], b, k)
        t[0] += 2.0
        b = _convolve_head(b, t, k)
    return b


def renewal_inverse(a, n: int) -> np.ndarray:
    """First n coefficients of 1 / a(z) for a renewal a = [1, -D_1, -D_2, ...] with sum |D| <= 1.

    One damped FFT (Abate-Whitt): sample a on the circle of radius rho with
    rho^N = 1e-13, N >= 8n, invert pointwise and scale back by rho^-k. The
    coefficients of 1/a are at most 1, so aliasing adds at most ~1e-13 and
    rounding grows by rho^-n <= 10^(13/8). Falls back to Newton doubling
    (:func:`_series_inverse`) if a comes near zero on the circle.
    """
    a = np.asarray(a, dtype=float)[:n]
    N = 1 << int(math.ceil(math.log2(max(8 * n, 16))))
    rho = 10.0 ** (-13.0 / N)
    A = np.fft.rfft(a * rho ** np.arange(a.size), N)
    if float(np.min(np.abs(A))) < 1e-6:
        return series_inverse(a, n)
    return np.fft.irfft(1.0 / A, N)[:n] * rho ** (-np.arange(n, dtype=float))


def _convolve_head(x, y, k: int) -> np.ndarray:
    """First k coefficients of the product x*y (direct for short series, FFT for long)."""
    if k <= 256:
        return np.convolve(x, y)[:k]
    size = 1 << int(np.ceil(np.log2(x.size + y.size - 1)))
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(y, size), size)[:k]


def shared_presence(T: float, rate_per_s: float, S: float) -> float:
    """h_s under FIFO at characteristic time T: 1 - exp(-Lambda S) / (1 + Lambda T), Lambda = rate_per_s.

    The shared prompt is present while any request runs (M/G/inf: busy with probability
    1 - exp(-Lambda S)); it can only be lost while nobody runs, and less often the more time
    the cache holds: 1 / (1 + Lambda T) is the chance an eviction clock of mean T fires before
    the next request (a heuristic, not a derivation). At T = 0 this is the overload's
    1 - exp(-Lambda S), so h_s is continuous where the overload ends; it tends to 1 as T grows
    (the simulator's FIFO, like LRU, evicts only when a request starts, after that request has
    pinned the prompt, so away from the overload the prompt stays; what the simulator still
    loses comes from momentary overloads, which this mean-field form does not model).
    Chosen with the seeded simulator (#10: 22 points, 3 seeds x 20,000 conversations, from the
    overload to 20x the in-flight set): mean |token hit error| 3.6 pp (max 9.8) against
    9.2 pp (max 28.2) for the former T / (T + 1/Lambda), which ignored the holding and fell
    up to 28 pp short just above the overload, and 4.0 pp for an age-T eviction derivation.
    """
    return 1.0 - math.exp(-rate_per_s * S) / (1.0 + rate_per_s * T)


def fifo_point_hit_rates(st: Structure, idx) -> tuple[float, float, float]:
    """FIFO hit rates of one point (a scalar solve: FIFO figures use coarser grids).

    A chain's head is its oldest block, so a conversation hits while the age of
    its chain since the last full re-insertion (a miss) is below the FIFO
    characteristic time T_F: a run of m hits after a miss needs m gaps and m-1
    services to fit in T_F. Turns form a renewal sequence; T_F solves
    pinned + shared + lambda * T_F * E[blocks inserted per conversation] = C_b.
    """
    lam, tau, sigma, S = (float(getattr(st, f)[idx]) for f in ("lam", "tau", "sigma", "S"))
    Cb, Ps, EN = float(st.Cb[idx]), float(st.Ps[idx]), float(st.EN[idx])
    w_ret_all = st.w_ret[idx]
    # Turns beyond which fewer than 1e-6 of conversations go add nothing visible. K never
    # exceeds the support: with one turn (support 1) a K of 2 broadcast B_1 over two turns and
    # counted its insertion twice (T halved, h_s too low).
    K = int(min(w_ret_all.size, max(2, np.searchsorted(-w_ret_all, -1e-6) + 2)))
    B = st.B[idx][:K]
    w_ret = w_ret_all[:K]
    ge = np.concatenate([[1.0], w_ret[:-1]])                 # P(N>=k)
    dist = st.gap_distribution
    m = np.arange(1, K + 1, dtype=float)
    Bprev = np.concatenate([[0.0], B[:-1]])

    saturated = np.ones(K)
    saturated[0] = 0.0                                        # every turn after the first hits

    def per_turn_hits(T):
        F = np.concatenate([[1.0], gap_sum_cdf(m, T - (m - 1.0) * S, tau, dist, sigma)])
        if F[K - 1] >= 1.0 - 1e-13:  # runs of K-1 hits fit in T: the renewal gives reset = [1, 0, ...]
            return saturated
        D = F[:-1] - F[1:]                                    # D[r-1]: run of exactly r-1 hits then a miss
        # reset[k] (turn k re-inserts its chain) obeys the renewal equation
        # reset[1] = 1, reset[k] = sum_j reset[j] D[k-1-j]: R(z) = z / (1 - z D(z)).
        a = np.concatenate([[1.0], -D[:K - 1]])
        reset = renewal_inverse(a, K)                        # reset[k-1] for k = 1..K
        return 1.0 - reset                                    # hit probability of turn k (turn 1 -> 0)

    def occupancy(T):
        hit = per_turn_hits(T)
        inserted = hit * (B - Bprev) + (1.0 - hit) * B
        per_conv = float(np.sum(ge * inserted))
        hs = shared_presence(T, lam * EN, S) if Ps > 0 else 1.0
        return float(st.pin_mean[idx]) + Ps * (hs if Ps > 0 else 0.0) + lam * per_conv * T, hit, hs

    if occupancy(0.0)[0] > Cb:
        # overload: only what running requests share is reused (the shared
        # prompt, present while any request runs), as under LRU
        hs0 = -math.expm1(-lam * EN * S) if Ps > 0 else 1.0
        return hs0 * Ps * st.b * EN / float(st.denom_tokens[idx]), 0.0, hs0
    # O_F(T) can fall where hits start (fewer insertions), so several roots may
    # exist; the first crossing from below is the one a cache filling up reaches.
    hi = max(tau, 1e-6) * 1e-3
    # Occupancy is at most pinned + shared + lambda T sum P(N>=k) B_k (every turn a miss
    # inserts its whole chain), so it stays below C_b up to T_low: the 1.5x search starts at
    # the last of its grid points below T_low (the same bracket, without the steps before).
    # Above T_sat (runs of K-1 hits fit in T) every turn after the first hits, and the
    # occupancy pinned + shared h_s(T) + lambda T sum P(N>=k) (B_k - B_{k-1}) rises with T:
    # when T_low >= T_sat, FIFO is at its ideal and T solves that in closed form.
    per_conv_max = float(np.sum(ge * B))
    pin = float(st.pin_mean[idx])
    t_low = (Cb - pin - Ps) / (lam * per_conv_max) if per_conv_max > 0 and lam > 0 else 0.0
    if t_low > hi:
        hi *= 1.5 ** math.floor(math.log(t_low / hi) / math.log(1.5))
        per_conv_sat = float(np.sum(ge * (B - Bprev)))
        if per_turn_hits(t_low) is saturated and per_conv_sat > 0:
            def excess(T):
                hs_t = shared_presence(T, lam * EN, S) if Ps > 0 else 0.0
                return pin + Ps * hs_t + lam * per_conv_sat * T - Cb
            lo_s, hi_s = t_low, t_low
            while excess(hi_s) < 0.0 and hi_s < 1e300:
                hi_s *= 2.0
            for _ in range(200):
                mid = 0.5 * (lo_s + hi_s)
                if excess(mid) < 0.0:
                    lo_s = mid
                else:
                    hi_s = mid
                if hi_s - lo_s <= 1e-12 * hi_s:
                    break
            hi = None  # solved: skip the search below
            T_root = 0.5 * (lo_s + hi_s)
    if hi is not None:
        f_lo = f_hi = occupancy(hi)[0] - Cb
        lo = hi / 1.5
        if f_hi >= 0.0:  # the root lies below the first grid point: bracket it from T = 0 (not overloaded)
            lo, f_lo = 0.0, occupancy(0.0)[0] - Cb
        while f_hi < 0.0 and hi < 1e15:
            lo, f_lo = hi, f_hi
            hi *= 1.5
            f_hi = occupancy(hi)[0] - Cb
        # Geometric turns with exponential or lognormal gaps: the occupancy is smooth and
        # regula falsi with the Illinois step converges in a handful of evaluations (same
        # values as halving, to 5e-7, over a 504-point grid of workloads). Deterministic gaps
        # (a step in T) or fixed turns (several crossings in one grid cell) keep the halving,
        # whose choice of crossing the published figures were made with.
        smooth = dist != "deterministic" and st.turns_distribution == "geometric" and f_lo < 0.0
        side = 0
        for _ in range(60 if smooth else 40):
            if hi - lo <= 1e-5 * hi:
                break
            mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo) if smooth and f_hi != f_lo else 0.5 * (lo + hi)
            if not lo < mid < hi:
                mid = 0.5 * (lo + hi)
            f_mid = occupancy(mid)[0] - Cb
            if smooth and abs(f_mid) <= 1e-9 * Cb:
                lo = hi = mid
                break
            if f_mid < 0.0:
                lo, f_lo = mid, f_mid
                if side == -1:
                    f_hi *= 0.5
                side = -1
            else:
                hi, f_hi = mid, f_mid
                if side == 1:
                    f_lo *= 0.5
                side = 1
        T_root = 0.5 * (lo + hi)
    _, hit, hs = occupancy(T_root)
    # turn k+1 reuses chain B_k when it hits
    own = float(np.sum(w_ret[:-1] * hit[1:] * B[:-1]))
    any_own = float(np.sum(w_ret[:-1] * hit[1:] * (B[:-1] >= 1)))
    tok = hs * (Ps * st.b * EN + st.b * own) / float(st.denom_tokens[idx])
    req = hs * any_own / EN
    return tok, req, hs


def fifo_hit_rates(x: HitInputs):
    """(token hit rate, request hit rate, h_s) under FIFO eviction, point by point.

    FIFO replaces the chain models (refined, Che) under eviction "fifo"; its h_s
    is its own (the shared prompt's insertion is older than a chain's).
    """
    st = x.st
    tok = np.empty(st.shape)
    req = np.empty(st.shape)
    hs = np.empty(st.shape)
    for idx in np.ndindex(*st.shape) if st.shape else [()]:
        tok[idx], req[idx], hs[idx] = fifo_point_hit_rates(st, idx)
    return tok, req, hs
