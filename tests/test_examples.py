"""examples/: each script runs as a user would run it, and prints the numbers the API gives."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvcalc.api import compute

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "py")}
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "one_request.py", "capacity_sweep_csv.py", "trace_analysed.py", "recommender.py"}


def test_one_request():
    out = run("one_request.py")
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "tensor_parallel": 1,
                 "workload": {"conversation_rate_per_s": 2, "turns_mean": 5, "gap_mean_s": 60},
                 "target_token_hit_rate": 0.5})
    assert f"token hit rate      {r['token_hit_rate']:.1%}" in out
    # 450,352 tokens = 54.97 GiB: Llama-3.1-8B on one H100 (tests/test_memory.py derives it)
    assert "450,352 tokens = 54.97 GiB" in out


def test_capacity_sweep_csv(tmp_path):
    path = tmp_path / "sweep.csv"
    out = run("capacity_sweep_csv.py", str(path))
    rows = list(csv.DictReader(path.open()))
    assert out.strip() == f"wrote {len(rows)} rows to {path}"
    r = compute({"model": "Qwen/Qwen3-32B", "gpu": "h200-141gb", "tensor_parallel": 2,
                 "workload": {"conversation_rate_per_s": 3, "gap_mean_s": 30}, "figures": ["curve"]})
    assert [float(x["token_hit_rate"]) for x in rows] == r["figures"]["curve"]["token_hit_rate"]
    hits = [float(x["token_hit_rate"]) for x in rows]
    assert hits == sorted(hits)            # more memory never lowers the hit rate


def test_trace_analysed():
    out = run("trace_analysed.py")
    assert out.startswith("12,031 requests, block size 512 tokens")   # the Mooncake conversation trace
    assert "fitted workload:" in out and "model at 10,000 blocks:" in out


def test_recommender():
    out = run("recommender.py")
    # 100 x 2,064 x 131,072 B = 25.20 GiB; (2,000 + 6,400) x 131,072 B = 1.03 GiB (tests/test_scenarios.py)
    assert "N =  100: KV    25.20 GiB without sharing,   1.03 GiB with" in out
    # N = 10: 10 x 2,064 x 131,072 B = 2.52 GiB; (2,000 + 640) x 131,072 B = 0.32 GiB
    assert "N =   10: KV     2.52 GiB without sharing,   0.32 GiB with" in out
