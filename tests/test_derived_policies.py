"""FIFO and TTL models against the simulator at points where the policy matters.

The older checks (tests/test_model_vs_sim.py) used points where the LRU model
passes the same tolerance at 6 of 9 FIFO points, and one TTL point where TTL
equals LRU exactly, so they could not tell a policy from LRU. Here every point
is chosen where the policy's simulated hit rate is far from what the LRU model
says (the test asserts that too: an LRU answer would FAIL the same tolerance by
a margin), so the test would catch a model that quietly fell back to LRU.

Tolerances: FIFO 2.5 pp (MODEL.md: the FIFO TTL approximation is within about
1-3 pp; measured 0.7-1.4 pp here), TTL 1 pp (measured 0.3 pp). The simulator's
95 % CI half-width at 30,000 conversations is 0.1-0.4 pp at these points.
"""

from __future__ import annotations

import pytest

from kvcalc.api import compute
from kvcalc.hitrate import hit_rates
from kvcalc.simulate import simulate
from kvcalc.workload import CacheConfig, Workload

N_CONVERSATIONS = 30_000


def _token(w, c, model="refined"):
    return float(hit_rates(w, c, model)["token_hit_rate"])


# default workload (1 conversation/s, 5 turns, 60 s gaps): capacities where FIFO's
# premature evictions cost 5-8 pp against LRU
@pytest.mark.parametrize("gap,cap", [("exponential", 1e6), ("exponential", 1.5e6), ("deterministic", 1.6e6),
                                     ("lognormal", 1e6), ("lognormal", 1.5e6)])
def test_fifo_model_tells_fifo_from_lru(gap, cap):
    w = Workload(gap_distribution=gap)
    fifo = CacheConfig(capacity_tokens=cap, eviction="fifo")
    sim = simulate(w, fifo, seed=11, n_conversations=N_CONVERSATIONS)["token_hit_rate"]
    assert abs(_token(w, fifo) - sim) <= 0.025
    assert abs(_token(w, CacheConfig(capacity_tokens=cap)) - sim) > 0.025 + 0.02   # LRU fails the tolerance by > 2 pp


# TTL below LRU's characteristic time (70 s at 6e5 tokens, ~350 s at 1.5e6), so the TTL,
# not the capacity, ends reuse
@pytest.mark.parametrize("gap,cap,ttl", [("lognormal", 6e5, 20.0), ("lognormal", 6e5, 60.0),
                                         ("lognormal", 1.5e6, 90.0), ("exponential", 1.5e6, 60.0)])
def test_ttl_model_tells_ttl_from_lru(gap, cap, ttl):
    w = Workload(gap_distribution=gap)
    c = CacheConfig(capacity_tokens=cap, eviction="ttl", ttl_s=ttl)
    sim = simulate(w, c, seed=12, n_conversations=N_CONVERSATIONS)["token_hit_rate"]
    assert abs(_token(w, c) - sim) <= 0.01
    assert abs(_token(w, CacheConfig(capacity_tokens=cap)) - sim) > 0.01 + 0.02   # LRU fails the tolerance by > 2 pp


@pytest.mark.parametrize("gaps", ["exponential", "deterministic", "lognormal"])
@pytest.mark.parametrize("turns", ["fixed", "geometric"])
def test_fifo_with_nothing_to_reuse_is_zero_not_an_error(gaps, turns):
    """Hypothesis (test_derived_errors) found a FIFO request that divided by zero in the
    root search: one turn, one user token, no system prompt, a one-block cache. Nothing is
    ever sent twice, so every policy's hit rate is 0 by definition."""
    req = {"workload": {"turns_mean": 1, "gap_mean_s": 1, "user_tokens_per_turn": 1, "output_tokens_per_turn": 0,
                        "system_prompt_tokens": 0, "service_time_s": 0, "turns_distribution": turns,
                        "gap_distribution": gaps},
           "cache": {"eviction": "fifo", "capacity_tokens": 16, "block_size_tokens": 16}, "hit_model": "refined"}
    assert compute(req)["token_hit_rate"] == 0.0
