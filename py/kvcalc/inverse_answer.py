"""compute()'s ``inverse`` block: the capacity for the target hit rate, with its status and message.

The inverse does not depend on the capacity, so it is memoised on the workload
and the cache's other settings: dragging a memory slider does not recompute it.
"""

from __future__ import annotations

import functools

from .errors import InputError
from .hitrate import capacity_for_token_hit_rate
from .limits import LIMITS
from .workload import CacheConfig, Workload

__all__ = ["inverse_result"]


def inverse_result(workload: Workload, cache: CacheConfig, target: float, model: str) -> dict:
    """The inverse with a status; a capacity beyond the table's range is a result, not an input error."""
    try:
        inverse = dict(_inverse_cached(tuple(sorted(workload.to_dict().items())), cache.block_size_tokens,
                                       cache.eviction, float(cache.ttl_s), target, model))
    except InputError as exc:
        if exc.field != "cache.capacity_tokens":
            raise
        hi = LIMITS["cache.capacity_tokens"].hi
        return _with_detail({"target_token_hit_rate": target, "capacity_tokens": None, "reachable": False,
                             "status": "beyond_range", "capacity_limit_tokens": hi,
                             "reason": "inverse_beyond_range",
                             "message": f"reaching {target:.1%} needs more than {hi:g} tokens of cache, "
                                        "beyond the range the calculator takes"})
    if inverse.get("capacity_tokens") is not None and inverse["capacity_tokens"] > LIMITS["cache.capacity_tokens"].hi:
        hi = LIMITS["cache.capacity_tokens"].hi
        inverse.update(capacity_tokens=None, reachable=False, status="beyond_range", capacity_limit_tokens=hi,
                       reason="inverse_beyond_range",
                       message=f"reaching {target:.1%} needs more than {hi:g} tokens of cache, "
                               "beyond the range the calculator takes")
    else:
        inverse["status"] = "ok" if inverse.get("reachable") else "unreachable"
    return _with_detail(inverse)


#: the inverse's fields a message about it may use (besides the target)
_INVERSE_PARAMS = ("target_token_hit_rate", "ideal_token_hit_rate", "ttl_s", "model", "capacity_limit_tokens")


def _with_detail(inverse: dict) -> dict:
    """An unreachable target's English ``message`` as ``detail`` = {code, params, message} too."""
    reason = inverse.pop("reason", None)
    if reason and inverse.get("message"):
        inverse["detail"] = {"code": reason, "message": inverse["message"],
                             "params": {k: inverse[k] for k in _INVERSE_PARAMS if inverse.get(k) is not None}}
    return inverse


@functools.lru_cache(maxsize=256)
def _inverse_cached(workload_items: tuple, block: int, eviction: str, ttl_s: float, target: float, model: str) -> dict:
    """The inverse does not depend on capacity: memoised so dragging memory sliders stays cheap."""
    w = Workload(**dict(workload_items))
    c = CacheConfig(capacity_tokens=1.0, block_size_tokens=block, eviction=eviction, ttl_s=ttl_s)
    return capacity_for_token_hit_rate(w, c, target, model)
