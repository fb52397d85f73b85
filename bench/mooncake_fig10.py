#!/usr/bin/env python3
"""The Mooncake paper's cluster comparison (FAST 2025, Fig. 10) replayed from the public traces.

    python bench/mooncake_fig10.py [--instances 10] [--tokens-per-instance 3e6]

Ten instances with a 3 M-token local cache each against one global pool of the summed capacity
(Mooncake Store), on the released conversation and synthetic traces (data/traces/mooncake/,
512-token blocks). Local caches are replayed under each routing policy of the calculator
(affinity: by session, else by the first block; random; round robin); the pool is one exact LRU
cache of K x C. Every cache starts empty and every request counts (no warm-up). Prints the token
and block hit rates, the busiest instance's share of requests and the relative gain of the pool.
The comparison with the paper and the reasons for differences: docs/trace-mooncake-fig10.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
from kvcalc.trace.api import trace_analyze  # noqa: E402

ROUTINGS = ("pooled", "affinity", "random", "round_robin")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--tokens-per-instance", type=float, default=3e6)
    args = ap.parse_args(argv)
    k = args.instances
    for sample in ("conversation", "synthetic"):
        base = trace_analyze({"sample": sample, "sampling": "exact"})
        bs = base["detection"]["block_size_tokens"]
        c = int(args.tokens_per_instance // bs)
        print(f"{sample}: {base['detection']['n_requests']} requests, ideal token hit rate "
              f"{base['ideal_token_hit_rate']:.4f}; {k} instances x {c} blocks ({c * bs / 1e6:.2f} M tokens)")
        rows = {}
        for routing in ROUTINGS:
            r = trace_analyze({"sample": sample, "sampling": "exact", "capacities_blocks": [c],
                               "cluster": {"instances": k, "routing": routing, "seed": 0}})
            f = r["fleet"]
            i = f["capacities_blocks_per_instance"].index(c)
            rows[routing] = f["token_hit_rate"][i]
            print(f"  {routing:12s} token {f['token_hit_rate'][i]:.4f}  block {f['block_hit_rate'][i]:.4f}  "
                  f"busiest instance {f['busiest_instance_request_share']:.3f} of requests  ({f['routing_key']})")
        for routing in ROUTINGS[1:]:
            if rows[routing] > 0:
                # prefill tokens computed = prompt tokens not hit: (1 - pool) / (1 - local) of the local case
                print(f"  pool vs {routing}: hit rate {rows['pooled'] / rows[routing]:.2f}x "
                      f"(+{100 * (rows['pooled'] / rows[routing] - 1):.0f} %); prefill tokens computed "
                      f"{(1 - rows['pooled']) / (1 - rows[routing]):.2f}x")
        # Fig. 9's point: one node's cache (3 M tokens) seeing all the traffic, and the capacity the
        # paper says approaches the maximum (~50 M tokens), as fractions of the infinite-cache rate
        one = trace_analyze({"sample": sample, "sampling": "exact",
                             "capacities_blocks": [c, int(50e6 // bs)]})["capacities"]
        ideal = base["ideal_token_hit_rate"]
        print(f"  one cache of {c * bs / 1e6:.2f} M tokens, all requests: token {one[0]['token_hit_rate']:.4f} "
              f"({one[0]['token_hit_rate'] / ideal:.0%} of the ideal); of {int(50e6 // bs) * bs / 1e6:.0f} M tokens: "
              f"{one[1]['token_hit_rate']:.4f} ({one[1]['token_hit_rate'] / ideal:.0%}); every reuse hits from "
              f"{base['curve']['saturation_capacity_tokens'] / 1e6:.1f} M tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
