"""Throughput of the simulator (requests per second), chains engine and block reference,
and the fleet cases: K = 8 instances under each routing, and exclusive tiers.

    PYTHONPATH=py python bench/bench_simulate.py

Rates are CPU time (time.process_time: the machine is shared), best of 3.
"""

import time

from kvcalc.fleet import FleetConfig, TierConfig
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


def best_rate(fn, repeats=3):
    best = 0.0
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        dt = time.process_time() - t0
        best = max(best, out["requests_simulated"] / dt)
    return best, out


def main():
    for label, w, cap in CASES:
        for ev in ("lru", "ttl", "fifo"):
            cache = CacheConfig(capacity_tokens=cap, block_size_tokens=16, eviction=ev, ttl_s=45.0)
            rate, out = best_rate(lambda: simulate(w, cache, seed=1, n_conversations=20000))
            print(f"{label:20s} {ev:5s} {out['requests_simulated']:7d} requests {rate:9.0f} req/s "
                  f"hit {out['token_hit_rate']:.4f}")
    w, cap = CASES[1][1], CASES[1][2]
    single, _ = best_rate(lambda: simulate(w, CacheConfig(capacity_tokens=cap), seed=1, n_conversations=20000))
    fleets = [("K=8 affinity", FleetConfig(8, "affinity")), ("K=8 random", FleetConfig(8, "random")),
              ("K=8 round_robin", FleetConfig(8, "round_robin")), ("K=8 pooled", FleetConfig(8, "pooled")),
              ("2 exclusive tiers", FleetConfig(tiers=(TierConfig("cpu", 2 * cap), TierConfig("ssd", 4 * cap)))),
              ("K=8 random + tier", FleetConfig(8, "random", (TierConfig("cpu", cap),)))]
    for label, fl in fleets:
        wk = Workload(**{**w.to_dict(), "conversation_rate_per_s": 8.0}) if fl.instances == 8 else w
        rate, out = best_rate(lambda: simulate(wk, CacheConfig(capacity_tokens=cap), seed=1,
                                               n_conversations=20000 * (8 if fl.instances == 8 else 1), fleet=fl),
                              repeats=1 if fl.instances == 8 else 3)
        print(f"{label:20s} lru   {out['requests_simulated']:7d} requests {rate:9.0f} req/s "
              f"({rate / single:.2f}x one instance) hit {out['token_hit_rate']:.4f}")
    w, cap = CASES[1][1], 20_000
    t0 = time.perf_counter()
    out = simulate_blocks_reference(w, CacheConfig(capacity_tokens=cap), seed=1, n_conversations=2000)
    dt = time.perf_counter() - t0
    print(f"reference (blocks)   lru   {out['requests_simulated']:7d} requests {dt:6.3f} s "
          f"{out['requests_simulated'] / dt:9.0f} req/s")


if __name__ == "__main__":
    main()
