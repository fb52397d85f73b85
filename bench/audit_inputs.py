"""Audit of bad and valid inputs against compute() and simulate(), per area (issue #12).

Counts, per area, the cases tried and how many failed:
  traceback  anything but InputError escaped (or an InputError with code internal_error)
  hang       one call took more than 10 s
  accepted   an invalid value was accepted silently
  wrong field  the InputError named another field than the bad one
  refused    a valid request was refused (valid random requests only)

    python bench/audit_inputs.py [--valid N] [--seed S] [--sim-timing]

Prints one line per area and the failing cases (at most 5 per area). Figures depend on
the machine's load only through the hang column.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

from kvcalc.api import compute, simulate  # noqa: E402
from kvcalc.errors import InputError  # noqa: E402
from kvcalc.limits import LIMITS, SIMULATION_MAX_WORK, simulation_work  # noqa: E402

HANG_S = 10.0
BASE = {"workload": {}, "cache": {"capacity_tokens": 200_000}}
HF_BASE = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "intermediate_size": 14336,
           "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
CHOICE_FIELDS = {"hit_model": "refined", "kv_cache_dtype": "auto", "weight_dtype": "bf16",
                 "workload.turns_distribution": "geometric", "workload.gap_distribution": "exponential",
                 "cache.eviction": "lru", "model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb"}
NULLABLE = {"runtime_reserve_gib", "context_tokens", "weight_dtype", "cache.capacity_tokens", "cache.ttl_s",
            "model", "gpu"}


def deep(n: int) -> dict:
    d = {}
    x = d
    for _ in range(n):
        x["a"] = {}
        x = x["a"]
    return d


def generic_bad() -> list:
    return [10**400, -10**400, float("nan"), float("inf"), -float("inf"), True, False, "x", "", [1000], [],
            {"a": 1}, deep(100_000)]


def numeric_bad(key: str) -> list:
    lim = LIMITS[key]
    out = generic_bad() + [None]
    out.append(lim.lo if lim.lo_open else (lim.lo - max(abs(lim.lo) * 0.5, 1e-3)))
    if math.isfinite(lim.hi):
        out += [lim.hi * 2 + 1, 1e308]
    if lim.integer:
        out.append(lim.lo + 0.5)
    return out


def show(x) -> str:
    try:
        return repr(x)[:40]
    except (RecursionError, ValueError):
        return f"<{type(x).__name__} nested or huge>"


def set_path(req: dict, key: str, value) -> dict:
    req = {k: (dict(v) if isinstance(v, dict) else v) for k, v in req.items()}
    head, _, rest = key.partition(".")
    if rest:
        req.setdefault(head, {})
        req[head] = dict(req[head])
        req[head][rest] = value
    else:
        req[key] = value
    return req


class Area:
    def __init__(self, name: str):
        self.name = name
        self.tried = 0
        self.fail = {"traceback": 0, "hang": 0, "accepted": 0, "wrong field": 0, "refused": 0}
        self.examples: list[str] = []
        self.slowest = 0.0

    def record(self, kind: str | None, what: str):
        self.tried += 1
        if kind:
            self.fail[kind] += 1
            if len(self.examples) < 5:
                self.examples.append(f"  {kind}: {what[:220]}")

    def line(self) -> str:
        fails = ", ".join(f"{k} {v}" for k, v in self.fail.items())
        return f"{self.name:<28} tried {self.tried:>5}   failed {sum(self.fail.values()):>3} ({fails}); slowest {self.slowest:.2f} s"


def run(fn, req):
    t = time.perf_counter()
    try:
        out = ("ok", fn(req))
    except InputError as exc:
        out = ("input", exc)
    except BaseException as exc:  # noqa: BLE001 - the audit counts everything
        out = ("crash", exc)
    return out, time.perf_counter() - t


def expect_error(area: Area, fn, req, field: str, label: str):
    (kind, val), dt = run(fn, req)
    area.slowest = max(area.slowest, dt)
    if dt > HANG_S:
        area.record("hang", f"{label} {dt:.1f} s")
    elif kind == "crash" or (kind == "input" and val.code == "internal_error"):
        area.record("traceback", f"{label}: {type(val).__name__}: {val}")
    elif kind == "ok":
        area.record("accepted", label)
    elif not (val.field == field or val.field.startswith(field + ".") or val.field.startswith(field + "[")):
        area.record("wrong field", f"{label}: named {val.field}: {val}")
    else:
        area.record(None, label)


def audit_compute_bad() -> Area:
    area = Area("compute: bad values")
    for key in LIMITS:
        if key.startswith("model.") or key.startswith("simulation.") or key == "seed":
            continue
        for bad in numeric_bad(key):
            if bad is None and key in NULLABLE:
                continue
            expect_error(area, compute, set_path(BASE, key, bad), key, f"{key}={show(bad)}")
    for key in CHOICE_FIELDS:
        for bad in generic_bad() + ["garbage", "LRU "]:
            expect_error(area, compute, set_path(BASE, key, bad), key, f"{key}={show(bad)}")
    for obj in ("workload", "cache", "simulation", "model", "figures"):
        for bad in [10**400, float("nan"), "x", 1, True, deep(100_000)] + ([["curve"], {}] if obj == "model" else []):
            expect_error(area, compute, {**BASE, obj: bad}, obj, f"{obj}={show(bad)}")
    for level in ("", "workload.", "cache.", "simulation.", "model."):
        for name in ("foo", "turns", "capacity", "Workload", "__proto__"):
            key = level + name
            req = set_path(BASE, key, 1) if level != "model." else {**BASE, "model": {"hf_config": HF_BASE, name: 1}}
            expect_error(area, compute, req, key, f"unknown key {key}")
    expect_error(area, compute, deep(100_000), "a", "request nested 100k deep")
    expect_error(area, compute, {**BASE, "figures": ["curve", "pie"]}, "figures", "figures=[curve, pie]")
    return area


def random_valid(rng: np.random.Generator) -> dict:
    def draw(key):
        lim = LIMITS[key]
        lo = lim.lo if not lim.lo_open else lim.lo + 1e-6 * max(1.0, abs(lim.lo))
        hi = min(lim.hi, 1e13)
        if lim.scale == "log" and hi > 0:
            x = math.exp(rng.uniform(math.log(max(lo, hi * 1e-9, 1e-6)), math.log(hi)))
        else:
            x = rng.uniform(lo, hi)
        x = min(max(x, lo), hi)
        return int(round(x)) if lim.integer else x
    wl = {k.split(".", 1)[1]: draw(k) for k in LIMITS if k.startswith("workload.") and rng.random() < 0.7}
    wl["turns_distribution"] = str(rng.choice(["geometric", "fixed"]))
    wl["gap_distribution"] = str(rng.choice(["exponential", "deterministic", "lognormal"]))
    req = {"workload": wl, "hit_model": str(rng.choice(["refined", "che", "seed"])),
           "target_token_hit_rate": draw("target_token_hit_rate"),
           "cache": {"eviction": str(rng.choice(["lru", "lru", "ttl", "fifo", "lfu"])),
                     "block_size_tokens": int(rng.choice([1, 16, 16, 256]))}}
    if req["cache"]["eviction"] == "ttl":
        req["cache"]["ttl_s"] = draw("cache.ttl_s")
    if rng.random() < 0.5:
        req.update(model=str(rng.choice(["meta-llama/Llama-3.1-8B", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-V3"])),
                   gpu=str(rng.choice(["h100-sxm-80gb", "h200-141gb"])), tensor_parallel=int(rng.choice([1, 2, 4, 8])),
                   mfu=draw("mfu"))
    else:
        req["cache"]["capacity_tokens"] = draw("cache.capacity_tokens")
    if rng.random() < 0.2:
        req["figures"] = ["curve", str(rng.choice(["sweeps", "tornado", "heatmap"]))]
    return req


def audit_valid(n: int, seed: int) -> Area:
    area = Area("compute: valid random")
    rng = np.random.default_rng(seed)
    legit = 0
    for i in range(n):
        req = random_valid(rng)
        (kind, val), dt = run(compute, req)
        area.slowest = max(area.slowest, dt)
        label = f"#{i} {show(req) if False else req}"
        if dt > HANG_S:
            area.record("hang", f"{dt:.1f} s {label}")
        elif kind == "crash" or (kind == "input" and val.code == "internal_error"):
            area.record("traceback", f"{type(val).__name__}: {val} {label}")
        elif kind == "input":
            # weights that do not fit, or heads that do not split: the configuration itself
            if val.field in ("model", "tensor_parallel") and val.code in ("weights_do_not_fit", "inconsistent"):
                legit += 1
                area.record(None, label)
            else:
                area.record("refused", f"{val} {label}")
        else:
            area.record(None, label)
    area.name += f" ({legit} refused as configurations)"
    return area


def audit_config() -> Area:
    area = Area("config.json fields")
    names = sorted(k.rsplit(".", 1)[1] for k in LIMITS if k.startswith("model.hf_config."))
    for nested in (False, True):
        for name in names + ["torch_dtype", "dtype", "quantization_config", "layer_types", "text_config"]:
            lim = LIMITS.get("model.hf_config." + name)
            bads = generic_bad() + ([-1, lim.hi + 1, 1e308, 2.5] + ([100_000_000] if lim.hi < 1e8 else [])
                                    if lim else ["garbage", 7])
            for bad in bads:
                if (name == "quantization_config" and isinstance(bad, dict)) or (name == "layer_types" and bad == []):
                    continue  # valid: any object is a quantization_config (unknown methods: unquantized); [] = none
                if name == "text_config" and (nested or isinstance(bad, dict) and bad == {"a": 1}):
                    continue
                cfg = {**HF_BASE, name: bad}
                hf = {"text_config": cfg, "model_type": "gemma3"} if nested else cfg
                field = "model.hf_config" + (".text_config" if nested else "") + "." + name
                expect_error(area, compute, {"model": {"hf_config": hf}, "gpu": "h100-sxm-80gb", "workload": {}},
                             field, f"{field}={show(bad)}")
    return area


def audit_simulate(timing: bool) -> Area:
    area = Area("simulate")
    req = {**BASE, "simulation": {"n_conversations": 200}}
    for key, bads in (("simulation.n_conversations", numeric_bad("simulation.n_conversations") + [10**7]),
                      ("simulation.capacities_tokens", [b for b in generic_bad() if b != [1000]]
                                       + [[1000] * 51, ["x"], [10**400], [-1]]),
                      ("seed", numeric_bad("seed"))):
        for bad in bads:
            if bad is None:
                continue
            expect_error(area, simulate, set_path(req, key, bad), key, f"{key}={show(bad)}")
    for name in ("foo", "n_conversation", "capacities"):
        expect_error(area, simulate, set_path(req, "simulation." + name, 1), "simulation." + name, f"unknown {name}")
    # too much work is refused before running
    expect_error(area, simulate, {**BASE, "workload": {"turns_mean": 200},
                                  "simulation": {"n_conversations": 25_000}}, "simulation.n_conversations",
                 "25,000 conversations at 200 turns")
    # the largest runs allowed finish in seconds
    runs = [("6 capacities x 5,000 conversations x 5 turns", {"turns_mean": 5}, 5_000, 6),
            ("1 capacity x 25,000 x 6 turns", {"turns_mean": 6}, 25_000, 1)]
    if timing:
        runs.append(("1 capacity x 100 x 200 turns", {"turns_mean": 200}, 100, 1))
    for label, wl, n, ncap in runs:
        work = simulation_work(ncap, n, wl["turns_mean"])
        if work > SIMULATION_MAX_WORK:
            continue
        r = {"workload": wl, "cache": {"capacity_tokens": 200_000},
             "simulation": {"n_conversations": n, "capacities_tokens": [50_000 * (i + 1) for i in range(ncap)]}}
        (kind, val), dt = run(simulate, r)
        area.slowest = max(area.slowest, dt)
        print(f"simulate timing: {label}: work {work:,.0f} of {SIMULATION_MAX_WORK:,}: {dt:.2f} s ({kind})")
        area.record("hang" if dt > HANG_S else ("traceback" if kind == "crash" else
                                                 ("refused" if kind == "input" else None)), f"{label} {dt:.1f} s")
    return area


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--valid", type=int, default=600, help="valid random requests (default 600)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--sim-timing", action="store_true", help="also time the slowest allowed long-conversation run")
    ns = p.parse_args()
    areas = [audit_compute_bad(), audit_valid(ns.valid, ns.seed), audit_config(), audit_simulate(ns.sim_timing)]
    print()
    for a in areas:
        print(a.line())
        for e in a.examples:
            print(e)
    return 0 if all(sum(a.fail.values()) == 0 for a in areas) else 1


if __name__ == "__main__":
    raise SystemExit(main())
