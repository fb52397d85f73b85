""""How the number is computed": the formulas with the request's own values substituted.

The page's panel shows, for the request at hand, the legacy (seed) formula and the Che
approximation term by term; every value here is the one the model used (the same functions
as :mod:`kvcalc.hitrate`), so the substituted formula reproduces the number shown:

* seed: hit = (1 - 1/L) x min(1, cached / active), active = rate x L x gap,
  cached = C / (L x s), s = user + output tokens per turn;
* Che (LRU and TTL): hit = shared + P(gap <= T) x own, where T is the characteristic
  time, ``shared`` the share of prompt tokens that are shared-prompt hits and ``own`` the
  share that is the conversation's own history (its ideal).

FIFO evicts by insertion time (a renewal recursion, not one formula): ``che`` is None then.
"""

from __future__ import annotations

import math

import numpy as np

from .hitrate import characteristic_time_s, gap_cdf, seed_token_hit_rate, structure
from .hitrate.occupancy import shared_prompt_hit_blocks, shared_prompt_presence
from .validation import grid_ranges
from .workload import CacheConfig, Workload

__all__ = ["explain", "VALIDATION_SUMMARY"]

#: data/validation/model_vs_sim.json's summary (bench/validate_model.py --requests 1000000 --seed 7:
#: 72 workloads x ~1e6 simulated requests), mean and max |model - simulator| in percentage points,
#: to two decimals; tests/test_how_page.py checks they are the file's.
VALIDATION_SUMMARY = {
    "refined": {"mean_error_pp": 0.11, "max_error_pp": 1.06},
    "che": {"mean_error_pp": 0.27, "max_error_pp": 5.76},
    "seed": {"mean_error_pp": 17.47, "max_error_pp": 56.91},
    "points": 72,
    "grid": grid_ranges(),            # what the workloads span (turns, gaps, rates, blocks, pressures)
}

def _f(x) -> float | None:
    v = float(np.asarray(x, dtype=float))
    return v if math.isfinite(v) else None


def explain(w: Workload, c: CacheConfig) -> dict:
    """The substituted formulas of the seed formula and the Che approximation."""
    L = float(w.turns_mean)
    s = float(w.user_tokens_per_turn) + float(w.output_tokens_per_turn)
    active = float(w.conversation_rate_per_s) * L * float(w.gap_mean_s)
    cached = float(c.capacity_tokens) / (L * s)
    seed = {
        "turns_mean": L, "tokens_per_turn": s, "capacity_tokens": float(c.capacity_tokens),
        "conversation_rate_per_s": float(w.conversation_rate_per_s), "gap_mean_s": float(w.gap_mean_s),
        "active_conversations": active, "cached_conversations": cached,
        "first_turn_factor": 1.0 - 1.0 / L, "cached_fraction": min(1.0, cached / active) if active > 0 else 1.0,
        "token_hit_rate": _f(seed_token_hit_rate(w, c)),
    }
    out = {"seed": seed, "che": None, "validation": VALIDATION_SUMMARY}
    if c.eviction == "fifo":
        return out
    st = structure(w, c)
    T, _ = characteristic_time_s(st)
    ttl = c.ttl_s if c.eviction == "ttl" else math.inf
    T_eff = np.minimum(T, ttl)
    hs = np.where(st.Ps > 0, shared_prompt_presence(st, T_eff), 1.0)
    shared = shared_prompt_hit_blocks(st, hs) * st.b * st.EN / st.denom_tokens
    own = st.b * st.A1 / st.denom_tokens
    h = gap_cdf(T_eff, st.tau, st.gap_distribution, st.sigma)
    out["che"] = {
        "characteristic_time_s": _f(T_eff), "gap_mean_s": float(w.gap_mean_s),
        "gap_distribution": w.gap_distribution, "gap_within_t_probability": _f(h),
        "shared_prompt_share": _f(shared), "own_history_share": _f(own),
        "token_hit_rate": _f(np.clip(shared + h * own, 0.0, 1.0)),
    }
    return out
