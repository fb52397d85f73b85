"""The built wheel, installed into a fresh virtual environment, runs ``python -m kvcalc`` and finds every preset.

The build reads a copy of the project (pyproject.toml, setup.py, py/, presets/), so nothing
is written into the repository. The virtual environment has no pip and sees the system
site-packages for numpy only (``pip --python`` installs the wheel into it with
``--no-index --no-deps``); the test checks that kvcalc and its presets are then read from the
environment, not from this checkout. About 5-25 s (the build backend is fetched from PyPI
unless setuptools and wheel are installed here).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")


def _run(args, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "py", src / "py", ignore=skip)
    shutil.copytree(ROOT / "presets", src / "presets", ignore=skip)
    dist = tmp / "dist"
    offline = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist,
          *(["--no-build-isolation"] if offline else []), src])
    wheels = list(dist.glob("kvcalc-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", env_dir])
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps", "-q", wheels[0]])
    return python


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVCALC_PRESETS_DIR")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _repo_presets(name: str, key: str) -> dict:
    return json.loads((ROOT / "presets" / name).read_text(encoding="utf-8"))[key]


def test_installed_wheel_reads_its_own_presets(venv_python, tmp_path):
    probe = (
        "import json, kvcalc, kvcalc.presets as p\n"
        "from kvcalc.api import compute\n"
        "models, gpus = p.load_models(), p.load_gpus()\n"
        "kv = {m: compute({'model': m})['kv_bytes_per_token'] for m in models}\n"
        "fit = {g: compute({'model': 'meta-llama/Llama-3.1-8B', 'gpu': g, 'tensor_parallel': 8})['kv_capacity_tokens']"
        " for g in gpus}\n"
        "print(json.dumps({'package': kvcalc.__file__, 'presets_dir': str(p.presets_dir()), 'kv': kv, 'fit': fit}))\n")
    out = json.loads(_run([venv_python, "-c", probe], cwd=tmp_path, env=_env()).stdout)
    env_dir = venv_python.parents[1].resolve()
    assert Path(out["package"]).resolve().is_relative_to(env_dir), out["package"]
    data_dir = Path(out["presets_dir"]).resolve()
    assert data_dir.is_relative_to(env_dir) and data_dir.name == "preset_data", out["presets_dir"]
    # the package data is the repository's presets/, byte for byte
    for name in ("models.json", "gpus.json"):
        assert (data_dir / name).read_bytes() == (ROOT / "presets" / name).read_bytes()
    # every preset is found and computes: a model alone gives KV bytes per token, every GPU a capacity
    assert sorted(out["kv"]) == sorted(_repo_presets("models.json", "models"))
    assert all(isinstance(v, (int, float)) and v > 0 for v in out["kv"].values())
    assert sorted(out["fit"]) == sorted(_repo_presets("gpus.json", "gpus"))
    assert all(isinstance(v, (int, float)) and v > 0 for v in out["fit"].values())


def test_installed_wheel_runs_the_cli(venv_python, tmp_path):
    table = _run([venv_python, "-m", "kvcalc", "--model", "Qwen/Qwen3-32B", "--gpu", "h200-141gb", "--tp", "2"],
                 cwd=tmp_path, env=_env()).stdout
    assert "Qwen/Qwen3-32B" in table
    request = {"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb",
               "workload": {"conversation_rate_per_s": 2}}
    result = json.loads(_run([venv_python, "-m", "kvcalc", "compute"], input=json.dumps(request),
                             cwd=tmp_path, env=_env()).stdout)
    # Llama-3.1-8B, bf16 KV: 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 bytes = 131072 bytes per token
    assert result["kv_bytes_per_token"] == 131072
    assert 0.0 < result["token_hit_rate"] < 1.0
    limits = json.loads(_run([venv_python, "-m", "kvcalc", "limits", "--json"], cwd=tmp_path, env=_env()).stdout)
    assert limits == json.loads((ROOT / "py" / "kvcalc" / "limits.json").read_text())
