"""Trace mode at scale: time, peak memory and error against exact for generated traces.

    PYTHONPATH=py python bench/bench_trace_scale.py TRACE.jsonl [--exact] [--rates 0.01,0.05] [--seeds 3]
    PYTHONPATH=py python bench/bench_trace_scale.py TRACE.jsonl --only exact|sampled|auto
    PYTHONPATH=py python bench/bench_trace_scale.py TRACE.jsonl --instances 4,8 [--routing affinity] --exact --rates 0.01

With ``--instances`` every run is a fleet replay (``cluster``: K instances under ``--routing``):
the exact fleet (``--exact``) against the sampled fleet (py/kvcalc/trace/fleet_sample.py), both at
the same 80 capacities per instance, error = worst of the fleet's token and block rates.

Traces come from ``bench/gen_trace.py`` (not committed), e.g. 10^5, 10^6 and 10^7 requests.
Each measurement runs in a fresh process (so its peak RSS is its own): the CLI path
``trace_analyze({"path": ..., "sampling": ...})``. With ``--exact`` the exact curve is also
computed and the sampled curves are compared with it (mean and max |error| in percentage
points over the curve's grid, token and block rates). Targets (issue #11): 10^7 requests
sampled in < 2 min and < 1 GB; 10^6 exact >= 3x faster than 128 s / 3.5 GB. On a shared
machine compare CPU time (user + sys of the child, printed as "cpu"), not wall time. Peak
memory is the child's max RSS in MiB (2^20 bytes) and GB (10^9 bytes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {py!r})
from kvcalc.trace.api import trace_analyze
req = json.loads(sys.argv[1])
t = time.perf_counter()
res = trace_analyze(req)
dt = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
out = {{"time_s": dt, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "n_requests": res["stats"]["n_requests"], "sampling": res["sampling"],
       "caps": res["curve"]["capacities_blocks"], "token": res["curve"]["token_hit_rate"],
       "block": res["curve"]["block_hit_rate"], "loader": res["detection"].get("loader")}}
f = res.get("fleet")
if f:
    out["fleet"] = {{"caps": f["capacities_blocks_per_instance"], "token": f["token_hit_rate"], "block": f["block_hit_rate"],
                    "sampling": f.get("sampling", {{}}).get("rate"),
                    "bound_pp": f.get("sampling", {{}}).get("error_bound_pp"), "instances_used": f["instances_used"]}}
print(json.dumps(out))
"""


#: capacities per instance at which fleets are compared (both runs report them exactly)
FLEET_CAPS = sorted({int(round(x)) for x in __import__("numpy").geomspace(1, 1e7, 80)})


def run(path: Path, sampling, seed: int = 0, max_points: int = 200, cluster: dict | None = None) -> dict:
    req = {"path": str(path), "sampling": sampling, "sampling_seed": seed, "max_points": max_points}
    if cluster:
        req.update(cluster=cluster, capacities_blocks=FLEET_CAPS)
    p = subprocess.run([sys.executable, "-c", CHILD.format(py=str(ROOT / "py")), json.dumps(req)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def _figures(r: dict) -> str:
    """Wall and CPU time, peak RSS in MiB and GB (ru_maxrss is in KiB on Linux)."""
    mib = r["peak_rss_mb"]
    return (f"{r['time_s']:7.1f} s wall {r['cpu_s']:7.1f} s cpu  peak {mib:6.0f} MiB "
            f"({mib * 2**20 / 1e9:.2f} GB)")


def errors_pp(exact: dict, sampled: dict) -> tuple[float, float]:
    import numpy as np
    caps = np.asarray(sampled["caps"], dtype=np.float64)
    ec = np.asarray(exact["caps"], dtype=np.float64)
    # The exact curve is a step function: its value at c is the last grid point <= c (exact
    # is run on a dense grid: with 200 points the lookup itself adds error on the curve's
    # steep parts).
    k = np.clip(np.searchsorted(ec, caps, side="right") - 1, 0, None)
    worst_mean, worst_max = 0.0, 0.0
    for key in ("token", "block"):
        e = np.asarray(exact[key])[k]
        d = np.abs(np.asarray(sampled[key]) - e) * 100
        worst_mean, worst_max = max(worst_mean, float(d.mean())), max(worst_max, float(d.max()))
    return worst_mean, worst_max


def fleet_errors_pp(exact: dict, sampled: dict) -> tuple[float, float]:
    """Mean and max |sampled - exact| fleet rates [pp] at FLEET_CAPS (worst of token and block)."""
    import numpy as np
    e, s = exact["fleet"], sampled["fleet"]
    ie = [e["caps"].index(c) for c in FLEET_CAPS]
    is_ = [s["caps"].index(c) for c in FLEET_CAPS]
    worst_mean, worst_max = 0.0, 0.0
    for key in ("token", "block"):
        d = np.abs(np.asarray(s[key])[is_] - np.asarray(e[key])[ie]) * 100
        worst_mean, worst_max = max(worst_mean, float(d.mean())), max(worst_max, float(d.max()))
    return worst_mean, worst_max


def main_fleet(path: Path, a) -> int:
    for k in [int(x) for x in a.instances.split(",") if x]:
        cluster = {"instances": k, "routing": a.routing, "seed": 0}
        print(f"fleet K = {k}, routing {a.routing}")
        exact = None
        if a.exact:
            exact = run(path, "exact", cluster=cluster)
            print(f"  exact fleet:     {_figures(exact)}  ({exact['n_requests']} requests)", flush=True)
        if a.auto:
            r = run(path, "auto", cluster=cluster)
            print(f"  auto fleet:      {_figures(r)}  -> {r['sampling']['mode']}, rate {r['sampling']['rate']:.4g}",
                  flush=True)
        for rate in [float(x) for x in a.rates.split(",") if x]:
            for seed in range(a.seeds):
                r = run(path, rate, seed, cluster=cluster)
                f = r["fleet"]
                line = (f"  rate {rate:<6g} seed {seed}: {_figures(r)}  fleet rate {f['sampling']:.4g}, stated bound "
                        f"{f['bound_pp']:.2f} pp")
                if exact is not None:
                    mean_pp, max_pp = fleet_errors_pp(exact, r)
                    line += (f"; fleet error vs exact: mean {mean_pp:.2f} pp, max {max_pp:.2f} pp"
                             f" ({'covered' if max_pp <= f['bound_pp'] else 'NOT covered'})")
                print(line, flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--exact", action="store_true", help="also run exact and compare")
    ap.add_argument("--rates", default="0.01", help="sampling rates to run (comma-separated)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--auto", action="store_true", help="also run sampling=auto")
    ap.add_argument("--instances", default="", help="fleet sizes K to run (comma-separated): fleets, not one cache")
    ap.add_argument("--routing", default="affinity", choices=["affinity", "random", "round_robin", "pooled"])
    a = ap.parse_args(argv)
    path = Path(a.trace)
    size_mb = path.stat().st_size / 1e6
    print(f"trace {path.name}: {size_mb:.0f} MB")
    if a.instances:
        return main_fleet(path, a)
    exact = None
    if a.exact:
        # dense (4,000 points, 0.4 % apart at 10^6 requests) so that reading the exact step
        # curve at the sampled run's capacities adds no error of its own
        exact = run(path, "exact", max_points=4000)
        print(f"  exact:           {_figures(exact)}  "
              f"({exact['n_requests']} requests; loader: {exact['loader']})")
    if a.auto:
        r = run(path, "auto")
        print(f"  auto:            {_figures(r)}  "
              f"-> {r['sampling']['mode']}, rate {r['sampling']['rate']:.4g}; {r['sampling']['why']}")
    for rate in [float(x) for x in a.rates.split(",") if x]:
        for seed in range(a.seeds):
            r = run(path, rate, seed)
            smp = r["sampling"]
            line = (f"  rate {rate:<6g} seed {seed}: {_figures(r)}  "
                    f"kept {smp['sampled_references']} refs ({smp.get('heavy_references', 0)} heavy, "
                    f"{smp.get('heavy_unseen_references', 0)} heavy unseen), stated bound "
                    f"{smp['error_bound_pp']:.2f} pp")
            if exact is not None:
                mean_pp, max_pp = errors_pp(exact, r)
                line += f"; error vs exact: mean {mean_pp:.2f} pp, max {max_pp:.2f} pp"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
