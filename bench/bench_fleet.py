"""Speed of the fleet (issue 7): compute() with K instances and two tiers against the
single instance (target: within 2x), and the simulator's throughput with K = 8.

    PYTHONPATH=py python bench/bench_fleet.py [--rounds 7]

The machine may be shared, so single and fleet requests are timed in alternation, round
after round (each round: median of N calls of each), and the ratio is printed per round:
median, min and max over the rounds. "same" repeats one request (what a redraw costs);
"drag" changes the think time every call, so every capacity-free part (the scattered
model's age distributions, the inverse) is recomputed (what dragging a workload slider
costs). Times are CPU time of this process (time.process_time), less disturbed by other
jobs than wall time.
"""

from __future__ import annotations

import argparse
import os

# One BLAS thread, as in the page (Pyodide's numpy is single-threaded): on a busy machine
# OpenBLAS's threads on the scattered model's small matrix products make single calls
# 10-100x slower at random (measured: median 28 ms against 1.6 ms with one thread).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from kvcalc.api import compute  # noqa: E402
from kvcalc.fleet import FleetConfig  # noqa: E402
from kvcalc.simulate import simulate  # noqa: E402
from kvcalc.workload import CacheConfig, Workload  # noqa: E402

# issue 7's example: Qwen3-32B on H100 at TP=2, 3 new chats/s, 6 turns, 45 s think time, 800-token prompt
QWEN = {"model": "Qwen/Qwen3-32B", "gpu": "h100-sxm-80gb", "tensor_parallel": 2,
        "workload": {"conversation_rate_per_s": 3, "turns_mean": 6, "gap_mean_s": 45, "system_prompt_tokens": 800},
        "figures": ["curve"]}
TWO_TIERS = [{"name": "cpu", "capacity_gib": 128}, {"name": "ssd", "capacity_gib": 512}]
FLEETS = [("K=4 affinity + 2 tiers", {"cluster": {"instances": 4, "routing": "affinity"}, "tiers": TWO_TIERS}),
          ("K=4 random + 2 tiers", {"cluster": {"instances": 4, "routing": "random"}, "tiers": TWO_TIERS}),
          ("K=8 round_robin + 2 tiers", {"cluster": {"instances": 8, "routing": "round_robin"}, "tiers": TWO_TIERS}),
          ("K=4 pooled + 2 tiers", {"cluster": {"instances": 4, "routing": "pooled"}, "tiers": TWO_TIERS})]


def median_ms(make_request, n: int) -> float:
    times = []
    for _ in range(n):
        req = make_request()
        t = time.process_time()
        compute(req)
        times.append((time.process_time() - t) * 1e3)
    return statistics.median(times)


def requests(extra: dict, drag: bool):
    gaps = iter(np.linspace(30.0, 90.0, 100_000))

    def make():
        req = {**QWEN, **extra}
        if drag:
            req["workload"] = {**QWEN["workload"], "gap_mean_s": float(next(gaps))}
        return req
    return make


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=9)
    args = ap.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; CPU time per call (time.process_time)")
    for mode in ("same", "drag"):
        single = requests({}, mode == "drag")
        fleets = [(label, requests(extra, mode == "drag")) for label, extra in FLEETS]
        compute(single())
        for _, make in fleets:
            compute(make())
        ratios = {label: [] for label, _ in FLEETS}
        singles, fleet_ms = [], {label: [] for label, _ in FLEETS}
        for _ in range(args.rounds):
            s = median_ms(single, args.calls)
            singles.append(s)
            for label, make in fleets:
                f = median_ms(make, args.calls)
                fleet_ms[label].append(f)
                ratios[label].append(f / s)
        print(f"[{mode}] compute() one instance: {statistics.median(singles):6.2f} ms "
              f"(rounds {min(singles):.2f}-{max(singles):.2f})")
        for label, r in ratios.items():
            print(f"[{mode}] {label:<26}: {statistics.median(fleet_ms[label]):6.2f} ms, ratio to one instance "
                  f"{statistics.median(r):.2f}x (rounds {min(r):.2f}-{max(r):.2f}; target <= 2x)")
    # simulator throughput with K = 8 (8x the traffic, so each instance sees the single one's load)
    w = Workload(conversation_rate_per_s=8.0, turns_mean=5, gap_mean_s=60, user_tokens_per_turn=200,
                 output_tokens_per_turn=300, system_prompt_tokens=1000, service_time_s=2.0)
    cache = CacheConfig(capacity_tokens=300_000)
    for routing in ("affinity", "random", "round_robin", "pooled"):
        rates = []
        for _ in range(3):
            t = time.process_time()
            out = simulate(w, cache, seed=1, n_conversations=40_000, fleet=FleetConfig(8, routing))
            rates.append(out["requests_simulated"] / (time.process_time() - t))
        print(f"simulator K=8 {routing:<11}: {statistics.median(rates):9,.0f} requests/s "
              f"(3 runs {min(rates):,.0f}-{max(rates):,.0f}; {out['requests_simulated']:,} requests)")


if __name__ == "__main__":
    main()
