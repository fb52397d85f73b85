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


def _tok(w, cap, model, eviction="lru", ttl_s=600.0):
    c = CacheConfig(capacity_tokens=cap, block_size_tokens=B, eviction=eviction, ttl_s=ttl_s)
    return float(hit_rates(w, c, model)["token_hit_rate"])


def _smallest_blocks(w, target, model, **kw):
    """Smallest whole number of blocks k with token hit rate >= target, by doubling then bisection."""
    hi = 1
    while _tok(w, hi * B, model, **kw) < target:
        hi *= 2
    lo = hi // 2            # fails (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _tok(w, mid * B, model, **kw) >= target:
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
])
def test_inverse_is_the_smallest_capacity_reaching_the_target(model, gaps, rate, target, eviction):
    w = Workload(conversation_rate_per_s=rate, gap_distribution=gaps)
    fwd = "che" if model == "closed" else model
    inv = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=B, eviction=eviction,
                                                     ttl_s=600.0), target, model)
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
    assert not at["reachable"] and at["capacity_tokens"] is None and at["reason"] == "inverse_above_ideal"
    assert at["ideal_token_hit_rate"] == pytest.approx(ideal, rel=1e-9)
    assert capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0), ideal - 1e-6)["reachable"]
    target = 0.95 * ideal
    ttl = capacity_for_token_hit_rate(w, CacheConfig(capacity_tokens=1.0, eviction="ttl", ttl_s=30.0), target)
    assert not ttl["reachable"] and ttl["reason"] == "inverse_ttl_cap" and ttl["ttl_s"] == 30.0
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
