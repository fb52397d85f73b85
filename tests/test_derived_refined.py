"""The refined LRU/TTL model (kvcalc.hitrate.refined) by a second derivation and by the simulator.

The model (MODEL.md, refined): the volume V(g) of blocks others touch during a gap g is Normal
with Campbell's mean m(g) = pinned + P_s h_s + lambda A1 E[min(G, g)] + lambda A2 g and variance
lambda (A1sq E[min(G, g)] + A2sq g) + pin_var + P_s^2 h_s (1 - h_s); a chain of B_k blocks keeps
clamp(C_b - V, 0, B_k) blocks; the gap G is averaged over 96 equal-probability quantile nodes
q_i = (i + 1/2) / 96 (one node, the mean, for deterministic gaps); under a TTL a node's chain is
gone when g >= ttl. Token hit = (shared hits x b E[N] + b sum_k P(N>k) E clamp) / prompt tokens,
request hit = sum_k P(N>k) [B_k >= 1] E clamp(C_b - V, 0, 1) / E[N].

The second derivation below writes E clamp(X, 0, B) for X ~ N(d, s^2) as one expression
(d (Phi(beta) - Phi(alpha)) + s (phi(alpha) - phi(beta)) + B (1 - Phi(beta)), alpha = -d/s,
beta = (B - d)/s), where the module takes a difference of two positive-part means; the turn sums
by enumeration; Phi from math.erf and the quantiles from statistics.NormalDist. Tolerance 1e-6
relative (1e-9 absolute): the module's Phi is a rational fit of erfc with error below 1.2e-7
(kvcalc.special), the rest agrees to rounding.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from kvcalc.hitrate import hit_rates
from kvcalc.hitrate.refined import normal_positive_part_mean
from kvcalc.simulate import simulate
from kvcalc.workload import CacheConfig, Workload

_N = NormalDist()


def _Phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _clamp_mean(d, s, B):
    """E clamp(X, 0, B), X ~ Normal(d, s^2)."""
    if s == 0.0:
        return min(max(d, 0.0), B)
    al, be = -d / s, (B - d) / s
    return d * (_Phi(be) - _Phi(al)) + s * (_phi(al) - _phi(be)) + B * (1.0 - _Phi(be))


def _reference(lam, tau, S, b, P, u, o, pmf, Cb, gaps="exponential", sigma=1.0, ttl=math.inf):
    K = len(pmf)
    ge = [sum(pmf[k:]) for k in range(K)]
    gt = [ge[k] - pmf[k] for k in range(K)]
    a, Ps = u + o, P // b
    Bk = [(P + k * a) // b - Ps for k in range(1, K + 1)]
    Bpin = [-(-(P + k * a) // b) - Ps for k in range(1, K + 1)]
    EN = sum(ge)
    denom = sum(g * (P + (k - 1) * a + u) for g, k in zip(ge, range(1, K + 1)))
    A1 = sum(g * x for g, x in zip(gt, Bk))
    A2 = sum(p * x for p, x in zip(pmf, Bk))
    A1sq = sum(g * x * x for g, x in zip(gt, Bk))
    A2sq = sum(p * x * x for p, x in zip(pmf, Bk))
    pinned = lam * S * sum(g * x for g, x in zip(ge, Bpin))
    pin_var = lam * S * sum(g * x * x for g, x in zip(ge, Bpin))
    hs = (1.0 - math.exp(-lam * EN * (ttl + S))) if Ps > 0 else 0.0   # LRU (ttl = inf): 1
    mu = math.log(tau) - 0.5 * sigma * sigma

    def quantile(q):
        if gaps == "exponential":
            return -tau * math.log(1.0 - q)
        if gaps == "deterministic":
            return tau
        return math.exp(mu + sigma * _N.inv_cdf(q))

    def emin(g):
        if gaps == "exponential":
            return tau * (1.0 - math.exp(-g / tau))
        if gaps == "deterministic":
            return min(g, tau)
        z = (math.log(g) - mu) / sigma
        return tau * _Phi(z - sigma) + g * (1.0 - _Phi(z))

    qs = [0.5] if gaps == "deterministic" else [(i + 0.5) / 96 for i in range(96)]
    own = own_any = 0.0
    for q in qs:
        g = quantile(q)
        if g >= ttl:
            continue
        e = emin(g)
        m = pinned + Ps * hs + lam * A1 * e + lam * A2 * g
        s = math.sqrt(lam * (A1sq * e + A2sq * g) + pin_var + Ps * Ps * hs * (1.0 - hs))
        d = Cb - m
        own += sum(w * _clamp_mean(d, s, x) for w, x in zip(gt, Bk)) / len(qs)
        own_any += sum(w for w, x in zip(gt, Bk) if x >= 1) * _clamp_mean(d, s, 1.0) / len(qs)
    idle = math.exp(-lam * EN * S)
    shared = (Ps if Cb >= Ps else Ps * (1.0 - idle) + Cb * idle) * (hs if Ps > 0 else 1.0)
    return (shared * b * EN + b * own) / denom, own_any / EN, (hs if Ps > 0 else 1.0)


def _pmf(turns, L, K=200):
    if turns == "fixed":
        lo = math.floor(L)
        return [0.0] * (lo - 1) + [1.0 - (L - lo)] + ([L - lo] if L > lo else [])
    p = 1.0 / L
    return [p * (1.0 - p) ** (k - 1) for k in range(1, K + 1)]


# lam 1/s, tau 60 s, S 2 s, b 16, u 200, o 300 (MODEL.md's running example) unless varied
@pytest.mark.parametrize("gaps,sigma,turns,L,P,cap_blocks,ttl,lam,S,u,o", [
    ("exponential", 1.0, "fixed", 3.0, 1000, 15_000, math.inf, 1.0, 2.0, 200, 300),
    ("exponential", 1.0, "geometric", 3.0, 1000, 8_000, math.inf, 1.0, 2.0, 200, 300),
    ("lognormal", 0.6, "geometric", 2.5, 0, 12_000, math.inf, 1.0, 2.0, 200, 300),
    ("lognormal", 1.8, "fixed", 4.5, 1000, 25_000, math.inf, 1.0, 2.0, 200, 300),
    ("deterministic", 1.0, "fixed", 3.0, 1000, 20_000, math.inf, 1.0, 2.0, 200, 300),
    # TTL ends nodes at g >= 45 s; sparse traffic: the shared prompt expires too (h_s < 1)
    ("exponential", 1.0, "fixed", 3.0, 1000, 30_000, 45.0, 0.02, 2.0, 200, 300),
    ("exponential", 1.0, "fixed", 3.0, 1000, 150, 45.0, 0.02, 2.0, 200, 300),      # and a tight cache
    ("exponential", 1.0, "fixed", 3.0, 1000, 40, math.inf, 1.0, 2.0, 200, 300),     # C_b < P_s = 62: overload
    # 10 tokens a turn: B_k = floor(10 k / 16) = 0, 1, 1, 2, 3, ... (turn 1 keeps no full block)
    ("exponential", 1.0, "geometric", 4.0, 0, 30, math.inf, 0.5, 2.0, 6, 4),
    # very sparse, no service time: Var V(g) below 1 block^2 at the short gaps
    ("exponential", 1.0, "fixed", 2.0, 0, 3, math.inf, 0.0005, 0.0, 20, 20),
])
def test_refined_equals_the_second_derivation(gaps, sigma, turns, L, P, cap_blocks, ttl, lam, S, u, o):
    tau, b = 60.0, 16
    w = Workload(conversation_rate_per_s=lam, turns_mean=L, turns_distribution=turns, gap_mean_s=tau,
                 gap_distribution=gaps, gap_lognormal_sigma=sigma, user_tokens_per_turn=u,
                 output_tokens_per_turn=o, system_prompt_tokens=P, service_time_s=S)
    c = CacheConfig(capacity_tokens=cap_blocks * b, block_size_tokens=b,
                    eviction="ttl" if ttl != math.inf else "lru", ttl_s=ttl if ttl != math.inf else 600.0)
    r = hit_rates(w, c, "refined")
    tok, req, hs = _reference(lam, tau, S, b, P, u, o, _pmf(turns, L), cap_blocks, gaps, sigma, ttl)
    assert 0.0 < tok < 1.0 and 0.0 <= req < 1.0
    assert float(r["token_hit_rate"]) == pytest.approx(tok, rel=1e-6, abs=1e-9)
    assert float(r["request_hit_rate"]) == pytest.approx(req, rel=1e-6, abs=1e-9)
    assert float(r["system_prompt_presence"]) == pytest.approx(hs, rel=1e-12)
    if ttl != math.inf:
        assert hs < 0.99


def test_normal_positive_part_mean_against_a_numeric_integral():
    """E[(c - V)+] for V ~ N(m, s^2) by the trapezoid rule over +-12 s (200001 points); s = 0:
    max(c - m, 0) exactly; the module's arrays broadcast."""
    for c, m, s in [(10.0, 7.0, 2.0), (3.0, 7.0, 2.0), (100.0, 100.0, 0.5), (0.0, -4.0, 9.0)]:
        v = np.linspace(m - 12 * s, m + 12 * s, 200_001)
        dens = np.exp(-0.5 * ((v - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
        want = float(np.trapezoid(np.maximum(c - v, 0.0) * dens, v))
        assert float(normal_positive_part_mean(np.array(c), np.array(m), np.array(s))) == pytest.approx(want, rel=1e-6)
    got = normal_positive_part_mean(np.array([5.0, 5.0, 2.0]), np.array([3.0, 7.0, 2.0]), np.array([0.0, 0.0, 0.0]))
    assert got.tolist() == [2.0, 0.0, 0.0]


def test_refined_against_the_simulator():
    """The default workload (1 conversation/s, geometric 5 turns, exponential 60 s gaps) at 5e5 tokens:
    the seeded simulator (8000 conversations, seed 21; its 95 % CI half-width here ~0.5 pp) and the
    refined model agree within 1.5 pp (the 72-point grid of test_model_vs_sim: MAE <= 0.5 pp), for the
    token and the request hit rate."""
    w = Workload()
    c = CacheConfig(capacity_tokens=5e5)
    sim = simulate(w, c, seed=21, n_conversations=8000)
    r = hit_rates(w, c, "refined")
    assert abs(float(r["token_hit_rate"]) - sim["token_hit_rate"]) <= 0.015
    assert abs(float(r["request_hit_rate"]) - sim["request_hit_rate"]) <= 0.015


def test_the_inverse_curve_refuses_array_inputs_by_name():
    """refined_token_hit_rate_fn serves the scalar inverse: an array workload is refused, naming
    the field, the value, what is allowed and the problem."""
    from kvcalc.errors import InputError
    from kvcalc.hitrate.refined import refined_token_hit_rate_fn
    with pytest.raises(InputError) as e:
        refined_token_hit_rate_fn(Workload(conversation_rate_per_s=[1.0, 2.0]), CacheConfig(capacity_tokens=1e5))
    err = e.value.to_dict()
    assert (err["field"], err["value"], err["allowed"], err["problem"]) == (
        "workload", "array", "scalar inputs for the inverse", "not a scalar")


@pytest.mark.parametrize("eviction,ttl", [("lru", 600.0), ("ttl", 45.0)])
@pytest.mark.parametrize("P", [1000, 16, 0])      # 62, 1 and no shared blocks
def test_the_inverse_curve_equals_the_forward_model(eviction, ttl, P):
    """The inverse's cached curve (node moments computed once, Newton warm-started from smaller
    capacities) gives hit_rates' refined token hit rate at every capacity, in any order."""
    from kvcalc.hitrate.refined import refined_token_hit_rate_fn
    w = Workload(conversation_rate_per_s=0.05, gap_distribution="lognormal", gap_lognormal_sigma=1.4,
                 system_prompt_tokens=P)
    c = CacheConfig(capacity_tokens=1.0, eviction=eviction, ttl_s=ttl)
    f = refined_token_hit_rate_fn(w, c)
    for cap in (3e4, 1e3, 2e5, 5e4, 1e6, 20.0):
        want = float(hit_rates(w, CacheConfig(capacity_tokens=cap, eviction=eviction, ttl_s=ttl))["token_hit_rate"])
        assert f(cap) == pytest.approx(want, rel=1e-9, abs=1e-12), cap


def test_array_capacities_equal_scalar_calls_for_both_rates():
    """Points are solved together (chunks of cells): each keeps its own token and request rate."""
    w = Workload(conversation_rate_per_s=0.3)
    caps = np.array([2e4, 1e5, 4e5, 2e6])
    r = hit_rates(w, CacheConfig(capacity_tokens=caps), "refined")
    for i, cap in enumerate(caps):
        one = hit_rates(w, CacheConfig(capacity_tokens=float(cap)), "refined")
        for key in ("token_hit_rate", "request_hit_rate"):
            assert float(r[key][i]) == pytest.approx(float(one[key]), rel=1e-12, abs=1e-15), (key, cap)
    assert len(set(np.round(r["request_hit_rate"], 9))) == 4


def test_many_points_are_solved_in_chunks_with_the_same_numbers():
    """150 turns on average (geometric) give 3444 turns of support, so at most 2e6 / (96 x 3444) = 6
    points are evaluated at once: 15 capacities take three chunks, each point as a scalar call."""
    w = Workload(turns_mean=150.0, conversation_rate_per_s=0.02)
    caps = np.geomspace(1e5, 5e7, 15)
    r = hit_rates(w, CacheConfig(capacity_tokens=caps), "refined")
    for i in (0, 5, 6, 11, 12, 14):
        one = hit_rates(w, CacheConfig(capacity_tokens=float(caps[i])), "refined")
        for key in ("token_hit_rate", "request_hit_rate"):
            assert float(r[key][i]) == pytest.approx(float(one[key]), rel=1e-12, abs=1e-15), (key, i)
