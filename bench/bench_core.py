"""Core speed figures (CPython): one refined evaluation, a 1,000-point Che sweep,
one compute() as the page sends it while dragging, and simulator throughput.

    python bench/bench_core.py

Targets (issue "The calculator's core"): refined <= 1 ms, 1,000-point Che
sweep <= 20 ms. Medians over repeats; the machine is shared, so the ratio to
the target is printed too.
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from kvcalc.api import compute  # noqa: E402
from kvcalc.hitrate import hit_rates  # noqa: E402
from kvcalc.simulate import simulate  # noqa: E402
from kvcalc.workload import CacheConfig, Workload  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    w = Workload()
    c = CacheConfig(capacity_tokens=2e5)
    for dist in ("exponential", "deterministic", "lognormal"):
        wd = Workload(gap_distribution=dist)
        ms = median_ms(lambda: hit_rates(wd, c, "refined"), 200)
        print(f"refined evaluation ({dist:<13}): {ms:7.3f} ms  (target 1 ms: {ms / 1.0:.2f}x)")
    sweep = CacheConfig(capacity_tokens=np.logspace(4, 7, 1000))
    ms = median_ms(lambda: hit_rates(w, sweep, "che"), 30)
    print(f"1,000-point Che sweep              : {ms:7.3f} ms  (target 20 ms: {ms / 20.0:.2f}x)")
    req = {"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": {}, "figures": ["curve"]}
    ms = median_ms(lambda: compute(req), 50)
    print(f"compute() with the curve (drag)    : {ms:7.3f} ms")
    gaps = iter(np.linspace(30, 90, 10_000))
    ms = median_ms(lambda: compute(dict(req, workload={"gap_mean_s": float(next(gaps))})), 50)
    print(f"compute() dragging a workload input: {ms:7.3f} ms  (the inverse is recomputed)")
    req_all = dict(req, figures=["curve", "sweeps", "tornado", "heatmap"])
    ms = median_ms(lambda: compute(req_all), 20)
    print(f"compute() with every figure        : {ms:7.3f} ms")
    # Fleet (issue 7): compute() with K instances and two tiers against the single instance
    # (target: within 2x). "same" repeats one request; "drag" changes the think time each call
    # (the scattered model's age distributions are then recomputed).
    qwen = {"model": "Qwen/Qwen3-32B", "gpu": "h100-sxm-80gb", "tensor_parallel": 2,
            "workload": {"conversation_rate_per_s": 3, "turns_mean": 6, "gap_mean_s": 45, "system_prompt_tokens": 800}}
    two_tiers = [{"name": "cpu", "capacity_gib": 128}, {"name": "ssd", "capacity_gib": 512}]
    single_ms = median_ms(lambda: compute(qwen), 20)
    gaps1 = iter(np.linspace(30, 90, 10_000))
    single_drag = median_ms(lambda: compute({**qwen, "workload": {**qwen["workload"], "gap_mean_s": float(next(gaps1))}}), 20)
    print(f"compute() one instance (Qwen3-32B) : {single_ms:7.3f} ms; dragging {single_drag:7.3f} ms")
    for label, extra in (("K=4 affinity + 2 tiers", {"cluster": {"instances": 4, "routing": "affinity"}, "tiers": two_tiers}),
                         ("K=4 random + 2 tiers", {"cluster": {"instances": 4, "routing": "random"}, "tiers": two_tiers}),
                         ("K=8 round_robin", {"cluster": {"instances": 8, "routing": "round_robin"}})):
        same = median_ms(lambda: compute({**qwen, **extra}), 20)
        gaps2 = iter(np.linspace(30, 90, 10_000))
        drag = median_ms(lambda: compute({**qwen, **extra, "workload": {**qwen["workload"], "gap_mean_s": float(next(gaps2))}}), 20)
        print(f"compute() {label:<24}: {same:7.3f} ms ({same / single_ms:.2f}x one instance); "
              f"dragging {drag:7.3f} ms ({drag / single_drag:.2f}x)")
    ms = median_ms(lambda: compute({**qwen, "price_per_gpu_hour": 2.5, "sizing": {}}), 3)
    print(f"compute() with sizing + levers     : {ms:7.3f} ms  (asked for once, not per drag)")
    for n in (5_000, 50_000):
        t = time.perf_counter()
        r = simulate(w, c, seed=1, n_conversations=n)
        dt = time.perf_counter() - t
        print(f"simulator, {n:>6} conversations    : {r['requests_simulated'] / dt:10,.0f} requests/s "
              f"({r['requests_simulated']:,} requests in {dt:.2f} s)")


if __name__ == "__main__":
    main()
