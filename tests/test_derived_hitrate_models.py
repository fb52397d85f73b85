"""The closed form, the Che model and the seed formula of kvcalc.hitrate, each against a second method.

* closed form: MODEL.md's fixed point x + (L-1)(1 - e^-x) = R solved here by bisection
  (no Lambert W), then h = 1 - e^-x and the token/request hit rates from their definitions;
* Che: given the characteristic time T the model reports, the own-history hit chance is the
  gap CDF at T, computed here from math.erf (lognormal with sigma != 1);
* seed: the legacy formula worked by hand, and through the registry (it ignores eviction).
"""

from __future__ import annotations

import math

import pytest

from kvcalc.errors import InputError
from kvcalc.hitrate import closed_hit_rates, hit_rates
from kvcalc.workload import CacheConfig, Workload


def _fixed_point_x(R: float, L: float) -> float:
    """x >= 0 with x + (L-1)(1 - e^-x) = R (increasing in x), by bisection; 0 when R <= 0."""
    if R <= 0:
        return 0.0
    lo, hi = 0.0, R
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid + (L - 1.0) * (1.0 - math.exp(-mid)) < R:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("lam,L,tau,u,o,P,S,C", [
    (1.0, 5.0, 60.0, 200.0, 300.0, 1000.0, 2.0, 2e5),     # MODEL.md's running example
    (0.5, 1.5, 30.0, 100.0, 100.0, 0.0, 1.0, 5e3),        # L in (1, 2]: the Lambert W branch with L-1 < 1
    (2.0, 12.0, 120.0, 50.0, 400.0, 3000.0, 5.0, 3e6),
    (1.0, 1.0, 60.0, 200.0, 300.0, 500.0, 2.0, 1e5),      # one turn: no own history, x = R
])
def test_closed_form_against_bisection(lam, L, tau, u, o, P, S, C):
    w = Workload(conversation_rate_per_s=lam, turns_mean=L, gap_mean_s=tau, user_tokens_per_turn=u,
                 output_tokens_per_turn=o, system_prompt_tokens=P, service_time_s=S)
    r = closed_hit_rates(w, CacheConfig(capacity_tokens=C, block_size_tokens=1))
    a = u + o
    R = (C - P - lam * a * L * L * S) / (lam * a * L * tau)
    x = _fixed_point_x(R, L)
    h = 1.0 - math.exp(-x)
    denom = P + a * (L - 1.0) + u                     # mean prompt tokens per request x E[N] / E[N]
    assert float(r["token_hit_rate"]) == pytest.approx((P + h * a * (L - 1.0)) / denom, rel=1e-9, abs=1e-12)
    assert float(r["request_hit_rate"]) == pytest.approx(h * (1.0 - 1.0 / L), rel=1e-9, abs=1e-12)
    assert float(r["ideal_token_hit_rate"]) == pytest.approx((P + a * (L - 1.0)) / denom, rel=1e-12)
    assert float(r["ideal_request_hit_rate"]) == pytest.approx(1.0 - 1.0 / L, rel=1e-12, abs=1e-15)
    assert float(r["characteristic_time_s"]) == pytest.approx(x * tau, rel=1e-9, abs=1e-9)
    assert bool(r["overload"]) is (R < 0)
    assert float(r["overload_ends_at_capacity_tokens"]) == math.floor(P + lam * a * L * L * S) + 1.0


def test_closed_form_overload_edge():
    """R = 0 exactly (C = P + lambda a L^2 S = 1000 + 1*500*2*2*2 = 5000): not overloaded, h = 0;
    one token less: overloaded; R = 0.5 (C = 5000 + 0.5 x lambda a L tau = 5000 + 0.5 x 2000): h > 0."""
    w = Workload(conversation_rate_per_s=1.0, turns_mean=2.0, gap_mean_s=2.0, user_tokens_per_turn=200.0,
                 output_tokens_per_turn=300.0, system_prompt_tokens=1000.0, service_time_s=2.0)
    at = closed_hit_rates(w, CacheConfig(capacity_tokens=5000.0, block_size_tokens=1))
    assert not bool(at["overload"]) and float(at["characteristic_time_s"]) == pytest.approx(0.0, abs=1e-12)
    assert float(at["overload_ends_at_capacity_tokens"]) == 5001.0
    assert bool(closed_hit_rates(w, CacheConfig(capacity_tokens=4999.0, block_size_tokens=1))["overload"])
    half = closed_hit_rates(w, CacheConfig(capacity_tokens=6000.0, block_size_tokens=1))
    assert not bool(half["overload"])
    assert float(half["characteristic_time_s"]) == pytest.approx(_fixed_point_x(0.5, 2.0) * 2.0, rel=1e-9)


@pytest.mark.parametrize("changes", [{"turns_distribution": "fixed"}, {"gap_distribution": "lognormal"},
                                     {"gap_distribution": "deterministic"}])
def test_closed_form_refuses_other_distributions_by_name(changes):
    with pytest.raises(InputError) as e:
        closed_hit_rates(Workload(**changes), CacheConfig(capacity_tokens=1e5))
    err = e.value.to_dict()
    assert err["field"] == "hit_model" and err["value"] == "closed" and err["problem"] == "not applicable"
    assert err["allowed"] == ("the closed form needs workload.turns_distribution = geometric and "
                              "workload.gap_distribution = exponential")


@pytest.mark.parametrize("sigma,cap", [(0.5, 3e5), (2.0, 3e5), (0.5, 1e6)])
def test_che_own_hits_are_the_gap_cdf_at_T(sigma, cap):
    """No shared prompt: Che's token hit rate = ideal x F_G(T), F_G lognormal with mean tau and shape
    sigma: Phi((ln T - mu) / sigma), mu = ln tau - sigma^2 / 2 (via math.erf)."""
    tau = 60.0
    w = Workload(gap_distribution="lognormal", gap_lognormal_sigma=sigma, gap_mean_s=tau, system_prompt_tokens=0.0)
    r = hit_rates(w, CacheConfig(capacity_tokens=cap), "che")
    T = float(r["characteristic_time_s"])
    assert 0.0 < T < math.inf
    mu = math.log(tau) - 0.5 * sigma * sigma
    F = 0.5 * (1.0 + math.erf((math.log(T) - mu) / (sigma * math.sqrt(2.0))))
    assert float(r["token_hit_rate"]) == pytest.approx(float(r["ideal_token_hit_rate"]) * F, rel=1e-7)
    assert float(r["request_hit_rate"]) == pytest.approx(float(r["ideal_request_hit_rate"]) * F, rel=1e-7)


@pytest.mark.parametrize("eviction", ["lru", "fifo", "ttl"])
def test_seed_formula_by_hand_through_the_registry(eviction):
    """(1 - 1/L) min(1, cached / active): L = 5, s = u + o = 500, C = 1e5 -> cached = 1e5 / 2500 = 40
    conversations; active = lambda L tau = 1 x 5 x 60 = 300; hit = 0.8 x 40/300 = 0.10667, for the
    token and the request rate alike, whatever the eviction (the formula knows none)."""
    w = Workload(conversation_rate_per_s=1.0, turns_mean=5.0, gap_mean_s=60.0, user_tokens_per_turn=200.0,
                 output_tokens_per_turn=300.0)
    r = hit_rates(w, CacheConfig(capacity_tokens=1e5, eviction=eviction, ttl_s=30.0), "seed")
    assert float(r["token_hit_rate"]) == pytest.approx(0.8 * 40.0 / 300.0, rel=1e-12)
    assert float(r["request_hit_rate"]) == pytest.approx(0.8 * 40.0 / 300.0, rel=1e-12)
    # more cache than active conversations need: capped at 1 - 1/L
    big = hit_rates(w, CacheConfig(capacity_tokens=1e7, eviction=eviction, ttl_s=30.0), "seed")
    assert float(big["token_hit_rate"]) == pytest.approx(0.8, rel=1e-12)
