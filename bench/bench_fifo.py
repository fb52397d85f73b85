"""FIFO figure cost (issue 12, D2): CPU seconds of compute() with "curve" plus one other figure.

Prints the slowest requests over long conversations (200 and 40 turns), both turn
distributions, every gap distribution and capacities 1e5..1e13 tokens. Target: every
line <= 2 s CPython (the page under Pyodide is 2-3x slower). time.process_time, so a
busy machine inflates it less than wall time; still noisy: run twice.

    PYTHONPATH=py python3 bench/bench_fifo.py
"""

import itertools
import time

import kvcalc.inverse_answer as inverse_answer
from kvcalc.api import compute


def main() -> None:
    rows = []
    for turns, dist, gap, cap, fig in itertools.product(
            [200, 40], ["geometric", "fixed"], ["exponential", "lognormal", "deterministic"],
            [1e5, 1e8, 1e13], ["sweeps", "tornado", "heatmap"]):
        req = {"workload": {"turns_mean": turns, "turns_distribution": dist, "gap_distribution": gap},
               "cache": {"capacity_tokens": cap, "eviction": "fifo"}, "figures": ["curve", fig]}
        inverse_answer._inverse_cached.cache_clear()
        t = time.process_time()
        compute(req)
        rows.append((time.process_time() - t, turns, dist, gap, cap, fig))
    rows.sort(reverse=True)
    for r in rows[:8]:
        print("%.2f s  turns %d %s, %s gaps, capacity %g, curve + %s" % r)
    print("worst %.2f s over %d requests" % (rows[0][0], len(rows)))


if __name__ == "__main__":
    main()
