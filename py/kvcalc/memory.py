"""Memory side: KV bytes per token, the KV budget per GPU, capacity in tokens.

Pure functions of a :class:`~kvcalc.presets.ModelSpec` and a
:class:`~kvcalc.presets.GpuSpec` (MODEL.md, "Memory side"). Definitions follow
vLLM so the numbers can be checked against its start-up log:

* "Available KV cache memory: X GiB"  -> :func:`kv_budget` ``kv_budget_gib_per_gpu``
  (total * gpu_memory_utilization - weights - runtime reserve, in GiB);
* "GPU KV cache size: N tokens"      -> :func:`kv_capacity` ``tokens``
  (whole blocks only);
* "Maximum concurrency for N tokens per request: X" -> :func:`max_concurrency`.

Under tensor parallelism every GPU holds its share of every token's KV, so a
capacity in tokens is the same per GPU and per TP group.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError, require_int, require_limit, require_number
from .limits import LIMITS
from .presets import GpuSpec, ModelSpec, get_gpu, get_model
from .units import GIB_BYTES, dtype_bits

__all__ = [
    "kv_bytes_per_token", "kv_bytes_per_token_breakdown", "kv_heads_per_gpu",
    "weights_bytes", "default_runtime_reserve_gib", "kv_budget", "kv_capacity",
    "max_concurrency", "memory_report", "kv_cache_bits", "weights_breakdown", "linear_state_bytes_per_sequence",
    "vllm_block_size_tokens", "max_concurrency_at_context", "kv_memory_vs_context",
    "RESERVE_FIXED_GIB", "RESERVE_PROFILE_TOKENS", "RESERVE_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN",
    "MAX_NUM_BATCHED_TOKENS", "VLLM_KERNEL_BLOCK_ALIGNMENT_TOKENS",
]

#: Runtime reserve, fixed part: CUDA context and driver-reserved memory that
#: nvidia-smi counts but CUDA does not hand out (about 0.5 GiB on H100:
#: 79.65 GiB in nvidia-smi vs 79.11 GiB from cudaMemGetInfo), plus the
#: non-torch allocations vLLM reports (NCCL buffers, cuBLAS workspaces).
RESERVE_FIXED_GIB = 1.0
#: Tokens in vLLM's profiling forward pass (its max_num_batched_tokens default
#: for online serving on large GPUs); the activation peak scales with it.
RESERVE_PROFILE_TOKENS = 8192
#: Live activation bytes per profiled token per unit of hidden_size at the
#: peak of one layer (bf16 residual, q/k/v/o and the gated MLP intermediate,
#: roughly 12 hidden-widths at 2 bytes). A heuristic, not a measurement.
RESERVE_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 24


# ---------------------------------------------------------------------------
# KV bytes per token

def _check_bits(bits) -> float:
    return require_number("kv_cache_dtype", bits, 1, 64)


def _check_tp(tensor_parallel) -> int:
    return require_limit("tensor_parallel", tensor_parallel, LIMITS["tensor_parallel"])


def kv_heads_per_gpu(model: ModelSpec, tensor_parallel: int = 1) -> int:
    """KV heads each GPU stores: kv_heads / TP, or 1 (replicated) when TP > kv_heads.

    MLA has one shared latent per token that every GPU holds whole: returns 1.
    Raises InputError on "tensor_parallel" when the heads cannot be split
    evenly (vLLM refuses those layouts too).
    """
    tp = _check_tp(tensor_parallel)
    if model.attention == "mla":
        return 1
    kv = model.num_kv_heads
    if tp <= kv:
        if kv % tp:
            raise InputError("tensor_parallel", tensor_parallel,
                             f"a divisor of the model's {kv} KV heads, or a multiple of it", "heads do not split evenly",
                             code="heads_do_not_split", params={"kv_heads": kv})
        return kv // tp
    if tp % kv:
        raise InputError("tensor_parallel", tensor_parallel,
                         f"a divisor of the model's {kv} KV heads, or a multiple of it", "heads do not split evenly",
                         code="heads_do_not_split", params={"kv_heads": kv})
    return 1


def _layer_bytes_per_token(model: ModelSpec, kv_dtype_bits: float, tensor_parallel: int) -> float:
    """KV bytes one layer stores per token on one GPU."""
    bits = _check_bits(kv_dtype_bits)
    if model.attention == "mla":
        # compressed latent + decoupled RoPE key; no separate V, no TP split
        return (model.kv_lora_rank + model.qk_rope_head_dim) * bits / 8
    return 2 * kv_heads_per_gpu(model, tensor_parallel) * model.head_dim * bits / 8


def kv_bytes_per_token_breakdown(model: ModelSpec, kv_dtype_bits: float, tensor_parallel: int = 1,
                                 context_tokens=None) -> dict:
    """Per-GPU KV bytes per token split into global and local (windowed) layers.

    A local layer keeps at most ``window`` tokens of a sequence, so over a
    sequence of ``context_tokens`` its mean cost per token is
    ``layer_bytes * min(window, ctx) / ctx``. With ``context_tokens`` None the
    local layers are charged as if global (the upper bound). Linear-attention /
    state-space layers hold no per-token KV (their fixed state per sequence:
    :func:`linear_state_bytes_per_sequence`).
    """
    per_layer = _layer_bytes_per_token(model, kv_dtype_bits, tensor_parallel)
    if context_tokens is not None:
        context_tokens = require_limit("context_tokens", context_tokens, LIMITS["context_tokens"])
    global_bytes = model.global_layers * per_layer
    local_all_global = model.local_layers * per_layer
    if context_tokens is None:
        local_bytes = local_all_global
    else:
        local_bytes = sum((per_layer * min(w, context_tokens) / context_tokens
                          for w in model.layer_window_tokens if w is not None), 0.0)
    return {
        "bytes_per_layer_per_token": per_layer,
        "kv_heads_per_gpu": kv_heads_per_gpu(model, tensor_parallel),
        "global_layers": model.global_layers,
        "local_layers": model.local_layers,
        "global_bytes_per_token": global_bytes,
        "local_bytes_per_token": local_bytes,
        "local_bytes_per_token_all_global": local_all_global,
        "total_bytes_per_token": global_bytes + local_bytes,
        "total_bytes_per_token_all_global": global_bytes + local_all_global,
        "context_tokens": context_tokens,
    }


def kv_bytes_per_token(model: ModelSpec, kv_dtype_bits: float, tensor_parallel: int = 1,
                       context_tokens=None) -> float:
    """KV bytes per token on one GPU (mean over a sequence of ``context_tokens``).

    MHA/GQA/MQA: 2 * layers * kv_heads_per_gpu * head_dim * bits/8.
    MLA: layers * (kv_lora_rank + qk_rope_head_dim) * bits/8, same on every GPU.
    Windowed layers: see :func:`kv_bytes_per_token_breakdown`.
    """
    return kv_bytes_per_token_breakdown(model, kv_dtype_bits, tensor_parallel, context_tokens)["total_bytes_per_token"]


# ---------------------------------------------------------------------------
# weights, budget, capacity

def weights_breakdown(model: ModelSpec, weight_dtype=None, group_size=None) -> dict:
    """Weights in their storage format (kvcalc.quant): bytes, the 16-bit and quantized parameter counts.

    weight_dtype None: the model's own format (its checkpoint's, fp32 served as
    fp16). A name ("fp8", "int4", ...) re-quantizes; a number of bits is the old
    plain rule, params_total * bits / 8.
    """
    from .quant import weight_format, weights_bytes_quantized
    if weight_dtype is not None and not isinstance(weight_dtype, str):
        bits = require_number("weight_dtype", weight_dtype, 1, 64)
        b = model.params_total * bits / 8
        return {"weights_bytes": b, "params_16bit": 0.0, "params_quantized": model.params_total,
                "effective_bits_quantized": bits, "mean_bits_per_param": bits, "weight_dtype": f"{bits:g}-bit",
                "method": "plain", "group_size": None}
    fmt = model.weight_format_dict if weight_dtype is None else weight_format(weight_dtype, group_size=group_size)
    if weight_dtype is not None and fmt["scope"] == "linear" and model.weight_format_dict.get("scope") == "experts" \
            and fmt["weight_dtype"] == model.weight_dtype:
        fmt = model.weight_format_dict  # same dtype as the checkpoint: keep its scope (gpt-oss: experts only)
    return weights_bytes_quantized(model.params_total, model.params_embedding or 0.0, fmt, model.params_experts)


def weights_bytes(model: ModelSpec, weight_dtype=None, group_size=None) -> float:
    """Bytes of all weights (see :func:`weights_breakdown`)."""
    return weights_breakdown(model, weight_dtype, group_size)["weights_bytes"]


def default_runtime_reserve_gib(model: ModelSpec) -> float:
    """Default GPU memory kept from the KV cache besides weights, in GiB.

    RESERVE_FIXED_GIB (CUDA context, driver-reserved and non-torch memory) plus
    an activation peak of RESERVE_PROFILE_TOKENS tokens through one layer at
    RESERVE_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN bytes per hidden unit:
    1.75 GiB for Llama-3.1-8B (hidden 4096), 2.5 GiB for 70B (8192), 4 GiB for
    405B (16384). Not divided by TP (the conservative side). vLLM measures the
    real figure in its profiling run; calibrate from its log as
    total * utilization - weights - "Available KV cache memory".
    """
    act = RESERVE_PROFILE_TOKENS * RESERVE_ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN * model.hidden_size
    return RESERVE_FIXED_GIB + act / GIB_BYTES


def kv_budget(gpu: GpuSpec, model: ModelSpec, tensor_parallel: int = 1, gpu_memory_utilization: float = 0.9,
              weight_dtype_bits=None, runtime_reserve_gib=None, weight_group_size=None) -> dict:
    """KV budget per GPU = memory * utilization - weights / TP - reserve (bytes and GiB).

    Matches vLLM's "Available KV cache memory: X GiB" (vLLM prints GiB).
    Raises InputError on "model" when the weights do not fit.
    """
    tp = _check_tp(tensor_parallel)
    util = require_limit("gpu_memory_utilization", gpu_memory_utilization, LIMITS["gpu_memory_utilization"])
    if runtime_reserve_gib is None:
        runtime_reserve_gib = default_runtime_reserve_gib(model)
    reserve = require_limit("runtime_reserve_gib", runtime_reserve_gib, LIMITS["runtime_reserve_gib"]) * GIB_BYTES
    usable = gpu.memory_bytes * util
    weights = weights_bytes(model, weight_dtype_bits, weight_group_size) / tp
    budget = usable - weights - reserve
    if budget <= 0:
        raise InputError(
            "model", model.id,
            "a model whose weights per GPU fit in the usable memory",
            f"model weights {weights / GIB_BYTES:.2f} GiB per GPU exceed the usable "
            f"{(usable - reserve) / GIB_BYTES:.2f} GiB (of {gpu.memory_bytes / GIB_BYTES:.2f} GiB x "
            f"{util:g}, less a {reserve / GIB_BYTES:.2f} GiB runtime reserve) on {gpu.name}: "
            "raise tensor_parallel or gpu_memory_utilization, or use a smaller weight dtype",
            code="weights_do_not_fit",
            params={"weights_gib_per_gpu": weights / GIB_BYTES, "usable_gib_per_gpu": (usable - reserve) / GIB_BYTES})
    return {
        "kv_budget_bytes_per_gpu": budget,
        "kv_budget_gib_per_gpu": budget / GIB_BYTES,
        "weights_gib_per_gpu": weights / GIB_BYTES,
        "usable_gib_per_gpu": usable / GIB_BYTES,
        "runtime_reserve_gib": reserve / GIB_BYTES,
    }


def kv_capacity(budget_bytes: float, bytes_per_token: float, block_size_tokens: int = 16) -> dict:
    """Whole KV blocks that fit in the budget, and the tokens they hold.

    blocks = floor(budget / (bytes_per_token * block_size)); tokens = blocks * block_size
    (vLLM's "GPU KV cache size: N tokens").
    """
    budget = require_number("kv_budget_bytes", budget_bytes, 0.0)
    bpt = require_number("kv_bytes_per_token", bytes_per_token, 0.0, lo_open=True)
    block = require_limit("cache.block_size_tokens", block_size_tokens, LIMITS["cache.block_size_tokens"])
    blocks = int(math.floor(budget / (bpt * block)))
    return {"blocks": blocks, "tokens": blocks * block}


def max_concurrency(capacity_tokens: float, context_tokens: float) -> float:
    """Requests of ``context_tokens`` that fit at once (vLLM's "Maximum concurrency")."""
    cap = require_number("kv_capacity_tokens", capacity_tokens, 0.0)
    ctx = require_number("context_tokens", context_tokens, 0.0, lo_open=True)
    return cap / ctx


# ---------------------------------------------------------------------------
# context length: vLLM's maximum concurrency, and KV per sequence against length

#: vLLM's max_num_batched_tokens for online serving on large GPUs (its
#: SchedulerConfig default); a sliding-window layer keeps window - 1 + this.
MAX_NUM_BATCHED_TOKENS = RESERVE_PROFILE_TOKENS
#: vLLM rounds a hybrid model's attention block size up to a multiple of this
#: when it grows blocks to hold a linear layer's state in one page.
VLLM_KERNEL_BLOCK_ALIGNMENT_TOKENS = 16


def linear_state_bytes_per_sequence(model: ModelSpec, tensor_parallel: int = 1) -> float:
    """Fixed state of all linear-attention / SSM layers for one sequence on one GPU (heads split by TP)."""
    tp = _check_tp(tensor_parallel)
    return model.linear_layers * model.linear_state_bytes_per_layer / tp


def vllm_block_size_tokens(model: ModelSpec, kv_dtype_bits: float, tensor_parallel: int = 1,
                           block_size_tokens: int = 16) -> int:
    """The attention block size vLLM uses: the requested one, or for a model with
    linear layers the smallest multiple of 16 tokens whose page holds one layer's
    state (vLLM HybridAttentionMambaModelConfig.verify_and_update_config:
    ``attn_block_size = 16 * cdiv(mamba_page_size, 16 * attn_page_size_1_token)``)."""
    block = require_limit("cache.block_size_tokens", block_size_tokens, LIMITS["cache.block_size_tokens"])
    if not model.linear_layers:
        return block
    per_token = _layer_bytes_per_token(model, kv_dtype_bits, tensor_parallel)
    state = model.linear_state_bytes_per_layer / _check_tp(tensor_parallel)
    a = VLLM_KERNEL_BLOCK_ALIGNMENT_TOKENS
    return max(block, a * math.ceil(state / (a * per_token)))


def _layer_blocks(window, context_tokens: int, block: int, max_num_batched_tokens: int) -> int:
    """Blocks one layer holds for a sequence of context_tokens (vLLM KV cache specs'
    max_memory_usage_bytes): full cdiv(L, b); sliding cdiv(min(W - 1 + B, L), b) + 1;
    linear 1 (its state fits one page)."""
    if window is None:
        return -(-context_tokens // block)
    if window == 0:
        return 1
    return -(-min(window - 1 + max_num_batched_tokens, context_tokens) // block) + 1


def max_concurrency_at_context(model: ModelSpec, kv_budget_bytes: float, kv_dtype_bits: float, context_tokens,
                               tensor_parallel: int = 1, block_size_tokens: int = 16,
                               max_num_batched_tokens: int = MAX_NUM_BATCHED_TOKENS) -> dict:
    """Requests of ``context_tokens`` tokens that fit at once, as vLLM computes
    "Maximum concurrency for N tokens per request" (vllm/v1/core/kv_cache_utils.py,
    get_max_concurrency_for_kv_cache_config)::

        num_blocks            = floor(budget / (page_bytes * group_size))
        blocks_per_request    = sum over layer groups of the group's blocks at N tokens
        max_concurrency       = num_blocks / blocks_per_request

    page_bytes is one layer's block. Layers are grouped by kind (full
    attention, each window size, linear) into groups of ``group_size`` layers:
    the smallest kind's count, or the largest's when that is under 1.25x the
    smallest (vLLM _get_kv_cache_groups_uniform_page_size); a kind of c layers
    takes ceil(c / group_size) groups, the last one padded. A uniform model has
    one group of all its layers, so the result is
    floor(budget / (page * layers)) / cdiv(N, block) exactly.
    Sliding-window layers cost what they hold at N tokens (window - 1 +
    max_num_batched_tokens, + 1 block), linear layers one page each (the block
    size grows until one page holds the state; see vllm_block_size_tokens).
    """
    budget = require_number("kv_budget_bytes", kv_budget_bytes, 0.0)
    n = int(math.ceil(require_limit("context_tokens", context_tokens, LIMITS["context_tokens"])))
    bnt = require_int("max_num_batched_tokens", max_num_batched_tokens, 1, 10**7)
    block = vllm_block_size_tokens(model, kv_dtype_bits, tensor_parallel, block_size_tokens)
    page = _layer_bytes_per_token(model, kv_dtype_bits, tensor_parallel) * block
    kinds: dict = {}
    for w in model.layer_window_tokens:
        kinds[w] = kinds.get(w, 0) + 1
    group = min(kinds.values())
    if max(kinds.values()) < 1.25 * group:
        group = max(kinds.values())
    per_request = sum(-(-count // group) * _layer_blocks(w, n, block, bnt) for w, count in kinds.items())
    num_blocks = int(math.floor(budget / (page * group)))
    return {"max_concurrency": num_blocks / per_request, "num_blocks": num_blocks,
            "blocks_per_request": per_request, "block_size_tokens": block, "group_size_layers": group,
            "bytes_per_request": per_request * group * page, "context_tokens": n}


def kv_memory_vs_context(model: ModelSpec, kv_dtype_bits: float, tensor_parallel: int = 1,
                         block_size_tokens: int = 16, context_tokens=None, points: int = 40,
                         gpu_resident_tokens: int = 8192, host_link_gb_per_s=None,
                         max_num_batched_tokens: int = MAX_NUM_BATCHED_TOKENS) -> dict:
    """KV bytes one sequence holds on one GPU against its length, for the chart.

    Lists over ``context_tokens`` (log-spaced from 256 to the model's maximum,
    or the given list):

    * ``full_attention_bytes``: every attention layer global (no windows);
    * ``sliding_window_bytes``: the model as it is: local layers hold min(window, L);
    * ``paged_bytes``: the same in whole blocks as vLLM allocates them (full
      layers cdiv(L, b) blocks, sliding cdiv(min(W-1+B, L), b) + 1);
    * ``offload_gpu_bytes`` / ``offload_cpu_bytes``: with CPU offload, only the
      last ``gpu_resident_tokens`` tokens' blocks stay on the GPU, the rest in
      host memory; ``offload_reload_s``: time to bring the host part back over
      the host link (when ``host_link_gb_per_s`` is given).

    Linear-layer state (fixed per sequence) is included in every series.
    """
    tp = _check_tp(tensor_parallel)
    block = vllm_block_size_tokens(model, kv_dtype_bits, tp, block_size_tokens)
    per_layer = _layer_bytes_per_token(model, kv_dtype_bits, tp)
    state = linear_state_bytes_per_sequence(model, tp)
    hot = require_int("gpu_resident_tokens", gpu_resident_tokens, 1, 10**9)
    bnt = require_int("max_num_batched_tokens", max_num_batched_tokens, 1, 10**7)
    if context_tokens is None:
        top = model.max_position_embeddings or 131072
        n_pts = require_int("points", points, 2, 1000)
        grid = sorted({int(round(x)) for x in np.geomspace(256, max(top, 512), n_pts)})
    else:
        if not isinstance(context_tokens, (list, tuple)) or not context_tokens or len(context_tokens) > 1000:
            raise InputError("context_tokens", context_tokens, "a list of 1 to 1000 lengths", "bad list")
        grid = [int(math.ceil(require_limit(f"context_tokens[{i}]", c, LIMITS["context_tokens"])))
                for i, c in enumerate(context_tokens)]
    attn = model.attention_layers
    full, sliding, paged, gpu_b, cpu_b, reload_s = [], [], [], [], [], []
    for n in grid:
        full.append(attn * per_layer * n + state)
        sliding.append(sum(per_layer * (n if w is None else min(w, n)) for w in model.layer_window_tokens if w != 0)
                       + state)
        blocks = sum(_layer_blocks(w, n, block, bnt) for w in model.layer_window_tokens if w != 0)
        paged.append(blocks * block * per_layer + state)
        hot_n = min(n, hot)
        hot_blocks = sum(_layer_blocks(w, hot_n, block, bnt) for w in model.layer_window_tokens if w != 0)
        g = min(hot_blocks * block * per_layer, blocks * block * per_layer) + state
        gpu_b.append(g)
        cpu_b.append(paged[-1] - g)
        reload_s.append(None if host_link_gb_per_s is None else cpu_b[-1] / (host_link_gb_per_s * 1e9))
    return {"context_tokens": grid, "full_attention_bytes": full, "sliding_window_bytes": sliding,
            "paged_bytes": paged, "offload_gpu_bytes": gpu_b, "offload_cpu_bytes": cpu_b,
            "offload_reload_s": reload_s, "block_size_tokens": block, "gpu_resident_tokens": hot,
            "linear_state_bytes": state, "host_link_gb_per_s": host_link_gb_per_s}


# ---------------------------------------------------------------------------
# the report

def kv_cache_bits(model: ModelSpec, kv_cache_dtype: str = "auto") -> int:
    """KV element width: "auto" is the model's activation dtype, as in vLLM.

    Quantized checkpoints (fp8, mxfp4) compute in bf16, and vLLM's dtype="auto"
    runs fp32 checkpoints in fp16, so "auto" gives 16 bits for every model.
    """
    if kv_cache_dtype == "auto":
        return 16
    return dtype_bits("kv_cache_dtype", kv_cache_dtype)


def memory_report(model: ModelSpec, gpu: GpuSpec | None = None, tensor_parallel: int = 1,
                  gpu_memory_utilization: float = 0.9, kv_cache_dtype: str = "auto",
                  weight_dtype: str | None = None, runtime_reserve_gib: float | None = None,
                  block_size_tokens: int = 16, context_tokens=None, weight_group_size=None,
                  max_model_len_tokens=None) -> dict:
    """Every memory-side number for one configuration, as JSON-simple values.

    Without a GPU only the per-token figures are filled (budget and capacity
    keys are None). ``context_tokens`` (default: the model's
    max_position_embeddings) sets the sequence length for windowed layers and
    for max_concurrency. ``max_model_len_tokens`` (default: context_tokens,
    else max_position_embeddings) is the length of vLLM's "Maximum concurrency
    for N tokens per request" (``max_concurrency_at_context``).
    ``weight_dtype`` re-quantizes the weights (kvcalc.quant; int4 groups of
    ``weight_group_size``). ``note_details`` lists {"code", "params", "message"}.
    """
    model = get_model(model)  # a ModelSpec passes through; ids and {"hf_config": ...} are resolved
    gpu = None if gpu is None else get_gpu(gpu)
    tp = _check_tp(tensor_parallel)
    kv_bits = kv_cache_bits(model, kv_cache_dtype)
    if weight_group_size is not None and weight_dtype is None:
        raise InputError("weight_group_size", weight_group_size, "only with weight_dtype int4", "not applicable")
    wb = weights_breakdown(model, weight_dtype, weight_group_size)
    w_bits = weight_dtype  # passed on to kv_budget (a name; None = the model's own format)
    notes: list[dict] = []  # {"code", "params", "message"}; report["notes"] keeps the messages

    def note(code: str, message: str, **params):
        notes.append({"code": code, "params": params, "message": message})
    ctx = context_tokens if context_tokens is not None else (model.max_position_embeddings or 131072)
    if context_tokens is None and model.max_position_embeddings is None:
        note("context_assumed", "The model gives no maximum length: per-token costs of windowed layers are "
             "taken at 131072-token sequences; set context_tokens.", context_tokens=131072)
    br = kv_bytes_per_token_breakdown(model, kv_bits, tp, ctx)
    bpt = br["total_bytes_per_token"]
    report = {
        "model_id": model.id,
        "model_name": model.name,
        "attention": model.attention,
        "gpu_id": gpu.id if gpu is not None else None,
        "tensor_parallel": tp,
        "kv_cache_bits": kv_bits,
        "weight_bits": 16 if wb["params_quantized"] == 0 else dtype_bits("weight_dtype", wb["weight_dtype"]),
        "weight_dtype": wb["weight_dtype"],
        "weight_method": wb["method"],
        "weight_group_size": wb["group_size"],
        "weights_mean_bits_per_param": wb["mean_bits_per_param"],
        "weights_params_16bit": wb["params_16bit"],
        "linear_layers": model.linear_layers,
        "linear_state_bytes_per_sequence": linear_state_bytes_per_sequence(model, tp),
        "max_model_len_tokens": None, "max_concurrency_at_context": None,
        "vllm_block_size_tokens": vllm_block_size_tokens(model, kv_bits, tp, block_size_tokens),
        "derived_fields": model.derived_fields(),
        "context_tokens": float(ctx),
        "kv_heads_per_gpu": br["kv_heads_per_gpu"],
        "global_layers": br["global_layers"],
        "local_layers": br["local_layers"],
        "kv_bytes_per_token": bpt,
        "kv_bytes_per_token_all_global": br["total_bytes_per_token_all_global"],
        "kv_bytes_per_token_global_layers": br["global_bytes_per_token"],
        "kv_bytes_per_token_local_layers": br["local_bytes_per_token"],
        "weights_gib_total": wb["weights_bytes"] / GIB_BYTES,
        "weights_gib_per_gpu": wb["weights_bytes"] / tp / GIB_BYTES,
        "gpu_memory_gib": None, "usable_gib_per_gpu": None, "runtime_reserve_gib": None,
        "kv_budget_bytes": None, "kv_budget_gib": None,
        "kv_capacity_blocks": None, "kv_capacity_tokens": None, "kv_capacity_gib": None,
        "max_concurrency": None,
        "params_total": model.params_total, "params_active": model.params_active,
        "params_estimated": model.params_estimated,
    }
    if model.params_estimated:
        note("params_estimated", f"{model.name}: parameter count {model.params_total / 1e9:.1f}B is an estimate "
                     "from the architecture; weights memory follows from it.", model=model.name,
             params_total=model.params_total)
    if model.attention == "mla" and tp > 1:
        note("mla_not_split", "MLA keeps one latent per token that every tensor-parallel GPU stores whole: "
             "KV bytes per token do not shrink with TP.", tensor_parallel=tp)
    elif model.attention != "mla" and tp > model.num_kv_heads:
        note("kv_heads_replicated", f"TP={tp} exceeds the {model.num_kv_heads} KV heads: each GPU holds a "
             "replica of one head.", tensor_parallel=tp, kv_heads=model.num_kv_heads)
    if model.local_layers:
        windows = sorted({w for w in model.layer_window_tokens if w})
        note("windowed_layers", f"{model.local_layers} of {model.num_layers} layers keep only a window of "
             f"{', '.join(str(w) for w in windows)} tokens; per-token KV is averaged over "
             f"{ctx:g}-token sequences (all-global bound: {br['total_bytes_per_token_all_global']:.0f} B/token).",
             local_layers=model.local_layers, layers=model.num_layers, windows_tokens=windows,
             context_tokens=float(ctx), all_global_bytes_per_token=br["total_bytes_per_token_all_global"])
    if wb["params_16bit"] and wb["params_quantized"]:
        note("weights_mixed_precision", f"{wb['params_16bit'] / 1e9:.2f}B parameters (embeddings, lm_head"
             + (", attention" if model.weight_format_dict.get("scope") == "experts" else "")
             + f") stay 16-bit; the rest is {wb['weight_dtype']} "
             f"({wb['mean_bits_per_param']:.2f} bits per parameter overall).",
             params_16bit=wb["params_16bit"], weight_dtype=wb["weight_dtype"],
             mean_bits_per_param=wb["mean_bits_per_param"])
    if model.linear_layers:
        note("linear_layers", f"{model.linear_layers} of {model.num_layers} layers are linear attention / "
             f"state-space layers: no per-token KV, a fixed "
             f"{linear_state_bytes_per_sequence(model, tp) / 2**20:.1f} MiB per sequence.",
             linear_layers=model.linear_layers, state_bytes_per_sequence=linear_state_bytes_per_sequence(model, tp))
    if context_tokens is not None and model.max_position_embeddings and context_tokens > model.max_position_embeddings:
        note("context_beyond_model", f"context_tokens {context_tokens:g} exceeds the model's "
             f"max_position_embeddings {model.max_position_embeddings}.", context_tokens=float(context_tokens),
             max_position_embeddings=model.max_position_embeddings)
    if gpu is not None:
        b = kv_budget(gpu, model, tp, gpu_memory_utilization, w_bits, runtime_reserve_gib, weight_group_size)
        cap = kv_capacity(b["kv_budget_bytes_per_gpu"], bpt, block_size_tokens)
        report.update({
            "gpu_memory_gib": gpu.memory_bytes / GIB_BYTES,
            "usable_gib_per_gpu": b["usable_gib_per_gpu"],
            "runtime_reserve_gib": b["runtime_reserve_gib"],
            "kv_budget_bytes": b["kv_budget_bytes_per_gpu"],
            "kv_budget_gib": b["kv_budget_gib_per_gpu"],
            "kv_capacity_blocks": cap["blocks"],
            "kv_capacity_tokens": cap["tokens"],
            "kv_capacity_gib": cap["tokens"] * bpt / GIB_BYTES,
            "max_concurrency": max_concurrency(cap["tokens"], ctx),
        })
        mml = max_model_len_tokens if max_model_len_tokens is not None else (
            context_tokens if context_tokens is not None else model.max_position_embeddings)
        if mml is not None:
            mc = max_concurrency_at_context(model, b["kv_budget_bytes_per_gpu"], kv_bits, int(math.ceil(mml)), tp,
                                            block_size_tokens)
            report.update({"max_model_len_tokens": mc["context_tokens"],
                           "max_concurrency_at_context": mc["max_concurrency"],
                           "vllm_blocks_per_request": mc["blocks_per_request"],
                           "vllm_num_blocks": mc["num_blocks"]})
            if mc["max_concurrency"] < 1:
                note("context_does_not_fit", f"One {mc['context_tokens']}-token request needs more KV than the "
                     "cache holds: vLLM refuses to start at this max model length.",
                     max_model_len_tokens=mc["context_tokens"], max_concurrency=mc["max_concurrency"])
        if runtime_reserve_gib is None:
            note("reserve_estimated", f"Runtime reserve {b['runtime_reserve_gib']:.2f} GiB is a default "
                 "estimate (CUDA context and activations); vLLM measures it at start-up.",
                 runtime_reserve_gib=b["runtime_reserve_gib"])
        if kv_bits == 8 and model.attention != "mla" and gpu.dense_fp8_tflops is None:
            note("fp8_dequantized", f"{gpu.name} has no FP8 tensor cores: an fp8 KV cache is stored in fp8 "
                         "but dequantized for attention.", gpu=gpu.name)
    report["notes"] = [n["message"] for n in notes]
    report["note_details"] = notes
    return report
