"""Trace mode: exact prefix-cache hit-rate curves from real request traces.

* :mod:`.loaders` -- Mooncake / Bailian / generic JSONL into a compact :class:`Trace`;
* :mod:`.curve` -- the exact LRU hit rate at every capacity in one pass, replay references;
* :mod:`.stats` -- trace statistics and a fit of the analytic model's workload;
* :mod:`.api` -- ``trace_analyze(request) -> dict`` for the page; :mod:`.cli` -- ``main(argv)``.
"""

from .loaders import Trace, load_trace, loads_trace
from .curve import (HitCurve, capacity_for_hit_rate, fifo_replay, hit_rate_curve, ideal_hit_rates,
                    lru_curve, lru_replay)
from .stats import fit_workload, fit_workload_report, infer_sessions, trace_stats

__all__ = ["Trace", "load_trace", "loads_trace", "HitCurve", "lru_curve", "hit_rate_curve", "lru_replay",
           "fifo_replay", "capacity_for_hit_rate", "ideal_hit_rates", "trace_stats", "fit_workload",
           "fit_workload_report", "infer_sessions"]
