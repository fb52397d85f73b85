"""Pins: runtime.json is the one place; every other mention of the versions agrees.

No browser needed (marked ``nobrowser`` so conftest leaves it unmarked).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from browser_helpers import ROOT

pytestmark = pytest.mark.nobrowser

CFG = json.loads((ROOT / "runtime.json").read_text())
PYODIDE = CFG["pyodide"]["version"]
SKIP_DIRS = {".git", "runtime", "node_modules", ".venv", "build", "dist", "__pycache__",
             ".pytest_cache", ".hypothesis"}
TEXT_SUFFIXES = {".py", ".js", ".mjs", ".html", ".md", ".json", ".sh", ".toml", ".yml",
                 ".yaml", ".txt", ".css", ""}
# "pyodide@0.27.7", "pyodide/v0.27.7", "Pyodide 0.27.7", "pyodide-0.27.7-wheels", "pyodide==0.27.7"
PYODIDE_MENTION = re.compile(r"pyodide(?:@|/v|\s+v?|-|==)(\d+\.\d+\.\d+)", re.IGNORECASE)


def _text_files():
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            yield rel, path.read_text(errors="replace")


def test_runtime_json_is_self_consistent():
    p = CFG["pyodide"]
    assert p["npm"] == f"pyodide@{PYODIDE}"
    assert p["cdn"] == f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE}/full/"
    assert p["vendor_dir"].endswith(f"pyodide-{PYODIDE}-wheels")
    plotly = CFG["plotly"]
    name, _, version = plotly["npm"].rpartition("@")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact Plotly version"
    assert plotly["cdn"] == f"https://cdn.jsdelivr.net/npm/{name}@{version}/{plotly['file']}"
    assert plotly["integrity"].startswith("sha384-")


def test_every_pyodide_version_mention_agrees():
    wrong = []
    for rel, text in _text_files():
        for m in PYODIDE_MENTION.finditer(text):
            if m.group(1) != PYODIDE:
                wrong.append(f"{rel}: {m.group(0)}")
    assert not wrong, f"runtime.json pins Pyodide {PYODIDE}; these disagree: {wrong}"


def test_every_plotly_mention_agrees():
    name, _, version = CFG["plotly"]["npm"].rpartition("@")
    pattern = re.compile(r"plotly\.js(?:-[a-z]+)*(?:-dist)?(?:-min)?@(\d+\.\d+\.\d+)")
    wrong = [f"{rel}: {m.group(0)}" for rel, text in _text_files()
             for m in pattern.finditer(text) if m.group(1) != version]
    assert not wrong, f"runtime.json pins {name}@{version}; these disagree: {wrong}"


def test_manifest_is_current():
    """py/kvcalc/MANIFEST.json lists every file the worker must load (a static host lists none)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_manifest.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
