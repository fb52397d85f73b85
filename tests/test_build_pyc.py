"""scripts/build_pyc.py: kvcalc compiled for Pyodide's Python, as the worker loads it.

The bundle (py/pyc-cpython-312.json, git-ignored) must hold a pyc for every .py the worker
writes into the Pyodide file system, each one a *checked* hash-based pyc (PEP 552 flags 0b11)
whose source hash is the hash of today's source: then Python 3.12 uses it, and a stale one is
recompiled instead of run. The hash is CPython's keyed SipHash of the source with the magic
number of the Python that wrote the pyc as key (importlib._bootstrap_external), computed
here with _imp.source_hash whatever the Python running the test.
"""

from __future__ import annotations

import _imp
import base64
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_pyc  # noqa: E402

# CPython 3.12's magic number (Lib/importlib/_bootstrap_external.py: 3531, then b"\r\n")
MAGIC_312 = (3531).to_bytes(2, "little") + b"\r\n"


@pytest.fixture(scope="module")
def bundle():
    if build_pyc.find_python() is None:
        pytest.skip("no Python 3.12 here to build the bundle (CI runs 3.12)")
    assert build_pyc.build(quiet=True)
    return json.loads(build_pyc.BUNDLE.read_text())


def test_every_module_the_worker_writes_has_a_checked_pyc_of_its_current_source(bundle):
    manifest = json.loads((ROOT / "py" / "kvcalc" / "MANIFEST.json").read_text())["files"]
    written = {p: p for p in manifest if p.endswith(".py")}
    written["js/kvcalc_bridge.py"] = "py/kvcalc_bridge.py"     # js/worker-runtime.js BRIDGE_FILE
    assert set(bundle["files"]) == set(written.values())
    assert bundle["cache_tag"] == "cpython-312"
    assert bytes.fromhex(bundle["magic"]) == MAGIC_312
    key = int.from_bytes(MAGIC_312, "little")
    for repo_path, fs_path in written.items():
        pyc = base64.b64decode(bundle["files"][fs_path])
        assert pyc[:4] == MAGIC_312, fs_path
        flags = int.from_bytes(pyc[4:8], "little")
        assert flags == 0b11, f"{fs_path}: flags {flags:#b}, want hash-based and checked"
        assert pyc[8:16] == _imp.source_hash(key, (ROOT / repo_path).read_bytes()), f"{fs_path} is stale"


def test_a_changed_source_makes_the_bundle_stale(bundle, monkeypatch):
    assert build_pyc.is_current()
    real = build_pyc.sources_digest()
    monkeypatch.setattr(build_pyc, "sources_digest", lambda: real[::-1])
    assert not build_pyc.is_current()


def test_pyodide_runs_python_3_12():
    lock = ROOT / "runtime" / "pyodide-lock.json"
    if not lock.is_file():
        pytest.skip("runtime/ is not built (scripts/build_runtime.sh)")
    python = json.loads(lock.read_text())["info"]["python"]
    assert tuple(int(x) for x in python.split(".")[:2]) == build_pyc.TARGET
    assert build_pyc.CACHE_TAG == "cpython-%d%d" % build_pyc.TARGET
