"""Validated inputs of the hit-rate model and the simulator.

A :class:`Workload` describes multi-turn conversations (MODEL.md, "Workload");
a :class:`CacheConfig` describes one prefix cache. Numeric fields may be numpy
arrays (broadcast together) for vectorised sweeps; the simulator takes scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .errors import InputError, require_choice, require_limit, require_number
from .limits import LIMITS

__all__ = [
    "Workload", "CacheConfig", "TURNS_DISTRIBUTIONS", "GAP_DISTRIBUTIONS", "EVICTIONS",
    "WORKLOAD_LIMITS", "CACHE_LIMITS", "turn_support", "turn_pmf",
]

TURNS_DISTRIBUTIONS = ("geometric", "fixed")
GAP_DISTRIBUTIONS = ("exponential", "deterministic", "lognormal")
EVICTIONS = ("lru", "fifo", "ttl", "lfu")

#: (low, high, low_open) for every numeric workload and cache field, read from the
#: one table of limits (kvcalc.limits), which the page's parameter table also reads.
WORKLOAD_LIMITS: dict[str, tuple[float, float, bool]] = {
    k.split(".", 1)[1]: (v.lo, v.hi, v.lo_open) for k, v in LIMITS.items() if k.startswith("workload.")}
CACHE_LIMITS: dict[str, tuple[float, float, bool]] = {
    k.split(".", 1)[1]: (v.lo, v.hi, v.lo_open) for k, v in LIMITS.items() if k.startswith("cache.")}


def _check_numeric(prefix: str, name: str, value, limits) -> float | np.ndarray:
    lo, hi, lo_open = limits[name]
    field = f"{prefix}.{name}"
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError):
            arr = np.asarray([])
        if arr.dtype.kind not in "iuf" or arr.size == 0:
            raise InputError(field, value, f"a number or a non-empty list of numbers in {'(' if lo_open else '['}{lo:g}, {hi:g}]", "not a number")
        with np.errstate(over="ignore"):
            arr = arr.astype(float)
        ok = (arr >= lo) & (arr <= hi) & (arr > lo if lo_open else True)
        if hi != math.inf:
            ok &= np.isfinite(arr)
        if not np.all(ok):
            bad = float(arr.ravel()[np.argmin(ok.ravel())])
            require_number(field, bad, lo, hi, lo_open=lo_open, allow_inf=(hi == math.inf))
        return arr
    return require_number(field, value, lo, hi, lo_open=lo_open, allow_inf=(hi == math.inf))


@dataclass(frozen=True)
class Workload:
    """Multi-turn conversation traffic reaching one cache (MODEL.md symbols in brackets).

    conversation_rate_per_s [lambda]: new conversations per second (Poisson).
    turns_mean [L]: mean turns (requests) per conversation.
    turns_distribution: "geometric" (P(N=k) = p(1-p)^(k-1), p = 1/L) or
        "fixed" (non-integer L mixes floor(L) and ceil(L)).
    gap_mean_s [tau]: mean time from the end of a turn to the start of the next.
    gap_distribution: "exponential", "deterministic" or "lognormal" (shape sigma).
    user_tokens_per_turn [u], output_tokens_per_turn [o]: tokens added per turn.
    system_prompt_tokens [P]: prompt prefix shared by every conversation.
    service_time_s [S]: how long a request runs (its blocks are pinned meanwhile).
    """

    conversation_rate_per_s: object = 1.0
    turns_mean: object = 5.0
    turns_distribution: str = "geometric"
    gap_mean_s: object = 60.0
    gap_distribution: str = "exponential"
    gap_lognormal_sigma: object = 1.0
    user_tokens_per_turn: object = 200.0
    output_tokens_per_turn: object = 300.0
    system_prompt_tokens: object = 1000.0
    service_time_s: object = 2.0

    def __post_init__(self):
        for f in fields(self):
            if f.name in WORKLOAD_LIMITS:
                object.__setattr__(self, f.name, _check_numeric("workload", f.name, getattr(self, f.name), WORKLOAD_LIMITS))
        require_choice("workload.turns_distribution", self.turns_distribution, TURNS_DISTRIBUTIONS)
        require_choice("workload.gap_distribution", self.gap_distribution, GAP_DISTRIBUTIONS)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Workload":
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise InputError("workload", d, "an object of workload fields", "not an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"workload.{unknown[0]}", d[unknown[0]], "one of the keys " + ", ".join(sorted(known)), "unknown key")
        return cls(**d)

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @property
    def tokens_per_turn(self):
        """a = u + o: tokens a turn adds to the conversation."""
        return self.user_tokens_per_turn + self.output_tokens_per_turn


@dataclass(frozen=True)
class CacheConfig:
    """One prefix cache.

    capacity_tokens [C]: KV slots of the cache in tokens (pinned + cached).
    block_size_tokens [b]: tokens per KV block; only full blocks are cached.
    eviction: "lru" (default, vLLM), "fifo", "ttl" (LRU plus idle expiry
        after ttl_s) or "lfu" (accepted only to warn: see MODEL.md).
    """

    capacity_tokens: object = 1_000_000.0
    block_size_tokens: int = 16
    eviction: str = "lru"
    ttl_s: float = math.inf

    def __post_init__(self):
        object.__setattr__(self, "capacity_tokens", _check_numeric("cache", "capacity_tokens", self.capacity_tokens, CACHE_LIMITS))
        b = require_limit("cache.block_size_tokens", self.block_size_tokens, LIMITS["cache.block_size_tokens"])
        object.__setattr__(self, "block_size_tokens", int(b))
        require_choice("cache.eviction", self.eviction, EVICTIONS)
        if isinstance(self.ttl_s, float) and self.ttl_s == math.inf:  # no expiry (the default)
            ttl = math.inf
        else:
            ttl = require_limit("cache.ttl_s", self.ttl_s, LIMITS["cache.ttl_s"])
        object.__setattr__(self, "ttl_s", float(ttl))


def _plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and math.isinf(x):
        return None
    return x


def turn_support(turns_mean, distribution: str, eps: float = 1e-10) -> int:
    """Largest turn index k worth summing to (tail mass below eps)."""
    L = float(np.max(turns_mean))
    if distribution == "fixed":
        return int(math.ceil(L))
    if L <= 1.0:
        return 1
    return int(math.ceil(math.log(eps) / math.log1p(-1.0 / L))) + 1


def turn_pmf(turns_mean, distribution: str, kmax: int | None = None) -> np.ndarray:
    """P(N = k) for k = 1..kmax, shape ``np.shape(turns_mean) + (kmax,)``."""
    if kmax is None:
        kmax = turn_support(turns_mean, distribution)
    L = np.asarray(turns_mean, dtype=float)[..., None]
    k = np.arange(1, kmax + 1, dtype=float)
    if distribution == "geometric":
        p = 1.0 / L
        pmf = p * np.power(1.0 - p, k - 1.0)
    else:
        lo = np.floor(L)
        frac = L - lo
        pmf = np.where(k == lo, 1.0 - frac, 0.0) + np.where(k == lo + 1.0, frac, 0.0)
    return pmf
