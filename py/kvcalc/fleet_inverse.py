"""compute()'s ``inverse`` block when a fleet is set (issue 7): the GPU capacity per instance
(whole blocks, the tiers fixed) whose fleet token hit rate reaches the target.

The fleet's token hit rate (:func:`kvcalc.fleet.fleet_hit_rates`) does not fall as the GPU
capacity per instance grows, so the answer is bracketed by doubling from one block and
bisected on whole blocks. A target at or above the fleet's own ceiling (infinite cache,
e.g. L/(L+K-1) of the own-history hits under random routing) is "unreachable"; a capacity
beyond the table's range is "beyond_range", as in :mod:`kvcalc.inverse_answer` (same
fields, same detail message codes). Memoised on the workload, the cache's other settings,
the fleet and the target: dragging a memory slider does not recompute it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from .fleet import FleetConfig, fleet_hit_rates, scattered_hit_rates
from .inverse_answer import _with_detail
from .limits import LIMITS
from .workload import CacheConfig, Workload

__all__ = ["fleet_inverse_result"]


def fleet_inverse_result(workload: Workload, cache: CacheConfig, fleet: FleetConfig, target: float,
                         model: str) -> dict:
    """The fleet's inverse with a status, in the shape of :func:`kvcalc.inverse_answer.inverse_result`."""
    inverse = dict(_fleet_inverse_cached(tuple(sorted(workload.to_dict().items())), int(cache.block_size_tokens),
                                         cache.eviction, float(cache.ttl_s), fleet, float(target), model))
    return _with_detail(inverse)


@functools.lru_cache(maxsize=256)
def _fleet_inverse_cached(workload_items: tuple, block: int, eviction: str, ttl_s: float, fleet: FleetConfig,
                          target: float, model: str) -> dict:
    w = Workload(**dict(workload_items))
    hi_tokens = LIMITS["cache.capacity_tokens"].hi
    memo: dict = {}
    # random routing without tiers: the scattered model alone (fleet_hit_rates' total is its value;
    # its extras, e.g. the single cache's ceiling for random_routing_ceiling, are not needed here)
    scattered = fleet.routing in ("random", "round_robin") and fleet.instances > 1 and not fleet.tiers

    def rates(n_blocks: int) -> dict:
        if n_blocks not in memo:
            c = CacheConfig(capacity_tokens=float(n_blocks * block), block_size_tokens=block,
                            eviction=eviction, ttl_s=ttl_s)
            memo[n_blocks] = (scattered_hit_rates(w, c, fleet.instances) if scattered and memo
                              else fleet_hit_rates(w, c, fleet, model))
        return memo[n_blocks]

    first = rates(1)
    ideal = first["ideal_token_hit_rate"]
    out = {"target_token_hit_rate": target, "ideal_token_hit_rate": ideal, "fleet": True}
    if not 0.0 <= target < ideal - 1e-12:
        out.update(capacity_tokens=None, reachable=False, status="unreachable", reason="inverse_above_ideal",
                   message=f"{target:.1%} is at or above the ideal (infinite-cache) hit rate of {ideal:.2%}")
        return out
    beyond = dict(capacity_tokens=None, reachable=False, status="beyond_range", capacity_limit_tokens=hi_tokens,
                  reason="inverse_beyond_range",
                  message=f"reaching {target:.1%} needs more than {hi_tokens:g} tokens of cache, "
                          "beyond the range the calculator takes")
    max_blocks = int(math.floor(hi_tokens / block))
    if first["token_hit_rate"] >= target:
        out.update(capacity_tokens=float(block), reachable=True, status="ok", model=model)
        return out
    lo, hi = 1, 2   # rate(lo) < target; double hi until rate(hi) >= target
    while True:
        hi = min(hi, max_blocks)
        if float(rates(hi)["token_hit_rate"]) >= target:
            break
        if hi >= max_blocks:
            out.update(beyond)
            return out
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if float(rates(mid)["token_hit_rate"]) >= target:
            hi = mid
        else:
            lo = mid
    out.update(capacity_tokens=float(hi * block), reachable=True, status="ok", model=model)
    return out


#: points of the fleet's main curve (a subset of the single cache's grid): a random-routing point
#: recomputes the scattered model and the headline's model (refined) is not vectorised cheaply
FLEET_CURVE_POINTS = 40


def fleet_curve(workload: Workload, cache: CacheConfig, fleet: FleetConfig, model: str, curve: dict) -> dict:
    """The main chart's curve made the fleet's: total token hit rate (GPU + tiers) along the
    curve's GPU capacities per instance (every third of them, ends kept), in the headline's model,
    so the headline sits on it, and the fleet's ceiling. The seed series stays the single cache's
    at the same capacities. ``fleet: true`` tells the page; the current capacity rides along."""
    from .figure_data import simulation_capacities
    from .fleet import scattered_hit_rates, tier_split_vs_capacity
    n = len(curve["capacity_tokens"])
    keep = sorted({int(round(i * (n - 1) / (FLEET_CURVE_POINTS - 1))) for i in range(FLEET_CURVE_POINTS)}) if n > 1 else list(range(n))
    out = {k: ([v[i] for i in keep] if isinstance(v, list) and len(v) == n else v) for k, v in curve.items()}
    caps = list(out["capacity_tokens"]) + [float(cache.capacity_tokens)]
    if fleet.routing in ("random", "round_robin") and fleet.instances > 1 and not fleet.tiers:
        # the scattered model itself, point by point (fleet_hit_rates' token_hit_rate without its extras)
        total = [float(scattered_hit_rates(workload, dataclasses.replace(cache, capacity_tokens=float(x)),
                                           fleet.instances)["token_hit_rate"]) for x in caps]
    else:
        split = tier_split_vs_capacity(workload, cache, fleet, caps, model)
        total = [float(sum(vals)) for vals in zip(*(t["token_hit_rate"] for t in split["tiers"]))]
    ideal = fleet_hit_rates(workload, cache, fleet, model)["ideal_token_hit_rate"]
    out.pop("request_hit_rate", None)   # the fleet's curve is of token hits (the tiers split tokens)
    out.update(token_hit_rate=total[:-1], current_token_hit_rate=total[-1], ideal_token_hit_rate=ideal,
               model=model, fleet=True, simulation_capacity_tokens=simulation_capacities(out["capacity_tokens"]))
    return out
