"""The single door into kvcalc: JSON-simple request in, JSON-simple result out.

The web page (through Pyodide), the CLI and the tests all call :func:`compute`. This module
is only the door: it checks the request (:mod:`kvcalc.request`) and guards the call; the
answer is assembled in :mod:`kvcalc.assemble` (memory side :mod:`kvcalc.memory_answer`, the
inverse :mod:`kvcalc.inverse_answer`, chart data :mod:`kvcalc.figure_data`).
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
    scenario              chat | coding_agent | rag | recommender: the preset's workload values fill
                          the workload keys not given (kvcalc.scenarios); echoed as result "scenario"
    recommender.candidates, .user_tokens, .item_tokens  (with a model) the broadcast of one user's
                          history to N candidates: result "recommender" (kvcalc.recommender)
    export                true: result "export" = {"csv": {figure name: CSV text}} (kvcalc.export)
    preview               true: the same numbers, the asked figures on coarser grids, without the
                          extras (explain, summary_details, engine_commands, recommender, compare,
                          export, a single cache's fleet data): the page's render while a slider moves
    compare_with          a compute request of its own (setup A): result "compare" = {"keys", "a",
                          "b", "difference" (B - A), "a_curve"} of the headline numbers
                          (kvcalc.panels.COMPARE_KEYS)

Every result with a workload also holds ``explain`` (the seed formula and the Che approximation
with the request's values substituted, kvcalc.explain) and ``summary_details`` (the plain-text
summary as message codes, kvcalc.export).

With a model the result also holds ``engine_commands`` (vllm serve / SGLang
launch_server lines, kvcalc.engine_cmd); its notes (weights in mixed precision,
linear layers, a context that does not fit) come in ``warnings`` and
``warning_details`` like every other.

The whole request is validated first (:func:`kvcalc.request.check_request`:
types, ranges from :mod:`kvcalc.limits`, unknown keys at every level, nesting
depth and size), whether or not the question uses a key. Errors raise
:class:`kvcalc.errors.InputError` (with a stable ``code`` and ``params``) and
nothing else; results hold only finite numbers or null.

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

import numpy as np

from .assemble import simulate_result
from .panels import compute_with_panels
from .errors import InputError
from .request import FIGURES, REQUEST_KEYS, check_request, check_shape, finite_json

__all__ = ["compute", "simulate", "trace", "REQUEST_KEYS", "FIGURES", "ENDPOINTS"]

#: What the page's worker may call (js/kvcalc_bridge.py reads this).
ENDPOINTS = ("compute", "simulate", "trace")


def compute(request: dict) -> dict:
    """Answer one calculator question; see the module docstring for keys."""
    req = check_request(request, "compute")
    return finite_json(_guarded(compute_with_panels, req))


def simulate(request: dict, progress=None) -> dict:
    """Run the seeded simulator at the request's point (and optional capacities).

    Extra key ``simulation``: {"n_conversations": int, "capacities_tokens": [..]}.
    The seed is ``request["seed"]`` (default 1).
    """
    req = check_request(request, "simulate")
    return finite_json(_guarded(simulate_result, req, progress))


def trace(request: dict, progress=None, status=None) -> dict:
    """Exact hit-rate curve and statistics of a request trace (kvcalc.trace.api).

    ``status(dict)``: called after each chunk read (bytes read, requests, requests per second).
    """
    from .trace.api import SAMPLES, trace_analyze
    from .trace.loaders import CHAIN_MODES, FORMATS
    from .trace.reader import BlobSource
    if not isinstance(request, dict):
        raise InputError("request", request, "a JSON object", "not an object")
    # depth and size; the loaders bound the text itself (a file read by slices is not JSON)
    check_shape({k: v for k, v in request.items() if not isinstance(v, BlobSource)}, max_string_chars=None)
    for key, choices in (("sample", SAMPLES), ("format", FORMATS), ("chain", CHAIN_MODES)):
        if request.get(key) is not None and not isinstance(request[key], str):  # the loaders check the names
            raise InputError(key, request[key], "one of " + ", ".join(map(str, choices)), "not a string")
    return finite_json(_guarded(trace_analyze, request, progress=progress, status=status))


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
