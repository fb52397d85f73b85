"""compute()'s ``figures``: the chart data the request asks for (curve, sweeps, tornado, heatmap).

The charts use the fast model (Che for refined and seed); FIFO, solved point by
point, gets coarser grids, and so does a preview (the page's render while a slider moves).
"""

from __future__ import annotations

import math

from . import sweeps
from .limits import LIMITS
from .units import tokens_to_gib
from .workload import CacheConfig, Workload

__all__ = ["figures_result", "SIMULATION_POINTS", "simulation_capacities"]

#: how many capacities of the curve the page's "Simulate" button runs the simulator at
#: (each ~1e4-1e5 conversations in the worker: six keep the wait to seconds).
SIMULATION_POINTS = 6


def simulation_capacities(capacity_tokens: list, points: int = SIMULATION_POINTS) -> list:
    """``points`` capacities of the curve, evenly spaced by index and including both ends."""
    n = len(capacity_tokens)
    if n == 0:
        return []
    k = min(points, n)
    if k == 1:
        return [capacity_tokens[0]]
    return [capacity_tokens[int((i * (n - 1)) / (k - 1) + 0.5)] for i in range(k)]


def _extent(values, log: bool, spare: float) -> list | None:
    """The x range a drag render gives an axis its data has left, in the axis's units (log10 on
    a log axis, whose values <= 0 are not drawn): the data's extent and ``spare`` times its span
    on each side (the next inputs of a drag fit without another re-ranging, which redraws the
    axis); a linear axis of values >= 0 does not reach below 0. None when no value can be placed."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not xs:
        return None
    lo, hi = min(xs), max(xs)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = spare * (hi - lo)
    return [lo - pad if log or lo < 0 else max(0.0, lo - pad), hi + pad]


def figures_result(request: dict, w: Workload, c: CacheConfig, hit_model: str, bytes_per_token,
                   coarse: bool = False, che_token_hit_rate=None) -> dict:
    """The asked figures; ``coarse`` (a preview while a slider moves): about a third of the points,
    and each x axis's data extent (``x_range``, ``x_range_log10``: see :func:`_extent`).

    ``che_token_hit_rate``: Che's token hit rate at (w, c) when the caller has it (the tornado's base).
    """
    wanted = request.get("figures", [])
    fast = "che" if hit_model in ("refined", "seed") else hit_model
    wanted = [f for f in wanted if f != "kv_context"]
    # FIFO is solved point by point (a renewal recursion per point, kvcalc.hitrate.fifo),
    # so its figures use coarser grids: curve plus one figure <= ~2 s CPython (bench/bench_fifo.py).
    fifo = c.eviction == "fifo"
    n_curve, n_sweep, n_heat = (30, 10, 10) if fifo else (120, 40, 30)
    if coarse:   # about a third of the points (the heatmap: 10 x 10 cells, a ninth)
        n_curve, n_sweep, n_heat = (n_curve // 3, max(n_sweep // 4, 6), max(n_heat // 3, 6))
    out = {}
    # a preview's figures carry the x ranges a drag render re-ranges its axes to (js/figures.js
    # xRangeUpdates): a sweep's own grid moves with its input (half its span spare each side:
    # a drag of two decades needs one re-ranging), the curve's and the tornado's less
    drag = coarse
    if "curve" in wanted:
        curve = sweeps.curve_vs_capacity(w, c, model=fast, points=n_curve)
        if bytes_per_token:
            curve["capacity_gib"] = [tokens_to_gib(x, bytes_per_token) for x in curve["capacity_tokens"]]
        curve["simulation_capacity_tokens"] = simulation_capacities(curve["capacity_tokens"])
        if drag:
            curve["x_range_log10"] = {k: _extent(curve[k], log=True, spare=0.25) for k in ("capacity_tokens", "capacity_gib")
                                      if k in curve}
        out["curve"] = curve
    if "sweeps" in wanted:
        out["sweeps"] = sweeps.sweeps_all(w, c, model=fast, points=n_sweep)
        if drag:
            for row in out["sweeps"].values():
                if isinstance(row, dict):
                    row["x_range"] = _extent(row["values"], log=row["scale"] == "log", spare=0.5)
    if "tornado" in wanted:
        frac = request.get("tornado_change_fraction", LIMITS["tornado_change_fraction"].default)
        out["tornado"] = sweeps.tornado(w, c, frac, model=fast,
                                        base_token_hit_rate=che_token_hit_rate if fast == "che" else None)
        if drag:
            tor = out["tornado"]
            tor["x_range"] = _extent([tor["base_token_hit_rate"]] + [r[f"{end}_token_hit_rate"] for r in tor["rows"]
                                                                     for end in ("low", "high")], log=False, spare=0.25)
    if "heatmap" in wanted:
        hm = sweeps.heatmap_capacity_rate(w, c, model=fast, points=n_heat)
        if bytes_per_token:
            hm["capacity_gib"] = [tokens_to_gib(x, bytes_per_token) for x in hm["capacity_tokens"]]
        if drag:   # the cells' outer edges: half a (log-spaced) step beyond the first and last centres
            half = {k: 0.5 / max(len(hm[k]) - 1, 1) for k in ("capacity_tokens", "capacity_gib", "conversation_rate_per_s")
                    if k in hm}
            hm["x_range_log10"] = {k: _extent(hm[k], log=True, spare=half[k]) for k in ("capacity_tokens", "capacity_gib")
                                   if k in hm}
            hm["y_range_log10"] = _extent(hm["conversation_rate_per_s"], log=True, spare=half["conversation_rate_per_s"])
        out["heatmap"] = hm
    return out
