"""Trace mode benchmark: the one-pass exact LRU curve vs straightforward replays.

    PYTHONPATH=py python bench/bench_trace.py [TRACE.jsonl]

Prints the time of the full curve of the Mooncake conversation trace (target < 1 s in
CPython), the time of 20 OrderedDict LRU replays at 20 capacities, and their ratio (target
>= 10x), after checking that the curve and the replays agree exactly.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.trace import load_trace, lru_curve, lru_replay  # noqa: E402


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
    t_load, trace = best_of(lambda: load_trace(path), 1)
    print(f"trace: {path.name}: {trace.n_requests} requests, {trace.n_blocks_total} blocks "
          f"({trace.n_blocks_unique} distinct); load {t_load:.3f} s")
    t_curve, curve = best_of(lambda: lru_curve(trace), 5)
    t_dict, _ = best_of(lambda: lru_curve(trace).to_dict(), 3)
    caps = np.unique(np.geomspace(10, 1.2 * curve.saturation_capacity_blocks, 20).astype(int))
    t0 = time.perf_counter()
    replays = [lru_replay(trace, int(c)) for c in caps]
    t_replay = time.perf_counter() - t0
    b, t = curve.hits_at(caps)
    exact = all((int(x), int(y)) == (r["block_hits"], r["token_hits"]) for x, y, r in zip(b, t, replays))
    ratio = t_replay / t_curve
    print(f"one-pass curve (all capacities): {t_curve:.3f} s   [target < 1 s]   "
          f"(with the JSON grid: {t_dict:.3f} s)")
    print(f"{len(caps)} LRU replays at {len(caps)} capacities: {t_replay:.3f} s")
    print(f"ratio: {ratio:.1f}x   [target >= 10x]; curve == replays exactly: {exact}")
    ok = exact and t_curve < 1.0 and ratio >= 10
    print("OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
