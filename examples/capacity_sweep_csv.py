"""A capacity sweep to CSV: token hit rate against KV cache size (the page's curve as a file).

    PYTHONPATH=py python examples/capacity_sweep_csv.py [out.csv]
"""

import sys

from kvcalc.api import compute

out = sys.argv[1] if len(sys.argv) > 1 else "capacity_sweep.csv"
result = compute({"model": "Qwen/Qwen3-32B", "gpu": "h200-141gb", "tensor_parallel": 2,
                  "workload": {"conversation_rate_per_s": 3, "gap_mean_s": 30},
                  "figures": ["curve"], "export": True})
text = result["export"]["csv"]["curve"]        # built by kvcalc.export (same text as the page's CSV)
with open(out, "w", encoding="utf-8") as f:
    f.write(text)
print(f"wrote {len(text.splitlines()) - 1} rows to {out}")
