"""Request keys of the fleet (issue 7) and the fleet part of compute()'s result.

Request keys (validated here, field paths as in the request)::

    cluster.instances     K instances (integer >= 1; default 1)
    cluster.routing       affinity | random | round_robin | pooled (default affinity)
    tiers                 list, GPU excluded, each {"name", "capacity_tokens" or
                          "capacity_gib" (per instance, all its GPUs' shards),
                          "read_gb_per_s" (GB/s = 1e9 B/s per GPU; default: the GPU
                          preset's host link for cpu*, 7 GB/s NVMe otherwise)}
    tier_mode             exclusive (default) | inclusive
    price_per_gpu_hour    cost of one GPU for an hour (>= 0), for fleet_options
    mbu                   decode memory-bandwidth utilisation for the sizing check (0, 1]
    sizing                {"cpu_tier_gib": X (default 256), "tensor_parallel_sizes": [...]}: when
                          present (even {}), the result adds fleet_options and recommendations
                          (they re-evaluate the fleet many times: ask for them once, not per drag)

Result keys: token_hit_rate is the fleet's total over tiers;
tier_token_hit_rates (GPU first, summing to it); fleet {...}; tiers_report
(load vs recompute per tier); fleet_options (sizing.py; each carries the
request patch that reproduces it through compute()); recommendations.
"""

from __future__ import annotations

import math

from .errors import InputError, require_choice, require_int, require_limit
from .limits import limit
from .fleet import ROUTINGS, TIER_MODES, FleetConfig, TierConfig, fleet_hit_rates
from .tiers import default_read_gb_per_s
from .units import GIB_BYTES

__all__ = ["check_fleet_field", "fleet_from_request", "fleet_result", "fleet_sensitivity"]


MAX_TIERS = 4


def _num(field: str, value, key: str | None = None):
    """A number checked against its row of the one table (kvcalc.limits)."""
    if isinstance(value, (list, tuple, dict)):
        raise InputError(field, value, "a single number: " + limit(key or field).range_text(), "not a number")
    return require_limit(field, value, limit(key or field))


def check_fleet_field(key: str, value):
    """Shape, choices and ranges of one fleet request key (kvcalc.request's single pass).

    Checks that need the model (capacity_gib -> tokens) or the block size (a tier
    smaller than one block) are made by :func:`fleet_from_request`.
    """
    if key == "tier_mode":
        return require_choice("tier_mode", value, TIER_MODES)
    if key == "cluster":
        if not isinstance(value, dict):
            raise InputError("cluster", value, "an object with instances and routing", "not an object")
        unknown = sorted(set(value) - {"instances", "routing"})
        if unknown:
            raise InputError(f"cluster.{unknown[0]}", value[unknown[0]], "instances or routing", "unknown key")
        out = {}
        if "instances" in value:
            out["instances"] = int(_num("cluster.instances", value["instances"]))
        if "routing" in value:
            out["routing"] = require_choice("cluster.routing", value["routing"], ROUTINGS)
        return out
    if key == "sizing":
        if not isinstance(value, dict):
            raise InputError("sizing", value, "an object", "not an object")
        unknown = sorted(set(value) - {"cpu_tier_gib", "tensor_parallel_sizes"})
        if unknown:
            raise InputError(f"sizing.{unknown[0]}", value[unknown[0]], "cpu_tier_gib or tensor_parallel_sizes",
                             "unknown key")
        out = {}
        if "cpu_tier_gib" in value:
            out["cpu_tier_gib"] = _num("sizing.cpu_tier_gib", value["cpu_tier_gib"])
        if "tensor_parallel_sizes" in value:
            tps = value["tensor_parallel_sizes"]
            if not isinstance(tps, list) or not 1 <= len(tps) <= 8:
                raise InputError("sizing.tensor_parallel_sizes", tps, "a list of 1 to 8 integers", "not a list")
            out["tensor_parallel_sizes"] = [int(_num(f"sizing.tensor_parallel_sizes[{i}]", x,
                                                     "sizing.tensor_parallel_sizes[]")) for i, x in enumerate(tps)]
        return out
    # tiers
    if not isinstance(value, list):
        raise InputError("tiers", value, "a list of tiers below GPU memory", "not a list")
    if len(value) > MAX_TIERS:
        raise InputError("tiers", len(value), f"at most {MAX_TIERS} tiers", "too many")
    out = []
    for i, t in enumerate(value):
        f = f"tiers[{i}]"
        name = _tier_shape(f, i, t)
        tier = {"name": name}
        for k in ("capacity_tokens", "capacity_gib", "read_gb_per_s"):
            if t.get(k) is not None:
                tier[k] = _num(f"{f}.{k}", t[k], f"tiers[].{k}")
        out.append(tier)
    return out


def fleet_from_request(request: dict, block_size_tokens: int, kv_bytes_per_token_per_gpu: float | None,
                       tensor_parallel: int, gpu) -> tuple[FleetConfig, list[dict]]:
    """FleetConfig from the request, and notes {"code", "params", "message"} on odd combinations."""
    notes = []
    cluster = request.get("cluster", {})
    if not isinstance(cluster, dict):
        raise InputError("cluster", cluster, "an object with instances and routing", "not an object")
    unknown = sorted(set(cluster) - {"instances", "routing"})
    if unknown:
        raise InputError(f"cluster.{unknown[0]}", cluster[unknown[0]], "instances or routing", "unknown key")
    K = int(_num("cluster.instances", cluster.get("instances", 1)))
    routing = require_choice("cluster.routing", cluster.get("routing", "affinity"), ROUTINGS)
    if K == 1 and "routing" in cluster and routing != "affinity":
        notes.append({"code": "routing_irrelevant_with_one_instance", "params": {"routing": routing},
                      "message": f"with one instance every routing policy is the same ({routing} = affinity)"})
    mode = require_choice("tier_mode", request.get("tier_mode", "exclusive"), TIER_MODES)
    raw = request.get("tiers", [])
    if not isinstance(raw, list):
        raise InputError("tiers", raw, "a list of tiers below GPU memory", "not a list")
    if len(raw) > MAX_TIERS:
        raise InputError("tiers", len(raw), f"at most {MAX_TIERS} tiers", "too many")
    tiers = []
    for i, t in enumerate(raw):
        f = f"tiers[{i}]"
        name = _tier_shape(f, i, t)
        if "capacity_tokens" in t:
            tokens = _num(f"{f}.capacity_tokens", t["capacity_tokens"], "tiers[].capacity_tokens")
        else:
            gib = _num(f"{f}.capacity_gib", t["capacity_gib"], "tiers[].capacity_gib")
            if not kv_bytes_per_token_per_gpu:
                raise InputError(f"{f}.capacity_gib", gib, "capacity_tokens, or a model to convert GiB with",
                                 "no bytes per token without a model")
            tokens = gib * GIB_BYTES / (kv_bytes_per_token_per_gpu * tensor_parallel)
        if tokens < block_size_tokens:
            raise InputError(f"{f}.capacity_tokens", tokens,
                             f"at least one block ({block_size_tokens} tokens)", "smaller than one block")
        bw = t.get("read_gb_per_s")
        bw = default_read_gb_per_s(name, gpu) if bw is None else _num(f"{f}.read_gb_per_s", bw, "tiers[].read_gb_per_s")
        tiers.append(TierConfig(name, float(math.floor(tokens / block_size_tokens) * block_size_tokens), float(bw)))
    for key in ("price_per_gpu_hour", "mbu"):
        if request.get(key) is not None:
            _num(key, request[key])
    return FleetConfig(K, routing, tuple(tiers), mode), notes


def fleet_result(workload, cache, fleet: FleetConfig, hit_model: str, *, model=None, gpu=None, tensor_parallel=1,
                 memory: dict | None = None, request: dict | None = None, target: float = 0.8,
                 mfu: float = 0.4, memory_kwargs: dict | None = None) -> dict:
    """The fleet keys of compute()'s result (scalar, already validated inputs)."""
    request = request or {}
    r = fleet_hit_rates(workload, cache, fleet, hit_model)
    out = {
        "token_hit_rate": r["token_hit_rate"],
        "request_hit_rate": r["request_hit_rate"],
        "tier_token_hit_rates": r["tier_token_hit_rates"],
        "fleet": {"instances": fleet.instances, "routing": fleet.routing, "tier_mode": fleet.tier_mode,
                  "gpus": fleet.instances * tensor_parallel,
                  "tiers": [{"name": t.name, "capacity_tokens": t.capacity_tokens, "read_gb_per_s": t.read_gb_per_s}
                            for t in fleet.tiers],
                  "random_routing_ceiling": r["random_routing_ceiling"],
                  "ideal_token_hit_rate": r["ideal_token_hit_rate"],
                  "ideal_request_hit_rate": r["ideal_request_hit_rate"],
                  "overload": r["overload"],
                  "overload_ends_at_capacity_tokens": r["overload_ends_at_capacity_tokens"]},
    }
    if memory is not None and memory.get("kv_bytes_per_token"):
        # the same numbers in GiB for the page: a tier per instance (all TP shards), the GPU per GPU
        bpt_gpu = float(memory["kv_bytes_per_token"])
        for t in out["fleet"]["tiers"]:
            t["capacity_gib_per_instance"] = t["capacity_tokens"] * bpt_gpu * tensor_parallel / GIB_BYTES
        out["fleet"]["overload_ends_at_kv_gib_per_gpu"] = r["overload_ends_at_capacity_tokens"] * bpt_gpu / GIB_BYTES
    if fleet.instances > 1 and fleet.routing in ("random", "round_robin"):   # what affinity would gain
        import dataclasses
        aff = fleet_hit_rates(workload, cache, dataclasses.replace(fleet, routing="affinity"), hit_model)
        out["fleet"]["affinity_token_hit_rate"] = aff["token_hit_rate"]
        out["fleet"]["affinity_gain_pp"] = 100.0 * (aff["token_hit_rate"] - r["token_hit_rate"])
    price = request.get("price_per_gpu_hour")
    if price is not None:
        price = _num("price_per_gpu_hour", price)
        out["fleet"]["cost_per_hour"] = price * fleet.instances * tensor_parallel
    if model is not None and gpu is not None and memory is not None and memory.get("kv_bytes_per_token"):
        from .tiers import tier_load_report
        bpt = float(memory["kv_bytes_per_token"])
        if fleet.tiers:
            from .hitrate import structure
            st = structure(workload, cache)
            mean_prompt = float(st.denom_tokens) / float(st.EN)
            out["tiers_report"] = tier_load_report(model, gpu, tensor_parallel, bpt, fleet.tiers,
                                                   r["tier_token_hit_rates"], mean_prompt, mfu)
    if (model is not None and gpu is not None and memory is not None and memory.get("kv_bytes_per_token")
            and request.get("sizing") is not None):
        # sizing and recommendations re-evaluate the fleet many times: asked for explicitly
        from .recommend import Setup, recommend
        from .sizing import DEFAULT_MBU, size_fleet
        mbu = _num("mbu", request["mbu"]) if request.get("mbu") is not None else DEFAULT_MBU
        sizing = request.get("sizing", {})
        if not isinstance(sizing, dict):
            raise InputError("sizing", sizing, "an object", "not an object")
        cpu_gib = _num("sizing.cpu_tier_gib", sizing.get("cpu_tier_gib", 256.0))
        tps = sizing.get("tensor_parallel_sizes", [1, 2, 4, 8])
        if not isinstance(tps, list) or not tps or len(tps) > 8:
            raise InputError("sizing.tensor_parallel_sizes", tps, "a list of 1 to 8 integers", "not a list")
        tps = [require_int("sizing.tensor_parallel_sizes", x, 1, 1024) for x in tps]
        routing = fleet.routing
        util = float(request.get("gpu_memory_utilization", 0.9))
        kvd = request.get("kv_cache_dtype", "auto")
        options = size_fleet(model, gpu, workload, cache, target, routing=routing,
                             tier_gib_per_instance=(0.0, cpu_gib) if cpu_gib > 0 else (0.0,),
                             tensor_parallel_sizes=tuple(tps), gpu_memory_utilization=util, kv_cache_dtype=kvd,
                             mfu=mfu, mbu=mbu, price_per_gpu_hour=price, model_name=hit_model,
                             memory_kwargs=memory_kwargs)
        for o in options:
            if o.get("instances") is None:
                continue
            o["request_patch"] = {
                "tensor_parallel": o["tensor_parallel"],
                "cluster": {"instances": o["instances"], "routing": routing},
                "tiers": ([{"name": "cpu", "capacity_tokens": o["tier_capacity_tokens_per_instance"]}]
                          if o["tier_gib_per_instance"] else []),
            }
        out["fleet_options"] = options
        setup = Setup(model, gpu, tensor_parallel, util, kvd, workload, cache, fleet,
                      tuple(sorted((memory_kwargs or {}).items())))
        out["recommendations"] = recommend(setup, hit_model, cpu_tier_gib=cpu_gib if cpu_gib > 0 else 256.0)
    return out


def fleet_sensitivity(request: dict, workload, cache, fleet: FleetConfig, hit_model: str,
                      kv_bytes_per_token_per_gpu: float | None, tensor_parallel: int = 1) -> dict:
    """The "sweeps" and "tornado" figures of a fleet (kvcalc.fleet_sweeps), for the ones asked
    for in request["figures"]; {} when the request sets no fleet (the single cache's stand)."""
    from .fleet_sweeps import fleet_is_set, fleet_sweeps, fleet_tornado
    wanted = request.get("figures") or []
    if not fleet_is_set(fleet) or not ({"sweeps", "tornado"} & set(wanted)):
        return {}
    fast = "che" if hit_model in ("refined", "seed") else hit_model
    gib = (kv_bytes_per_token_per_gpu * tensor_parallel / GIB_BYTES) if kv_bytes_per_token_per_gpu else None
    out = {}
    if "sweeps" in wanted:
        out["sweeps"] = fleet_sweeps(workload, cache, fleet, fast, gib)
    if "tornado" in wanted:
        frac = request.get("tornado_change_fraction", 0.2)
        out["tornado"] = fleet_tornado(workload, cache, fleet, frac, fast, gib)
    return out


def _tier_shape(f: str, i: int, t) -> str:
    """One tier's shape (an object of known keys, a name, exactly one capacity); its name."""
    if not isinstance(t, dict):
        raise InputError(f, t, 'an object {"name", "capacity_tokens" or "capacity_gib", "read_gb_per_s"}',
                         "not an object")
    unknown = sorted(set(t) - {"name", "capacity_tokens", "capacity_gib", "read_gb_per_s"})
    if unknown:
        raise InputError(f"{f}.{unknown[0]}", t[unknown[0]], "name, capacity_tokens, capacity_gib, read_gb_per_s",
                         "unknown key")
    name = t.get("name", f"tier{i + 1}")
    if not isinstance(name, str) or not name.strip() or len(name) > 40:
        raise InputError(f"{f}.name", name, "a short non-empty name", "not a name")
    if ("capacity_tokens" in t) == ("capacity_gib" in t):
        raise InputError(f"{f}.capacity_tokens", t.get("capacity_tokens"),
                         "exactly one of capacity_tokens or capacity_gib", "both or neither given")
    return name
