"""Model vs simulator over a grid from light to heavy cache pressure.

``grid()`` lists workload variants (each input varied in turn) at four
capacities, chosen as the mean occupancy O(T) at T = 0.1, 0.5, 1.5 and 4 mean
gaps, so every variant spans heavy to light pressure. ``compare()`` runs the
analytic models and the seeded simulator at every point. Used by
tests/test_model_vs_sim.py (the tolerances) and bench/validate_model.py (the
printed table).
"""

from __future__ import annotations

import numpy as np

from .hitrate import hit_rates, occupancy_blocks, structure
from .simulate import simulate
from .workload import CacheConfig, Workload

__all__ = ["VARIANTS", "grid", "grid_ranges", "compare", "summarise", "FLEET_VARIANTS", "fleet_grid", "compare_fleet",
           "summarise_fleet", "fleet_table"]

BASE = dict(conversation_rate_per_s=1.0, turns_mean=5.0, gap_mean_s=60.0, user_tokens_per_turn=200.0,
            output_tokens_per_turn=300.0, system_prompt_tokens=1000.0, service_time_s=2.0)

#: (name, workload changes, block size)
VARIANTS: list[tuple[str, dict, int]] = [
    ("base", {}, 16),
    ("gap deterministic", {"gap_distribution": "deterministic"}, 16),
    ("gap lognormal s=1", {"gap_distribution": "lognormal", "gap_lognormal_sigma": 1.0}, 16),
    ("gap lognormal s=1.8", {"gap_distribution": "lognormal", "gap_lognormal_sigma": 1.8}, 16),
    ("rate 10/s", {"conversation_rate_per_s": 10.0}, 16),
    ("rate 0.1/s", {"conversation_rate_per_s": 0.1}, 16),
    ("turns 2", {"turns_mean": 2.0}, 16),
    ("turns 12", {"turns_mean": 12.0}, 16),
    ("turns fixed 4", {"turns_mean": 4.0, "turns_distribution": "fixed"}, 16),
    ("short turns 50+100", {"user_tokens_per_turn": 50.0, "output_tokens_per_turn": 100.0}, 16),
    ("long turns 2000+500", {"user_tokens_per_turn": 2000.0, "output_tokens_per_turn": 500.0}, 16),
    ("no system prompt", {"system_prompt_tokens": 0.0}, 16),
    ("system prompt 4000", {"system_prompt_tokens": 4000.0}, 16),
    ("block 1 token", {}, 1),
    ("block 256", {}, 256),
    ("service 0 s", {"service_time_s": 0.0}, 16),
    ("service 20 s", {"service_time_s": 20.0}, 16),
    ("gap 10 s", {"gap_mean_s": 10.0}, 16),
]
PRESSURE_GAPS = (0.1, 0.5, 1.5, 4.0)


def grid_ranges() -> dict:
    """The span of the grid the page quotes ("checked on 72 workloads: 2 to 12 turns, ...")."""
    ws = [{**BASE, **changes} for _, changes, _ in VARIANTS]
    blocks = [block for _, _, block in VARIANTS]

    def span(key, values):
        return {f"{key}_min": min(values), f"{key}_max": max(values)}
    return {"points": len(VARIANTS) * len(PRESSURE_GAPS),
            **span("turns_mean", [float(w["turns_mean"]) for w in ws]),
            **span("gap_mean_s", [float(w["gap_mean_s"]) for w in ws]),
            **span("conversation_rate_per_s", [float(w["conversation_rate_per_s"]) for w in ws]),
            **span("block_size_tokens", blocks),
            **span("pressure_gaps", [float(x) for x in PRESSURE_GAPS])}


def grid() -> list[dict]:
    """Every (variant, capacity) point as a dict with the workload and cache."""
    points = []
    for name, changes, block in VARIANTS:
        w = Workload(**{**BASE, **changes})
        st = structure(w, CacheConfig(capacity_tokens=1.0, block_size_tokens=block))
        for x in PRESSURE_GAPS:
            cap_tokens = float(np.ceil(float(occupancy_blocks(st, x * w.gap_mean_s))) * block)
            mean_conv_tokens = w.system_prompt_tokens + w.turns_mean * w.tokens_per_turn
            points.append({"variant": name, "pressure_gaps": x, "workload": w,
                           "cache": CacheConfig(capacity_tokens=cap_tokens, block_size_tokens=block),
                           "conversations_fit": cap_tokens / mean_conv_tokens})
    return points


def compare(point: dict, requests_target: int = 300_000, seed: int = 7) -> dict:
    """Model (refined, Che, seed) and simulator token hit rates at one grid point."""
    w, c = point["workload"], point["cache"]
    n_conv = int(max(20_000, requests_target / float(w.turns_mean)))
    sim = simulate(w, c, seed=seed, n_conversations=n_conv)
    row = {"variant": point["variant"], "pressure_gaps": point["pressure_gaps"],
           "capacity_tokens": float(c.capacity_tokens), "conversations_fit": point["conversations_fit"],
           "sim": sim["token_hit_rate"],
           "sim_ci95_half": 0.5 * (sim["token_hit_rate_ci95_high"] - sim["token_hit_rate_ci95_low"]),
           "sim_request": sim["request_hit_rate"]}
    for model in ("refined", "che", "seed"):
        r = hit_rates(w, c, model)
        row[model] = float(r["token_hit_rate"])
        if model == "refined":
            row["refined_request"] = float(r["request_hit_rate"])
    return row


def summarise(rows: list[dict], min_conversations_fit: float = 5.0) -> dict:
    """Mean and max absolute errors in percentage points, per model."""
    out = {}
    for model in ("refined", "che", "seed"):
        err = np.array([100 * abs(r[model] - r["sim"]) for r in rows])
        fit = np.array([r["conversations_fit"] >= min_conversations_fit for r in rows])
        out[model] = {"mae_pp": float(err.mean()), "max_pp": float(err.max()),
                      "max_pp_where_fit": float(err[fit].max()) if fit.any() else None}
    return out


def table(rows: list[dict]) -> str:
    head = f"{'variant':<22}{'T/tau':>6}{'convs':>8}{'sim':>8}{'+-ci':>6}{'refined':>9}{'err':>7}{'che':>8}{'err':>7}{'seed':>8}{'err':>7}"
    lines = [head]
    for r in rows:
        lines.append(f"{r['variant']:<22}{r['pressure_gaps']:>6.1f}{r['conversations_fit']:>8.1f}"
                     f"{100*r['sim']:>8.2f}{100*r['sim_ci95_half']:>6.2f}"
                     f"{100*r['refined']:>9.2f}{100*(r['refined']-r['sim']):>+7.2f}"
                     f"{100*r['che']:>8.2f}{100*(r['che']-r['sim']):>+7.2f}"
                     f"{100*r['seed']:>8.2f}{100*(r['seed']-r['sim']):>+7.2f}")
    return "\n".join(lines)



# --------------------------------------------------------------------------- fleets and tiers

#: (name, fleet settings, workload changes, tier capacities as multiples of the GPU capacity)
FLEET_VARIANTS: list[tuple[str, dict, dict, tuple]] = [
    ("random K=4", {"instances": 4, "routing": "random"}, {}, ()),
    ("round-robin K=4", {"instances": 4, "routing": "round_robin"}, {}, ()),
    ("random K=8 lognormal", {"instances": 8, "routing": "random"},
     {"gap_distribution": "lognormal", "gap_lognormal_sigma": 1.0, "conversation_rate_per_s": 2.0}, ()),
    ("random K=3 fixed 4 turns", {"instances": 3, "routing": "random"},
     {"turns_distribution": "fixed", "turns_mean": 4.0}, ()),
    ("affinity K=4", {"instances": 4, "routing": "affinity"}, {"conversation_rate_per_s": 4.0}, ()),
    ("pooled K=4", {"instances": 4, "routing": "pooled"}, {}, ()),
    ("exclusive cpu 2C", {}, {}, (2.0,)),
    ("exclusive cpu 1C ssd 3C", {}, {}, (1.0, 3.0)),
    ("inclusive cpu 3C", {"tier_mode": "inclusive"}, {}, (3.0,)),
    ("random K=4 + cpu 1C", {"instances": 4, "routing": "random"}, {}, (1.0,)),
]
#: capacity per instance: overload (half the in-flight working set), then O(T) at T/tau
FLEET_PRESSURES = ("overload", 0.1, 0.5, 1.5, 4.0)


def fleet_grid() -> list[dict]:
    """Every (fleet variant, pressure) point: workload, cache (GPU per instance) and fleet."""
    from .fleet import FleetConfig, TierConfig
    points = []
    for name, fl, changes, tier_mult in FLEET_VARIANTS:
        w = Workload(**{**BASE, **changes})
        K = fl.get("instances", 1)
        per_instance = w if fl.get("routing") == "pooled" else Workload(
            **{**w.to_dict(), "conversation_rate_per_s": w.conversation_rate_per_s / K})
        st = structure(per_instance, CacheConfig(capacity_tokens=1.0))
        for x in FLEET_PRESSURES:
            g = 0.0 if x == "overload" else x * w.gap_mean_s
            blocks = float(occupancy_blocks(st, g)) * (0.5 if x == "overload" else 1.0)
            if fl.get("routing") == "pooled":
                blocks /= K
            cap = float(np.ceil(blocks) * 16)
            tiers = tuple(TierConfig(f"tier{j + 1}", capacity_tokens=cap * m) for j, m in enumerate(tier_mult))
            points.append({"variant": name, "pressure_gaps": x, "workload": w,
                           "cache": CacheConfig(capacity_tokens=cap),
                           "fleet": FleetConfig(tiers=tiers, **fl)})
    return points


def compare_fleet(point: dict, n_conversations: int = 30_000, seed: int = 7) -> dict:
    """Fleet model and simulator token hit rates (total and per tier) at one point."""
    from .fleet import fleet_hit_rates
    w, c, fl = point["workload"], point["cache"], point["fleet"]
    sim = simulate(w, c, seed=seed, n_conversations=n_conversations, fleet=fl)
    model = fleet_hit_rates(w, c, fl)
    return {"variant": point["variant"], "pressure_gaps": point["pressure_gaps"],
            "capacity_tokens": float(c.capacity_tokens), "overload": model["overload"],
            "sim": sim["token_hit_rate"],
            "sim_ci95_half": 0.5 * (sim["token_hit_rate_ci95_high"] - sim["token_hit_rate_ci95_low"]),
            "model": model["token_hit_rate"],
            "sim_tiers": sim["tier_token_hit_rates"], "model_tiers": model["tier_token_hit_rates"]}


def summarise_fleet(rows: list[dict]) -> dict:
    """Mean/max absolute error (pp) of the total, and max error of any tier's share."""
    err = np.array([100 * abs(r["model"] - r["sim"]) for r in rows])
    tier_err = [100 * abs(m - s) for r in rows for m, s in zip(r["model_tiers"], r["sim_tiers"])]
    return {"mae_pp": float(err.mean()), "max_pp": float(err.max()), "tier_max_pp": float(max(tier_err)),
            "points": len(rows), "overload_points": int(sum(r["overload"] for r in rows))}


def fleet_table(rows: list[dict]) -> str:
    lines = [f"{'variant':<26}{'press':>9}{'sim':>8}{'+-ci':>6}{'model':>8}{'err':>7}  tiers sim / model"]
    for r in rows:
        p = r["pressure_gaps"]
        lines.append(f"{r['variant']:<26}{p if isinstance(p, str) else f'{p:.1f}':>9}"
                     f"{100 * r['sim']:>8.2f}{100 * r['sim_ci95_half']:>6.2f}{100 * r['model']:>8.2f}"
                     f"{100 * (r['model'] - r['sim']):>+7.2f}  "
                     + " ".join(f"{100 * s:.1f}/{100 * m:.1f}" for s, m in zip(r["sim_tiers"], r["model_tiers"])))
    return "\n".join(lines)
