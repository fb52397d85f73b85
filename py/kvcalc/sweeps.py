"""Vectorised sensitivity: curves, one-parameter sweeps, tornado and heatmap.

Each function evaluates the hit-rate model once on broadcast numpy arrays and
returns JSON-simple dicts (lists of floats) ready for the page's charts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .hitrate import hit_rates, seed_token_hit_rate
from .workload import CACHE_LIMITS, WORKLOAD_LIMITS, CacheConfig, Workload

__all__ = ["SWEEP_PARAMS", "capacity_grid_tokens", "curve_vs_capacity",
           "sweeps_all", "tornado", "heatmap_capacity_rate"]

#: Workload parameters the page sweeps, with the scale of their axis.
SWEEP_PARAMS: dict[str, str] = {
    "conversation_rate_per_s": "log",
    "turns_mean": "log",
    "gap_mean_s": "log",
    "user_tokens_per_turn": "log",
    "output_tokens_per_turn": "log",
    "system_prompt_tokens": "linear",
    "service_time_s": "linear",
}


def _with(w: Workload, **changes) -> Workload:
    return dataclasses.replace(w, **changes)


def _cache_with(c: CacheConfig, capacity_tokens) -> CacheConfig:
    return dataclasses.replace(c, capacity_tokens=capacity_tokens)


def _list(x) -> list:
    return [float(v) for v in np.asarray(x, dtype=float).ravel()]


def _log_grid(lo: float, hi: float, points: int, lim_lo: float, lim_hi: float) -> np.ndarray:
    """Log-spaced points in [lo, hi], kept inside the field's limits (logspace can overshoot)."""
    # the smallest normal float keeps log10 finite (a denormal current value / 10 is 0)
    lo = max(lo, lim_lo, float(np.finfo(float).tiny))
    hi = max(min(hi, lim_hi), lo)
    return np.clip(np.logspace(np.log10(lo), np.log10(hi), points), lim_lo, lim_hi)


def capacity_grid_tokens(w: Workload, c: CacheConfig, points: int = 120, around=None) -> np.ndarray:
    """Log-spaced capacities from the in-flight working set to past the ideal knee.

    The range spans the occupancy at T = 0 (what must fit) up to the occupancy
    after ten mean gaps, and always includes ``around`` (the current capacity).
    """
    from .hitrate import occupancy_blocks, structure
    st = structure(w, _cache_with(c, 1.0))
    b = c.block_size_tokens
    lo = max(float(occupancy_blocks(st, 0.0)) * b * 1.05, b)
    hi = max(float(occupancy_blocks(st, 10.0 * float(np.max(st.tau)))) * b, lo * 10)
    if around is not None and float(around) > 0:
        lo = min(lo, float(around) / 4)
        hi = max(hi, float(around) * 4)
    return _log_grid(lo, hi, points, float(b), CACHE_LIMITS["capacity_tokens"][1])


def curve_vs_capacity(w: Workload, c: CacheConfig, capacities_tokens=None, model: str = "che",
                      points: int = 120) -> dict:
    """Token hit rate vs capacity for ``model``, with the seed curve and the ideal."""
    if capacities_tokens is None:
        capacities_tokens = capacity_grid_tokens(w, c, points, around=c.capacity_tokens)
    caps = np.asarray(capacities_tokens, dtype=float)
    # the current capacity rides along in the same vectorised call (last element)
    cc = _cache_with(c, np.append(caps, float(c.capacity_tokens)))
    r = hit_rates(w, cc, model)
    seed = seed_token_hit_rate(w, cc)
    return {
        "capacity_tokens": _list(caps),
        "token_hit_rate": _list(r["token_hit_rate"][:-1]),
        "request_hit_rate": _list(r["request_hit_rate"][:-1]),
        "seed_token_hit_rate": _list(seed[:-1]),
        "ideal_token_hit_rate": float(np.max(r["ideal_token_hit_rate"])),
        "current_capacity_tokens": float(c.capacity_tokens),
        "current_token_hit_rate": float(r["token_hit_rate"][-1]),
        "model": model,
    }


def _param_values(w: Workload, key: str, points: int) -> np.ndarray:
    cur = float(getattr(w, key))
    lo_lim, hi_lim, _ = WORKLOAD_LIMITS[key]
    if SWEEP_PARAMS[key] == "log":
        # a log axis needs a positive centre: 0 output tokens sweeps 0.1 .. 10
        centre = cur if cur > 0 else 1.0
        floor = lo_lim if lo_lim > 0 else centre / 10.0
        return _log_grid(centre / 10.0, centre * 10.0, points, floor, hi_lim)
    span = max(cur, 1.0)
    return np.linspace(max(lo_lim, 0.0), min(cur + 2 * span, hi_lim), points)


def sweeps_all(w: Workload, c: CacheConfig, model: str = "che", points: int = 40) -> dict:
    """Every workload parameter swept, in two vectorised calls (stacked rows).

    The turns sweep goes alone: its long conversations need many more terms of
    the turn sum, which would otherwise be paid by every other row.
    """
    rows = {k: _param_values(w, k, points) for k in SWEEP_PARAMS}
    out = {}
    for keys in ([k for k in SWEEP_PARAMS if k != "turns_mean"], ["turns_mean"]):
        base = {k: np.full((len(keys), points), float(getattr(w, k))) for k in SWEEP_PARAMS}
        for i, k in enumerate(keys):
            base[k][i] = rows[k]
        r = hit_rates(_with(w, **base), c, model)
        tok = np.broadcast_to(r["token_hit_rate"], (len(keys), points))
        for i, k in enumerate(keys):
            out[k] = {"parameter": k, "scale": SWEEP_PARAMS[k], "values": _list(rows[k]),
                      "current": float(getattr(w, k)), "token_hit_rate": _list(tok[i])}
    return {**{k: out[k] for k in SWEEP_PARAMS}, "model": model}


def tornado(w: Workload, c: CacheConfig, change_fraction: float = 0.2, model: str = "che",
            base_token_hit_rate=None) -> dict:
    """One-at-a-time +-X % change of each parameter (and capacity): token hit rate.

    ``base_token_hit_rate``: ``model``'s token hit rate at (w, c) when the caller has it.
    """
    keys = list(SWEEP_PARAMS) + ["capacity_tokens"]
    n = len(keys)
    lo_f, hi_f = 1.0 - change_fraction, 1.0 + change_fraction
    base = {k: np.full((n, 2), float(getattr(w, k))) for k in SWEEP_PARAMS}
    caps = np.full((n, 2), float(c.capacity_tokens))
    for i, k in enumerate(keys):
        target = caps if k == "capacity_tokens" else base[k]
        cur = target[i, 0]
        lo_v, hi_v = cur * lo_f, cur * hi_f
        limits = WORKLOAD_LIMITS if k in WORKLOAD_LIMITS else CACHE_LIMITS
        if k in limits:
            lim_lo, lim_hi, _ = limits[k]
            lo_v = min(max(lo_v, lim_lo if not limits[k][2] else max(lim_lo, cur * 1e-9)), lim_hi)
            hi_v = min(max(hi_v, lim_lo), lim_hi)
        target[i] = (lo_v, hi_v)
    r = hit_rates(_with(w, **base), _cache_with(c, caps), model)
    base_rate = float(hit_rates(w, c, model)["token_hit_rate"] if base_token_hit_rate is None else base_token_hit_rate)
    tok = np.broadcast_to(r["token_hit_rate"], (n, 2))
    rows = []
    for i, k in enumerate(keys):
        src = caps if k == "capacity_tokens" else base[k]
        rows.append({"parameter": k, "low_value": float(src[i, 0]), "high_value": float(src[i, 1]),
                     "low_token_hit_rate": float(tok[i, 0]), "high_token_hit_rate": float(tok[i, 1]),
                     "swing": float(abs(tok[i, 1] - tok[i, 0]))})
    rows.sort(key=lambda row: row["swing"], reverse=True)
    return {"change_fraction": change_fraction, "base_token_hit_rate": base_rate, "rows": rows,
            "model": model}


def heatmap_capacity_rate(w: Workload, c: CacheConfig, capacities_tokens=None, rates_per_s=None,
                          model: str = "che", points: int = 30) -> dict:
    """Token hit rate over capacity (x) x conversation rate (y)."""
    rate = float(w.conversation_rate_per_s)
    if rates_per_s is None:
        lim_lo, lim_hi, _ = WORKLOAD_LIMITS["conversation_rate_per_s"]
        rates_per_s = _log_grid(rate / 10, rate * 10, points, max(lim_lo, rate / 10), lim_hi)
    if capacities_tokens is None:
        capacities_tokens = capacity_grid_tokens(w, c, points, around=c.capacity_tokens)
    rates = np.asarray(rates_per_s, dtype=float)[:, None]
    caps = np.asarray(capacities_tokens, dtype=float)[None, :]
    r = hit_rates(_with(w, conversation_rate_per_s=rates), _cache_with(c, caps), model)
    z = np.broadcast_to(r["token_hit_rate"], (rates.shape[0], caps.shape[1]))
    return {"capacity_tokens": _list(caps), "conversation_rate_per_s": _list(rates),
            "token_hit_rate": [_list(row) for row in z], "model": model}
