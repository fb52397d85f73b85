"""Overload with lower tiers: model against simulator per tier (GPU, CPU, SSD) when the GPU holds
a fraction of the in-flight working set. python bench/fleet_overload_tiers.py (about a minute)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
from kvcalc.validation import BASE, compare_fleet
from kvcalc.workload import Workload, CacheConfig
from kvcalc.hitrate.structure import structure
from kvcalc.hitrate.occupancy import occupancy_blocks
from kvcalc.fleet import FleetConfig, TierConfig
w = Workload(**BASE)
st = structure(w, CacheConfig(capacity_tokens=1.0))
W = float(occupancy_blocks(st, 0.0))
for frac, mults in [(0.25, (1.0,)), (0.25, (1.0, 4.0)), (0.5, (0.5, 3.0))]:
    cap = float(np.ceil(W*frac)*16)
    tiers = tuple(TierConfig(f"t{j}", capacity_tokens=cap*m) for j, m in enumerate(mults))
    r = compare_fleet({"variant": f"{frac} {mults}", "pressure_gaps": 0, "workload": w, "cache": CacheConfig(capacity_tokens=cap), "fleet": FleetConfig(tiers=tiers)}, n_conversations=8000)
    print(r["variant"], "W blocks", round(W), "model", np.round(r["model_tiers"],3), "sim", np.round(r["sim_tiers"],3))
