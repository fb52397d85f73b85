"""The recommender pattern: one user's history encoded once, its KV broadcast to N candidates.

Each of N candidate items is scored as the prompt [user history (U tokens), item (I tokens)].

* Without sharing every candidate is its own sequence: KV memory N x (KV_user + KV_item),
  prefill N x F(U + I) FLOPs.
* With broadcast the user's KV is computed and held once and every item attends to it:
  KV memory KV_user + N x KV_item, prefill F(U) + N x F(U + I | U cached) FLOPs
  (F as in :func:`kvcalc.benefit.prefill_flops`: two FLOPs per active parameter per token
  plus attention to every earlier token).

Times are compute-bound prefill at the request's MFU over TP GPUs (the same assumptions as
"what the hits buy"); "extra time" is each mode's prefill time over encoding the user
history alone, minus one (the design documents quote about +40 % latency without sharing
and +6.8 % with it for their setup).

:func:`simulate_broadcast` counts the same quantities a second way: it builds the token
sequences (seeded random ids), hashes them block by block as vLLM's prefix cache does, and
sums the per-position prefill cost of every token not already cached; the tests compare.
"""

from __future__ import annotations

import numpy as np

from .benefit import prefill_flops
from .presets import GpuSpec, ModelSpec
from .units import GIB_BYTES

__all__ = ["broadcast_memory_bytes", "broadcast_report", "simulate_broadcast", "CURVE_POINTS"]

CURVE_POINTS = 24


def broadcast_memory_bytes(kv_bytes_per_token: float, user_tokens: float, item_tokens: float, candidates):
    """(without sharing, with sharing) KV bytes for N candidates (N may be an array)."""
    n = np.asarray(candidates, dtype=float)
    kv_user = kv_bytes_per_token * float(user_tokens)
    kv_item = kv_bytes_per_token * float(item_tokens)
    return n * (kv_user + kv_item), kv_user + n * kv_item


def _flops(model: ModelSpec, user_tokens: float, item_tokens: float, candidates):
    n = np.asarray(candidates, dtype=float)
    u, i = float(user_tokens), float(item_tokens)
    user_only = prefill_flops(model, u, 0.0)
    without = n * prefill_flops(model, u + i, 0.0)
    with_sharing = user_only + n * prefill_flops(model, u + i, u)
    return user_only, without, with_sharing


def broadcast_report(model: ModelSpec, gpu: GpuSpec | None, tensor_parallel: int, kv_bytes_per_token: float,
                     candidates: int, user_tokens: float, item_tokens: float, mfu: float) -> dict:
    """Memory, prefill compute and time with and without broadcast, at N and as N grows."""
    grid = np.unique(np.round(np.geomspace(1, max(int(candidates), 1), CURVE_POINTS)).astype(np.int32))
    if grid[-1] != int(candidates):
        grid = np.append(grid, np.int32(candidates))
    mem_wo, mem_w = broadcast_memory_bytes(kv_bytes_per_token, user_tokens, item_tokens, grid)
    user_only, f_wo, f_w = _flops(model, user_tokens, item_tokens, grid)
    out = {
        "candidates": int(candidates), "user_tokens": float(user_tokens), "item_tokens": float(item_tokens),
        "kv_user_gib_per_gpu": kv_bytes_per_token * user_tokens / GIB_BYTES,
        "kv_item_gib_per_gpu": kv_bytes_per_token * item_tokens / GIB_BYTES,
        "kv_gib_per_gpu_without_sharing": float(mem_wo[-1]) / GIB_BYTES,
        "kv_gib_per_gpu_with_sharing": float(mem_w[-1]) / GIB_BYTES,
        "memory_ratio": float(mem_wo[-1] / mem_w[-1]),
        "prefill_flops_user_only": user_only,
        "prefill_flops_without_sharing": float(f_wo[-1]),
        "prefill_flops_with_sharing": float(f_w[-1]),
        "compute_ratio": float(f_wo[-1] / f_w[-1]),
        "extra_prefill_fraction_without_sharing": float(f_wo[-1] / user_only - 1.0),
        "extra_prefill_fraction_with_sharing": float(f_w[-1] / user_only - 1.0),
        "curve": {
            "candidates": [int(x) for x in grid],
            "kv_gib_per_gpu_without_sharing": [float(x) / GIB_BYTES for x in mem_wo],
            "kv_gib_per_gpu_with_sharing": [float(x) / GIB_BYTES for x in mem_w],
        },
    }
    if gpu is not None:
        flops_per_s = gpu.dense_bf16_tflops * 1e12 * mfu * tensor_parallel
        out["mfu"] = mfu
        out["prefill_s_user_only"] = user_only / flops_per_s
        out["prefill_s_without_sharing"] = float(f_wo[-1]) / flops_per_s
        out["prefill_s_with_sharing"] = float(f_w[-1]) / flops_per_s
        out["curve"]["prefill_s_without_sharing"] = [float(x) / flops_per_s for x in f_wo]
        out["curve"]["prefill_s_with_sharing"] = [float(x) / flops_per_s for x in f_w]
    return out


def simulate_broadcast(model: ModelSpec, user_tokens: int, item_tokens: int, candidates: int,
                       block_size_tokens: int, rng: np.random.Generator, sharing: bool) -> dict:
    """Block-level count of one broadcast: distinct KV blocks held and prefill FLOPs.

    Token ids are random (rng); blocks are keyed by the hash of their whole prefix, as a
    prefix cache keys them, so only full blocks of an identical prefix are shared. Without
    sharing every candidate is a separate request with its own blocks. Prefill FLOPs sum
    2 x active params + 4 x layers x d_attn x position over every token not found cached.
    """
    b = int(block_size_tokens)
    user = rng.integers(0, 2**31 - 1, size=int(user_tokens))
    blocks: set = set()
    held_tokens = 0
    flops = 0.0
    d_attn = model.num_attention_heads * model.head_dim
    cached_positions = 0
    if sharing:   # the user's history is encoded once, before the items
        flops += sum(2.0 * model.params_active + 4.0 * model.num_layers * d_attn * t for t in range(len(user)))
        cached_positions = len(user)
    for n in range(int(candidates)):
        item = rng.integers(0, 2**31 - 1, size=int(item_tokens))
        seq = np.concatenate([user, item])
        start = cached_positions if sharing else 0
        flops += sum(2.0 * model.params_active + 4.0 * model.num_layers * d_attn * t for t in range(start, len(seq)))
        key = ("shared",) if sharing else ("request", n)
        prev = key
        for j in range(0, len(seq), b):
            chunk = tuple(int(x) for x in seq[j:j + b])
            prev = hash((prev, chunk)) if len(chunk) == b else hash((prev, chunk, "partial", n))
            if prev not in blocks:
                blocks.add(prev)
                held_tokens += len(chunk)
    return {"blocks": len(blocks), "held_tokens": held_tokens, "prefill_flops": flops}
