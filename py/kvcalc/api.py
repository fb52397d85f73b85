"""The single door into kvcalc: JSON-simple request in, JSON-simple result out.

The web page (through Pyodide), the CLI and the tests all call :func:`compute`.
Request keys (all optional unless a question needs them)::

    model                 preset id, {"hf_config": {...}} (a Hugging Face config.json), or
                          {"architecture": {...}} typed by hand (keys: kvcalc.architecture)
    gpu                   accelerator preset id
    tensor_parallel       GPUs per model instance (KV heads are split across them)
    gpu_memory_utilization  share of GPU memory vLLM may use (0, 1]
    kv_cache_dtype        "auto" (the model's dtype), "bf16", "fp8", "fp4", ...
    weight_dtype          weights' format: bf16, fp16, fp8, int8, int4 (AWQ/GPTQ groups), mxfp4, nvfp4
                          (default: the checkpoint's own; rules and sources in kvcalc.quant)
    weight_group_size     int4 group size (default 128)
    runtime_reserve_gib   activations + CUDA graphs per GPU, GiB
    context_tokens        sequence length (max model length): sliding-window costs, max concurrency,
                          and vLLM's "Maximum concurrency for N tokens per request"
                          (result: max_concurrency_at_context, max_model_len_tokens; with a workload
                          also max_concurrency_at_mean_context)
    engine_log            pasted vLLM/SGLang start-up log text -> result "engine_log": the engine's
                          figures beside the estimate and the capacity/reserve to adopt (kvcalc.enginelog)
    workload.*            see kvcalc.workload.Workload
    cache.capacity_tokens overrides the capacity derived from memory
    cache.block_size_tokens, cache.eviction (lru|fifo|ttl|lfu), cache.ttl_s
    hit_model             refined (default) | che | closed | seed
    target_token_hit_rate target of the inverse question (default 0.8)
    mfu                   prefill model-FLOPs utilisation for the "what a hit buys" block (0.4)
    figures               list of: "curve", "sweeps", "tornado", "heatmap", "kv_context" (KV bytes per
                          sequence against context length: full, window, paged, CPU offload), "fleet"
    cluster.instances, cluster.routing, tiers, tier_mode, price_per_gpu_hour, mbu, sizing
                          the fleet (issue 7): see kvcalc.fleet_request
    tornado_change_fraction  +-X of the tornado (default 0.2)

With a model the result also holds ``engine_commands`` (vllm serve / SGLang
launch_server lines, kvcalc.engine_cmd); its notes (weights in mixed precision,
linear layers, a context that does not fit) come in ``warnings`` and
``warning_details`` like every other.

The whole request is validated first (:func:`kvcalc.request.check_request`:
types, ranges from :mod:`kvcalc.limits`, unknown keys at every level, nesting
depth and size), whether or not the question uses a key. Errors raise
:class:`kvcalc.errors.InputError` (with a stable ``code`` and ``params``) and
nothing else; results hold only finite numbers or null. :func:`compute_safe`
returns errors in-band as {"ok": false, "error": {...}}.

``inverse.status`` is "ok" (capacity_tokens reaches the target), "unreachable"
(at or above the ideal, or capped by the TTL) or "beyond_range" (the capacity
needed exceeds the largest capacity the calculator takes, 1e13 tokens).

Messages are codes with parameters, English text beside them for the CLI: each entry of
``warning_details`` (parallel to the English ``warnings``), ``overload_detail``,
``inverse.detail`` (when the target is not reached) and ``benefit.note_detail`` is
{"code", "params", "message"}; an InputError's ``to_dict()`` has ``code`` and ``params`` too.
The page renders them from its catalogues (i18n/<lang>.json, key ``msg.<code>``; parameters
are formatted by their unit suffix: ``*_hit_rate`` as percent, ``*_gib`` as GiB, ``*_s`` as
seconds). A new code needs ``msg.<code>`` in both catalogues (tests/test_i18n.py says which).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import sweeps
from .errors import InputError
from .hitrate import capacity_for_token_hit_rate, hit_rates, seed_token_hit_rate
from .limits import LIMITS, SIMULATION_MAX_WORK, simulation_work
from .request import FIGURES, REQUEST_KEYS, check_request, finite_json
from .units import GIB_BYTES
from .workload import CacheConfig, Workload

__all__ = ["compute", "compute_safe", "simulate", "simulate_safe", "trace", "call", "REQUEST_KEYS", "FIGURES",
           "ENDPOINTS"]

#: What the page's worker may call (js/kvcalc_bridge.py reads this).
ENDPOINTS = ("compute", "simulate", "trace")


def _default(key: str):
    return LIMITS[key].default


def _f(x) -> float | None:
    """A JSON-safe float (None for NaN/inf)."""
    x = float(np.asarray(x, dtype=float))
    return x if math.isfinite(x) else None


def _guarded(fn, *args, **kwargs):
    """Run one endpoint on a checked request: InputError passes, nothing else escapes.

    Any other exception is a defect of the core (the request was valid); it is
    reported as an InputError with code "internal_error" on the field "request"
    so callers see one kind of error, and tests (tests/test_fuzz.py) count it as a failure.
    """
    try:
        with np.errstate(all="ignore"):  # overflow to inf in a tail is handled; no stderr noise
            return fn(*args, **kwargs)
    except InputError:
        raise
    except (ArithmeticError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError,
            MemoryError) as exc:
        raise InputError("request", "(the request)", "a request the model can evaluate",
                         f"internal error ({type(exc).__name__}: {str(exc)[:200]})", code="internal_error") from None


def _memory(request: dict, workload: Workload | None, block_size_tokens: int):
    """(memory-side results, model, gpu, tensor_parallel), or None when no model is given."""
    if request.get("model") is None:
        if request.get("gpu") is not None:
            raise InputError("model", None, "a preset id or {\"hf_config\": {...}} (a GPU alone gives no KV size)", "missing")
        return None
    from .memory import memory_report
    from .presets import get_gpu, get_model

    model = get_model(request["model"], field="model")
    gpu = get_gpu(request["gpu"], field="gpu") if request.get("gpu") is not None else None
    tp = request.get("tensor_parallel", _default("tensor_parallel"))
    util = request.get("gpu_memory_utilization", _default("gpu_memory_utilization"))
    kwargs = {}
    if request.get("runtime_reserve_gib") is not None:
        kwargs["runtime_reserve_gib"] = request["runtime_reserve_gib"]
    if request.get("weight_dtype") is not None:
        kwargs["weight_dtype"] = request["weight_dtype"]
    if request.get("weight_group_size") is not None:
        kwargs["weight_group_size"] = request["weight_group_size"]
    if request.get("context_tokens") is not None:
        kwargs["max_model_len_tokens"] = request["context_tokens"]
    ctx = request.get("context_tokens")
    if ctx is None and workload is not None:
        ctx = min(max(mean_context_tokens(workload), LIMITS["context_tokens"].lo), LIMITS["context_tokens"].hi)
    report = memory_report(model, gpu, tensor_parallel=tp, gpu_memory_utilization=util,
                           kv_cache_dtype=request.get("kv_cache_dtype", "auto"),
                           block_size_tokens=block_size_tokens, context_tokens=ctx, **kwargs)
    return report, model, gpu, tp


def mean_context_tokens(w: Workload) -> float:
    """Mean sequence length at the end of a request, weighted per request."""
    from .workload import turn_pmf, turn_support
    K = turn_support(w.turns_mean, w.turns_distribution)
    pmf = turn_pmf(w.turns_mean, w.turns_distribution, K)
    ge = np.cumsum(pmf[::-1])[::-1]
    k = np.arange(1, K + 1)
    z = w.system_prompt_tokens + k * w.tokens_per_turn
    return float((ge * z).sum() / ge.sum())


def _workload_means(w: Workload, c: CacheConfig) -> tuple[float, float]:
    """(mean turns per conversation, prompt tokens per conversation) of the workload.

    Sums over turns (kvcalc.hitrate.structure), independent of the hit model: the
    mean prompt of a request is the second over the first.
    """
    from .hitrate import structure
    st = structure(w, c)
    return float(st.EN), float(st.denom_tokens)


def _scalar_dict(r: dict) -> dict:
    return {k: (bool(np.asarray(v)) if k == "overload" else _f(v)) for k, v in r.items()}


def compute(request: dict) -> dict:
    """Answer one calculator question; see the module docstring for keys."""
    req = check_request(request, "compute")
    return finite_json(_guarded(_compute, req))


def _compute(request: dict) -> dict:
    hit_model = request.get("hit_model", "refined")
    cache_in = request.get("cache", {})
    block = cache_in.get("block_size_tokens", _default("cache.block_size_tokens"))
    has_workload = "workload" in request or "capacity_tokens" in cache_in
    workload = Workload.from_dict(request.get("workload", {})) if has_workload else None
    mem = _memory(request, workload, block)
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
        _engine_extras(request, result, mem, block)
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
    r = hit_rates(workload, cache, model_for_hits)
    rs = _scalar_dict(r)
    # the workload's own means, whatever the hit model returns (the closed form has no per-turn sums)
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
        result["occupancy"] = _occupancy(rs, block)
    result["overload_ends_at_capacity_tokens"] = _f(r["overload_ends_at_capacity_tokens"])
    if memory is not None and memory.get("kv_bytes_per_token"):
        result["overload_ends_at_kv_gib_per_gpu"] = (result["overload_ends_at_capacity_tokens"]
                                                     * memory["kv_bytes_per_token"] / GIB_BYTES)
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
    from .fleet_request import fleet_from_request, fleet_result
    bpt_gpu = memory.get("kv_bytes_per_token") if memory is not None else None
    fleet, fleet_notes = fleet_from_request(request, block, bpt_gpu, mem[3] if mem else 1,
                                            mem[2] if mem else None)
    for n in fleet_notes:
        warn(n["code"], n["message"], **n["params"])
    if fleet.instances > 1 or fleet.tiers or fleet.routing != "affinity" or mem is not None:
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
            split["capacity_gib"] = [x * bpt_gpu / GIB_BYTES for x in split["capacity_tokens"]]
        result["fleet_figures"]["tier_split"] = split
    result["seed_token_hit_rate"] = _f(seed_token_hit_rate(workload, cache))

    target = request.get("target_token_hit_rate", _default("target_token_hit_rate"))
    inverse = _inverse(workload, cache, target, "che" if hit_model == "seed" else hit_model)
    bpt = result.get("kv_bytes_per_token")
    if inverse.get("capacity_tokens") is not None and bpt:
        inverse["kv_gib_per_gpu"] = inverse["capacity_tokens"] * bpt / GIB_BYTES
    result["inverse"] = {k: (_f(v) if isinstance(v, (float, np.floating)) else v) for k, v in inverse.items()}
    if bpt:
        result["cache_capacity_gib"] = float(capacity) * bpt / GIB_BYTES
    if mem is not None and mem[2] is not None and not result["overload"]:
        from .benefit import DEFAULT_MFU, benefit_report
        mfu = request.get("mfu", DEFAULT_MFU)
        result["benefit"] = benefit_report(
            mem[1], mem[2], mem[3], mean_prompt_tokens=prompt_tokens_per_conversation / mean_turns,
            token_hit_rate=result["token_hit_rate"],
            requests_per_s=float(workload.conversation_rate_per_s) * mean_turns, mfu=mfu)
    if memory is not None and memory.get("kv_capacity_tokens") is not None:
        result["max_concurrency_at_mean_context"] = memory["kv_capacity_tokens"] / result["mean_context_tokens"]
    result["figures"] = {**result.get("figures", {}), **_figures(request, workload, cache, hit_model, bpt)}
    if hit_model != "che":
        curve = result["figures"].get("curve")
        if curve is not None and curve["model"] == "che":  # computed with the curve, same call
            result["che_token_hit_rate"] = curve["current_token_hit_rate"]
        else:
            result["che_token_hit_rate"] = _f(hit_rates(workload, cache, "che")["token_hit_rate"])
    return result


def _inverse(workload: Workload, cache: CacheConfig, target: float, model: str) -> dict:
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


def _engine_extras(request: dict, result: dict, mem, block: int) -> None:
    """Engine command lines, the parsed engine log, and the KV-vs-context figure (model questions)."""
    from .engine_cmd import engine_commands
    from .memory import kv_memory_vs_context
    report, model, gpu, tp = mem
    mid = model.id if model.source not in ("user-supplied config.json", "entered by hand") else "<model-path>"
    result["engine_commands"] = engine_commands(
        mid, tp, request.get("gpu_memory_utilization", 0.9), request.get("kv_cache_dtype", "auto"), block,
        max_model_len_tokens=report.get("max_model_len_tokens"), weight_dtype=report["weight_dtype"],
        checkpoint_weight_dtype=model.weight_dtype)
    if request.get("engine_log") is not None:
        from .enginelog import compare_with_estimate, parse_engine_log
        parsed = parse_engine_log(request["engine_log"])
        result["engine_log"] = {"parsed": parsed, **compare_with_estimate(parsed, report)}
    wanted = request.get("figures", [])
    if isinstance(wanted, list) and "kv_context" in wanted:
        result.setdefault("figures", {})["kv_context"] = kv_memory_vs_context(
            model, report["kv_cache_bits"], tp, block,
            host_link_gb_per_s=None if gpu is None else gpu.host_link_bandwidth_gb_per_s)


def _occupancy(rs: dict, block: int) -> dict:
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


def _figures(request: dict, w: Workload, c: CacheConfig, hit_model: str, bytes_per_token) -> dict:
    wanted = request.get("figures", [])
    fast = "che" if hit_model in ("refined", "seed") else hit_model
    wanted = [f for f in wanted if f != "kv_context"]
    # FIFO is solved point by point (a renewal recursion per point, kvcalc.hitrate.fifo),
    # so its figures use coarser grids: curve plus one figure <= ~2 s CPython (bench/bench_fifo.py).
    fifo = c.eviction == "fifo"
    n_curve, n_sweep, n_heat = (30, 10, 10) if fifo else (120, 40, 30)
    out = {}
    if "curve" in wanted:
        curve = sweeps.curve_vs_capacity(w, c, model=fast, points=n_curve)
        if bytes_per_token:
            curve["capacity_gib"] = [x * bytes_per_token / GIB_BYTES for x in curve["capacity_tokens"]]
        out["curve"] = curve
    if "sweeps" in wanted:
        out["sweeps"] = sweeps.sweeps_all(w, c, model=fast, points=n_sweep)
    if "tornado" in wanted:
        frac = request.get("tornado_change_fraction", _default("tornado_change_fraction"))
        out["tornado"] = sweeps.tornado(w, c, frac, model=fast)
    if "heatmap" in wanted:
        hm = sweeps.heatmap_capacity_rate(w, c, model=fast, points=n_heat)
        if bytes_per_token:
            hm["capacity_gib"] = [x * bytes_per_token / GIB_BYTES for x in hm["capacity_tokens"]]
        out["heatmap"] = hm
    return out


def simulate(request: dict, progress=None) -> dict:
    """Run the seeded simulator at the request's point (and optional capacities).

    Extra key ``simulation``: {"n_conversations": int, "capacities_tokens": [..]}.
    The seed is ``request["seed"]`` (default 1).
    """
    req = check_request(request, "simulate")
    return finite_json(_guarded(_simulate, req, progress))


def _simulate(request: dict, progress) -> dict:
    from .simulate import simulate as run_sim
    cache_in = request.get("cache", {})
    block = cache_in.get("block_size_tokens", _default("cache.block_size_tokens"))
    workload = Workload.from_dict(request.get("workload", {}))
    base = _compute({k: v for k, v in request.items() if k not in ("simulation", "figures")} | {"workload": workload.to_dict()})
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
            r["capacity_gib"] = cap * base["kv_bytes_per_token"] / GIB_BYTES
        points.append(r)
    return {"points": points, "seed": seed, "n_conversations": n_conv,
            "model_token_hit_rate": base.get("token_hit_rate")}


def trace(request: dict, progress=None) -> dict:
    """Exact hit-rate curve and statistics of a request trace (kvcalc.trace.api)."""
    from .request import check_shape
    from .trace.api import trace_analyze
    if not isinstance(request, dict):
        raise InputError("request", request, "a JSON object", "not an object")
    check_shape(request, max_string_chars=None)  # depth and size; the loaders bound the text itself
    from .trace.api import SAMPLES
    from .trace.loaders import CHAIN_MODES, FORMATS
    for key, choices in (("sample", SAMPLES), ("format", FORMATS), ("chain", CHAIN_MODES)):
        if request.get(key) is not None and not isinstance(request[key], str):  # the loaders check the names
            raise InputError(key, request[key], "one of " + ", ".join(map(str, choices)), "not a string")
    return finite_json(_guarded(trace_analyze, request, progress=progress))


def _error_reply(exc: Exception) -> dict:
    if isinstance(exc, InputError):
        return {"ok": False, "error": exc.to_dict()}
    return {"ok": False, "error": {"field": None, "problem": "internal error",
                                   "message": f"{type(exc).__name__}: {exc}"}}


def compute_safe(request: dict) -> dict:
    """compute() with errors in-band: {"ok": true, "result": ...} or {"ok": false, "error": ...}."""
    try:
        return {"ok": True, "result": compute(request)}
    except Exception as exc:  # noqa: BLE001 - in-band for the page; InputError is the documented kind
        return _error_reply(exc)


def simulate_safe(request: dict, progress=None) -> dict:
    try:
        return {"ok": True, "result": simulate(request, progress)}
    except Exception as exc:  # noqa: BLE001
        return _error_reply(exc)


def call(name: str, request: dict, progress=None) -> dict:
    """Whitelisted endpoints for the page's worker: compute, simulate, trace."""
    if name == "compute":
        return compute_safe(request)
    if name == "simulate":
        return simulate_safe(request, progress)
    if name == "trace":
        try:
            from .trace.api import trace_analyze
            return {"ok": True, "result": trace_analyze(request)}
        except Exception as exc:  # noqa: BLE001
            return _error_reply(exc)
    return _error_reply(InputError("call", name, "compute, simulate or trace", "unknown endpoint"))
