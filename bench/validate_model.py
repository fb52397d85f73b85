"""Print the model-vs-simulator error table over the validation grid.

    python bench/validate_model.py [--requests 1000000] [--seed 7] [--json data/validation/model_vs_sim.json]

Columns: capacity as T/tau (pressure), conversations that fit, simulated token
hit rate (with its 95 % CI half-width), and each model's value and error in
percentage points (refined, Che, and the seed design's formula). --json also writes the
rows and the summary (the data the How it works page is generated from: scripts/gen_how.py).
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from kvcalc.validation import compare, grid, summarise, table  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", help="also write rows and summary to this file")
    ns = p.parse_args()
    t0 = time.perf_counter()
    rows = [compare(pt, ns.requests, ns.seed + i) for i, pt in enumerate(grid())]
    print(table(rows))
    print()
    for model, s in summarise(rows).items():
        print(f"{model:>8}: mean |error| {s['mae_pp']:.2f} pp, max {s['max_pp']:.2f} pp, "
              f"max where >= 5 conversations fit {s['max_pp_where_fit']:.2f} pp")
    print(f"{len(rows)} points in {time.perf_counter() - t0:.1f} s")
    if ns.json:
        doc = {"about": "python bench/validate_model.py --requests N --seed S --json PATH (kvcalc.validation)",
               "requests": ns.requests, "seed": ns.seed, "rows": rows, "summary": summarise(rows)}
        Path(ns.json).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.json).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
