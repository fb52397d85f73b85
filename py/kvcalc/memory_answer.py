"""compute()'s memory side: the model and GPU, the memory report, engine commands and log, mean context."""

from __future__ import annotations

import functools
import re

import numpy as np

from .errors import InputError
from .limits import LIMITS
from .workload import Workload, turn_pmf, turn_support

__all__ = ["memory_result", "engine_extras", "mean_context_tokens"]


def memory_result(request: dict, workload: Workload | None, block_size_tokens: int):
    """(memory-side results, model, gpu, tensor_parallel), or None when no model is given."""
    if request.get("model") is None:
        if request.get("gpu") is not None:
            raise InputError("model", None, "a preset id or {\"hf_config\": {...}} (a GPU alone gives no KV size)", "missing")
        return None
    from .memory import memory_report
    from .presets import get_gpu, get_model

    model = get_model(request["model"], field="model")
    gpu = get_gpu(request["gpu"], field="gpu") if request.get("gpu") is not None else None
    tp = request.get("tensor_parallel", LIMITS["tensor_parallel"].default)
    util = request.get("gpu_memory_utilization", LIMITS["gpu_memory_utilization"].default)
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
    args = (w.turns_mean, w.turns_distribution, w.system_prompt_tokens, w.tokens_per_turn)
    if all(isinstance(a, (int, float, str)) for a in args):   # scalars: asked twice per compute
        return _mean_context_tokens(*args)
    return _mean_context_tokens.__wrapped__(*args)


@functools.lru_cache(maxsize=16)
def _mean_context_tokens(turns_mean, turns_distribution, system_prompt_tokens, tokens_per_turn) -> float:
    K = turn_support(turns_mean, turns_distribution)
    pmf = turn_pmf(turns_mean, turns_distribution, K)
    ge = np.cumsum(pmf[::-1])[::-1]
    k = np.arange(1, K + 1)
    z = system_prompt_tokens + k * tokens_per_turn
    return float((ge * z).sum() / ge.sum())


#: a Hugging Face repo id, owner/name (the Hub's grammar; js/state.js HF_REPO_ID is the same)
_HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HF_REPO_ID = re.compile(rf"^(?!.*(?:--|\.\.)){_HF_PART}/{_HF_PART}$")


def engine_extras(request: dict, result: dict, mem, block: int) -> None:
    """Engine command lines, the parsed engine log, and the KV-vs-context figure (model questions)."""
    from .engine_cmd import engine_commands
    report, model, gpu, tp = mem
    mid = model.id if model.source not in ("user-supplied config.json", "entered by hand") else "<model-path>"
    given = request.get("model")
    if isinstance(given, dict) and "hf_config" in given and _HF_REPO_ID.match(str(given.get("name", ""))):
        mid = given["name"]  # a config fetched from the Hub by repo id (the page): the engine takes the id
    result["engine_commands"] = engine_commands(
        mid, tp, request.get("gpu_memory_utilization", 0.9), request.get("kv_cache_dtype", "auto"), block,
        # only a length the user chose: without one the engine uses the model's own maximum
        max_model_len_tokens=report.get("max_model_len_tokens") if request.get("context_tokens") is not None
        else None, weight_dtype=report["weight_dtype"],
        checkpoint_weight_dtype=model.weight_dtype)
    if request.get("engine_log") is not None:
        from .enginelog import compare_with_estimate, parse_engine_log
        parsed = parse_engine_log(request["engine_log"])
        result["engine_log"] = {"parsed": parsed, **compare_with_estimate(parsed, report)}
    wanted = request.get("figures", [])
    if isinstance(wanted, list) and "kv_context" in wanted:
        fig = dict(_kv_context_cached(model, report["kv_cache_bits"], tp, block,
                                      None if gpu is None else gpu.host_link_bandwidth_gb_per_s))
        fig["kv_budget_gib"] = report.get("kv_budget_gib")  # one sequence can use at most this (per GPU)
        result.setdefault("figures", {})["kv_context"] = fig


@functools.lru_cache(maxsize=64)
def _kv_context_cached(model, kv_bits: float, tp: int, block: int, host_link_gb_per_s) -> dict:
    """The kv_context figure (kvcalc.memory.kv_memory_vs_context) with GiB lists for the chart.
    It depends on the model and the cache format only, so dragging workload or memory sliders
    reuses it (the page asks for it with every compute). Callers copy the dict before adding keys."""
    from .memory import kv_memory_vs_context
    from .units import GIB_BYTES
    fig = kv_memory_vs_context(model, kv_bits, tp, block, host_link_gb_per_s=host_link_gb_per_s)
    for key in [k for k in fig if k.endswith("_bytes") and isinstance(fig[k], list)]:
        fig[key[:-len("_bytes")] + "_gib"] = [x / GIB_BYTES for x in fig[key]]
    # the window series only where the model has windowed layers that hold less (else it is the full one)
    fig["draw_sliding_window"] = fig["sliding_window_bytes"] != fig["full_attention_bytes"]
    return fig
