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


# ---------------------------------------------------------------- the per-turn sums, by enumeration

def _pmf_by_hand(L: float, distribution: str, K: int) -> list[float]:
    if distribution == "geometric":           # P(N = k) = p (1 - p)^(k-1), p = 1/L
        p = 1.0 / L
        return [p * (1.0 - p) ** (k - 1) for k in range(1, K + 1)]
    lo = math.floor(L)                        # fixed: floor(L) and ceil(L) mixed to mean L
    return [(1.0 - (L - lo)) if k == lo else (L - lo) if k == lo + 1 else 0.0 for k in range(1, K + 1)]


@pytest.mark.parametrize("dist,L,u,o,P,b", [
    ("geometric", 3.5, 37.0, 55.0, 100.0, 16),   # P not a whole number of blocks: Ps = 6
    ("geometric", 2.0, 10.0, 8.0, 0.0, 16),      # 18 tokens a turn: B_1 = 1 (one block), B_2 = 2
    ("geometric", 2.0, 6.0, 4.0, 0.0, 16),       # 10 tokens a turn: B_1 = 0 (no full block yet), B_2 = 1
    ("fixed", 2.5, 10.0, 8.0, 40.0, 16),         # N = 2 or 3, half each
    ("fixed", 4.0, 300.0, 200.0, 1000.0, 64),
])
def test_structure_sums_by_enumeration(dist, L, u, o, P, b):
    """MODEL.md's sums over turns k, each term written out: Z_k = P + k a tokens after turn k,
    B_k = floor(Z_k / b) - floor(P / b) own full blocks, Bpin_k = ceil(Z_k / b) - floor(P / b) blocks
    pinned while it runs, prompt_k = P + (k-1) a + u."""
    from kvcalc.hitrate import structure
    lam, S, C = 0.7, 3.0, 123_456.0
    w = Workload(conversation_rate_per_s=lam, turns_mean=L, turns_distribution=dist, user_tokens_per_turn=u,
                 output_tokens_per_turn=o, system_prompt_tokens=P, service_time_s=S)
    st = structure(w, CacheConfig(capacity_tokens=C, block_size_tokens=b))
    K = st.B.shape[-1]
    pmf = _pmf_by_hand(L, dist, K)
    ge = [sum(pmf[k - 1:]) for k in range(1, K + 1)]            # P(N >= k)
    gt = [ge[i] - pmf[i] for i in range(K)]                      # P(N > k)
    a, Ps = u + o, math.floor(P / b)
    B = [math.floor((P + k * a) / b) - Ps for k in range(1, K + 1)]
    Bpin = [math.ceil((P + k * a) / b) - Ps for k in range(1, K + 1)]
    prompt = [P + (k - 1) * a + u for k in range(1, K + 1)]
    want = {
        "EN": sum(ge), "denom_tokens": sum(g * p for g, p in zip(ge, prompt)),
        "A1": sum(g * x for g, x in zip(gt, B)), "A2": sum(q * x for q, x in zip(pmf, B)),
        "A1sq": sum(g * x * x for g, x in zip(gt, B)), "A2sq": sum(q * x * x for q, x in zip(pmf, B)),
        "pin_mean": lam * S * sum(g * x for g, x in zip(ge, Bpin)),
        "pin_var": lam * S * sum(g * x * x for g, x in zip(ge, Bpin)),
        "returning_any": sum(g for g, x in zip(gt, B) if x >= 1),
    }
    for name, value in want.items():
        assert float(getattr(st, name)) == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert float(st.Ps) == Ps and float(st.Cb) == math.floor(C / b) and st.b == b
    assert float(st.lam) == lam and float(st.S) == S and st.ttl_s == math.inf
    assert st.turns_distribution == dist and st.gap_distribution == "exponential"
    assert list(st.B.reshape(-1)) == B
    if dist == "fixed":
        assert K == math.ceil(L)


# ---------------------------------------------------------------- the shared prompt under a TTL

@pytest.mark.parametrize("model", ["refined", "che"])
@pytest.mark.parametrize("P", [16.0, 1000.0])
def test_shared_prompt_presence_under_ttl_by_hand(model, P):
    """Requests arrive at lambda E[N] and hold the shared prompt S seconds; under a TTL it is gone
    iff none overlapped the last ttl + S: h_s = 1 - exp(-lambda E[N] (ttl + S)) (MODEL.md).
    lambda = 0.05, L = 3 (geometric: E[N] = 3 to 1e-10), ttl = 5, S = 2: h_s = 1 - e^-1.05.
    A TTL given with eviction "lru" is ignored: the same as no TTL, with h_s = 1.
    P = 16 is one shared block (b = 16), P = 1000 is 62."""
    w = Workload(conversation_rate_per_s=0.05, turns_mean=3.0, service_time_s=2.0, system_prompt_tokens=P)
    ttl = hit_rates(w, CacheConfig(capacity_tokens=1e6, eviction="ttl", ttl_s=5.0), model)
    hs = 1.0 - math.exp(-0.05 * 3.0 * 7.0)
    assert float(ttl["system_prompt_presence"]) == pytest.approx(hs, rel=1e-8)
    if model == "che":
        # Che: shared blocks hit with h_s, own chains with F_G(T_eff) = 1 - e^(-min(T, ttl) / tau)
        from kvcalc.hitrate import structure
        st = structure(w, CacheConfig(capacity_tokens=1e6, eviction="ttl", ttl_s=5.0))
        T = float(ttl["characteristic_time_s"])
        assert T == pytest.approx(5.0)                   # 1e6 tokens outlast the TTL
        F = 1.0 - math.exp(-T / 60.0)
        want = (hs * float(st.Ps) * 16 * float(st.EN) + F * 16 * float(st.A1)) / float(st.denom_tokens)
        assert float(ttl["token_hit_rate"]) == pytest.approx(want, rel=1e-8)
    plain = hit_rates(w, CacheConfig(capacity_tokens=1e6), model)
    lru_with_ttl = hit_rates(w, CacheConfig(capacity_tokens=1e6, eviction="lru", ttl_s=5.0), model)
    assert float(plain["system_prompt_presence"]) == 1.0
    for key in ("token_hit_rate", "request_hit_rate", "characteristic_time_s", "system_prompt_presence"):
        assert float(lru_with_ttl[key]) == float(plain[key]), key
    assert float(ttl["token_hit_rate"]) < float(plain["token_hit_rate"])


def test_no_shared_prompt_has_presence_one():
    r = hit_rates(Workload(system_prompt_tokens=0.0), CacheConfig(capacity_tokens=1e5, eviction="ttl", ttl_s=5.0))
    assert float(r["system_prompt_presence"]) == 1.0


@pytest.mark.parametrize("bad", ["magic", "", ["refined"], None])
def test_unknown_model_is_named_with_the_choices(bad):
    with pytest.raises(InputError) as e:
        hit_rates(Workload(), CacheConfig(), bad)
    err = e.value.to_dict()
    assert err["field"] == "hit_model" and err["problem"] == "unknown model"
    assert err["allowed"] == "one of refined, che, closed, seed"
    assert e.value.value == bad
