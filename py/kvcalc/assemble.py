"""compute() and simulate() assembled: the workload and cache, the hit rates, the fleet, the inverse,
what a hit buys and the figures, into one JSON-simple result (kvcalc.api is the door that checks
the request and guards the call).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .figure_data import figures_result
from .hitrate import hit_rates, seed_token_hit_rate, structure
from .fleet_inverse import fleet_curve, fleet_inverse_result
from .fleet_sweeps import fleet_is_set
from .inverse_answer import inverse_result
from .limits import LIMITS, SIMULATION_MAX_WORK, simulation_work
from .memory_answer import engine_extras, mean_context_tokens, memory_result
from .units import tokens_to_gib
from .workload import CacheConfig, Workload

__all__ = ["compute_result", "simulate_result", "finite_or_none"]


def _default(key: str):
    return LIMITS[key].default


def finite_or_none(x) -> float | None:
    """A JSON-safe float (None for NaN/inf)."""
    x = float(np.asarray(x, dtype=float))
    return x if math.isfinite(x) else None


def _workload_means(w: Workload, c: CacheConfig) -> tuple[float, float]:
    """(mean turns per conversation, prompt tokens per conversation) of the workload.

    Sums over turns (kvcalc.hitrate.structure), independent of the hit model: the
    mean prompt of a request is the second over the first.
    """
    st = structure(w, c)
    return float(st.EN), float(st.denom_tokens)


def _scalar_dict(r: dict) -> dict:
    return {k: (bool(np.asarray(v)) if k == "overload" else finite_or_none(v)) for k, v in r.items()}


def compute_result(request: dict) -> dict:
    # preview (the page's render while a slider moves): the same numbers, the asked figures on
    # coarser grids, and none of the extras the numbers do not need (engine commands and log,
    # the explanation, a single cache's fleet data); kvcalc.panels skips its panels too
    preview = bool(request.get("preview"))
    hit_model = request.get("hit_model", "refined")
    cache_in = request.get("cache", {})
    block = cache_in.get("block_size_tokens", _default("cache.block_size_tokens"))
    has_workload = "workload" in request or "capacity_tokens" in cache_in
    workload = Workload.from_dict(request.get("workload", {})) if has_workload else None
    mem = memory_result(request, workload, block)
    memory = mem[0] if mem else None
    # warnings: English strings (the page shows them); warning_details: the same as
    # {"code", "params", "message"} for a page that renders from message catalogues
    result: dict = {"hit_model": hit_model, "warnings": [], "warning_details": []}

    def warn(code: str, message: str, **params):
        result["warnings"].append(message)
        result["warning_details"].append({"code": code, "params": params, "message": message})

    if memory is not None:
        result.update({k: v for k, v in memory.items() if k not in ("notes", "note_details")})
        for n in memory.get("note_details", []):
            warn(n["code"], n["message"], **n["params"])
        if not preview:
            engine_extras(request, result, mem, block)
    if workload is None:
        if memory is None:
            raise InputError("model", None, "a model preset (memory question) or a workload (hit-rate question)", "missing")
        return result

    if "capacity_tokens" in cache_in:
        capacity = cache_in["capacity_tokens"]
        result["capacity_source"] = "cache.capacity_tokens"
    elif memory is not None and memory.get("kv_capacity_tokens") is not None:
        capacity = memory["kv_capacity_tokens"]
        result["capacity_source"] = "memory"
    else:
        raise InputError("cache.capacity_tokens", None,
                         "a capacity in tokens, or a model and a GPU to derive it from", "missing")
    cache = CacheConfig(capacity_tokens=capacity, block_size_tokens=block,
                        eviction=cache_in.get("eviction", "lru"),
                        ttl_s=math.inf if cache_in.get("ttl_s") is None else cache_in["ttl_s"])
    model_for_hits = hit_model
    if cache.eviction == "lfu":
        warn("lfu_as_lru",
            "LFU is not modelled: plain LFU is pathological for conversations (finished ones "
            "accumulate counts and never leave; own-history hits collapse to near zero in "
            "simulation). LFU with aging behaves like LRU: the numbers shown are LRU's.")
        cache = CacheConfig(capacity_tokens=capacity, block_size_tokens=block, eviction="lru")
    if hit_model == "closed" and block != 1:
        warn("closed_form_tokens", "the closed form counts tokens, not blocks (block size 1)",
             block_size_tokens=block)
    # Che's token hit rate (che_token_hit_rate, and the tornado's base) on the same structure and T
    r = hit_rates(workload, cache, model_for_hits, also=("che",) if hit_model != "che" else ())
    che_here = r.pop("che_token_hit_rate", None)
    rs = _scalar_dict(r)
    # the workload's own means, whatever the hit model returns (the closed form has no per-turn sums)
    if "mean_turns" in r and "prompt_tokens_per_conversation" in r:
        mean_turns, prompt_tokens_per_conversation = float(r["mean_turns"]), float(r["prompt_tokens_per_conversation"])
    else:
        mean_turns, prompt_tokens_per_conversation = _workload_means(workload, cache)
    result.update({
        "token_hit_rate": rs["token_hit_rate"],
        "request_hit_rate": rs["request_hit_rate"],
        "ideal_token_hit_rate": rs["ideal_token_hit_rate"],
        "ideal_request_hit_rate": rs["ideal_request_hit_rate"],
        "characteristic_time_s": rs["characteristic_time_s"],
        "overload": rs["overload"],
        "cache_capacity_tokens": float(capacity),
        "cache_capacity_blocks": float(np.floor(float(capacity) / block)),
        "block_size_tokens": block,
        "eviction": cache_in.get("eviction", "lru"),
        "mean_turns": mean_turns,
        "mean_context_tokens": mean_context_tokens(workload),
    })
    if hit_model not in ("closed",):
        result["occupancy"] = occupancy_result(rs, block)
    result["overload_ends_at_capacity_tokens"] = finite_or_none(r["overload_ends_at_capacity_tokens"])
    if memory is not None and memory.get("kv_bytes_per_token"):
        result["overload_ends_at_kv_gib_per_gpu"] = tokens_to_gib(result["overload_ends_at_capacity_tokens"],
                                                                   memory["kv_bytes_per_token"])
    if r["overload"].any() if isinstance(r["overload"], np.ndarray) else bool(r["overload"]):
        ends = result["overload_ends_at_capacity_tokens"]
        result["overload_message"] = (
            "overload: the requests in flight (and the shared system prompt) need more KV "
            "blocks than the cache holds, so requests wait in the queue or are preempted; only "
            "what running requests share (the system prompt) is reused, and a conversation's "
            f"history only in moments the working set dips below the cache. Overload ends above "
            f"{ends:,.0f} tokens of KV per instance: add memory or lower the rate, the service time "
            "or the tokens per turn.")
        result["overload_detail"] = {"code": "overload",
                                     "params": {"capacity_blocks": rs.get("capacity_blocks"),
                                                "overload_ends_at_capacity_tokens": ends},
                                     "message": result["overload_message"]}
    # Fleet (issue 7): K instances, routing, lower tiers. K = 1, affinity, no tiers is the
    # single cache itself (tests/test_fleet.py), so the headline stays the single-cache answer then.
    from .fleet_request import fleet_from_request, fleet_result, fleet_sensitivity
    bpt_gpu = memory.get("kv_bytes_per_token") if memory is not None else None
    fleet, fleet_notes = fleet_from_request(request, block, bpt_gpu, mem[3] if mem else 1,
                                            mem[2] if mem else None)
    for n in fleet_notes:
        warn(n["code"], n["message"], **n["params"])
    if fleet.instances > 1 or fleet.tiers or fleet.routing != "affinity" or (mem is not None and not preview):
        mem_kwargs = {}
        if memory is not None:
            mem_kwargs["context_tokens"] = memory["context_tokens"]
            for key in ("runtime_reserve_gib", "weight_dtype"):
                if request.get(key) is not None:
                    mem_kwargs[key] = request[key]
        fr = fleet_result(workload, cache, fleet, model_for_hits, model=mem[1] if mem else None,
                          gpu=mem[2] if mem else None, tensor_parallel=mem[3] if mem else 1,
                          memory=memory if (memory is not None and "capacity_tokens" not in cache_in) else None,
                          request=request, target=request.get("target_token_hit_rate", _default("target_token_hit_rate")),
                          mfu=request.get("mfu", _default("mfu")), memory_kwargs=mem_kwargs)
        if fleet.instances > 1 or fleet.tiers or fleet.routing == "pooled":
            result["token_hit_rate"] = fr.pop("token_hit_rate")
            result["request_hit_rate"] = fr.pop("request_hit_rate")
            # the ceiling shown next to the fleet's headline is the fleet's own (random routing
            # loses the own-history hits that land elsewhere: L/(L+K-1) of them, geometric turns)
            for key in ("ideal_token_hit_rate", "ideal_request_hit_rate"):
                if fr.get("fleet", {}).get(key) is not None:
                    result[key] = fr["fleet"][key]
        else:
            fr.pop("token_hit_rate")
            fr.pop("request_hit_rate")
            fr["tier_token_hit_rates"] = [result["token_hit_rate"]]
        result.update(fr)
    else:
        result["tier_token_hit_rates"] = [result["token_hit_rate"]]
    if "fleet" in (request.get("figures") or []):
        from .fleet import hit_rate_vs_instances, tier_split_vs_capacity
        fast = "che" if hit_model in ("refined", "seed") else hit_model
        cap0 = float(cache.capacity_tokens)
        caps = np.geomspace(max(cap0 / 8.0, block), max(cap0 * 8.0, 2.0 * block), 24)
        result.setdefault("fleet_figures", {})
        result["fleet_figures"]["hit_rate_vs_instances"] = hit_rate_vs_instances(workload, cache, fleet, fast)
        split = tier_split_vs_capacity(workload, cache, fleet, caps, fast)
        if bpt_gpu:
            split["capacity_gib"] = [tokens_to_gib(x, bpt_gpu) for x in split["capacity_tokens"]]
        result["fleet_figures"]["tier_split"] = split
    result["seed_token_hit_rate"] = finite_or_none(seed_token_hit_rate(workload, cache))
    if not preview:
        from .explain import explain   # the page's "How the number is computed" (issue 9)
        result["explain"] = explain(workload, cache)

    target = request.get("target_token_hit_rate", _default("target_token_hit_rate"))
    if fleet_is_set(fleet):   # the fleet's inverse: GPU capacity per instance, tiers fixed (fleet_inverse.py)
        inverse = fleet_inverse_result(workload, cache, fleet, target, model_for_hits)
    else:
        inverse = inverse_result(workload, cache, target, "che" if hit_model == "seed" else hit_model)
    bpt = result.get("kv_bytes_per_token")
    if inverse.get("capacity_tokens") is not None and bpt:
        inverse["kv_gib_per_gpu"] = tokens_to_gib(inverse["capacity_tokens"], bpt)
    result["inverse"] = {k: (finite_or_none(v) if isinstance(v, (float, np.floating)) else v) for k, v in inverse.items()}
    if bpt:
        result["cache_capacity_gib"] = tokens_to_gib(float(capacity), bpt)
    if mem is not None and mem[2] is not None and not result["overload"]:
        from .benefit import DEFAULT_MFU, benefit_report
        mfu = request.get("mfu", DEFAULT_MFU)
        result["benefit"] = benefit_report(
            mem[1], mem[2], mem[3], mean_prompt_tokens=prompt_tokens_per_conversation / mean_turns,
            token_hit_rate=result["token_hit_rate"],
            requests_per_s=float(workload.conversation_rate_per_s) * mean_turns, mfu=mfu)
    if memory is not None and memory.get("kv_capacity_tokens") is not None:
        result["max_concurrency_at_mean_context"] = memory["kv_capacity_tokens"] / result["mean_context_tokens"]
    result["figures"] = {**result.get("figures", {}), **figures_result(request, workload, cache, hit_model, bpt, coarse=preview,
                                                                               che_token_hit_rate=che_here)}
    # a fleet's sensitivity figures are the fleet's (instances and tier panels added): kvcalc.fleet_sweeps
    if fleet_is_set(fleet) and "curve" in result["figures"]:   # the main chart follows the fleet's headline
        result["figures"]["curve"] = fleet_curve(workload, cache, fleet, model_for_hits, result["figures"]["curve"])
    result["figures"].update(fleet_sensitivity(request, workload, cache, fleet, model_for_hits, bpt_gpu,
                                               mem[3] if mem else 1))
    if hit_model != "che":
        curve = result["figures"].get("curve")
        if curve is not None and curve["model"] == "che" and not curve.get("fleet"):  # same call
            result["che_token_hit_rate"] = curve["current_token_hit_rate"]
        elif che_here is not None:
            result["che_token_hit_rate"] = finite_or_none(che_here)
        else:
            result["che_token_hit_rate"] = finite_or_none(hit_rates(workload, cache, "che")["token_hit_rate"])
    return result


def occupancy_result(rs: dict, block: int) -> dict:
    parts = ("pinned", "system_prompt", "returning", "finished")
    cap = rs.get("capacity_blocks") or 0.0
    out = {}
    for p in parts:
        v = rs.get(f"occupancy_{p}_blocks")
        out[f"{p}_blocks"] = v
        out[f"{p}_fraction"] = (v / cap) if (v is not None and cap) else None
    used = sum((out[f"{p}_blocks"] or 0.0) for p in parts)
    free = cap - used
    # a full cache leaves float residue (1e-11 of 1e6 blocks) that differs between numpy builds
    out["free_blocks"] = (free if free > 1e-9 * cap else 0.0) if cap else None
    out["free_fraction"] = (out["free_blocks"] / cap) if cap else None
    return out


def simulate_result(request: dict, progress) -> dict:
    from .simulate import simulate as run_sim
    cache_in = request.get("cache", {})
    block = cache_in.get("block_size_tokens", _default("cache.block_size_tokens"))
    workload = Workload.from_dict(request.get("workload", {}))
    base = compute_result({k: v for k, v in request.items() if k not in ("simulation", "figures")} | {"workload": workload.to_dict()})
    capacity = base["cache_capacity_tokens"]
    sim = request.get("simulation", {})
    n_conv = sim.get("n_conversations", _default("simulation.n_conversations"))
    caps = sim.get("capacities_tokens") or [capacity]
    seed = request.get("seed", _default("seed"))
    work = simulation_work(len(caps), n_conv, float(workload.turns_mean))
    if work > SIMULATION_MAX_WORK:  # bounded work: refuse before running
        most = int(n_conv * SIMULATION_MAX_WORK / work)
        allowed = (f"at most {most} conversations for {len(caps)} capacities at "
                   f"{float(workload.turns_mean):g} turns (a run must finish in seconds)")
        if most < LIMITS["simulation.n_conversations"].lo:
            allowed = (f"fewer capacities than {len(caps)} or fewer turns than "
                       f"{float(workload.turns_mean):g}: even {LIMITS['simulation.n_conversations'].lo:g} "
                       "conversations would not finish in seconds")
        raise InputError("simulation.n_conversations", n_conv, allowed, "too large",
                         code="too_large", params={"hi": most, "capacities": len(caps)})
    eviction = cache_in.get("eviction", "lru")
    ttl = math.inf if cache_in.get("ttl_s") is None else cache_in["ttl_s"]
    from .fleet_request import fleet_from_request
    fleet, _ = fleet_from_request(request, block, base.get("kv_bytes_per_token"), base.get("tensor_parallel") or 1, None)
    points = []
    for i, cap in enumerate(caps):
        cache = CacheConfig(capacity_tokens=cap, block_size_tokens=block, eviction=eviction, ttl_s=ttl)

        def sub_progress(x, i=i):
            if progress is not None:
                progress((i + x) / len(caps))
        r = run_sim(workload, cache, seed=seed + i, n_conversations=n_conv, progress=sub_progress, fleet=fleet)
        r = {k: v for k, v in r.items() if not isinstance(v, (list, dict)) or k in ("ci95", "tier_token_hit_rates")}
        r["capacity_tokens"] = cap
        if base.get("kv_bytes_per_token"):
            r["capacity_gib"] = tokens_to_gib(cap, base["kv_bytes_per_token"])
        points.append(r)
    return {"points": points, "seed": seed, "n_conversations": n_conv,
            "model_token_hit_rate": base.get("token_hit_rate")}
