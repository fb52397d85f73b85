"""Sensitivity panels and tornado rows of a fleet (issue 7: "the sensitivity tab and tornado
cover the new inputs").

When the request sets a fleet (K > 1, a routing other than affinity, or lower tiers), the
headline is the fleet's hit rate, so the sensitivity figures must be the fleet's too: every
workload input is swept through :func:`kvcalc.fleet.fleet_hit_rates` (point by point: the
fleet model takes scalar inputs), and two panels and tornado rows are added for the fleet's
own inputs: the number of instances (``cluster.instances``) and the first tier's capacity
(``tiers[0].capacity_gib`` when a model gives bytes per token, else tokens). The price per
GPU-hour changes no hit rate, so it has no panel. Same output shapes as
:func:`kvcalc.sweeps.sweeps_all` and :func:`kvcalc.sweeps.tornado`; the page draws both with
the same code. Fewer points than the single cache's vectorised sweeps (FLEET_SWEEP_POINTS):
a random-routing point recomputes the scattered model's age distributions.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .fleet import FleetConfig, fleet_hit_rates
from .sweeps import SWEEP_PARAMS, _param_values
from .workload import WORKLOAD_LIMITS, CacheConfig, Workload

__all__ = ["FLEET_SWEEP_POINTS", "fleet_is_set", "fleet_sweeps", "fleet_tornado"]

FLEET_SWEEP_POINTS = 12
#: points per workload panel under random / round-robin routing (the turns panel alone costs
#: ~0.2 s CPython at 12 points: long conversations make the scattered model's grid large)
SCATTERED_SWEEP_POINTS = 8
#: largest K of the instances panel (and at least 4x the current K)
_MAX_K_PANEL = 64


def fleet_is_set(fleet: FleetConfig) -> bool:
    """True when the fleet differs from one instance with no tier (the single cache)."""
    return fleet.instances > 1 or bool(fleet.tiers) or fleet.routing == "pooled"


def _hit(w: Workload, c: CacheConfig, fleet: FleetConfig, model: str) -> float:
    return fleet_hit_rates(w, c, fleet, model)["token_hit_rate"]


def _with_tier0(fleet: FleetConfig, tokens: float) -> FleetConfig:
    t0 = dataclasses.replace(fleet.tiers[0], capacity_tokens=float(tokens))
    return dataclasses.replace(fleet, tiers=(t0,) + tuple(fleet.tiers[1:]))


def _instances_values(K: int) -> list[int]:
    hi = max(_MAX_K_PANEL, 4 * K)
    return sorted({int(round(x)) for x in np.geomspace(1, hi, FLEET_SWEEP_POINTS)} | {K})


def _tier_key(gib_per_token: float | None) -> tuple[str, float]:
    """The tier panel's key and its unit per token (GiB per token of one instance, or 1)."""
    return ("tiers[0].capacity_gib", gib_per_token) if gib_per_token else ("tiers[0].capacity_tokens", 1.0)


def fleet_sweeps(w: Workload, c: CacheConfig, fleet: FleetConfig, model: str = "che",
                 gib_per_token_per_instance: float | None = None, points: int = FLEET_SWEEP_POINTS) -> dict:
    """{key: {"parameter", "scale", "values", "current", "token_hit_rate"}, "model": model}."""
    if fleet.instances > 1 and fleet.routing in ("random", "round_robin"):
        points = min(points, SCATTERED_SWEEP_POINTS)   # every point recomputes the age distributions
    out = {}
    for k, scale in SWEEP_PARAMS.items():
        vals = _param_values(w, k, points)
        hits = [_hit(dataclasses.replace(w, **{k: float(v)}), c, fleet, model) for v in vals]
        out[k] = {"parameter": k, "scale": scale, "values": [float(v) for v in vals],
                  "current": float(getattr(w, k)), "token_hit_rate": hits}
    ks = _instances_values(fleet.instances)
    out["cluster.instances"] = {"parameter": "cluster.instances", "scale": "log", "values": [float(k) for k in ks],
                                "current": float(fleet.instances),
                                "token_hit_rate": [_hit(w, c, dataclasses.replace(fleet, instances=k), model)
                                                   for k in ks]}
    if fleet.tiers:
        key, unit = _tier_key(gib_per_token_per_instance)
        cur = float(fleet.tiers[0].capacity_tokens)
        b = float(c.block_size_tokens)
        toks = np.unique(np.maximum(np.floor(np.geomspace(cur / 10.0, cur * 10.0, points) / b) * b, b))
        out[key] = {"parameter": key, "scale": "log", "values": [float(x * unit) for x in toks],
                    "current": cur * unit,
                    "token_hit_rate": [_hit(w, c, _with_tier0(fleet, x), model) for x in toks]}
    out["model"] = model
    return out


def fleet_tornado(w: Workload, c: CacheConfig, fleet: FleetConfig, change_fraction: float = 0.2,
                  model: str = "che", gib_per_token_per_instance: float | None = None) -> dict:
    """One-at-a-time +-X % of each workload input, the GPU capacity, K and the first tier."""
    lo_f, hi_f = 1.0 - change_fraction, 1.0 + change_fraction
    base_rate = _hit(w, c, fleet, model)
    rows = []

    def add(key, lo_v, hi_v, lo_h, hi_h):
        rows.append({"parameter": key, "low_value": float(lo_v), "high_value": float(hi_v),
                     "low_token_hit_rate": float(lo_h), "high_token_hit_rate": float(hi_h),
                     "swing": float(abs(hi_h - lo_h))})

    for k in SWEEP_PARAMS:
        cur = float(getattr(w, k))
        lo_lim, hi_lim, lo_open = WORKLOAD_LIMITS[k]
        lo_v = min(max(cur * lo_f, max(lo_lim, cur * 1e-9) if lo_open else lo_lim), hi_lim)
        hi_v = min(max(cur * hi_f, lo_lim), hi_lim)
        add(k, lo_v, hi_v, _hit(dataclasses.replace(w, **{k: lo_v}), c, fleet, model),
            _hit(dataclasses.replace(w, **{k: hi_v}), c, fleet, model))
    cap = float(c.capacity_tokens)
    add("capacity_tokens", cap * lo_f, cap * hi_f, _hit(w, dataclasses.replace(c, capacity_tokens=cap * lo_f), fleet, model),
        _hit(w, dataclasses.replace(c, capacity_tokens=cap * hi_f), fleet, model))
    K = fleet.instances
    k_lo, k_hi = max(1, int(round(K * lo_f))), max(K + 1, int(round(K * hi_f)))
    add("cluster.instances", k_lo, k_hi, _hit(w, c, dataclasses.replace(fleet, instances=k_lo), model),
        _hit(w, c, dataclasses.replace(fleet, instances=k_hi), model))
    if fleet.tiers:
        key, unit = _tier_key(gib_per_token_per_instance)
        cur = float(fleet.tiers[0].capacity_tokens)
        add(key, cur * lo_f * unit, cur * hi_f * unit, _hit(w, c, _with_tier0(fleet, cur * lo_f), model),
            _hit(w, c, _with_tier0(fleet, cur * hi_f), model))
    rows.sort(key=lambda row: row["swing"], reverse=True)
    return {"change_fraction": change_fraction, "base_token_hit_rate": base_rate, "rows": rows, "model": model}
