"""Throughput of the simulator (requests per second), chains engine and block reference.

    PYTHONPATH=py python bench/bench_simulate.py
"""

import time

from kvcalc.simulate import simulate, simulate_blocks_reference
from kvcalc.workload import CacheConfig, Workload

CASES = [
    # (label, workload, capacity tokens)
    ("L=5 b=16 light", Workload(conversation_rate_per_s=1.0, turns_mean=5, gap_mean_s=60,
                                user_tokens_per_turn=200, output_tokens_per_turn=300,
                                system_prompt_tokens=1000, service_time_s=2.0), 2_000_000),
    ("L=5 b=16 pressure", Workload(conversation_rate_per_s=1.0, turns_mean=5, gap_mean_s=60,
                                   user_tokens_per_turn=200, output_tokens_per_turn=300,
                                   system_prompt_tokens=1000, service_time_s=2.0), 300_000),
    ("L=20 b=16 pressure", Workload(conversation_rate_per_s=0.5, turns_mean=20, gap_mean_s=30,
                                    user_tokens_per_turn=100, output_tokens_per_turn=200,
                                    system_prompt_tokens=500, service_time_s=3.0), 500_000),
]


def main():
    for label, w, cap in CASES:
        for ev in ("lru", "ttl", "fifo"):
            cache = CacheConfig(capacity_tokens=cap, block_size_tokens=16, eviction=ev, ttl_s=45.0)
            t0 = time.perf_counter()
            out = simulate(w, cache, seed=1, n_conversations=20000)
            dt = time.perf_counter() - t0
            n = out["requests_simulated"]
            print(f"{label:20s} {ev:5s} {n:7d} requests {dt:6.3f} s {n / dt:9.0f} req/s "
                  f"hit {out['token_hit_rate']:.4f}")
    w, cap = CASES[1][1], 20_000
    t0 = time.perf_counter()
    out = simulate_blocks_reference(w, CacheConfig(capacity_tokens=cap), seed=1, n_conversations=2000)
    dt = time.perf_counter() - t0
    print(f"reference (blocks)   lru   {out['requests_simulated']:7d} requests {dt:6.3f} s "
          f"{out['requests_simulated'] / dt:9.0f} req/s")


if __name__ == "__main__":
    main()
