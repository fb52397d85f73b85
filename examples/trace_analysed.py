"""A request trace analysed: the exact LRU hit-rate curve, the fitted workload, and the
fitted workload handed back to the calculator.

    PYTHONPATH=py python examples/trace_analysed.py
"""

from kvcalc.api import compute, trace

res = trace({"sample": "conversation", "capacities_blocks": [100, 1000, 10000]})
stats = res["stats"]
print(f"{stats['n_requests']:,} requests, block size {res['curve']['block_size_tokens']} tokens")
for row in res["capacities"]:
    print(f"  {row['capacity_blocks']:>7,} blocks: token hit rate {row['token_hit_rate']:.1%}")
fit = res["fit"]["workload"]
print("fitted workload:", {k: round(v, 3) if isinstance(v, float) else v for k, v in fit.items()})
# the fit as calculator input, at the trace's largest capacity
bs = res["curve"]["block_size_tokens"]
model = compute({"workload": fit, "cache": {"capacity_tokens": 10000 * bs, "block_size_tokens": bs}, "hit_model": "che"})
print(f"model at 10,000 blocks: {model['token_hit_rate']:.1%}")
