"""Analytic prefix-cache hit-rate models for multi-turn conversations, one module per family.

The mathematics is in ``shared/notes/MODEL.md``; symbols in comments follow it:
lambda (conversation rate), N (turns, mean L), G (gap, mean tau), u, o, a = u+o,
P (system prompt tokens), b (block size), S (service time), C_b (capacity in
blocks), B_k (own full blocks after turn k), T (characteristic time).

Modules:

* :mod:`.gaps` the gap distribution (CDF, E[min(G, g)], quantile, sums of gaps);
* :mod:`.structure` the per-turn sums of a workload (``Structure``);
* :mod:`.occupancy` the occupancy O(g), its variance, h_s and T (O(T) = C_b);
* the models (``hit_model``), each ``<model>_hit_rates``: :mod:`.refined`
  (default; Normal fluctuations of the evicting volume, partial-chain hits),
  :mod:`.che` (Che/TTL approximation, used for sweeps), :mod:`.closed` (Lambert W
  closed form), :mod:`.seed` (the legacy formula), and :mod:`.fifo` (FIFO
  eviction, replacing refined/Che under it);
* :mod:`.models` the registry and :func:`hit_rates`; :mod:`.inverse` the capacity for a target.

Every numeric workload or capacity input may be a numpy array: inputs broadcast
and every output has the broadcast shape.
"""

from __future__ import annotations

from .closed import closed_hit_rates
from .gaps import gap_cdf, gap_mean_min, gap_quantile, gap_sum_cdf
from .inverse import capacity_for_token_hit_rate
from .models import HIT_MODELS, MODELS, hit_rates
from .occupancy import (characteristic_time_s, occupancy_blocks, occupancy_variance_blocks2,
                        overload_ends_at_capacity_tokens)
from .seed import seed_token_hit_rate
from .structure import Structure, structure

__all__ = [
    "HIT_MODELS", "MODELS", "Structure", "structure", "gap_cdf", "gap_mean_min", "gap_quantile", "gap_sum_cdf",
    "occupancy_blocks", "occupancy_variance_blocks2", "characteristic_time_s", "overload_ends_at_capacity_tokens",
    "hit_rates", "closed_hit_rates", "seed_token_hit_rate", "capacity_for_token_hit_rate",
]
