"""Analytic hit-rate models: exact special cases, hand-computed values, invariants.

Sources of expected values are given beside each test (MODEL.md formulas worked
by hand, or direct enumeration written out in the test).
"""

import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.hitrate import (capacity_for_token_hit_rate, characteristic_time_s, gap_cdf,
                            gap_mean_min, gap_quantile, hit_rates, occupancy_blocks,
                            seed_token_hit_rate, structure)
from kvcalc.workload import CacheConfig, Workload


def W(**kw):
    base = dict(conversation_rate_per_s=1.0, turns_mean=5.0, gap_mean_s=60.0,
                user_tokens_per_turn=200.0, output_tokens_per_turn=300.0,
                system_prompt_tokens=1000.0, service_time_s=2.0)
    base.update(kw)
    return Workload(**base)


def tok(w, cap, model="refined", b=16, **ckw):
    return float(hit_rates(w, CacheConfig(capacity_tokens=cap, block_size_tokens=b, **ckw), model)["token_hit_rate"])


# ---------------------------------------------------------------- gap distributions

@pytest.mark.parametrize("dist", ["exponential", "deterministic", "lognormal"])
def test_gap_mean_min_matches_numeric_integral_of_survival(dist):
    # E[min(G, g)] = int_0^g (1 - F(x)) dx, checked by the trapezoid rule.
    tau, sigma = 30.0, 0.8
    for g in (5.0, 30.0, 90.0):
        x = np.linspace(0, g, 200001)
        numeric = np.trapezoid(1 - gap_cdf(x, tau, dist, sigma), x)
        assert float(gap_mean_min(g, tau, dist, sigma)) == pytest.approx(numeric, rel=2e-4, abs=1e-6)
    assert float(gap_mean_min(np.inf, tau, dist, sigma)) == pytest.approx(tau, rel=1e-6)


@pytest.mark.parametrize("dist", ["exponential", "lognormal"])
def test_gap_quantile_inverts_cdf(dist):
    q = np.linspace(0.01, 0.99, 50)
    g = gap_quantile(q, 12.0, dist, 1.3)
    assert np.allclose(gap_cdf(g, 12.0, dist, 1.3), q, atol=1e-6)


# ---------------------------------------------------------------- exact special cases

@pytest.mark.parametrize("P,lam,L,tau,S", [(0, 1.0, 5, 60, 0), (0, 0.3, 12, 200, 3), (1000, 5.0, 3, 20, 1)])
def test_closed_form_equals_che_with_token_blocks(P, lam, L, tau, S):
    # MODEL.md: closed form == Che model for geometric turns, exponential gaps, b = 1
    # (the shared prompt is always cached at these rates: h_s = 1 - e^-lambda*L*(T+S) ~ 1).
    w = W(system_prompt_tokens=P, conversation_rate_per_s=lam, turns_mean=L, gap_mean_s=tau, service_time_s=S)
    caps = np.array([2e4, 1e5, 3e5, 1e6, 5e6]) + P + lam * 500 * L * L * S
    c = CacheConfig(capacity_tokens=caps, block_size_tokens=1)
    closed = hit_rates(w, c, "closed")
    che = hit_rates(w, c, "che")
    assert np.allclose(closed["token_hit_rate"], che["token_hit_rate"], rtol=1e-7, atol=1e-9)
    assert np.allclose(closed["request_hit_rate"], che["request_hit_rate"], rtol=1e-7, atol=1e-9)
    assert np.allclose(closed["characteristic_time_s"], che["characteristic_time_s"], rtol=1e-6)


def test_closed_form_hand_value_through_lambert_w():
    # P = 0, S = 0: x + (L-1)(1-e^-x) = C / (lambda a L tau). Pick C so that x = 1:
    # C = 150000 * (1 + 4 (1 - e^-1)); then T = tau = 60 s, h = 1 - 1/e and
    # token hit = h * a (L-1) / (a (L-1) + u) = (1 - 1/e) * 2000 / 2200.
    w = W(system_prompt_tokens=0, service_time_s=0)
    C = 150000 * (1 + 4 * (1 - math.exp(-1)))
    r = hit_rates(w, CacheConfig(capacity_tokens=C, block_size_tokens=1), "closed")
    assert float(r["characteristic_time_s"]) == pytest.approx(60.0, rel=1e-9)
    assert float(r["token_hit_rate"]) == pytest.approx((1 - math.exp(-1)) * 2000 / 2200, rel=1e-9)
    assert float(r["request_hit_rate"]) == pytest.approx((1 - math.exp(-1)) * 0.8, rel=1e-9)


@pytest.mark.parametrize("model", ["refined", "che"])
def test_infinite_capacity_equals_ideal(model):
    for dist in ("exponential", "deterministic", "lognormal"):
        r = hit_rates(W(gap_distribution=dist), CacheConfig(capacity_tokens=1e12), model)
        assert float(r["token_hit_rate"]) == pytest.approx(float(r["ideal_token_hit_rate"]), abs=1e-9)
        assert float(r["request_hit_rate"]) == pytest.approx(float(r["ideal_request_hit_rate"]), abs=1e-9)


def test_ideal_hit_rate_by_hand_with_blocks():
    # Fixed 5 turns, P = 1000, u = 200, o = 300, b = 16 (direct enumeration):
    # Z_k = 1500..3500 -> floor(Z/16) = 93,125,156,187,218; floor(P/16) = 62
    # own blocks B_1..B_4 = 31, 63, 94, 125 reused by turns 2..5 -> 313 blocks = 5008 tokens
    # shared hits 62 blocks * 16 * 5 turns = 4960 tokens; prompts 1200+1700+2200+2700+3200 = 11000
    w = W(turns_distribution="fixed")
    r = hit_rates(w, CacheConfig(capacity_tokens=1e12), "refined")
    assert float(r["ideal_token_hit_rate"]) == pytest.approx((4960 + 5008) / 11000, rel=1e-12)
    assert float(r["ideal_request_hit_rate"]) == pytest.approx(4 / 5, rel=1e-12)
    # Token granularity, fixed 5 turns: hits 5 P + a (1+2+3+4) = 10000 of 11000 prompt tokens.
    r1 = hit_rates(w, CacheConfig(capacity_tokens=1e12, block_size_tokens=1), "che")
    assert float(r1["ideal_token_hit_rate"]) == pytest.approx(10000 / 11000, rel=1e-12)
    # Geometric turns: (P + a(L-1)) / (P + a(L-1) + u) = 3000 / 3200 (MODEL.md closed form)
    r2 = hit_rates(W(), CacheConfig(capacity_tokens=1e12, block_size_tokens=1), "che")
    assert float(r2["ideal_token_hit_rate"]) == pytest.approx(3000 / 3200, rel=1e-8)


@pytest.mark.parametrize("model", ["refined", "che"])
def test_capacity_at_working_set_gives_system_prompt_only_hits(model):
    # At the smallest capacity holding the in-flight working set, T -> 0: no own-history
    # reuse survives; the only hits are the shared prompt kept by in-flight requests:
    # token hit = h_s(0) * P_s * b * E[N] / D, h_s(0) = 1 - exp(-lambda E[N] S).
    w = W(turns_distribution="fixed", gap_distribution="deterministic")
    st = structure(w, CacheConfig(capacity_tokens=1.0))
    o0 = float(occupancy_blocks(st, 0.0))
    r = hit_rates(w, CacheConfig(capacity_tokens=(math.ceil(o0) + 1) * 16), model)
    hs0 = 1 - math.exp(-1.0 * 5 * 2.0)
    assert float(r["token_hit_rate"]) == pytest.approx(hs0 * 62 * 16 * 5 / 11000, abs=2e-3)
    assert not bool(r["overload"])


@pytest.mark.parametrize("model", ["refined", "che"])
def test_capacity_zero_is_an_overload_where_only_running_requests_share(model):
    # Nothing is cached, but a running request holds the shared prompt (Ps = 62 blocks)
    # and a request starting meanwhile reuses it (the simulator does the same:
    # tests/test_simulate.py::test_capacity_zero_overloads_without_crash). Requests in
    # flight ~ Poisson(lambda E[N] S) (M/G/inf), so the share of requests finding one is
    # 1 - exp(-lambda E[N] S); no own history survives.
    r = hit_rates(W(), CacheConfig(capacity_tokens=0.0), model)
    busy = 1 - math.exp(-1.0 * float(r["mean_turns"]) * 2.0)
    expect = busy * 62 * 16 * float(r["mean_turns"]) / float(r["prompt_tokens_per_conversation"])
    assert bool(r["overload"])
    assert float(r["token_hit_rate"]) == pytest.approx(expect, abs=1e-3)   # refined: Normal tail
    assert float(r["request_hit_rate"]) == pytest.approx(0.0, abs=1e-4)


def test_overload_has_no_cliff_and_says_where_it_ends():
    # Issue 7: Qwen3-32B-like traffic (3 chats/s, 6 turns, 45 s, P = 800): the simulator
    # reports ~23 % in overload (shared prompt 50 blocks of the prompt tokens), not 0.
    w = W(conversation_rate_per_s=3.0, turns_mean=6.0, gap_mean_s=45.0, system_prompt_tokens=800.0)
    st = structure(w, CacheConfig(capacity_tokens=1.0))
    o0 = float(occupancy_blocks(st, 0.0))
    caps = np.array([0.2, 0.6, 0.99, 1.01, 1.5]) * o0 * 16
    r = hit_rates(w, CacheConfig(capacity_tokens=caps))
    shared_only = 50 * 16 * float(r["mean_turns"][0]) / float(r["prompt_tokens_per_conversation"][0])
    assert np.all(r["token_hit_rate"] >= shared_only - 1e-9)
    assert np.all(np.diff(r["token_hit_rate"]) >= -1e-9)
    assert list(r["overload"]) == [True, True, True, False, False]
    assert np.all(r["overload_ends_at_capacity_tokens"] == (math.floor(o0) + 1) * 16)


def test_deterministic_gaps_che_is_a_step_at_tau():
    # With every gap exactly tau, Che says all-or-nothing: h = 1 iff T >= tau.
    w = W(gap_distribution="deterministic")
    st = structure(w, CacheConfig(capacity_tokens=1.0))
    need_blocks = float(occupancy_blocks(st, 60.0))
    lo = tok(w, (need_blocks - 50) * 16, "che")
    hi = tok(w, (need_blocks + 50) * 16, "che")
    ideal = float(hit_rates(w, CacheConfig(capacity_tokens=1e12))["ideal_token_hit_rate"])
    assert hi == pytest.approx(ideal, abs=1e-3)
    assert lo < ideal - 0.3


def test_characteristic_time_solves_occupancy_equation():
    for dist in ("exponential", "deterministic", "lognormal"):
        st = structure(W(gap_distribution=dist), CacheConfig(capacity_tokens=np.array([1e5, 4e5, 2e6])))
        T, over = characteristic_time_s(st)
        assert not over.any()
        assert np.allclose(occupancy_blocks(st, T), st.Cb, rtol=1e-8)


def test_seed_formula_as_written_in_the_seed_design():
    # hit = (1 - 1/L) * min(1, (C / (L s)) / (lambda L tau)) with s = u + o = 500:
    # C = 1.2e6, L = 5, lambda = 1, tau = 60: cached = 480 convs, active = 300 -> 0.8
    # C = 3e5: cached = 120 -> 0.8 * 120 / 300 = 0.32
    w = W()
    assert float(seed_token_hit_rate(w, CacheConfig(capacity_tokens=1.2e6))) == pytest.approx(0.8)
    assert float(seed_token_hit_rate(w, CacheConfig(capacity_tokens=3e5))) == pytest.approx(0.32)


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("model", ["refined", "che"])
@pytest.mark.parametrize("dist", ["exponential", "deterministic", "lognormal"])
def test_monotone_in_capacity_and_bounded(model, dist):
    caps = np.logspace(3.5, 7.5, 60)
    r = hit_rates(W(gap_distribution=dist), CacheConfig(capacity_tokens=caps), model)
    t = r["token_hit_rate"]
    assert np.all((t >= 0) & (t <= 1)) and np.all(np.diff(t) >= -1e-9)
    assert np.all(t <= r["ideal_token_hit_rate"] + 1e-9)
    assert np.all(np.diff(r["request_hit_rate"]) >= -1e-9)


def test_more_traffic_means_fewer_hits():
    rates = np.logspace(-1, 1.5, 30)
    t = hit_rates(W(conversation_rate_per_s=rates), CacheConfig(capacity_tokens=3e5), "refined")["token_hit_rate"]
    assert np.all(np.diff(t) <= 1e-9)


def test_vectorised_equals_scalar_calls():
    caps = np.array([8e4, 2e5, 7e5])
    gaps = np.array([[10.0], [60.0], [300.0]])
    r = hit_rates(W(gap_mean_s=gaps), CacheConfig(capacity_tokens=caps), "refined")
    assert r["token_hit_rate"].shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert r["token_hit_rate"][i, j] == pytest.approx(tok(W(gap_mean_s=gaps[i, 0]), caps[j]), abs=1e-12)


def test_ttl_caps_reuse_at_the_ttl():
    # With a TTL shorter than every gap (deterministic 60 s, TTL 30 s) no own history survives.
    w = W(gap_distribution="deterministic")
    t = tok(w, 1e9, "refined", eviction="ttl", ttl_s=30.0)
    assert t == pytest.approx(62 * 16 * 5 / 16000, abs=2e-3)  # shared prompt only (geometric E[N]=5, D=16000)
    assert tok(w, 1e9, "refined", eviction="ttl", ttl_s=61.0) == pytest.approx(tok(w, 1e9), abs=1e-9)


def test_fifo_is_below_lru_and_monotone():
    caps = [1e5, 3e5, 6e5, 1.2e6]
    lru = [tok(W(), c) for c in caps]
    fifo = [tok(W(), c, eviction="fifo") for c in caps]
    assert all(f <= l + 0.01 for f, l in zip(fifo, lru))
    assert all(b >= a - 1e-6 for a, b in zip(fifo, fifo[1:]))


# ---------------------------------------------------------------- inverse

@pytest.mark.parametrize("model", ["refined", "che"])
@pytest.mark.parametrize("dist", ["exponential", "deterministic", "lognormal"])
@pytest.mark.parametrize("rate", [1.0, 0.005])  # at 0.005/s the shared prompt is often evicted (h_s < 1)
def test_inverse_round_trips(model, dist, rate):
    w = W(gap_distribution=dist, conversation_rate_per_s=rate)
    c = CacheConfig(capacity_tokens=1.0)
    inv = capacity_for_token_hit_rate(w, c, 0.8, model)
    assert inv["reachable"]
    cap = inv["capacity_tokens"]
    assert tok(w, cap, model) >= 0.8 - 1e-9
    assert tok(w, cap * 0.97, model) < 0.8


def test_inverse_above_ideal_says_so():
    inv = capacity_for_token_hit_rate(W(), CacheConfig(capacity_tokens=1.0), 0.99)
    assert not inv["reachable"] and "ideal" in inv["message"]
    # Ideal by direct enumeration (geometric turns of mean 5: P(N > k) = 0.8**k, E[N] = 5).
    # Returning turn k+1 reuses the own blocks of turn k, B_k = floor((1000 + 500 k)/16) - 62;
    # every request hits the 62 shared blocks. Prompt tokens per conversation:
    # sum_k P(N >= k) (1200 + 500 (k - 1)) = 700 E[N] + 500 E[N(N+1)/2] = 3500 + 500 * 25 = 16000.
    own = sum(0.8 ** k * ((1000 + 500 * k) // 16 - 62) for k in range(1, 400))
    ideal = (16 * 62 * 5 + 16 * own) / 16000
    assert inv["ideal_token_hit_rate"] == pytest.approx(ideal, rel=1e-9)


def test_unknown_model_is_named():
    with pytest.raises(InputError) as e:
        hit_rates(W(), CacheConfig(), "magic")
    assert e.value.field == "hit_model"


def test_fifo_renewal_inverse_matches_newton_doubling():
    """The damped-FFT renewal inverse (one FFT) against Newton doubling (a second method):
    random renewal sequences D >= 0 with sum D <= 1, lengths 2..5000, agree to 1e-11."""
    import numpy as np
    from kvcalc.hitrate.fifo import renewal_inverse, series_inverse
    rng = np.random.default_rng(7)
    for n in (2, 5, 41, 300, 2760, 5000):
        for _ in range(5):
            D = rng.random(n - 1) * rng.random(n - 1) ** 3
            D = D / D.sum() * rng.uniform(0.5, 1.0)
            a = np.concatenate([[1.0], -D])
            assert np.max(np.abs(renewal_inverse(a, n) - series_inverse(a, n))) < 1e-11


def test_fifo_work_does_not_grow_with_capacity():
    """Audit (#12 D2): the FIFO solve walked up from T = tau/1000 in 1.5x steps, so its work grew
    with capacity (54 occupancy evaluations per point at 1e13 tokens, 200 turns). Above the
    closed-form bound (runs of hits fit in T_low) FIFO is at its ideal and T is solved without
    the renewal; below, the search starts at T_low. Counted in CDF evaluations, not seconds."""
    import kvcalc.hitrate as h
    import kvcalc.hitrate.fifo as fifo
    from kvcalc.workload import CacheConfig, Workload
    calls = []
    orig = fifo.gap_sum_cdf
    try:
        fifo.gap_sum_cdf = lambda *a: calls.append(1) or orig(*a)
        for cap, most in ((1e13, 4), (1e10, 25), (1e8, 16)):
            calls.clear()
            r = h.hit_rates(Workload(turns_mean=200), CacheConfig(capacity_tokens=cap, eviction="fifo"), "che")
            assert len(calls) <= most, (cap, len(calls))
    finally:
        fifo.gap_sum_cdf = orig
    # at 1e13 tokens every turn after the first hits: the ideal, times the shared prompt's
    # presence h_s = T / (T + 1 / (lambda E[N])), 1 to 1e-6 at T ~ 1e9 s; the FIFO sum stops at
    # the turn fewer than 1e-6 of conversations reach (a 1.5e-5 share of the ideal's tokens)
    big = h.hit_rates(Workload(turns_mean=200), CacheConfig(capacity_tokens=1e13, eviction="fifo"), "che")
    assert abs(float(big["token_hit_rate"]) - float(big["ideal_token_hit_rate"])) < 5e-5
