"""The seed design's formula, kept as a labelled legacy comparison (MODEL.md "Why ...")."""

from __future__ import annotations

import numpy as np

from ..workload import CacheConfig, Workload
from .structure import HitInputs

__all__ = ["seed_token_hit_rate", "seed_hit_rates"]


def seed_token_hit_rate(w: Workload, c: CacheConfig):
    """The seed design's formula (legacy, known wrong; MODEL.md "Why ...").

    hit = (1 - 1/L) * min(1, cached_convs / active_convs), active = lambda L tau,
    cached = C / (L s) with s = u + o tokens per turn.
    """
    L = np.asarray(w.turns_mean, float)
    active = np.asarray(w.conversation_rate_per_s, float) * L * np.asarray(w.gap_mean_s, float)
    s = np.asarray(w.user_tokens_per_turn, float) + np.asarray(w.output_tokens_per_turn, float)
    cached = np.asarray(c.capacity_tokens, float) / (L * s)
    with np.errstate(over="ignore", divide="ignore"):  # tiny traffic: the ratio is huge, min() caps it at 1
        return (1.0 - 1.0 / L) * np.minimum(1.0, cached / active)



def seed_hit_rates(x: HitInputs):
    """(token hit rate, request hit rate, h_s): the formula gives one number for both rates."""
    tok = seed_token_hit_rate(x.w, x.c)
    return tok, tok, x.hs
