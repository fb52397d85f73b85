"""Ranked levers for the current setup, each with its quantified effect.

Each lever is re-evaluated through the same models as the headline (memory ->
capacity per instance -> fleet hit rate), so its effect is the model's answer,
not a rule of thumb. Levers: raise gpu_memory_utilization, an fp8 KV cache,
more tensor parallelism, affinity routing, more replicas with affinity, a CPU
tier, a smaller block; and, when the hit rate is within a point of the ideal,
"more memory stops helping". Messages are {"code", "params", "message"} (the
page renders codes from its catalogue; the English message is kept), plus the
vLLM and SGLang settings that apply the lever (engine_flags.py, with sources).
"""

from __future__ import annotations

import dataclasses

from .engine_flags import setting
from .errors import InputError
from .fleet import FleetConfig, TierConfig, fleet_hit_rates
from .memory import kv_cache_bits, memory_report
from .presets import GpuSpec, ModelSpec
from .units import GIB_BYTES
from .workload import CacheConfig, Workload

__all__ = ["Setup", "recommend", "DEFAULT_CPU_TIER_GIB", "LEVER_CODES"]

#: the codes of the levers (the page renders msg.<code> with the lever's params)
LEVER_CODES = ("weights_leave_no_kv", "raise_gpu_memory_utilization", "fp8_kv_cache", "more_tensor_parallel",
               "affinity_routing", "more_replicas_affinity", "cpu_tier", "smaller_block", "ideal_ceiling_reached")

#: CPU tier size tried per instance (host DRAM commonly has hundreds of GiB per node).
DEFAULT_CPU_TIER_GIB = 256.0


@dataclasses.dataclass(frozen=True)
class Setup:
    """The deployment the levers start from."""

    model: ModelSpec
    gpu: GpuSpec
    tensor_parallel: int
    gpu_memory_utilization: float
    kv_cache_dtype: str
    workload: Workload
    cache: CacheConfig
    fleet: FleetConfig
    memory_kwargs: tuple = ()   # (key, value) pairs for memory_report: runtime reserve, weight dtype, context


def _hit(s: Setup, hit_model: str) -> tuple[float | None, dict | None]:
    try:
        mem = memory_report(s.model, s.gpu, tensor_parallel=s.tensor_parallel,
                            gpu_memory_utilization=s.gpu_memory_utilization, kv_cache_dtype=s.kv_cache_dtype,
                            block_size_tokens=s.cache.block_size_tokens, **dict(s.memory_kwargs))
    except InputError as e:
        if e.field != "model":
            raise
        return None, None
    cap = mem.get("kv_capacity_tokens")
    if not cap:
        return None, mem
    c = dataclasses.replace(s.cache, capacity_tokens=float(cap))
    return fleet_hit_rates(s.workload, c, s.fleet, hit_model)["token_hit_rate"], mem


def recommend(s: Setup, hit_model: str = "refined", cpu_tier_gib: float = DEFAULT_CPU_TIER_GIB) -> list[dict]:
    """Levers ranked by their gain in token hit rate (percentage points)."""
    base, mem = _hit(s, hit_model)
    if base is None:
        return [{"code": "weights_leave_no_kv", "params": {"tensor_parallel": s.tensor_parallel},
                 "message": "the weights leave no KV cache: raise tensor parallelism or use a larger GPU",
                 "token_hit_rate": None, "delta_pp": None,
                 "settings": [setting("vllm", "--tensor-parallel-size", s.tensor_parallel * 2),
                              setting("sglang", "--tp-size", s.tensor_parallel * 2)]}]
    K = s.fleet.instances
    out = []

    def lever(code, params, message, new: Setup, settings, gpus_after=None):
        h, _ = _hit(new, hit_model)
        if h is None:
            return
        delta = 100.0 * (h - base)
        out.append({"code": code, "params": params, "token_hit_rate": h, "delta_pp": delta,
                    "gpus_before": K * s.tensor_parallel,
                    "gpus_after": gpus_after if gpus_after is not None else K * s.tensor_parallel,
                    "message": f"{message}: token hit rate {base:.1%} -> {h:.1%} ({delta:+.1f} pp)",
                    "settings": settings})

    if s.gpu_memory_utilization < 0.95:
        u = 0.95
        lever("raise_gpu_memory_utilization", {"from": s.gpu_memory_utilization, "to": u},
              f"raise gpu_memory_utilization from {s.gpu_memory_utilization:g} to {u:g}",
              dataclasses.replace(s, gpu_memory_utilization=u),
              [setting("vllm", "--gpu-memory-utilization", u), setting("sglang", "--mem-fraction-static", u)])
    if kv_cache_bits(s.model, s.kv_cache_dtype) > 8:
        lever("fp8_kv_cache", {"kv_cache_dtype": "fp8"}, "store the KV cache in fp8 (half the bytes per token)",
              dataclasses.replace(s, kv_cache_dtype="fp8"),
              [setting("vllm", "--kv-cache-dtype", "fp8"), setting("sglang", "--kv-cache-dtype", "fp8_e4m3")])
    if s.tensor_parallel < 8:
        tp = s.tensor_parallel * 2
        lever("more_tensor_parallel", {"from": s.tensor_parallel, "to": tp},
              f"tensor parallelism {s.tensor_parallel} -> {tp} (weights split further, more KV per instance)",
              dataclasses.replace(s, tensor_parallel=tp),
              [setting("vllm", "--tensor-parallel-size", tp), setting("sglang", "--tp-size", tp)],
              gpus_after=K * tp)
    if K > 1 and s.fleet.routing in ("random", "round_robin"):
        lever("affinity_routing", {"from": s.fleet.routing},
              f"route each conversation to one instance (session affinity) instead of {s.fleet.routing}",
              dataclasses.replace(s, fleet=dataclasses.replace(s.fleet, routing="affinity")),
              [setting("vllm-router", "--routing-logic", "session"), setting("sglang-router", "--policy", "cache_aware")])
    k2 = K * 2
    lever("more_replicas_affinity", {"from": K, "to": k2},
          f"{K} -> {k2} instances with affinity routing (each sees half the conversations)",
          dataclasses.replace(s, fleet=dataclasses.replace(s.fleet, instances=k2, routing="affinity")),
          [setting("vllm-router", "--routing-logic", "session"), setting("sglang", "--dp-size", k2),
           setting("sglang-router", "--policy", "cache_aware")],
          gpus_after=k2 * s.tensor_parallel)
    if not s.fleet.tiers:
        bpt = float(mem["kv_bytes_per_token"]) * s.tensor_parallel
        tokens = float(int(cpu_tier_gib * GIB_BYTES / bpt) // s.cache.block_size_tokens * s.cache.block_size_tokens)
        ratio = tokens / float(mem["kv_capacity_tokens"])
        lever("cpu_tier", {"cpu_tier_gib": cpu_tier_gib, "capacity_tokens": tokens},
              f"a CPU DRAM tier of {cpu_tier_gib:g} GiB per instance ({tokens:,.0f} tokens)",
              dataclasses.replace(s, fleet=dataclasses.replace(
                  s.fleet, tiers=(TierConfig("cpu", tokens, float(s.gpu.host_link_bandwidth_gb_per_s)),))),
              [setting("vllm", "--kv-offloading-backend", "lmcache"), setting("vllm", "--kv-offloading-size", cpu_tier_gib),
               setting("vllm", "--kv-transfer-config", '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}'),
               setting("sglang", "--enable-hierarchical-cache"), setting("sglang", "--hicache-ratio", round(ratio, 2))])
    if s.cache.block_size_tokens > 8:
        b = 8
        lever("smaller_block", {"from": s.cache.block_size_tokens, "to": b},
              f"block size {s.cache.block_size_tokens} -> {b} tokens (finer reuse of partial blocks)",
              dataclasses.replace(s, cache=dataclasses.replace(s.cache, block_size_tokens=b)),
              [setting("vllm", "--block-size", b), setting("sglang", "--page-size", b)])
    out.sort(key=lambda r: -r["delta_pp"])
    ideal = fleet_hit_rates(s.workload, dataclasses.replace(s.cache, capacity_tokens=1e13),
                            FleetConfig(1))["ideal_token_hit_rate"]
    if base >= ideal - 0.01:
        out.insert(0, {"code": "ideal_ceiling_reached", "params": {"ideal_token_hit_rate": ideal},
                       "token_hit_rate": base, "delta_pp": 0.0, "settings": [],
                       "message": (f"more memory stops helping: {base:.1%} is within a point of the ideal "
                                   f"{ideal:.1%} (only turns never seen before miss)")})
    return out
