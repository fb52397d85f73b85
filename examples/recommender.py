"""The recommender scenario: one user's history encoded once and broadcast to N candidates.

    PYTHONPATH=py python examples/recommender.py
"""

from kvcalc.api import compute

for n in (10, 100, 1000):
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "scenario": "recommender",
                 "recommender": {"candidates": n, "user_tokens": 2000, "item_tokens": 64}})
    rec = r["recommender"]
    print(f"N = {n:>4}: KV {rec['kv_gib_per_gpu_without_sharing']:8.2f} GiB without sharing, "
          f"{rec['kv_gib_per_gpu_with_sharing']:6.2f} GiB with; prefill {rec['prefill_s_without_sharing']:7.3f} s "
          f"vs {rec['prefill_s_with_sharing']:6.3f} s")
print(f"the same user over time (scenario workload): token hit rate {r['token_hit_rate']:.1%}")
