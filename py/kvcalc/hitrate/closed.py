"""The closed form: geometric turns, exponential gaps, token granularity, through Lambert W (MODEL.md).

It equals the Che model with block size 1 there; it has no per-turn structure,
so it answers on its own (no occupancy parts).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..special import lambertw0_of_log
from ..workload import CacheConfig, Workload

__all__ = ["closed_hit_rates"]


def closed_hit_rates(w: Workload, c: CacheConfig) -> dict:
    """Closed form (MODEL.md): geometric turns, exponential gaps, token granularity.

    x + (L-1)(1 - e^-x) = R with R = (C - P - lambda a L^2 S) / (lambda a L tau);
    x = R' + W0((L-1) e^-R'), R' = R - (L-1); h = 1 - e^-x.
    The shared prompt is assumed always cached (h_s = 1).
    """
    if w.turns_distribution != "geometric" or w.gap_distribution != "exponential":
        raise InputError("hit_model", "closed",
                         "the closed form needs workload.turns_distribution = geometric and "
                         "workload.gap_distribution = exponential", "not applicable")
    lam, L, tau, u, o, P, S, C = np.broadcast_arrays(*[np.asarray(x, float) for x in (
        w.conversation_rate_per_s, w.turns_mean, w.gap_mean_s, w.user_tokens_per_turn,
        w.output_tokens_per_turn, w.system_prompt_tokens, w.service_time_s, c.capacity_tokens)])
    a = u + o
    R = (C - P - lam * a * L * L * S) / (lam * a * L * tau)
    Rp = R - (L - 1.0)
    with np.errstate(divide="ignore"):
        log_z = np.log(np.maximum(L - 1.0, 1e-300)) - Rp
    x = np.where(L > 1.0, Rp + lambertw0_of_log(log_z), R)
    overload = R < 0
    x = np.maximum(x, 0.0)
    h = -np.expm1(-x)
    denom = P + a * (L - 1.0) + u
    tok = (P + h * a * (L - 1.0)) / denom   # overload: h = 0, the shared prompt still hits
    req = h * (1.0 - 1.0 / L)
    return {
        "token_hit_rate": tok, "request_hit_rate": req,
        "ideal_token_hit_rate": (P + a * (L - 1.0)) / denom,
        "ideal_request_hit_rate": 1.0 - 1.0 / L,
        "characteristic_time_s": x * tau, "overload": overload,
        # R >= 0: the in-flight working set P + lambda a L^2 S fits (token granularity)
        "overload_ends_at_capacity_tokens": np.floor(P + lam * a * L * L * S) + 1.0,
    }


