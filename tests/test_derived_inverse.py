"""The inverse (kvcalc.hitrate.inverse) against a brute-force bisection of the forward model.

capacity_for_token_hit_rate promises the smallest capacity (whole blocks) whose token hit
rate reaches the target in the model it names, within 1e-4 of hit rate. The reference here
bisects over whole blocks with the forward model hit_rates() (monotone in capacity:
tests/test_hitrate.py::test_monotone_in_capacity_and_bounded) for the smallest k with
token hit rate(k b) >= target, then checks the inverse's answer against it.
"""

from __future__ import annotations

import math

import pytest

from kvcalc.hitrate import capacity_for_token_hit_rate, hit_rates
from kvcalc.workload import CacheConfig, Workload

B = 16


def _tok(w, cap, model, eviction="lru", ttl_s=45.0, b=B):
    c = CacheConfig(capacity_tokens=cap, block_size_tokens=b, eviction=eviction, ttl_s=ttl_s)
    return float(hit_rates(w, c, model)["token_hit_rate"])


def _smallest_blocks(w, target, model, b=B, **kw):
    """Smallest whole number of blocks k with token hit rate >= target, by doubling then bisection."""
    hi = 1
    while _tok(w, hi * b, model, b=b, **kw) < target:
        hi *= 2
    lo = hi // 2            # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _tok(w, mid * b, model, b=b, **kw) >= target:
            hi = mid
        else:
            lo = mid
    return hi


@pytest.mark.parametrize("model,gaps,rate,target,eviction", [
    ("che", "exponential", 1.0, 0.6, "lru"),
    ("che", "lognormal", 1.0, 0.7, "lru"),
    ("che", "exponential", 0.005, 0.5, "lru"),        # h_s < 1: Che's closed answer is not exact
    ("refined", "exponential", 1.0, 0.6, "lru"),
    ("refined", "deterministic", 1.0, 0.5, "lru"),
    ("refined", "lognormal", 0.005, 0.5, "lru"),
    ("refined", "exponential", 1.0, 0.5, "ttl"),
    ("closed", "exponential", 1.0, 0.6, "lru"),       # answered through Che's forward model
    ("che", "exponential", 1.0, 0.4, "fifo"),
    ("refined", "exponential", 1.0, 0.4, "fifo"),     # the FIFO model, not refined's LRU curve
    ("che", "exponential", 1.0, 0.5, "ttl"),
    ("che", "exponential", 0.02, 0.4, "ttl"),         # sparse: the TTL also expires the shared prompt
])
def test_inverse_is_the_smallest_capacity_reaching_the_target(model, gaps, rate, target, eviction):
    w = Workload(conversation_rate_per_s=rate, gap_distribution=gaps)
    fwd = "che" if model == "closed" else model
    inv = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=B, eviction=eviction,
                                                     ttl_s=45.0), target, model)
    assert inv["reachable"] and inv["model"] == fwd
    assert inv["target_token_hit_rate"] == target
    k = _smallest_blocks(w, target, fwd, eviction=eviction)
    cap = inv["capacity_tokens"]
    assert cap % B == 0
    assert cap >= k * B                                  # it reaches the target ...
    assert _tok(w, cap, fwd, eviction=eviction) >= target
    # ... and is the smallest to within 1e-4 of hit rate, or to the block. (The steep case, rate
    # 0.005 lognormal, moves 1e-3 a block: 200 blocks reach 0.5; rounding the solver's capacity up
    # to whole blocks once returned 201, though the forward model counts floor(capacity / b).)
    assert cap == k * B or _tok(w, cap - B, fwd, eviction=eviction) < target + 1e-4
    if model == "che" and eviction == "lru" and rate == 1.0:
        assert cap == k * B                              # Che's answer is exact (two evaluations confirm it)


def test_inverse_when_the_shared_prompt_alone_reaches_the_target():
    """Default workload: the shared prompt alone gives 62 x 16 x 5 / 16000 = 0.31 of the tokens
    (test_hitrate's ideal by enumeration); a target of 0.2 needs no own history (h* = 0), so the
    smallest capacity is where the shared prompt starts to hit: the brute force says where."""
    w = Workload()
    for model in ("che", "refined"):
        inv = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=B), 0.2, model)
        k = _smallest_blocks(w, 0.2, model)
        assert inv["reachable"] and inv["capacity_tokens"] >= k * B
        assert _tok(w, inv["capacity_tokens"], model) >= 0.2
        # even an empty cache reaches it (the overload keeps the prompt running requests hold):
        # the answer is the smallest capacity offered, one block
        assert k == 1 and inv["capacity_tokens"] == B


def test_inverse_unreachable_above_the_ideal_and_under_a_short_ttl():
    """Ideal (infinite cache) of the default workload: (62 x 16 x 5 + 16 sum_k 0.8^k B_k) / 16000
    (test_hitrate); a target at the ideal is refused. Under a 30 s TTL with 60 s exponential gaps,
    own history hits at most with P(G <= 30) = 1 - e^-0.5 = 0.393: 0.95 of the ideal is out of
    reach; a 10^12-token cache confirms the forward model stays below."""
    w = Workload()
    own = sum(0.8 ** k * ((1000 + 500 * k) // 16 - 62) for k in range(1, 400))
    ideal = (16 * 62 * 5 + 16 * own) / 16000
    at = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), ideal)
    assert at["reachable"] is False and at["capacity_tokens"] is None and at["reason"] == "inverse_above_ideal"
    assert at["ideal_token_hit_rate"] == pytest.approx(ideal, rel=1e-9)
    exact = at["ideal_token_hit_rate"]             # a target within 1e-12 of the ideal counts as it
    for t in (exact, exact - 1e-12):
        assert capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), t)["reason"] == "inverse_above_ideal"
    assert capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), ideal - 1e-6)["reachable"]
    target = 0.95 * ideal
    ttl = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, eviction="ttl", ttl_s=30.0), target)
    assert ttl["reachable"] is False and ttl["reason"] == "inverse_ttl_cap" and ttl["ttl_s"] == 30.0
    assert ttl["capacity_tokens"] is None
    assert ttl["message"] == f"the TTL of 30 s caps the hit rate below {target:.1%}"
    assert _tok(w, 1e12, "refined", eviction="ttl", ttl_s=30.0) < target
    neg = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), -0.1)
    assert not neg["reachable"] and neg["reason"] == "inverse_above_ideal"
    zero = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), 0.0)
    assert zero["reachable"] and zero["capacity_tokens"] == B


@pytest.mark.parametrize("model", ["che", "refined"])
def test_inverse_without_own_history(model):
    """One turn (fixed), a 1000-token shared prompt (P_s = 62 blocks of 16), prompts of 1200 tokens:
    only the shared prompt hits, ideal 62 x 16 / 1200 = 0.8267. A cache of C_b < 62 blocks keeps
    all 62 while someone runs (probability 1 - e^(-lambda S) = 1 - e^-2) and its first C_b blocks
    otherwise: hit = 0.8267 (1 - e^-2 + e^-2 C_b / 62). Target 0.8: C_b >= 62 (0.8 / 0.8267 -
    1 + e^-2) / e^-2 = 47.2, so 48 blocks (the brute force agrees)."""
    w = Workload(turns_mean=1.0, turns_distribution="fixed")
    inv = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=B), 0.8, model)
    assert inv["ideal_token_hit_rate"] == pytest.approx(62 * 16 / 1200, rel=1e-12)
    k = math.ceil(62 * (0.8 / (62 * 16 / 1200) - 1 + math.exp(-2.0)) / math.exp(-2.0))
    assert k == 48 == _smallest_blocks(w, 0.8, model)
    assert inv["reachable"] and inv["capacity_tokens"] == k * B


@pytest.mark.parametrize("model", ["che", "refined"])
def test_inverse_with_64_token_blocks(model):
    """b = 64: P_s = floor(1000 / 64) = 15 shared blocks, B_k = floor((1000 + 500 k) / 64) - 15; the
    ideal by enumeration (geometric 5 turns, P(N > k) = 0.8^k, prompt tokens 16000 per conversation)
    and the answer in whole 64-token blocks, the smallest by brute force."""
    w = Workload()
    own = sum(0.8 ** k * ((1000 + 500 * k) // 64 - 15) for k in range(1, 400))
    ideal = (64 * 15 * 5 + 64 * own) / 16000
    inv = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=64), 0.6, model)
    assert inv["ideal_token_hit_rate"] == pytest.approx(ideal, rel=1e-9)
    k = _smallest_blocks(w, 0.6, model, b=64)
    cap = inv["capacity_tokens"]
    assert cap % 64 == 0 and cap >= k * 64 and _tok(w, cap, model, b=64) >= 0.6
    assert cap == k * 64 or _tok(w, cap - 64, model, b=64) < 0.6 + 1e-4


def test_closed_and_seed_are_answered_by_che():
    """The closed form and the seed formula have no inverse of their own: Che's forward model answers."""
    w = Workload()
    che = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), 0.6, "che")
    for model in ("closed", "seed"):
        r = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), 0.6, model)
        assert r["model"] == "che" and r["capacity_tokens"] == che["capacity_tokens"]


def test_a_target_the_refined_model_never_reaches_under_a_ttl():
    """TTL with F_G(ttl) = 0.505 (ttl = -60 ln 0.495 = 42.2 s): Che's ceiling counts own history with
    0.505, the refined model's 96 quantile nodes with 48 / 96 = 0.5 (nodes (i + 1/2) / 96 < 0.505 for
    i <= 47). A target between the two ceilings passes Che's TTL check but no capacity reaches it in
    the refined model: said so, after doubling the capacity 80 times. Ceilings by hand: h_s = 1 -
    exp(-lambda E[N] (ttl + S)) (= 1 to 1e-90), (h_s 62 x 16 x 5 + 16 A1 F) / 16000, A1 = sum 0.8^k B_k."""
    w = Workload()
    ttl = -60.0 * math.log(0.495)
    own = sum(0.8 ** k * ((1000 + 500 * k) // 16 - 62) for k in range(1, 400))
    che = (16 * 62 * 5 + 16 * own * 0.505) / 16000
    ref = (16 * 62 * 5 + 16 * own * 0.5) / 16000
    assert _tok(w, 1e9, "refined", eviction="ttl", ttl_s=ttl) == pytest.approx(ref, rel=1e-7)
    target = 0.5 * (che + ref)
    r = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, eviction="ttl", ttl_s=ttl), target)
    assert (r["reachable"], r["capacity_tokens"], r["reason"], r["model"]) == (False, None, "inverse_not_reached",
                                                                             "refined")
    assert r["message"] == f"{target:.1%} is not reached by the refined model at any capacity tried"
