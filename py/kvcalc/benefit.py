"""What a prefix-cache hit buys: prefill compute, time to first token, GPU time.

Prefill FLOPs for prompt tokens [c, n) of one sequence (c already cached):
    sum_{t=c}^{n-1} (2 * active_params + 4 * layers * t * d_attn)
with d_attn = num_attention_heads * head_dim: the dense part is two FLOPs per
parameter per token, the attention part is QK^T plus AV over the t earlier
tokens (two matmuls, two FLOPs per multiply-add). Time = FLOPs / (peak x MFU x TP).
These are compute-bound prefill estimates at a stated MFU, not measurements.
"""

from __future__ import annotations

from .presets import GpuSpec, ModelSpec

__all__ = ["prefill_flops", "benefit_report", "DEFAULT_MFU"]

#: Model FLOPs utilisation assumed for prefill (large-batch prefill on H100-class GPUs
#: commonly reaches 40-60 %; the user can change it).
DEFAULT_MFU = 0.4


def prefill_flops(model: ModelSpec, prompt_tokens: float, cached_tokens: float = 0.0) -> float:
    """FLOPs to prefill prompt tokens [cached_tokens, prompt_tokens) of one sequence."""
    n, c = float(prompt_tokens), min(float(cached_tokens), float(prompt_tokens))
    computed = n - c
    d_attn = model.num_attention_heads * model.head_dim
    # sum_{t=c}^{n-1} t = (n(n-1) - c(c-1)) / 2
    positions = (n * (n - 1.0) - c * (c - 1.0)) / 2.0
    return 2.0 * model.params_active * computed + 4.0 * model.num_layers * d_attn * positions


def benefit_report(model: ModelSpec, gpu: GpuSpec, tensor_parallel: int, mean_prompt_tokens: float,
                   token_hit_rate: float, requests_per_s: float, mfu: float = DEFAULT_MFU,
                   use_fp8: bool = False) -> dict:
    """TTFT (prefill part) with and without the cache, and prefill GPU time saved."""
    tflops = gpu.dense_fp8_tflops if (use_fp8 and gpu.dense_fp8_tflops) else gpu.dense_bf16_tflops
    flops_per_s = tflops * 1e12 * mfu * tensor_parallel
    cached = token_hit_rate * mean_prompt_tokens
    miss = prefill_flops(model, mean_prompt_tokens, 0.0)
    hit = prefill_flops(model, mean_prompt_tokens, cached)
    gpu_s_per_request_miss = miss / (tflops * 1e12 * mfu)
    gpu_s_per_request_hit = hit / (tflops * 1e12 * mfu)
    return {
        "mfu": mfu,
        "peak_tflops_per_gpu": tflops,
        "mean_prompt_tokens": mean_prompt_tokens,
        "mean_cached_tokens": cached,
        "prefill_ttft_no_cache_s": miss / flops_per_s,
        "prefill_ttft_with_cache_s": hit / flops_per_s,
        "prefill_speedup": (miss / hit) if hit > 0 else None,
        "prefill_gpus_busy_no_cache": requests_per_s * gpu_s_per_request_miss,
        "prefill_gpus_busy_with_cache": requests_per_s * gpu_s_per_request_hit,
        "prefill_gpu_seconds_saved_per_s": requests_per_s * (gpu_s_per_request_miss - gpu_s_per_request_hit),
        "note": (f"compute-bound prefill at {mfu:.0%} MFU of {tflops:g} dense TFLOPS per GPU, at the mean "
                 "prompt; decode time and queueing are not included"),
        "note_detail": {"code": "benefit_assumptions", "params": {"mfu": mfu, "peak_tflops_per_gpu": tflops},
                        "message": (f"compute-bound prefill at {mfu:.0%} MFU of {tflops:g} dense TFLOPS per GPU, "
                                    "at the mean prompt; decode time and queueing are not included")},
    }
