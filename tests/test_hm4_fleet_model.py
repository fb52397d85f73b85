"""kvcalc.fleet against independent values: plain-Python sums of the infinite-cache ceilings
under uniform routing, the single cache at K x C (pooled) or lambda/K (affinity), stacks of
tier capacities by hand, the Erlang CDF by its Poisson sum, E[(c - V)+] by its formula, and one
seeded simulator point for a finite cache under random routing.
"""

import dataclasses
import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.fleet import (FleetConfig, TierConfig, _erlang_cdf_rows, _positive_part_banded, fleet_hit_rates,
                          hit_rate_vs_instances, scattered_hit_rates, stack_capacities_tokens,
                          tier_split_vs_capacity)
from kvcalc.hitrate import hit_rates
from kvcalc.special import norm_cdf, norm_pdf
from kvcalc.workload import CacheConfig, Workload

INF = CacheConfig(capacity_tokens=1e13, block_size_tokens=1)


def _ge(L, dist, n=2000):
    """P(N >= k), k = 1..n: geometric q^(k-1) (q = 1 - 1/L) or fixed L (integer)."""
    if dist == "geometric":
        q = 1.0 - 1.0 / L
        return [q ** (k - 1) for k in range(1, n + 1)]
    return [1.0 if k <= L else 0.0 for k in range(1, n + 1)]


def _ceilings_by_hand(P, u, o, L, dist, K, b=1):
    """Infinite cache, uniform routing over K: turn k finds the chain its conversation left on
    this instance m turns ago (probability (1/K)(1-1/K)^(m-1)): B_(k-m) = floor((P + (k-m) a)/b)
    - floor(P/b) own blocks, plus the shared prompt's floor(P/b) blocks on every turn.
    Token ideal = (b Ps E[N] + b sum_k P(N>=k) sum_m p_m B_(k-m)) / prompt tokens, prompt tokens
    = sum_k P(N>=k) (P + (k-1) a + u); request ideal = share of turns finding any own block."""
    a = u + o
    ge = _ge(L, dist)
    n = len(ge)
    while n > 1 and ge[n - 1] < 1e-18:
        n -= 1
    r = 1.0 - 1.0 / K
    Ps = P // b
    EN = sum(ge)
    own_tok = own_req = 0.0
    for k in range(2, n + 1):
        for m in range(1, k):
            pm = (1.0 / K) * r ** (m - 1)
            Bk = (P + (k - m) * a) // b - Ps
            own_tok += ge[k - 1] * pm * Bk
            own_req += ge[k - 1] * pm * (Bk >= 1)
    denom = sum(ge[k - 1] * (P + (k - 1) * a + u) for k in range(1, n + 1))
    return (b * Ps * EN + b * own_tok) / denom, own_req / EN


@pytest.mark.parametrize("P,u,o,L,dist,K,b", [
    (1000, 200, 300, 5.0, "geometric", 4, 1),
    (0, 100, 50, 4.0, "fixed", 3, 1),
    (500, 30, 70, 3.0, "fixed", 2, 16),
    (100, 40, 60, 2.5, "geometric", 6, 16),
    # blocks of 256, 150 tokens a turn, no shared prompt: the first turn leaves no full block
    # (B_1 = 0) and the next two one each (B_2 = B_3 = 1): requests reusing nothing are no hit
    (0, 100, 50, 6.0, "fixed", 3, 256),
])
def test_scattered_ceilings_are_the_plain_sums(P, u, o, L, dist, K, b):
    w = Workload(system_prompt_tokens=P, user_tokens_per_turn=u, output_tokens_per_turn=o, turns_mean=L,
                 turns_distribution=dist)
    tok, req = _ceilings_by_hand(P, u, o, L, dist, K, b)
    c = CacheConfig(capacity_tokens=1e13, block_size_tokens=b)
    for routing in ("random", "round_robin"):
        r = fleet_hit_rates(w, c, FleetConfig(K, routing))
        # (the model drops turns reached by fewer than 1e-7 of conversations: rel 1e-5)
        assert r["ideal_token_hit_rate"] == pytest.approx(tok, rel=1e-5)
        assert r["ideal_request_hit_rate"] == pytest.approx(req, rel=1e-5)
        # an infinite cache reaches its ceiling (the shared prompt is always there)
        assert r["token_hit_rate"] == pytest.approx(tok, rel=1e-5)
        assert r["request_hit_rate"] == pytest.approx(req, rel=1e-5)
        assert r["gpu_token_hit_rate"] == r["token_hit_rate"] and r["tier_token_hit_rates"] == [r["token_hit_rate"]]
        assert (r["instances"], r["routing"]) == (K, routing)
        # the ceiling kept: the scattered request ideal over the sticky one (K = 1 of the same sum)
        assert r["random_routing_ceiling"] == pytest.approx(req / _ceilings_by_hand(P, u, o, L, dist, 1, b)[1],
                                                            rel=1e-5)
    s = scattered_hit_rates(w, c, K)
    assert s["mean_turns"] == pytest.approx(sum(_ge(L, dist)), rel=1e-5)
    assert s["prompt_tokens_per_conversation"] == pytest.approx(
        sum(g * (P + k * (u + o) + u) for k, g in enumerate(_ge(L, dist))), rel=1e-5)


def test_geometric_random_ceiling_closed_form():
    # MODEL.md: an infinite cache under random routing keeps L/(L+K-1) of the own-history
    # hits (geometric turns): 5/12 for K = 8, L = 5; the sticky ideal request rate is 1 - 1/L
    for K in (2, 8):
        r = fleet_hit_rates(Workload(), INF, FleetConfig(K, "random"))
        assert r["random_routing_ceiling"] == pytest.approx(5.0 / (5.0 + K - 1.0), rel=1e-6)
        assert r["ideal_request_hit_rate"] == pytest.approx(0.8 * 5.0 / (5.0 + K - 1.0), rel=1e-6)
    for routing in ("affinity", "pooled"):
        assert fleet_hit_rates(Workload(), CacheConfig(capacity_tokens=1e12), FleetConfig(8, routing))["random_routing_ceiling"] == 1.0
    assert fleet_hit_rates(Workload(), INF, FleetConfig(1, "random"))["random_routing_ceiling"] == 1.0


def test_random_routing_finite_cache_against_the_simulator():
    # a finite cache under random routing, K = 3: the seeded simulator (its 95 % interval,
    # widened by 1.5 pp of model error, the tolerance of tests/test_fleet.py)
    from kvcalc.simulate import simulate
    w = Workload(conversation_rate_per_s=2.0, gap_mean_s=30.0)
    c = CacheConfig(capacity_tokens=1.5e5)
    m = fleet_hit_rates(w, c, FleetConfig(3, "random"))
    s = simulate(w, c, seed=11, n_conversations=8000, fleet=FleetConfig(3, "random"))
    assert s["token_hit_rate_ci95_low"] - 0.015 <= m["token_hit_rate"] <= s["token_hit_rate_ci95_high"] + 0.015
    assert abs(m["request_hit_rate"] - s["request_hit_rate"]) <= 0.02
    assert m["token_hit_rate"] < m["ideal_token_hit_rate"] - 0.05      # well below the ceiling here


@pytest.mark.parametrize("gap", ["exponential", "deterministic", "lognormal"])
def test_one_instance_scattered_is_the_refined_model(gap):
    w = Workload(gap_distribution=gap, conversation_rate_per_s=2.0)
    for cap in (8e4, 2e5, 5e5):
        c = CacheConfig(capacity_tokens=cap)
        ref = hit_rates(w, c)
        s = scattered_hit_rates(w, c, 1)
        assert s["token_hit_rate"] == pytest.approx(float(ref["token_hit_rate"]), abs=5e-4)
        assert s["request_hit_rate"] == pytest.approx(float(ref["request_hit_rate"]), abs=5e-4)
        assert s["ideal_token_hit_rate"] == pytest.approx(float(ref["ideal_token_hit_rate"]), rel=1e-5)
        assert s["overload"] == bool(ref["overload"])
        assert s["overload_ends_at_capacity_tokens"] == pytest.approx(float(ref["overload_ends_at_capacity_tokens"]))


def test_ttl_under_scattered_routing():
    w = Workload(conversation_rate_per_s=2.0)
    big = CacheConfig(capacity_tokens=1e9, eviction="ttl", ttl_s=30.0)
    # K = 1 against the refined model's TTL: the age grid cuts at the TTL by whole cells (log
    # cells ~5 % wide), which costs ~1.2 pp here (0.5564 against 0.5576): 1.5 pp, the fleet tests'
    # model tolerance
    assert scattered_hit_rates(w, big, 1)["token_hit_rate"] == pytest.approx(
        float(hit_rates(w, big)["token_hit_rate"]), abs=0.015)
    # a huge cache with a TTL: only chains younger than 30 s survive; with a TTL of 1e-6 s no
    # own chain survives and, with the shared prompt kept only while someone uses it, the
    # token hit rate is at most the shared share 5000/16000 (block 16: 992 x 5 / 16000)
    tiny = CacheConfig(capacity_tokens=1e9, eviction="ttl", ttl_s=1e-3)
    r = scattered_hit_rates(w, tiny, 4)
    assert r["request_hit_rate"] == pytest.approx(0.0, abs=1e-4)    # P(G < 1 ms) = 1.7e-5
    assert r["token_hit_rate"] <= 992 * 5 / 16000 + 1e-9
    with pytest.raises(InputError) as e:
        scattered_hit_rates(w, CacheConfig(capacity_tokens=1e5, eviction="fifo"), 2)
    assert e.value.field == "cache.eviction"


def test_pooled_is_one_cache_of_K_times_C_and_its_overload_per_instance():
    w = Workload(conversation_rate_per_s=3.0)
    for cap in (2e3, 1e5):
        r = fleet_hit_rates(w, CacheConfig(capacity_tokens=cap), FleetConfig(4, "pooled"))
        one = hit_rates(w, CacheConfig(capacity_tokens=4 * cap))
        assert r["token_hit_rate"] == float(one["token_hit_rate"])
        assert r["request_hit_rate"] == float(one["request_hit_rate"])
        assert r["overload"] == bool(one["overload"])
        # the pooled store ends its overload at 1/K of the single cache's capacity per instance
        assert r["overload_ends_at_capacity_tokens"] == pytest.approx(
            float(one["overload_ends_at_capacity_tokens"]) / 4, rel=1e-12)
    assert fleet_hit_rates(w, CacheConfig(capacity_tokens=2e3), FleetConfig(4, "pooled"))["overload"]


def test_pooled_through_compute_is_one_cache_of_K_times_C():
    from kvcalc.api import compute
    wl = {"conversation_rate_per_s": 3, "gap_mean_s": 45}
    pooled = compute({"workload": wl, "cache": {"capacity_tokens": 5e4}, "cluster": {"instances": 4, "routing": "pooled"}})
    one = compute({"workload": wl, "cache": {"capacity_tokens": 2e5}})
    assert pooled["token_hit_rate"] == pytest.approx(one["token_hit_rate"], abs=1e-12)
    assert pooled["ideal_token_hit_rate"] == pytest.approx(one["ideal_token_hit_rate"], abs=1e-12)


def test_affinity_is_one_cache_at_lambda_over_K():
    for cap in (5e4, 3e5):
        c = CacheConfig(capacity_tokens=cap)
        r = fleet_hit_rates(Workload(conversation_rate_per_s=3.0), c, FleetConfig(3, "affinity"))
        one = hit_rates(Workload(conversation_rate_per_s=1.0), c)
        assert r["token_hit_rate"] == pytest.approx(float(one["token_hit_rate"]), abs=1e-12)
        assert r["request_hit_rate"] == pytest.approx(float(one["request_hit_rate"]), abs=1e-12)
        assert r["ideal_request_hit_rate"] == pytest.approx(0.8, rel=1e-6)   # 1 - 1/L, L = 5
        assert r["overload_ends_at_capacity_tokens"] == float(one["overload_ends_at_capacity_tokens"])


def test_stack_capacities_by_hand():
    tiers = (TierConfig("cpu", 100.0), TierConfig("ssd", 50.0), TierConfig("nvme", 400.0))
    assert stack_capacities_tokens(30.0, tiers, "exclusive").tolist() == [30.0, 130.0, 180.0, 580.0]
    # inclusive: max(C, C1 + pin, ..): 30, max(30, 110) = 110, max(110, 60) = 110, max(110, 410) = 410
    assert stack_capacities_tokens(30.0, tiers, "inclusive", 10.0).tolist() == [30.0, 110.0, 110.0, 410.0]
    assert stack_capacities_tokens(500.0, tiers[:1], "inclusive").tolist() == [500.0, 500.0]
    assert stack_capacities_tokens(7.0, (), "exclusive").tolist() == [7.0]
    # no pinned tokens unless given: an inclusive tier of 100 above a GPU of 10 is 100
    assert stack_capacities_tokens(10.0, tiers[:1], "inclusive").tolist() == [10.0, 100.0]


def _pinned_tokens_by_hand(w, K, b=16):
    """Little's law: lambda S sum_k P(N>=k) ceil(Z_k/b - Ps) blocks pinned (running requests),
    Z_k = P + k a, in tokens, for one of K instances."""
    ge = _ge(float(w.turns_mean), w.turns_distribution)
    P, a, Ps = w.system_prompt_tokens, w.user_tokens_per_turn + w.output_tokens_per_turn, w.system_prompt_tokens // b
    blocks = sum(g * (math.ceil((P + k * a) / b) - Ps) for k, g in enumerate(ge, start=1))
    return w.conversation_rate_per_s * w.service_time_s * blocks * b / K


@pytest.mark.parametrize("routing,K", [("affinity", 2), ("pooled", 3), ("affinity", 1)])
def test_tiers_exclusive_and_inclusive_by_hand(routing, K):
    w = Workload(conversation_rate_per_s=2.0)
    C, C1, C2 = 5e4, 2e5, 1e5

    def single(cap):
        if routing == "pooled":
            return float(hit_rates(w, CacheConfig(capacity_tokens=cap * K))["token_hit_rate"])
        wk = dataclasses.replace(w, conversation_rate_per_s=2.0 / K)
        return float(hit_rates(wk, CacheConfig(capacity_tokens=cap))["token_hit_rate"])
    fl = FleetConfig(K, routing, tiers=(TierConfig("cpu", C1), TierConfig("ssd", C2)))
    ex = fleet_hit_rates(w, CacheConfig(capacity_tokens=C), fl)
    H = [single(C), single(C + C1), single(C + C1 + C2)]
    assert ex["tier_token_hit_rates"] == pytest.approx([H[0], H[1] - H[0], H[2] - H[1]], abs=1e-12)
    assert ex["token_hit_rate"] == pytest.approx(H[2], abs=1e-12) and ex["gpu_token_hit_rate"] == pytest.approx(H[0])
    inc = fleet_hit_rates(w, CacheConfig(capacity_tokens=C), dataclasses.replace(fl, tier_mode="inclusive"))
    pin = _pinned_tokens_by_hand(w, K)
    assert pin > 0
    caps = [C, max(C, C1 + pin), max(C, C1 + pin, C2 + pin)]
    Hi = [single(x) for x in caps]
    assert inc["tier_token_hit_rates"] == pytest.approx([Hi[0], Hi[1] - Hi[0], 0.0], abs=1e-12)
    assert inc["token_hit_rate"] == pytest.approx(Hi[1], abs=1e-12)
    # tier_split_vs_capacity is the same split along capacities
    split = tier_split_vs_capacity(w, CacheConfig(capacity_tokens=C), dataclasses.replace(fl, tier_mode="inclusive"),
                                   [C, 2 * C], "refined")
    assert [t["name"] for t in split["tiers"]] == ["gpu", "cpu", "ssd"]
    assert split["capacity_tokens"] == [C, 2 * C]
    assert [t["token_hit_rate"][0] for t in split["tiers"]] == pytest.approx(inc["tier_token_hit_rates"], abs=1e-12)


def test_tier_split_under_random_routing_is_pointwise():
    w = Workload(conversation_rate_per_s=2.0)
    fl = FleetConfig(2, "random", tiers=(TierConfig("cpu", 1e5),))
    caps = [3e4, 1.2e5]
    split = tier_split_vs_capacity(w, CacheConfig(capacity_tokens=1e5), fl, caps, "che")
    for i, cap in enumerate(caps):
        want = fleet_hit_rates(w, CacheConfig(capacity_tokens=cap), fl, "che")["tier_token_hit_rates"]
        assert [t["token_hit_rate"][i] for t in split["tiers"]] == pytest.approx(want, abs=1e-12)
        # exclusive: GPU + tier = the scattered model at C + C1 (one stack)
        assert sum(want) == pytest.approx(
            scattered_hit_rates(w, CacheConfig(capacity_tokens=cap + 1e5), 2)["token_hit_rate"], abs=1e-12)


def test_hit_rate_vs_instances_rows():
    w = Workload(conversation_rate_per_s=2.0)
    c = CacheConfig(capacity_tokens=1e5)
    f = hit_rate_vs_instances(w, c, FleetConfig(), "che", instances=(1, 2, 4))
    assert f["instances"] == [1, 2, 4]
    assert f["routing"]["round_robin"] == f["routing"]["random"]
    for i, k in enumerate((1, 2, 4)):
        assert f["routing"]["pooled"][i] == pytest.approx(
            float(hit_rates(w, CacheConfig(capacity_tokens=1e5 * k), "che")["token_hit_rate"]), abs=1e-12)
        assert f["routing"]["affinity"][i] == pytest.approx(
            float(hit_rates(Workload(conversation_rate_per_s=2.0 / k), c, "che")["token_hit_rate"]), abs=1e-12)
        assert f["routing"]["random"][i] == pytest.approx(scattered_hit_rates(w, c, k)["token_hit_rate"], abs=1e-12) \
            if k > 1 else True
        assert f["random_routing_ceiling"][i] == pytest.approx(5.0 / (5.0 + k - 1.0))
    fixed = hit_rate_vs_instances(Workload(turns_distribution="fixed"), c, FleetConfig(), "che", instances=(2,))
    assert fixed["random_routing_ceiling"] == [None]


def test_erlang_rows_are_the_poisson_sum():
    # P(G_1+..+G_m <= x) = 1 - sum_{i<m} e^-y y^i / i!, y = x / tau: exact below 41 gaps; beyond,
    # Wilson-Hilferty (1.1e-4 at worst here, m = 41 in the body; 3e-4 allowed) against the same sum in log space
    tau = 7.0
    ms = np.arange(1, 46)
    xs = np.array([0.0, 0.5, 3.0, 20.0, 70.0, 150.0, 300.0, 400.0])
    x = np.broadcast_to(xs[None, :], (ms.size, xs.size)) * np.sqrt(ms)[:, None]
    # and the body of each row: y = m + k sqrt(m), k = -2..2 (where the CDF is far from 0 and 1)
    body = tau * (ms[:, None] + np.arange(-2, 3)[None, :] * np.sqrt(ms)[:, None])
    x = np.concatenate([x, body], axis=1)
    got = _erlang_cdf_rows(x, tau)
    for i, m in enumerate(ms):
        for j in range(x.shape[1]):
            y = x[i, j] / tau
            tail = sum(math.exp(-y + k * math.log(y) - math.lgamma(k + 1)) if y > 0 else (1.0 if k == 0 else 0.0)
                       for k in range(m))
            want = 1.0 - tail
            assert got[i, j] == pytest.approx(want, abs=1e-9 if m <= 40 else 3e-4), (m, x[i, j])


def test_positive_part_is_the_normal_formula():
    # E[(c - V)+] = d Phi(d/s) + s phi(d/s), d = c - m; s = 0: max(d, 0); far tails: d or 0
    c = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    m = np.array([8.0, 12.0, 10.0, -100.0, 200.0, 9.0, 11.0, 9.5])
    s = np.array([1.0, 3.0, 2.0, 5.0, 5.0, 0.0, 0.0, 0.4])
    got = _positive_part_banded(c, m, s)
    for k in range(c.size):
        d = c[k] - m[k]
        if s[k] > 0:
            z = d / s[k]
            want = d * 0.5 * math.erfc(-z / math.sqrt(2)) + s[k] * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        else:
            want = max(d, 0.0)
        assert got[k] == pytest.approx(want, rel=1e-6, abs=1e-12)
    # z just inside and outside the band (|z| = 8.5): the two sides meet to 1e-15
    s1 = np.array([1.0])
    for z in (8.49, 8.51, -8.49, -8.51):
        d = np.array([z])
        full = d * norm_cdf(d) + norm_pdf(d)
        assert _positive_part_banded(d, np.zeros(1), s1) == pytest.approx(full, abs=1e-15)


def test_fleet_validation():
    assert FleetConfig(2, "pooled").pooled and not FleetConfig(2, "random").pooled
    assert FleetConfig(100_000).instances == 100_000
    assert len(FleetConfig(tiers=[TierConfig()] * 4).tiers) == 4
    assert isinstance(FleetConfig(tiers=[TierConfig()]).tiers, tuple)
    t = TierConfig("ssd", 1e13, 1e5)
    assert (t.capacity_tokens, t.read_gb_per_s) == (1e13, 1e5)
    assert TierConfig().read_gb_per_s == 25.0 and TierConfig().capacity_tokens == 0.0
    bad = [(lambda: FleetConfig(100_001), "cluster.instances"), (lambda: FleetConfig(tiers=[TierConfig()] * 5), "tiers"),
           (lambda: FleetConfig(tiers=["x"]), "tiers"), (lambda: TierConfig(""), "tiers.name"),
           (lambda: TierConfig(5), "tiers.name"), (lambda: TierConfig("a", 2e13), "tiers.capacity_tokens"),
           (lambda: TierConfig("a", 1, 2e5), "tiers.read_gb_per_s"), (lambda: FleetConfig(tier_mode="x"), "tier_mode")]
    for make, field in bad:
        with pytest.raises(InputError) as e:
            make()
        assert e.value.field == field
    with pytest.raises(InputError) as e:
        fleet_hit_rates(Workload(), CacheConfig(capacity_tokens=1e5), {"instances": 2})
    assert e.value.field == "fleet"


@pytest.mark.parametrize("name", ["conversation_rate_per_s", "turns_mean", "gap_mean_s", "gap_lognormal_sigma",
                                  "user_tokens_per_turn", "output_tokens_per_turn", "system_prompt_tokens",
                                  "service_time_s"])
def test_fleet_needs_scalar_inputs(name):
    v = float(getattr(Workload(), name)) or 1.0
    w = dataclasses.replace(Workload(gap_distribution="lognormal"), **{name: np.array([v, v])})
    with pytest.raises(InputError) as e:
        fleet_hit_rates(w, CacheConfig(capacity_tokens=1e5), FleetConfig(2, "affinity"))
    assert e.value.field == f"workload.{name}"


def test_fleet_needs_a_scalar_capacity():
    with pytest.raises(InputError) as e:
        fleet_hit_rates(Workload(), CacheConfig(capacity_tokens=np.array([1e5, 2e5])), FleetConfig(2))
    assert e.value.field == "cache.capacity_tokens"


def test_tier_config_converts_and_bounds():
    t = TierConfig("cpu", 5, 3)
    assert type(t.capacity_tokens) is float and type(t.read_gb_per_s) is float
    assert TierConfig("cpu", 1.0, 0.5).read_gb_per_s == 0.5
    for make in (lambda: TierConfig("a", 1e13 + 1), lambda: TierConfig("a", 1, 1e5 + 1),
                 lambda: TierConfig("a", 1, 0.0)):
        with pytest.raises(InputError):
            make()
    with pytest.raises(InputError) as e:
        TierConfig("")
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == \
        ("tiers.name", "", "a non-empty string", "not a name")


def test_tier_split_defaults_modes_and_order():
    w = Workload(conversation_rate_per_s=2.0)
    c = CacheConfig(capacity_tokens=5e4)
    fl = FleetConfig(2, "affinity", tiers=(TierConfig("cpu", 1e5),))
    # capacities in decreasing order: each point is its own (no running maximum across points)
    caps = [2e5, 5e4]
    split = tier_split_vs_capacity(w, c, fl, caps)          # the default model is che
    for i, cap in enumerate(caps):
        want = fleet_hit_rates(w, CacheConfig(capacity_tokens=cap), fl, "che")["tier_token_hit_rates"]
        assert [t["token_hit_rate"][i] for t in split["tiers"]] == pytest.approx(want, abs=1e-12)
    assert split["tiers"][0]["token_hit_rate"][0] > split["tiers"][0]["token_hit_rate"][1]
    f = hit_rate_vs_instances(w, c, FleetConfig(), instances=(2,))   # default model che
    assert f["routing"]["pooled"] == pytest.approx(
        [float(hit_rates(w, CacheConfig(capacity_tokens=1e5), "che")["token_hit_rate"])], abs=1e-12)


def test_scattered_lru_ignores_a_ttl_setting_and_fifo_error_text():
    w = Workload(conversation_rate_per_s=2.0)
    lru = scattered_hit_rates(w, CacheConfig(capacity_tokens=1e6), 3)
    lru_with_ttl = scattered_hit_rates(w, CacheConfig(capacity_tokens=1e6, eviction="lru", ttl_s=5.0), 3)
    assert lru_with_ttl["token_hit_rate"] == lru["token_hit_rate"]
    assert lru["token_hit_rate"] > scattered_hit_rates(
        w, CacheConfig(capacity_tokens=1e6, eviction="ttl", ttl_s=5.0), 3)["token_hit_rate"] + 0.05
    with pytest.raises(InputError) as e:
        scattered_hit_rates(w, CacheConfig(capacity_tokens=1e5, eviction="fifo"), 2)
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == \
        ("cache.eviction", "fifo", "lru or ttl with random or round-robin routing", "not modelled")


def test_capacity_below_the_shared_prompt_is_the_refined_models():
    # C = 500 tokens (31 blocks of 16) under a 1000-token shared prompt (62 blocks): the shared
    # prompt is held only while someone runs; K = 1 of the scattered model is the refined model
    for rate in (0.2, 2.0):
        w = Workload(conversation_rate_per_s=rate)
        for cap in (500.0, 992.0):
            c = CacheConfig(capacity_tokens=cap)
            sc, ref = scattered_hit_rates(w, c, 1), hit_rates(w, c)
            assert sc["token_hit_rate"] == pytest.approx(float(ref["token_hit_rate"]), abs=5e-4)
            # the shared prompt alone (62 blocks) overflows 31 and 62 blocks: overloaded
            assert sc["overload"] is bool(ref["overload"]) is True
