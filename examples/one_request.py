"""One request through the API: hit rate, memory for a target, what the hits buy.

    PYTHONPATH=py python examples/one_request.py
"""

from kvcalc.api import compute

result = compute({
    "model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "tensor_parallel": 1,
    "workload": {"conversation_rate_per_s": 2, "turns_mean": 5, "gap_mean_s": 60},
    "target_token_hit_rate": 0.5,
})
print(f"token hit rate      {result['token_hit_rate']:.1%} (ceiling {result['ideal_token_hit_rate']:.1%})")
print(f"KV cache            {result['kv_capacity_tokens']:,.0f} tokens = {result['kv_capacity_gib']:.2f} GiB per GPU")
inverse = result["inverse"]
if inverse.get("kv_gib_per_gpu") is not None:
    print(f"for {inverse['target_token_hit_rate']:.0%}             {inverse['kv_gib_per_gpu']:.2f} GiB of KV per GPU")
print(f"prefill speed-up    {result['benefit']['prefill_speedup']:.2f}x")
# the plain-text summary, line by line (the page renders the same codes in its language)
for line in result["summary_details"]:
    print("  " + line["message"])
