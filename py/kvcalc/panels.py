"""compute() with what the page's panels need besides the answer (issue 9).

:func:`compute_with_panels` applies the request's scenario (kvcalc.scenarios), answers it
(kvcalc.assemble.compute_result) and adds: ``scenario``; ``recommender`` (the broadcast of one
user's history to N candidates, kvcalc.recommender); ``summary_details`` (the plain-text
summary as message codes, kvcalc.export); ``export`` when asked (CSV texts); ``compare`` when
the request carries ``compare_with`` (setup A, answered the same way, and B - A). A ``preview``
request (the page's render while a slider moves) gets none of these.
"""

from __future__ import annotations

from .assemble import compute_result
from .limits import LIMITS
from .scenarios import apply_scenario

__all__ = ["compute_with_panels", "COMPARE_KEYS"]

#: the headline numbers a comparison shows for setups A and B (result key paths)
COMPARE_KEYS = ("token_hit_rate", "ideal_token_hit_rate", "request_hit_rate", "cache_capacity_tokens",
                "cache_capacity_gib", "inverse.kv_gib_per_gpu", "benefit.prefill_speedup",
                "benefit.prefill_ttft_with_cache_s")


def _default(key: str):
    return LIMITS[key].default


def _path(d: dict, path: str):
    for part in path.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _recommender(req: dict, result: dict) -> dict:
    from .presets import get_gpu, get_model
    from .recommender import broadcast_report
    rq = req["recommender"]
    model = get_model(req["model"], field="model")
    gpu = get_gpu(req["gpu"], field="gpu") if req.get("gpu") is not None else None
    return broadcast_report(
        model, gpu, req.get("tensor_parallel", _default("tensor_parallel")), result["kv_bytes_per_token"],
        int(rq.get("candidates", _default("recommender.candidates"))),
        rq.get("user_tokens", _default("recommender.user_tokens")),
        rq.get("item_tokens", _default("recommender.item_tokens")), req.get("mfu", _default("mfu")))


def _compare(a: dict, b: dict) -> dict:
    curve = (a.get("figures") or {}).get("curve") or {}
    difference = {k: (None if _path(a, k) is None or _path(b, k) is None else _path(b, k) - _path(a, k))
                  for k in COMPARE_KEYS}
    return {
        "keys": list(COMPARE_KEYS),
        "a": {k: _path(a, k) for k in COMPARE_KEYS},
        "b": {k: _path(b, k) for k in COMPARE_KEYS},
        "difference": difference,
        # B - A of the rates in percentage points (the table's unit for them)
        "difference_pct_points": {k: None if difference[k] is None else 100.0 * difference[k]
                                  for k in COMPARE_KEYS if k.endswith("_hit_rate")},
        "a_curve": {k: curve.get(k) for k in ("capacity_tokens", "capacity_gib", "token_hit_rate")
                    if curve.get(k) is not None},
    }


def compute_with_panels(request: dict) -> dict:
    """The answer to a checked request plus the panels' data (see the module docstring)."""
    from .export import figure_csvs, summary_lines
    req = apply_scenario(request)
    result = compute_result(req)
    if req.get("scenario") is not None:
        result["scenario"] = req["scenario"]
    if req.get("preview"):   # the page's render while a slider moves: the numbers and figures only
        return result
    if "recommender" in req and result.get("kv_bytes_per_token"):
        result["recommender"] = _recommender(req, result)
    result["summary_details"] = summary_lines(req, result)
    if req.get("export"):
        result["export"] = {"csv": figure_csvs(result)}
    if req.get("compare_with") is not None:
        a = compute_result(apply_scenario({**req["compare_with"], "figures": ["curve"]}))
        result["compare"] = _compare(a, result)
    return result
