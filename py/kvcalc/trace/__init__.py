"""Trace mode: exact prefix-cache hit-rate curves from real request traces.

* :mod:`.loaders` -- Mooncake / Bailian / generic JSONL into a compact :class:`Trace`;
* :mod:`.curve` -- the exact LRU hit rate at every capacity in one pass, replay references;
* :mod:`.stats` -- trace statistics and a fit of the analytic model's workload;
* :mod:`.api` -- ``trace_analyze(request) -> dict`` for the page; :mod:`.cli` -- ``main(argv)``.
"""

from .loaders import Trace, load_trace, loads_trace
from .curve import HitCurve, lru_curve, lru_replay, fifo_replay, capacity_for_hit_rate, ideal_hit_rates

__all__ = ["Trace", "load_trace", "loads_trace", "HitCurve", "lru_curve", "lru_replay",
           "fifo_replay", "capacity_for_hit_rate", "ideal_hit_rates"]
