"""Special functions in plain numpy (Pyodide ships numpy but not scipy).

Accuracy is stated per function and checked against math.erf / known values
in tests/test_special.py.
"""

from __future__ import annotations

import numpy as np

__all__ = ["erfc", "norm_cdf", "norm_pdf", "norm_ppf", "lambertw0_of_log"]

_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def erfc(x):
    """Complementary error function, relative error below 1.2e-7 everywhere.

    Chebyshev fit of Press et al., Numerical Recipes (2nd ed.), section 6.2 (erfcc).
    """
    x = np.asarray(x, dtype=float)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    ans = t * np.exp(poly)
    return np.where(x >= 0.0, ans, 2.0 - ans)


def norm_cdf(x):
    """Standard normal CDF Phi(x) (absolute error below 1e-7)."""
    return 0.5 * erfc(-np.asarray(x, dtype=float) / _SQRT2)


def norm_pdf(x):
    x = np.asarray(x, dtype=float)
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


# Acklam's rational approximation of the normal quantile, relative error 1.15e-9.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)


def norm_ppf(p):
    """Standard normal quantile Phi^-1(p) for p in (0, 1) (Acklam, rel. error ~1e-9)."""
    p = np.asarray(p, dtype=float)
    plow = 0.02425
    out = np.empty_like(p)
    lo = p < plow
    hi = p > 1.0 - plow
    mid = ~(lo | hi)
    if np.any(lo):
        q = np.sqrt(-2.0 * np.log(p[lo]))
        out[lo] = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
                  ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if np.any(hi):
        q = np.sqrt(-2.0 * np.log1p(-p[hi]))
        out[hi] = -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / \
                   ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)
    if np.any(mid):
        q = p[mid] - 0.5
        r = q * q
        out[mid] = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / \
                   (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    return out


def lambertw0_of_log(log_z):
    """Principal Lambert W of z = exp(log_z), z >= 0, without overflowing for huge z.

    Solves w + ln w = log_z (z > 0) by Halley-safeguarded Newton in w; relative
    error below 1e-12 after the fixed iteration count.
    """
    log_z = np.asarray(log_z, dtype=float)
    z_small = log_z < 1.0
    with np.errstate(over="ignore"):
        z = np.exp(np.minimum(log_z, 1.0))
    # Start: series near 0, asymptotic log(z) - log(log(z)) for large z.
    w = np.where(z_small, np.log1p(z), log_z - np.log(np.maximum(log_z, 1.0)))
    w = np.maximum(w, 1e-300)
    for _ in range(30):
        # f(w) = w + ln w - log_z ; f' = 1 + 1/w  (valid for every z > 0)
        f = w + np.log(w) - log_z
        w_new = w - f / (1.0 + 1.0 / w)
        w = np.where(w_new > 0, w_new, w / 2.0)
    return w
