"""The gap distributions (kvcalc.hitrate.gaps) against formulas written out here with the
standard library (math.erf, math.exp, factorials), numerical integration and the
defining identities (mean of the distribution, CDF of the quantile). No expected
value is taken from the implementation's output (issue #10, mutation testing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kvcalc.hitrate.gaps import gap_cdf, gap_mean_min, gap_quantile, gap_sum_cdf

SQRT2 = math.sqrt(2.0)


def phi(z: float) -> float:
    """Standard normal CDF from math.erf."""
    return 0.5 * (1.0 + math.erf(z / SQRT2))


def lognormal_cdf(g: float, tau: float, sigma: float) -> float:
    """Lognormal with mean tau and shape sigma: mu = ln tau - sigma^2 / 2."""
    if g <= 0:
        return 0.0
    mu = math.log(tau) - 0.5 * sigma * sigma
    return phi((math.log(g) - mu) / sigma)


def integral_survival(cdf, g: float, n: int = 200_000) -> float:
    """E[min(G, g)] = int_0^g (1 - F(x)) dx by the trapezoid rule on n intervals."""
    xs = np.linspace(0.0, g, n + 1)
    s = np.array([1.0 - cdf(x) for x in xs])
    h = g / n
    return float(h * (s.sum() - 0.5 * (s[0] + s[-1])))


def erlang_cdf(m: int, x: float, tau: float) -> float:
    """P(sum of m exponential(mean tau) <= x) = 1 - sum_{i<m} e^-y y^i / i!, y = x / tau, in logs."""
    y = x / tau
    return 1.0 - sum(math.exp(-y + i * math.log(y) - math.lgamma(i + 1)) for i in range(m))


# ----------------------------------------------------------------------------- gap_cdf

def test_cdf_exponential_by_formula():
    # 1 - e^{-g/tau}: g = tau -> 1 - 1/e; g = 0 -> 0; g = 3 tau -> 1 - e^-3
    out = gap_cdf([0.0, 10.0, 30.0], 10.0, "exponential")
    assert out == pytest.approx([0.0, 1 - math.exp(-1), 1 - math.exp(-3)], rel=1e-14, abs=1e-300)


def test_cdf_deterministic_step_includes_tau():
    # P(G <= g) for G = tau: 0 below tau, 1 at and above it
    assert list(gap_cdf([4.999, 5.0, 5.001], 5.0, "deterministic")) == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_cdf_lognormal_by_erf(sigma):
    tau = 30.0
    gs = [0.0, 1.0, 10.0, 30.0, 100.0, 1000.0]
    got = gap_cdf(gs, tau, "lognormal", sigma)
    assert got == pytest.approx([lognormal_cdf(g, tau, sigma) for g in gs], abs=2e-7)   # erfc fit: 1.2e-7
    # the median is e^mu = tau e^{-sigma^2/2}: F = 1/2 there
    assert float(gap_cdf(tau * math.exp(-0.5 * sigma * sigma), tau, "lognormal", sigma)) == pytest.approx(0.5, abs=2e-7)


def test_cdf_lognormal_at_zero_is_zero():
    assert float(gap_cdf(0.0, 5.0, "lognormal", 1.0)) == 0.0


# ----------------------------------------------------------------------------- gap_mean_min

def test_mean_min_exponential():
    # int_0^g e^{-x/tau} dx = tau (1 - e^{-g/tau}); g = inf -> tau
    tau = 8.0
    got = gap_mean_min([0.0, 8.0, 24.0, math.inf], tau, "exponential")
    assert got == pytest.approx([0.0, 8 * (1 - math.exp(-1)), 8 * (1 - math.exp(-3)), 8.0], rel=1e-14)


def test_mean_min_deterministic():
    assert list(gap_mean_min([1.0, 5.0, 9.0], 5.0, "deterministic")) == [1.0, 5.0, 5.0]


@pytest.mark.parametrize("sigma", [0.5, 1.5])
@pytest.mark.parametrize("g", [3.0, 20.0, 80.0])
def test_mean_min_lognormal_is_the_integral_of_the_survival(sigma, g):
    tau = 20.0
    want = integral_survival(lambda x: lognormal_cdf(x, tau, sigma), g)
    assert float(gap_mean_min(g, tau, "lognormal", sigma)) == pytest.approx(want, rel=1e-5)


def test_mean_min_lognormal_limits():
    # E[min(G, inf)] = E[G] = tau; E[min(G, 0)] = 0
    got = gap_mean_min([math.inf, 0.0], 12.0, "lognormal", 1.0)
    assert got[0] == pytest.approx(12.0, rel=1e-6)
    assert got[1] == 0.0


# ----------------------------------------------------------------------------- gap_quantile

def test_quantile_exponential():
    # F^-1(q) = -tau ln(1 - q): q = 1 - 1/e -> tau; q = 0 -> 0
    got = gap_quantile([0.0, 1 - math.exp(-1), 0.5], 10.0, "exponential")
    assert got == pytest.approx([0.0, 10.0, 10 * math.log(2)], rel=1e-13)


def test_quantile_deterministic_broadcasts_tau():
    got = gap_quantile(np.array([[0.0], [0.3]]), np.array([2.0, 7.0]), "deterministic")
    assert got.shape == (2, 2)
    assert got.tolist() == [[0.0, 0.0], [2.0, 7.0]]


def test_quantile_lognormal_inverts_the_cdf():
    tau, sigma = 30.0, 0.8
    mu = math.log(tau) - 0.5 * sigma * sigma
    qs = [0.0, 0.025, 0.5, 0.975]
    got = gap_quantile(qs, tau, "lognormal", sigma)
    assert got[0] == 0.0
    # z_0.975 = 1.959963984540054 (standard normal table), z_0.5 = 0
    assert got[2] == pytest.approx(math.exp(mu), rel=1e-8)
    assert got[3] == pytest.approx(math.exp(mu + sigma * 1.959963984540054), rel=1e-8)
    assert got[1] == pytest.approx(math.exp(mu - sigma * 1.959963984540054), rel=1e-8)
    for q, x in zip(qs[1:], got[1:]):
        assert lognormal_cdf(float(x), tau, sigma) == pytest.approx(q, abs=1e-8)


# ----------------------------------------------------------------------------- gap_sum_cdf

def test_sum_cdf_deterministic_step_at_m_tau():
    m = np.array([1, 2, 3, 3])
    x = np.array([4.0, 7.9, 12.0, 11.9])
    assert gap_sum_cdf(m, x, 4.0, "deterministic", 1.0).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_sum_cdf_exponential_is_erlang_exactly_up_to_40():
    tau = 5.0
    m = np.array([1, 2, 3, 7, 20, 40, 40])
    x = np.array([5.0, 3.0, 20.0, 35.0, 90.0, 200.0, 260.0])
    want = [erlang_cdf(int(mi), float(xi), tau) for mi, xi in zip(m, x)]
    assert gap_sum_cdf(m, x, tau, "exponential", 1.0) == pytest.approx(want, abs=1e-12)
    # m = 1 is the exponential CDF: 1 - e^{-1} at x = tau
    assert float(gap_sum_cdf(np.array([1]), np.array([5.0]), tau, "exponential", 1.0)[0]) == \
        pytest.approx(1 - math.exp(-1), rel=1e-14)


def test_sum_cdf_exponential_beyond_40_is_close_to_erlang():
    # Wilson-Hilferty's approximation of the gamma CDF (error ~1e-4 at m > 40);
    # mixed with small m in one call so the two branches must each fill their own slots
    tau = 2.0
    m = np.array([2, 50, 80, 200, 3])
    x = np.array([4.0, 90.0, 170.0, 400.0, 1.0])
    want = [erlang_cdf(int(mi), float(xi), tau) for mi, xi in zip(m, x)]
    got = gap_sum_cdf(m, x, tau, "exponential", 1.0)
    assert got[[0, 4]] == pytest.approx([want[0], want[4]], abs=1e-12)
    assert got[1:4] == pytest.approx(want[1:4], abs=3e-4)
    assert all(0.05 < g < 0.95 for g in got[1:4])   # points in the body, where a wrong shape shows


def test_sum_cdf_zero_and_negative_x():
    m = np.array([1, 3, 50])
    for dist in ("exponential", "lognormal"):
        assert gap_sum_cdf(m, np.zeros(3), 3.0, dist, 1.0).tolist() == [0.0, 0.0, 0.0]


def test_sum_cdf_lognormal_fenton_wilkinson():
    # one gap: the lognormal itself; m gaps: a lognormal with mean m tau and variance
    # m (e^{sigma^2} - 1) tau^2, i.e. s^2 = ln(1 + (e^{sigma^2} - 1) / m), mu = ln(m tau) - s^2 / 2
    tau, sigma = 10.0, 1.2
    xs = [2.0, 10.0, 40.0]
    got1 = gap_sum_cdf(np.ones(3), np.array(xs), tau, "lognormal", sigma)
    assert got1 == pytest.approx([lognormal_cdf(x, tau, sigma) for x in xs], abs=2e-7)
    m = 4
    s2 = math.log(1 + (math.exp(sigma * sigma) - 1) / m)
    mu = math.log(m * tau) - 0.5 * s2
    xs4 = [5.0, 30.0, 40.0, 120.0]
    want = [phi((math.log(x) - mu) / math.sqrt(s2)) for x in xs4]
    got4 = gap_sum_cdf(np.full(4, m), np.array(xs4), tau, "lognormal", sigma)
    assert got4 == pytest.approx(want, abs=2e-7)


# ----------------------------------------------------------------------------- edges found by mutation testing

def test_lognormal_default_shape_is_one():
    # sigma defaults to 1.0 (Workload.gap_lognormal_sigma's default)
    tau = 10.0
    assert float(gap_cdf(4.0, tau, "lognormal")) == pytest.approx(lognormal_cdf(4.0, tau, 1.0), abs=2e-7)
    want = integral_survival(lambda x: lognormal_cdf(x, tau, 1.0), 4.0)
    assert float(gap_mean_min(4.0, tau, "lognormal")) == pytest.approx(want, rel=1e-5)
    # median e^mu = tau e^{-1/2}
    assert float(gap_quantile(0.5, tau, "lognormal")) == pytest.approx(tau * math.exp(-0.5), rel=1e-8)


def test_lognormal_below_one_second():
    # gaps shorter than 1 (log g < 0) must use log g itself: g = 0.5 with tau = 2
    tau, sigma = 2.0, 0.7
    want = integral_survival(lambda x: lognormal_cdf(x, tau, sigma), 0.5)
    assert float(gap_mean_min(0.5, tau, "lognormal", sigma)) == pytest.approx(want, rel=1e-5)
    got = gap_sum_cdf(np.array([1.0]), np.array([0.5]), tau, "lognormal", sigma)
    assert float(got[0]) == pytest.approx(lognormal_cdf(0.5, tau, sigma), abs=2e-7)
    assert float(got[0]) > 0.01   # 0.5 s is well inside this distribution's support
    # exponential sums below one time unit: Erlang at y = 0.5 / 0.25 = 2
    e = gap_sum_cdf(np.array([2.0]), np.array([0.5]), 0.25, "exponential", 1.0)
    assert float(e[0]) == pytest.approx(1 - math.exp(-2) * (1 + 2), abs=1e-14)


def test_quantile_lognormal_at_q_one_stays_finite():
    # q = 1 - 1e-17 rounds to 1.0; the quantile is clipped just below 1, so it stays
    # finite and above every quantile of q < 1 - 1e-15
    q1 = float(gap_quantile(1.0, 5.0, "lognormal", 1.0))
    assert math.isfinite(q1)
    assert q1 >= float(gap_quantile(1 - 1e-15, 5.0, "lognormal", 1.0))


def test_sum_cdf_empty_sum_is_one():
    # m = 0 gaps sum to 0 <= x for any x > 0: probability 1
    got = gap_sum_cdf(np.array([0.0, 1.0]), np.array([3.0, 3.0]), 3.0, "exponential", 1.0)
    assert got.tolist() == pytest.approx([1.0, 1 - math.exp(-1)], abs=1e-15)


def test_sum_cdf_only_long_sums():
    # every m > 40 (no exact-Erlang slot at all): still the gamma CDF, to Wilson-Hilferty's 3e-4
    m = np.array([50.0, 100.0])
    x = np.array([100.0, 190.0])
    got = gap_sum_cdf(m, x, 2.0, "exponential", 1.0)
    assert got == pytest.approx([erlang_cdf(50, 100.0, 2.0), erlang_cdf(100, 190.0, 2.0)], abs=3e-4)


def test_sum_cdf_is_a_probability_near_zero():
    # tiny x with several gaps: 1 - (Poisson terms summing to 1 up to rounding) must not go below 0
    m = np.repeat(np.arange(1, 41), 200).astype(float)
    x = np.tile(np.geomspace(1e-3, 1e-1, 200), 40)
    got = gap_sum_cdf(m, x, 1.0, "exponential", 1.0)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_sum_cdf_negative_x_is_zero():
    for dist in ("exponential", "lognormal", "deterministic"):
        assert gap_sum_cdf(np.array([1.0, 2.0]), np.array([-1.0, -5.0]), 3.0, dist, 1.0).tolist() == [0.0, 0.0]
