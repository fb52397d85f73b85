"""The gap G between turns (mean tau): CDF, E[min(G, g)], quantile, and the CDF of a sum of gaps.

``distribution`` is one of kvcalc.workload.GAP_DISTRIBUTIONS: "exponential",
"deterministic" or "lognormal" (shape ``sigma``, mean tau). Inputs may be numpy
arrays; outputs broadcast.
"""

from __future__ import annotations

import math

import numpy as np

from ..special import norm_cdf, norm_ppf

__all__ = ["gap_cdf", "gap_mean_min", "gap_quantile", "gap_sum_cdf"]


def _lognormal_mu(tau, sigma):
    return np.log(tau) - 0.5 * sigma * sigma


def gap_cdf(g, tau, distribution: str, sigma=1.0):
    """F_G(g) = P(G <= g)."""
    g = np.asarray(g, dtype=float)
    if distribution == "exponential":
        return -np.expm1(-g / tau)
    if distribution == "deterministic":
        return np.where(g >= tau, 1.0, 0.0)
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(g, 1e-300)) - _lognormal_mu(tau, sigma)) / sigma
    return np.where(g > 0, norm_cdf(z), 0.0)


def gap_mean_min(g, tau, distribution: str, sigma=1.0):
    """E[min(G, g)] = integral_0^g (1 - F_G(x)) dx."""
    g = np.asarray(g, dtype=float)
    if distribution == "exponential":
        return np.where(np.isinf(g), tau, -tau * np.expm1(-g / tau))
    if distribution == "deterministic":
        return np.minimum(g, tau)
    mu = _lognormal_mu(tau, sigma)
    with np.errstate(divide="ignore"):
        lg = np.log(np.maximum(g, 1e-300))
    z = (lg - mu) / sigma
    # E[G; G < g] = tau * Phi(z - sigma);  g * P(G > g) = g * (1 - Phi(z))
    with np.errstate(invalid="ignore"):
        tail = np.where(np.isinf(g), 0.0, np.where(g > 0, g * norm_cdf(-z), 0.0))
    return np.where(g > 0, tau * norm_cdf(z - sigma) + tail, 0.0)


def gap_quantile(q, tau, distribution: str, sigma=1.0):
    """F_G^-1(q) for q in [0, 1)."""
    q = np.asarray(q, dtype=float)
    if distribution == "exponential":
        return -tau * np.log1p(-q)
    if distribution == "deterministic":
        tau_b = np.broadcast_to(np.asarray(tau, dtype=float), np.broadcast(q, tau).shape)
        return np.where(q > 0, tau_b, 0.0)
    qc = np.clip(q, 1e-300, 1 - 1e-16)
    return np.where(q > 0, np.exp(_lognormal_mu(tau, sigma) + sigma * norm_ppf(qc)), 0.0)


#: Sums of up to this many exponential gaps use the exact Erlang CDF.
_ERLANG_EXACT_MAX = 40


def gap_sum_cdf(m, x, tau: float, distribution: str, sigma: float):
    """P(G_1 + ... + G_m <= x_m) for i.i.d. gaps, vectorised over m = 1, 2, ...

    Exponential: Erlang CDF 1 - sum_{i<m} Poisson(i; x/tau) (summed as a
    masked matrix); deterministic: a step at m*tau; lognormal: Fenton-Wilkinson
    (a lognormal with the sum's mean and variance).
    """
    m = np.asarray(m, dtype=float)
    x = np.asarray(x, dtype=float)
    if distribution == "deterministic":
        return np.where(x >= m * tau, 1.0, 0.0)
    if distribution == "exponential":
        y = np.maximum(x, 1e-300) / tau
        out = np.empty_like(y)
        # m <= 40: exact Erlang sum (masked matrix); m > 40: Wilson-Hilferty's
        # cube-root normal approximation of the gamma CDF (error below 1e-4 there).
        small = m <= _ERLANG_EXACT_MAX
        if np.any(small):
            ms, ys = m[small], y[small]
            # Poisson terms by recurrence p_i = p_(i-1) y / i from p_0 = e^-y (one exp per
            # point; y stays below ~700 where m <= 40 matters, and e^-y underflowing only
            # where the CDF is 1 to double precision anyway when y >> m)
            term = np.exp(-ys)
            acc = np.where(ms > 0, term, 0.0)
            for i in range(1, int(ms.max())):
                term = term * ys / i
                acc += np.where(ms > i, term, 0.0)
            out[small] = 1.0 - acc
        if np.any(~small):
            mb, yb = m[~small], y[~small]
            v = 1.0 / (9.0 * mb)
            out[~small] = norm_cdf((np.cbrt(yb / mb) - (1.0 - v)) / np.sqrt(v))
        return np.where(x > 0, np.clip(out, 0.0, 1.0), 0.0)
    var1 = (math.exp(sigma * sigma) - 1.0) * tau * tau
    mean_m, var_m = m * tau, m * var1
    s2 = np.log1p(var_m / (mean_m * mean_m))
    mu = np.log(mean_m) - 0.5 * s2
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(x, 1e-300)) - mu) / np.sqrt(s2)
    return np.where(x > 0, norm_cdf(z), 0.0)


