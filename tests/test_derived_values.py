"""Expected values derived independently of the code under test (issue #10).

Each test below was written against one mistake that left the older suite green
(the mutation is named in the test's docstring) and was checked to FAIL with that
mistake applied by hand to the source. Expected values come from a hand
derivation written beside the assertion (Little's law, sums worked out by hand,
unit arithmetic), or from a second method (the seeded simulator, a direct call
at the perturbed point); none is copied from the implementation's output.

Only public entry points are used (kvcalc.api.compute, kvcalc.simulate.simulate,
kvcalc.hitrate.hit_rates, kvcalc.benefit.benefit_report, kvcalc.trace.api.trace_analyze,
kvcalc.sweeps.tornado), so the tests survive refactors of the helpers behind them.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kvcalc.api import compute
from kvcalc.benefit import benefit_report
from kvcalc.hitrate import hit_rates
from kvcalc.presets import get_gpu, get_model
from kvcalc.simulate import simulate
from kvcalc.sweeps import tornado
from kvcalc.trace.api import trace_analyze
from kvcalc.workload import CacheConfig, Workload

LLAMA_8B = "meta-llama/Llama-3.1-8B"


# ----------------------------------------------------------------------------- sweeps.tornado

def test_tornado_low_side_is_the_lowered_parameter():
    """Mutation caught: tornado's low and high sides swapped (sweeps.py)."""
    w = Workload(conversation_rate_per_s=1.0, turns_mean=5.0, gap_mean_s=60.0, user_tokens_per_turn=200.0,
                 output_tokens_per_turn=300.0, system_prompt_tokens=1000.0, service_time_s=2.0)
    c = CacheConfig(capacity_tokens=3e5)
    out = tornado(w, c, 0.2, model="che")
    rows = {r["parameter"]: r for r in out["rows"]}
    cap, rate = rows["capacity_tokens"], rows["conversation_rate_per_s"]
    # the low side is the value times (1 - 0.2), the high side times (1 + 0.2)
    assert cap["low_value"] == pytest.approx(0.8 * 3e5, rel=1e-12)
    assert cap["high_value"] == pytest.approx(1.2 * 3e5, rel=1e-12)
    assert rate["low_value"] == pytest.approx(0.8, rel=1e-12)
    assert rate["high_value"] == pytest.approx(1.2, rel=1e-12)
    # second method: the model called directly at the perturbed points, one at a time
    # (1e-6: the vectorised solve for T stops at its own Newton tolerance, ~1e-8 here)
    at = lambda ww, cc: float(hit_rates(ww, cc, "che")["token_hit_rate"])   # noqa: E731
    assert cap["low_token_hit_rate"] == pytest.approx(at(w, CacheConfig(capacity_tokens=2.4e5)), abs=1e-6)
    assert cap["high_token_hit_rate"] == pytest.approx(at(w, CacheConfig(capacity_tokens=3.6e5)), abs=1e-6)
    lower_rate = Workload(**{**w.to_dict(), "conversation_rate_per_s": 0.8})
    assert rate["low_token_hit_rate"] == pytest.approx(at(lower_rate, c), abs=1e-6)
    # and the direction a reader expects: more memory, more hits; more traffic, fewer
    assert cap["low_token_hit_rate"] < out["base_token_hit_rate"] < cap["high_token_hit_rate"]
    assert rate["low_token_hit_rate"] > out["base_token_hit_rate"] > rate["high_token_hit_rate"]


# ----------------------------------------------------------------------------- api: mean context

@pytest.mark.parametrize("turns_mean,expected_tokens", [
    # Fixed 5 turns, P = 1000, s = u + o = 500 tokens per turn. Turn k ends at P + k s tokens;
    # every conversation runs turns 1..5, so the mean per request is P + s (1+2+3+4+5)/5 = 2500.
    # (Weighting k by the turn pmf instead, i.e. only k = 5, would give 3500.)
    (5.0, 2500.0),
    # Fixed 2.5 turns = half the conversations have 2 turns, half 3. Requests per conversation:
    # turn 1 and 2 always, turn 3 with probability 1/2 -> 2.5 requests whose mean k is
    # (1 + 2 + 0.5 * 3) / 2.5 = 1.8; mean context 1000 + 1.8 * 500 = 1900 (pmf weighting: 2250).
    (2.5, 1900.0),
])
def test_mean_context_is_per_request(turns_mean, expected_tokens):
    """Mutation caught: mean context weighted by the turn pmf, not the survival function (api.py)."""
    r = compute({"workload": {"turns_distribution": "fixed", "turns_mean": turns_mean,
                              "user_tokens_per_turn": 200, "output_tokens_per_turn": 300,
                              "system_prompt_tokens": 1000},
                 "cache": {"capacity_tokens": 1e6}})
    assert r["mean_context_tokens"] == pytest.approx(expected_tokens, rel=1e-12)


# ----------------------------------------------------------------------------- api: GiB

def test_cache_capacity_gib_is_binary():
    """Mutation caught: cache_capacity_gib divided by 1e9 instead of 2**30 (api.py)."""
    # Llama-3.1-8B: 2 (K and V) x 32 layers x 8 KV heads x 128 dims x 2 bytes (bf16)
    # = 131072 = 2**17 bytes per token; 2**15 tokens -> 2**32 bytes = exactly 4 GiB (4.295 GB).
    r = compute({"model": LLAMA_8B, "workload": {}, "cache": {"capacity_tokens": 2 ** 15}})
    assert r["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2
    assert r["cache_capacity_gib"] == pytest.approx(4.0, rel=1e-12)


# ----------------------------------------------------------------------------- api: occupancy

def test_occupancy_by_littles_law_under_ttl():
    """Mutation caught: occupancy free blocks wrong (api.py _occupancy).

    TTL with a capacity far above need: every block lives exactly as long as the
    workload says, so each occupancy part is Little's law (rate x blocks x time).
    Workload: lambda = 1 conversation/s, fixed 3 turns, deterministic 30 s gaps, u = 100,
    o = 0, P = 50, S = 2 s, block 1 token, TTL 100 s (> every gap), capacity 1e5 blocks.
      pinned (own blocks of running requests): lambda * S * (100 + 200 + 300) = 1200
      returning (context idle during a gap, after turns 1 and 2): lambda * (100 + 200) * 30 = 9000
      finished (300 blocks idle for the TTL): lambda * 300 * 100 = 30000
      shared prompt: 50 blocks (a request every 1/3 s keeps it)
      free: 1e5 - 1200 - 9000 - 30000 - 50 = 59750
    """
    r = compute({"workload": {"conversation_rate_per_s": 1.0, "turns_distribution": "fixed", "turns_mean": 3,
                              "gap_distribution": "deterministic", "gap_mean_s": 30.0,
                              "user_tokens_per_turn": 100, "output_tokens_per_turn": 0,
                              "system_prompt_tokens": 50, "service_time_s": 2.0},
                 "cache": {"capacity_tokens": 1e5, "block_size_tokens": 1, "eviction": "ttl", "ttl_s": 100.0}})
    occ = r["occupancy"]
    assert occ["pinned_blocks"] == pytest.approx(1200.0, rel=1e-9)
    assert occ["returning_blocks"] == pytest.approx(9000.0, rel=1e-9)
    assert occ["finished_blocks"] == pytest.approx(30000.0, rel=1e-9)
    assert occ["system_prompt_blocks"] == pytest.approx(50.0, rel=1e-6)
    assert occ["free_blocks"] == pytest.approx(59750.0, rel=1e-9)
    assert occ["free_fraction"] == pytest.approx(0.5975, rel=1e-9)


def test_occupancy_parts_and_free_fill_the_cache_under_lru():
    # Under LRU the cache is full in steady state (finished conversations stay until
    # evicted), so free is 0 and the four parts' fractions add up to 1.
    r = compute({"workload": {}, "cache": {"capacity_tokens": 3e5}})
    occ = r["occupancy"]
    assert occ["free_blocks"] == pytest.approx(0.0, abs=1e-6 * r["cache_capacity_blocks"])
    parts = ("pinned", "system_prompt", "returning", "finished", "free")
    assert sum(occ[f"{p}_blocks"] for p in parts) == pytest.approx(r["cache_capacity_blocks"], rel=1e-9)
    assert sum(occ[f"{p}_fraction"] for p in parts) == pytest.approx(1.0, rel=1e-9)


# ----------------------------------------------------------------------------- simulator CI

def test_batch_means_ci_width_matches_seed_to_seed_spread():
    """Mutation caught: the simulator's batch-means CI 5x narrower (simulate.py).

    Second method: 40 independent seeds give 40 point estimates whose spread is the
    estimator's real standard error; a valid 95 % interval has a half-width of about
    1.96 x that spread and covers the grand mean in about 95 % of runs. Batches are
    ~6 conversation lifetimes long (2000 conversations at 2/s, 4 turns of ~4 s), so
    no short-batch warning applies. Bounds: the spread itself is estimated from 40
    runs (relative error ~11 %) and t(9) = 2.26 > 1.96, hence [0.6, 1.8] for the
    ratio and >= 75 % coverage (binomial sd at 95 % over 40 runs is 3.4 %). A 5x
    narrower interval gives a ratio near 0.2 and coverage near 30 %.
    """
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4, gap_mean_s=3, user_tokens_per_turn=50,
                 output_tokens_per_turn=80, system_prompt_tokens=200, service_time_s=1.0)
    c = CacheConfig(capacity_tokens=4000, block_size_tokens=16)
    runs = [simulate(w, c, seed=s, n_conversations=2000) for s in range(40)]
    assert not any(r["warnings"] for r in runs)
    for key in ("token_hit_rate", "request_hit_rate"):
        p = np.array([r[key] for r in runs])
        lo = np.array([r[f"{key}_ci95_low"] for r in runs])
        hi = np.array([r[f"{key}_ci95_high"] for r in runs])
        ratio = float(np.mean((hi - lo) / 2) / (1.96 * np.std(p, ddof=1)))
        assert 0.6 <= ratio <= 1.8, (key, ratio)
        coverage = float(np.mean((lo <= p.mean()) & (p.mean() <= hi)))
        assert coverage >= 0.75, (key, coverage)


# ----------------------------------------------------------------------------- trace fit

def test_fitted_user_tokens_by_hand():
    """Mutation caught: fitted user tokens doubled (trace/stats.py).

    Three requests in the Alibaba "bailian" format, two sessions, no shared prefix:
      chat 1 (first turn): input 40, output 10       -> new tokens 40 - P = 40 (P = 0)
      chat 2 (follows 1):  input 70, output 8        -> new tokens 70 - 40 - 10 = 20
      chat 3 (first turn): input 32, output 4        -> new tokens 32
    user_tokens_per_turn = (40 + 20 + 32) / 3; output = (10 + 8 + 4) / 3; turns = 3 / 2;
    conversations 2 over the 6 s span; gap 5 s - 0 s service.
    """
    lines = [
        {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 40, "output_length": 10,
         "type": "text", "turn": 1, "hash_ids": [1, 2, 3]},
        {"chat_id": 2, "parent_chat_id": 1, "timestamp": 5.0, "input_length": 70, "output_length": 8,
         "type": "text", "turn": 2, "hash_ids": [1, 2, 3, 4, 5]},
        {"chat_id": 3, "parent_chat_id": -1, "timestamp": 6.0, "input_length": 32, "output_length": 4,
         "type": "text", "turn": 1, "hash_ids": [20, 21]},
    ]
    res = trace_analyze({"text": "\n".join(json.dumps(x) for x in lines), "service_time_s": 0.0})
    fit = res["fit"]["workload"]
    assert fit["user_tokens_per_turn"] == pytest.approx(92 / 3, rel=1e-12)
    assert fit["output_tokens_per_turn"] == pytest.approx(22 / 3, rel=1e-12)
    assert fit["turns_mean"] == pytest.approx(1.5, rel=1e-12)
    assert fit["conversation_rate_per_s"] == pytest.approx(2 / 6, rel=1e-12)
    assert fit["gap_mean_s"] == pytest.approx(5.0, rel=1e-12)
    assert fit["system_prompt_tokens"] == 0.0


# ----------------------------------------------------------------------------- benefit

def test_gpu_seconds_saved_scale_with_the_request_rate():
    """Mutation caught: GPU-seconds saved without the rate factor (benefit.py).

    Llama-3.1-8B on one H100 SXM (989 dense bf16 TFLOPS) at 40 % MFU, 2000-token prompts,
    half of them cached, 3 requests/s. Prefill FLOPs by hand (module docstring):
      miss = 2 N 2000 + 4 * 32 layers * 4096 * (2000 * 1999 / 2)
      hit  = 2 N 1000 + 4 * 32 * 4096 * (2000 * 1999 - 1000 * 999) / 2
    GPU-seconds saved per second = 3 * (miss - hit) / (989e12 * 0.4).
    """
    m, g = get_model(LLAMA_8B), get_gpu("h100-sxm-80gb")
    assert g.dense_bf16_tflops == pytest.approx(989, rel=0.01)
    n = m.params_active
    miss = 2 * n * 2000 + 4 * 32 * 4096 * (2000 * 1999 / 2)
    hit = 2 * n * 1000 + 4 * 32 * 4096 * (2000 * 1999 - 1000 * 999) / 2
    peak = g.dense_bf16_tflops * 1e12 * 0.4
    r = benefit_report(m, g, 1, 2000.0, 0.5, 3.0, mfu=0.4)
    assert r["prefill_gpu_seconds_saved_per_s"] == pytest.approx(3 * (miss - hit) / peak, rel=1e-13, abs=0)
    assert r["prefill_gpus_busy_no_cache"] == pytest.approx(3 * miss / peak, rel=1e-13, abs=0)
    assert r["prefill_gpus_busy_with_cache"] == pytest.approx(3 * hit / peak, rel=1e-13, abs=0)
    # TP = 2 halves the time to first token but not the GPU-seconds (two GPUs busy half as long)
    r2 = benefit_report(m, g, 2, 2000.0, 0.5, 3.0, mfu=0.4)
    assert r2["prefill_ttft_no_cache_s"] == pytest.approx(miss / peak / 2, rel=1e-13, abs=0)
    assert r2["prefill_gpu_seconds_saved_per_s"] == pytest.approx(r["prefill_gpu_seconds_saved_per_s"], rel=1e-13, abs=0)


# ----------------------------------------------------------------------------- shared prompt and own history

# TTL 100 s, every gap exactly 60 s, capacity far above need (only the TTL evicts), lambda = 0.005/s.
# A returning turn's own history was freed 60 s < TTL ago, so it is cached; and the same earlier
# turn of the same conversation held the shared prompt until then, so the shared prompt (freed at
# least as recently) is cached too. Every returning turn hits its own history: request hit rate
# = E[N - 1] / E[N] = 4/5 for geometric turns of mean 5, whatever the traffic.
_TTL_W = Workload(conversation_rate_per_s=0.005, turns_mean=5, gap_mean_s=60, gap_distribution="deterministic",
                  user_tokens_per_turn=200, output_tokens_per_turn=300, system_prompt_tokens=1000,
                  service_time_s=2)
_TTL_C = CacheConfig(capacity_tokens=1e7, eviction="ttl", ttl_s=100.0)


def test_simulator_request_hit_rate_under_ttl_by_hand():
    s = simulate(_TTL_W, _TTL_C, seed=3, n_conversations=20000)
    assert s["request_hit_rate_ci95_low"] - 0.002 <= 0.8 <= s["request_hit_rate_ci95_high"] + 0.002
    assert s["request_hit_rate"] == pytest.approx(0.8, abs=0.005)


# The model once multiplied own-history hits by the shared prompt's presence h_s (0.922
# here) as if independent, giving 0.7375; an own-history hit implies the prompt is cached.
def test_model_request_hit_rate_under_ttl_by_hand():
    r = hit_rates(_TTL_W, _TTL_C, "refined")
    assert float(r["request_hit_rate"]) == pytest.approx(0.8, abs=1e-6)
