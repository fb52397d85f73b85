#!/usr/bin/env python3
"""Build the local runtime copy in runtime/ (git-ignored) from registries only.

What ends up in runtime/:
  pyodide.mjs, pyodide.asm.js, pyodide.asm.wasm, python_stdlib.zip, pyodide-lock.json
      from npm ``pyodide@<version>`` (npm checks the tarball's integrity), each checked
      against the sha384 pinned in runtime.json (the worker checks the same pins at run time);
  numpy / micropip / packaging wheels
      copied from the vendored folder named in runtime.json and checked against the
      sha256 in pyodide-lock.json (PyPI's own micropip/packaging wheels are other bytes);
  plotly-cartesian.min.js
      from npm ``plotly.js-cartesian-dist-min@<version>``, checked against the SRI hash the
      page uses for the CDN copy, so local and CDN are the same bytes;
  BUILD.json
      what was built from what; when it matches runtime.json the build is skipped.

It also (re)builds py/pyc-cpython-312.json (scripts/build_pyc.py: kvcalc compiled for
Pyodide's Python 3.12, git-ignored) when a source changed, and warns when
py/kvcalc/MANIFEST.json (the file list the worker loads into the Pyodide file system) is stale; it does not rewrite it, so CI's test of the committed manifest still
catches a forgotten `python scripts/gen_manifest.py` (scripts/serve.py does rewrite it).

Versions are pinned in runtime.json only. Usage: scripts/build_runtime.sh [--force]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_pyc  # noqa: E402
import gen_manifest  # noqa: E402

RUNTIME = ROOT / "runtime"


class BuildError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sri384(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def _npm_pack(spec: str, dest: Path) -> Path:
    """Download one npm package tarball into dest and return its path."""
    if shutil.which("npm") is None:
        raise BuildError("npm is not installed (apt-get install -y npm, or install Node.js)")
    proc = subprocess.run(
        ["npm", "pack", spec, "--pack-destination", str(dest), "--silent"],
        cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"npm pack {spec} failed:\n{proc.stderr.strip()}")
    name = proc.stdout.strip().splitlines()[-1]
    path = dest / name
    if not path.is_file():
        raise BuildError(f"npm pack {spec}: expected {path}")
    return path


def _extract(tgz: Path, names: list[str], dest: Path) -> None:
    with tarfile.open(tgz) as tar:
        for name in names:
            try:
                member = tar.getmember(f"package/{name}")
            except KeyError:
                raise BuildError(f"{tgz.name} has no package/{name}") from None
            src = tar.extractfile(member)
            assert src is not None
            (dest / name).write_bytes(src.read())


def _wheels(cfg: dict, lock: dict, dest: Path) -> list[dict]:
    vendor = (ROOT / cfg["pyodide"]["vendor_dir"]).resolve()
    if not vendor.is_dir():
        raise BuildError(
            f"the Pyodide package wheels are missing: {vendor} does not exist.\n"
            "  They are not on npm (the npm pyodide package has no wheels) and PyPI's own\n"
            "  micropip/packaging wheels are different bytes that fail Pyodide's integrity check.\n"
            "  Fallback: put numpy/micropip/packaging wheels of the official Pyodide "
            f"{cfg['pyodide']['version']} distribution\n"
            "  in that folder (their sha256 must equal pyodide-lock.json), or set KVCALC_WHEELS_DIR.\n"
            "  The page itself still works without runtime/: it then loads everything from the CDN.")
    out = []
    for pkg in cfg["pyodide"]["packages"]:
        entry = lock["packages"].get(pkg)
        if entry is None:
            raise BuildError(f"pyodide-lock.json has no package {pkg!r}")
        src = vendor / entry["file_name"]
        if not src.is_file():
            raise BuildError(f"missing wheel {src}")
        digest = _sha256(src)
        if digest != entry["sha256"]:
            raise BuildError(f"{src.name}: sha256 {digest} != pyodide-lock.json {entry['sha256']}")
        shutil.copyfile(src, dest / entry["file_name"])
        out.append({"file": entry["file_name"], "sha256": digest})
    return out


def build(force: bool = False, quiet: bool = False) -> None:
    cfg = json.loads((ROOT / "runtime.json").read_text())
    if os.environ.get("KVCALC_WHEELS_DIR"):
        cfg["pyodide"]["vendor_dir"] = os.environ["KVCALC_WHEELS_DIR"]
    if not gen_manifest.is_current():
        print("WARNING: py/kvcalc/MANIFEST.json is stale: run python scripts/gen_manifest.py "
              "and commit it (the page loads exactly the files it lists)", file=sys.stderr)
    # kvcalc compiled for Pyodide's Python (git-ignored, rebuilt when a source changed): the
    # worker writes it beside the sources so the first import does not compile them
    try:
        build_pyc.build(quiet=quiet)
    except (OSError, subprocess.SubprocessError) as err:
        print(f"WARNING: scripts/build_pyc.py failed ({err}): the page compiles kvcalc itself", file=sys.stderr)

    wanted = {"pyodide": cfg["pyodide"]["npm"], "plotly": cfg["plotly"]["npm"],
              "packages": cfg["pyodide"]["packages"]}
    stamp = RUNTIME / "BUILD.json"
    if not force and stamp.is_file():
        try:
            built = json.loads(stamp.read_text())
        except ValueError:
            built = {}
        files = [*cfg["pyodide"]["files"], cfg["plotly"]["file"], *(w["file"] for w in built.get("wheels", []))]
        if built.get("wanted") == wanted and all((RUNTIME / f).is_file() for f in files):
            if not quiet:
                print(f"runtime/ is up to date ({wanted['pyodide']}, {wanted['plotly']})")
            return

    with tempfile.TemporaryDirectory(prefix="kvcalc-runtime-") as tmp_s:
        tmp = Path(tmp_s)
        stage = tmp / "runtime"
        stage.mkdir()
        print(f"npm pack {cfg['pyodide']['npm']} ...", flush=True)
        _extract(_npm_pack(cfg["pyodide"]["npm"], tmp), cfg["pyodide"]["files"], stage)
        lock = json.loads((stage / "pyodide-lock.json").read_text())
        if lock["info"]["version"] != cfg["pyodide"]["version"]:
            raise BuildError(f"pyodide-lock.json is for {lock['info']['version']}, "
                             f"runtime.json pins {cfg['pyodide']['version']}")
        for name in cfg["pyodide"]["files"]:
            pinned = cfg["pyodide"].get("integrity", {}).get(name)
            got = _sri384(stage / name)
            if got != pinned:
                raise BuildError(f"{name}: {got} != runtime.json integrity {pinned} (the worker "
                                 "refuses files that do not match: update the pin with the version)")
        print("copying and checking wheels ...", flush=True)
        wheels = _wheels(cfg, lock, stage)
        print(f"npm pack {cfg['plotly']['npm']} ...", flush=True)
        _extract(_npm_pack(cfg["plotly"]["npm"], tmp), [cfg["plotly"]["file"]], stage)
        sri = _sri384(stage / cfg["plotly"]["file"])
        if sri != cfg["plotly"]["integrity"]:
            raise BuildError(f"{cfg['plotly']['file']}: {sri} != runtime.json integrity "
                             f"{cfg['plotly']['integrity']} (update the pin together with the version)")
        (stage / "BUILD.json").write_text(json.dumps(
            {"wanted": wanted, "wheels": wheels}, indent=1) + "\n")
        # Swap in whole, so an interrupted build never leaves a half runtime/ that "wins".
        old = tmp / "old"
        if RUNTIME.exists():
            RUNTIME.rename(old)
        shutil.move(str(stage), str(RUNTIME))
    size = sum(p.stat().st_size for p in RUNTIME.iterdir()) / 2**20
    print(f"built runtime/ ({size:.1f} MiB): {wanted['pyodide']}, {len(wheels)} wheels, {wanted['plotly']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        build(force=args.force, quiet=args.quiet)
    except BuildError as exc:
        print(f"build_runtime: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
