"""Does a KV tier below GPU memory help time to first token? Load versus recompute.

A hit in a lower tier saves prefill only if moving its KV into GPU memory is
faster than computing it again. For the mean request, tier j serves x_j =
h_j * prompt tokens (h_j its token hit rate) positioned after the GPU's hit:

    load_s      = x_j * kv_bytes_per_token_per_gpu / (read_gb_per_s * 1e9)
                  (every GPU of the instance reads its own shard over its own link)
    recompute_s = prefill FLOPs of those tokens / (TP * peak * MFU)    (benefit.py)

The verdict says whether the tier helps TTFT (load faster than recompute) and
by how much. Both are estimates at the stated bandwidth and MFU.
"""

from __future__ import annotations

from .benefit import DEFAULT_MFU, prefill_flops
from .presets import GpuSpec, ModelSpec

__all__ = ["DEFAULT_SSD_READ_GB_PER_S", "default_read_gb_per_s", "tier_load_report"]

#: NVMe SSD read bandwidth: PCIe 4.0 x4 drives are rated about 7 GB/s sequential
#: (the link's ceiling is ~7.9 GB/s); one drive per GPU assumed.
DEFAULT_SSD_READ_GB_PER_S = 7.0


def default_read_gb_per_s(name: str, gpu: GpuSpec | None) -> float:
    """CPU tier: the GPU preset's host link; anything else: the NVMe figure above."""
    if name.lower().startswith(("cpu", "dram", "host")) and gpu is not None:
        return float(gpu.host_link_bandwidth_gb_per_s)
    return DEFAULT_SSD_READ_GB_PER_S


def tier_load_report(model: ModelSpec, gpu: GpuSpec, tensor_parallel: int, kv_bytes_per_token_per_gpu: float,
                     tiers, tier_token_hit_rates, mean_prompt_tokens: float, mfu: float = DEFAULT_MFU) -> list[dict]:
    """One row per lower tier: tokens served, load time, recompute time, verdict."""
    flops_per_s = gpu.dense_bf16_tflops * 1e12 * mfu * tensor_parallel
    start = tier_token_hit_rates[0] * mean_prompt_tokens      # the GPU's hit comes first
    rows = []
    for tier, h in zip(tiers, tier_token_hit_rates[1:]):
        x = h * mean_prompt_tokens
        load_s = x * kv_bytes_per_token_per_gpu / (tier.read_gb_per_s * 1e9)
        recompute_s = prefill_flops(model, start + x, start) / flops_per_s
        per_token_load = kv_bytes_per_token_per_gpu / (tier.read_gb_per_s * 1e9)
        helps = load_s < recompute_s if x > 0 else per_token_load * 1.0 < prefill_flops(model, start + 1.0, start) / flops_per_s
        rows.append({
            "name": tier.name, "token_hit_rate": h, "tokens_per_request": x,
            "read_gb_per_s": tier.read_gb_per_s,
            "load_s_per_request": load_s, "recompute_s_per_request": recompute_s,
            "load_ms_per_request": load_s * 1e3, "recompute_ms_per_request": recompute_s * 1e3,
            "helps_ttft": bool(helps),
            "ttft_saved_s_per_request": max(recompute_s - load_s, 0.0),
            "code": "tier_helps_ttft" if helps else "tier_slower_than_recompute",
            "message": (f"{tier.name}: loading {x:.0f} tokens of KV takes {load_s * 1e3:.1f} ms at "
                        f"{tier.read_gb_per_s:g} GB/s against {recompute_s * 1e3:.1f} ms to recompute them "
                        f"at {mfu:.0%} MFU: " + ("it helps time to first token." if helps else
                                                  "recomputing is faster, so this tier does not help TTFT "
                                                  "(it may still save GPU compute under load).")),
        })
        start += x
    return rows
