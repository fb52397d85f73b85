"""Sizing a deployment for a target token hit rate: replicas, TP, CPU tier, cost.

For the chosen model and GPU, for each tensor-parallel size whose weights fit,
the fewest instances (K) that reach the target token hit rate for the traffic
(fleet model, fleet.py), optionally with a CPU tier per instance; the GPUs in
total; whether the fleet can also serve the traffic (roofline, below); and the
cost per hour. Cheapest first; options that cannot work say why.

Serving check (a stated roofline estimate, not a measurement), per instance
with lambda/K of the traffic:

* prefill: FLOPs of the missed prompt tokens per second (benefit.prefill_flops
  at the mean prompt and the hit rate) over TP * peak * MFU -> busy fraction;
* decode: every step reads the weights shard and the running sequences' KV
  from HBM: t_step(B) = (weights/TP + B * context * kv_bytes_per_token) /
  (HBM * MBU) for a batch of B sequences, so an instance decodes at most
  B_max / t_step(B_max) tokens/s, B_max = min(KV capacity / context,
  MAX_BATCH) (its KV must hold the batch); the output tokens/s it must
  produce, lambda E[N] o / K, over that maximum is its decode busy fraction.

The fleet fits when prefill + decode busy fractions stay at or below 1.
Pure functions of validated objects: api.py only converts the request.
"""

from __future__ import annotations

import dataclasses
import math

from .benefit import DEFAULT_MFU, prefill_flops
from .errors import InputError
from .fleet import FleetConfig, TierConfig, fleet_hit_rates
from .memory import memory_report
from .presets import GpuSpec, ModelSpec
from .units import GIB_BYTES
from .workload import CacheConfig, Workload

__all__ = ["DEFAULT_MBU", "TP_SIZES", "size_fleet", "serving_load"]

#: Memory-bandwidth utilisation assumed for decode (weights + KV streaming).
DEFAULT_MBU = 0.6
TP_SIZES = (1, 2, 4, 8)
MAX_INSTANCES = 256
#: Largest decode batch assumed (vLLM's and SGLang's default caps on running requests are a few hundred).
MAX_BATCH = 256


def _mean_request(w: Workload) -> tuple[float, float, float]:
    """(E[N], mean prompt tokens, mean context at the end of a request) per request."""
    from .hitrate import structure
    st = structure(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=1))
    EN = float(st.EN)
    prompt = float(st.denom_tokens) / EN
    return EN, prompt, prompt + float(w.output_tokens_per_turn)


def serving_load(model: ModelSpec, gpu: GpuSpec, tensor_parallel: int, instances: int, w: Workload,
                 token_hit_rate: float, kv_bytes_per_token_per_gpu: float, weights_bytes_per_gpu: float,
                 capacity_tokens: float, mfu: float = DEFAULT_MFU, mbu: float = DEFAULT_MBU) -> dict:
    """Prefill and decode busy fractions of one instance (roofline; see the module docstring)."""
    EN, prompt, context = _mean_request(w)
    req_per_s = float(w.conversation_rate_per_s) * EN / instances
    flops = prefill_flops(model, prompt, token_hit_rate * prompt)
    prefill_busy = req_per_s * flops / (gpu.dense_bf16_tflops * 1e12 * mfu * tensor_parallel)
    batch = max(1.0, min(float(MAX_BATCH), capacity_tokens / context))
    t_step = (weights_bytes_per_gpu + batch * context * kv_bytes_per_token_per_gpu) / (gpu.hbm_bandwidth_gb_per_s * 1e9 * mbu)
    decode_max_tokens_per_s = batch / t_step
    decode_busy = req_per_s * float(w.output_tokens_per_turn) / decode_max_tokens_per_s
    return {"prefill_utilization": prefill_busy, "decode_utilization": decode_busy,
            "decode_batch": batch, "decode_max_tokens_per_s": decode_max_tokens_per_s}


def _first_k_reaching(target: float, hit_at, k_max: int) -> tuple[int | None, float]:
    """Smallest K in 1..k_max with hit_at(K) >= target (hit_at increasing in K)."""
    h1 = hit_at(1)
    if h1 >= target:
        return 1, h1
    lo, hi = 1, 2
    while hi <= k_max:
        h = hit_at(hi)
        if h >= target:
            break
        lo, hi = hi, hi * 2
    else:
        if lo == k_max:
            return None, hit_at(k_max)
        hi = k_max
        if hit_at(hi) < target:
            return None, hit_at(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if hit_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi, hit_at(hi)


def size_fleet(model: ModelSpec, gpu: GpuSpec, w: Workload, cache: CacheConfig, target_token_hit_rate: float, *,
               routing: str = "affinity", tier_gib_per_instance=(0.0,), tensor_parallel_sizes=TP_SIZES,
               gpu_memory_utilization: float = 0.9, kv_cache_dtype: str = "auto", mfu: float = DEFAULT_MFU,
               mbu: float = DEFAULT_MBU, price_per_gpu_hour: float | None = None, model_name: str = "refined",
               cpu_read_gb_per_s: float | None = None, max_instances: int = MAX_INSTANCES,
               memory_kwargs: dict | None = None) -> list[dict]:
    """Deployable options reaching the target, cheapest first (see the module docstring).

    ``cache`` gives the block size and eviction (its capacity is ignored: it
    follows from memory per TP). ``tier_gib_per_instance`` lists CPU tier sizes
    to try (0 = none). Rows: tensor_parallel, instances, gpus,
    tier_gib_per_instance, token_hit_rate, fits, reason, routing, costs and
    the serving check. ``memory_kwargs`` go to memory_report (runtime reserve,
    weight dtype, context), so capacities match the headline's.
    """
    memory_kwargs = dict(memory_kwargs or {})
    rows = []
    bw = float(gpu.host_link_bandwidth_gb_per_s if cpu_read_gb_per_s is None else cpu_read_gb_per_s)
    for tp in tensor_parallel_sizes:
        base = {"tensor_parallel": tp, "routing": routing}
        try:
            mem = memory_report(model, gpu, tensor_parallel=tp, gpu_memory_utilization=gpu_memory_utilization,
                                kv_cache_dtype=kv_cache_dtype, block_size_tokens=cache.block_size_tokens,
                                **memory_kwargs)
            cap = mem.get("kv_capacity_tokens")
            why = f"TP={tp}: the weights and the runtime reserve leave less than one KV block"
            why_params = {"tensor_parallel": tp, "weights_gib_per_gpu": mem["weights_gib_per_gpu"],
                          "usable_gib_per_gpu": mem["usable_gib_per_gpu"] - mem["runtime_reserve_gib"]}
        except InputError as e:
            if e.field != "model":
                raise
            cap, why = None, f"TP={tp}: {e.problem}"
            why_params = {"tensor_parallel": tp, **e.params}
        if not cap or cap < cache.block_size_tokens:
            for gib in tier_gib_per_instance:
                rows.append({**base, "instances": None, "gpus": None, "tier_gib_per_instance": float(gib),
                             "token_hit_rate": None, "fits": False, "code": "weights_do_not_fit",
                             "params": dict(why_params), "reason": why})
            continue
        bpt = float(mem["kv_bytes_per_token"])
        c = dataclasses.replace(cache, capacity_tokens=float(cap))
        for gib in tier_gib_per_instance:
            tiers = ()
            tier_tokens = 0.0
            if gib > 0:
                # a CPU copy of every shard of a token: TP x the per-GPU bytes
                tier_tokens = math.floor(gib * GIB_BYTES / (bpt * tp) / cache.block_size_tokens) * cache.block_size_tokens
                tiers = (TierConfig("cpu", capacity_tokens=tier_tokens, read_gb_per_s=bw),)

            def hit_at(k, tiers=tiers):
                return fleet_hit_rates(w, c, FleetConfig(k, routing, tiers), model_name)["token_hit_rate"]

            k, h = _first_k_reaching(target_token_hit_rate, hit_at, max_instances)
            row = {**base, "tier_gib_per_instance": float(gib), "gpu_capacity_tokens_per_instance": float(cap),
                   "tier_capacity_tokens_per_instance": float(tier_tokens)}
            if k is None:
                ideal = fleet_hit_rates(w, dataclasses.replace(c, capacity_tokens=1e13),
                                        FleetConfig(1, routing if routing != "affinity" else "affinity"))["ideal_token_hit_rate"]
                row.update(instances=None, gpus=None, token_hit_rate=h, fits=False, code="target_not_reached",
                           params={"tensor_parallel": tp, "max_instances": max_instances, "token_hit_rate": h,
                                   "ideal_token_hit_rate": ideal, "routing": routing},
                           reason=(f"TP={tp}: {max_instances} instances reach only {h:.1%} "
                                   f"(ideal {ideal:.1%}) with {routing} routing"))
                rows.append(row)
                continue
            wbytes = mem["weights_gib_per_gpu"] * GIB_BYTES
            load = serving_load(model, gpu, tp, k, w, h, bpt, wbytes, float(cap), mfu, mbu)
            busy = load["prefill_utilization"] + load["decode_utilization"]
            k_serve = k
            if busy > 1.0:
                # more instances until the roofline says the traffic is served
                while k_serve < max_instances:
                    k_serve += 1
                    l2 = serving_load(model, gpu, tp, k_serve, w, h, bpt, wbytes, float(cap), mfu, mbu)
                    if l2["prefill_utilization"] + l2["decode_utilization"] <= 1.0:
                        break
            fits = busy <= 1.0
            row.update(instances=k, gpus=k * tp, token_hit_rate=h, fits=fits, **load, sized_for="hit_rate",
                       code="fits" if fits else "traffic_exceeds_compute",
                       instances_to_serve_traffic=k_serve,
                       params={"tensor_parallel": tp, "instances": k, "token_hit_rate": h,
                               "busy_fraction": busy, "prefill_fraction": load["prefill_utilization"],
                               "decode_fraction": load["decode_utilization"], "mfu": mfu, "mbu_fraction": mbu,
                               "instances_to_serve_traffic": k_serve},
                       reason="" if fits else (
                           f"TP={tp}: {k} instances reach {h:.1%} but would be {busy:.0%} busy (prefill "
                           f"{load['prefill_utilization']:.0%}, decode {load['decode_utilization']:.0%} at "
                           f"MFU {mfu:g}, MBU {mbu:g}); about {k_serve} instances serve the traffic"))
            if price_per_gpu_hour is not None:
                row["cost_per_hour"] = k * tp * price_per_gpu_hour
            rows.append(row)
            if not fits and k_serve > k:
                # the same TP with enough instances to serve the traffic (more instances also raise the hit rate)
                h2 = hit_at(k_serve)
                l2 = serving_load(model, gpu, tp, k_serve, w, h2, bpt, wbytes, float(cap), mfu, mbu)
                ok = l2["prefill_utilization"] + l2["decode_utilization"] <= 1.0
                extra = {**row, **l2, "instances": k_serve, "gpus": k_serve * tp, "token_hit_rate": h2, "fits": ok,
                         "sized_for": "traffic",
                         "code": "fits" if ok else "traffic_not_served",
                         "params": {"tensor_parallel": tp, "max_instances": max_instances},
                         "reason": "" if ok else f"TP={tp}: {max_instances} instances do not serve the traffic"}
                if price_per_gpu_hour is not None:
                    extra["cost_per_hour"] = k_serve * tp * price_per_gpu_hour
                rows.append(extra)
    rows.sort(key=lambda r: (not r["fits"], r["gpus"] if r["gpus"] is not None else math.inf,
                             r["tier_gib_per_instance"], r["tensor_parallel"]))
    return rows
