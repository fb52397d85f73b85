#!/usr/bin/env python3
"""Mutation testing of the core with mutmut (pinned in the test extra); slow, not run in CI.

    nice -n 15 python3 scripts/mutate.py                      # every module of py/kvcalc (trace too)
    nice -n 15 python3 scripts/mutate.py benefit units        # some modules (names under py/kvcalc)
    python3 scripts/mutate.py benefit --tests tests/test_benefit.py tests/test_derived_values.py
    python3 scripts/mutate.py --issue-mutations               # the eight hand mutations of issue #10

Prints, per module: mutants, killed, survived, "no tests" (code no selected test runs),
timeouts/other, mutants listed as equivalent in tests/EQUIVALENT_MUTANTS.md, and the
score = (killed + timed out) / (mutants - equivalent); uncovered mutants count against it.
Survivors not listed as equivalent are printed by name (``--show`` prints their diffs).

Why a staging copy: mutmut 3 only imports mutated code from ./, src/ or source/
(mutmut/utils/file_utils.py: setup_source_paths) and names mutants after the file path
with a leading "src." stripped; our package lives under py/, which mutmut would call
"py.kvcalc..." while the tests import "kvcalc...", so it stops ("tests recorded trampoline
hits but none match any mutant key"). The script therefore copies py/kvcalc to
<workdir>/src/kvcalc with the tests, presets and data beside it and runs mutmut there;
the repository is never modified.

``--issue-mutations`` applies, one at a time in a copy of the repository, the eight
mistakes issue #10 found the old suite blind to, and runs the test written for each:
every line must say CAUGHT. (The issue's "request hit rate without the shared-prompt
factor h_s" proved right, by hand and by the simulator; the check is now that putting
h_s back is caught.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "py" / "kvcalc"
EQUIVALENT_FILE = ROOT / "tests" / "EQUIVALENT_MUTANTS.md"
# Fast, deterministic test files (the model-vs-simulator grid and the browser tests are too
# slow to run once per mutant; tests/test_derived_policies.py runs ~50 s).
DEFAULT_TESTS = ["tests/test_benefit.py", "tests/test_derived_values.py", "tests/test_derived_sweeps.py",
                 "tests/test_derived_hitrate_models.py",
                 "tests/test_hitrate.py", "tests/test_memory.py", "tests/test_presets.py", "tests/test_api.py",
                 "tests/test_trace.py", "tests/test_simulate.py", "tests/test_derived_errors.py"]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}

# (what the mistake is, file, exact text, replacement, test that must catch it)
ISSUE_MUTATIONS = [
    ("tornado low/high swapped (row values)", "py/kvcalc/sweeps.py",
     '"low_token_hit_rate": float(tok[i, 0]), "high_token_hit_rate": float(tok[i, 1])',
     '"low_token_hit_rate": float(tok[i, 1]), "high_token_hit_rate": float(tok[i, 0])',
     "tests/test_derived_values.py::test_tornado_low_side_is_the_lowered_parameter"),
    ("tornado low/high swapped (factors)", "py/kvcalc/sweeps.py",
     "lo_f, hi_f = 1.0 - change_fraction, 1.0 + change_fraction",
     "hi_f, lo_f = 1.0 - change_fraction, 1.0 + change_fraction",
     "tests/test_derived_values.py::test_tornado_low_side_is_the_lowered_parameter"),
    ("mean context weighted by the turn pmf", "py/kvcalc/memory_answer.py",
     "return float((ge * z).sum() / ge.sum())", "return float((pmf * z).sum() / pmf.sum())",
     "tests/test_derived_values.py::test_mean_context_is_per_request"),
    ("cache_capacity_gib divided by 1e9", "py/kvcalc/assemble.py",
     'result["cache_capacity_gib"] = tokens_to_gib(float(capacity), bpt)',
     'result["cache_capacity_gib"] = float(capacity) * bpt / 1e9',
     "tests/test_derived_values.py::test_cache_capacity_gib_is_binary"),
    ("batch-means CI 5x narrower", "py/kvcalc/simulate.py",
     "* sd / math.sqrt(m)", "* sd / math.sqrt(m) / 5",
     "tests/test_derived_values.py::test_batch_means_ci_width_matches_seed_to_seed_spread"),
    ("fitted user tokens doubled", "py/kvcalc/trace/stats.py",
     "user = float(np.maximum(new, 0.0).mean())", "user = 2 * float(np.maximum(new, 0.0).mean())",
     "tests/test_derived_values.py::test_fitted_user_tokens_by_hand"),
    ("GPU-seconds saved without the rate factor", "py/kvcalc/benefit.py",
     '"prefill_gpu_seconds_saved_per_s": requests_per_s * (gpu_s_per_request_miss - gpu_s_per_request_hit)',
     '"prefill_gpu_seconds_saved_per_s": (gpu_s_per_request_miss - gpu_s_per_request_hit)',
     "tests/test_derived_values.py::test_gpu_seconds_saved_scale_with_the_request_rate"),
    ("occupancy free blocks ignore pinned", "py/kvcalc/assemble.py",
     'used = sum((out[f"{p}_blocks"] or 0.0) for p in parts)',
     'used = sum((out[f"{p}_blocks"] or 0.0) for p in parts[1:])',
     "tests/test_derived_values.py::test_occupancy_by_littles_law_under_ttl"),
    ("occupancy free blocks = capacity", "py/kvcalc/assemble.py",
     "free = cap - used", "free = cap",
     "tests/test_derived_values.py::test_occupancy_by_littles_law_under_ttl"),
    # The issue's "request hit rate without h_s" was no mistake: the hand value and the
    # simulator agree with the rate without it (commit 6eb366f dropped it). The mutation is
    # now the other way: weighing own-history hits by h_s again must be caught.
    ("request hit rate weighed by h_s (refined)", "py/kvcalc/hitrate/refined.py",
     "req = own_any / st.EN", "req = x.hs * own_any / st.EN",
     "tests/test_derived_values.py::test_model_request_hit_rate_under_ttl_by_hand"),
]


def _copy_tree(dst: Path, layout_src: bool, tests: list[str]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "browser")
    if layout_src:
        shutil.copytree(PKG, dst / "src" / "kvcalc", ignore=ignore)
    else:
        shutil.copytree(ROOT / "py", dst / "py", ignore=ignore)
    (dst / "tests").mkdir()
    for f in (ROOT / "tests").iterdir():
        if f.is_file():
            shutil.copy2(f, dst / "tests" / f.name)
    for sub in ("data", "fixtures"):   # tests read their data and config.json fixtures from here
        if (ROOT / "tests" / sub).is_dir():
            shutil.copytree(ROOT / "tests" / sub, dst / "tests" / sub)
    for d in ("presets", "data", "i18n"):
        if (ROOT / d).is_dir():
            shutil.copytree(ROOT / d, dst / d)


def _toml_list(xs) -> str:
    return "[" + ", ".join(json.dumps(str(x)) for x in xs) + "]"


def _equivalents() -> dict[str, str]:
    """Mutant name -> reason, from lines "- `kvcalc.mod.x_f__mutmut_3`: reason"."""
    out = {}
    if EQUIVALENT_FILE.is_file():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            m = re.match(r"\s*[-*]\s*`([^`]+)`\s*[:\-]?\s*(.*)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _module_of(path: Path, base: Path) -> str:
    return str(path.relative_to(base))[: -len(".py.meta")].replace(os.sep, ".")


def run_mutmut(modules: list[str], tests: list[str], max_children: int, workdir: Path | None,
               show: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="kvcalc-mutmut-")) if workdir is None else workdir
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    _copy_tree(work, True, tests)
    only = [f"src/kvcalc/{m.replace('.', '/')}.py" for m in modules] if modules else []
    missing = [o for o in only if not (work / o).is_file()]
    if missing:
        print("no such module:", ", ".join(missing), file=sys.stderr)
        return 2
    present = [t for t in tests if (work / t.split("::")[0]).is_file()]   # files or test node ids
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["src/kvcalc"]\n'
        + (f"only_mutate = {_toml_list(only)}\n" if only else "")
        + f'also_copy = ["presets", "data", "i18n", "tests/data", "tests/fixtures"]\n'
        f"pytest_add_cli_args_test_selection = {_toml_list(present)}\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly"]\n'
        "use_git_change_detection = false\n"
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n')
    print(f"mutmut in {work} on {', '.join(only) or 'src/kvcalc (all)'}; tests: {' '.join(present)}", flush=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    mutmut = [sys.executable, "-m", "mutmut"]
    with open(work / "mutmut-run.log", "w") as log:   # its progress spinner, kept out of the report
        proc = subprocess.run([*mutmut, "run", "--max-children", str(max_children)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    tail = (work / "mutmut-run.log").read_text(errors="replace").strip().splitlines()
    print(f"mutmut run exited {proc.returncode}; {tail[-1] if tail else ''} (log: {work / 'mutmut-run.log'})")
    base = work / "mutants" / "src"
    equivalent = _equivalents()
    print(f"\n{'module':28s} {'mutants':>7s} {'killed':>6s} {'survived':>8s} {'no tests':>8s} {'other':>5s} "
          f"{'equiv':>5s} {'score':>6s}")
    survivors = []
    for meta in sorted(base.rglob("*.py.meta")):
        mod = _module_of(meta, base)
        if only and f"src/{mod.replace('.', '/')}.py" not in only:
            continue
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        count = Counter(STATUS.get(c, "suspicious") for c in codes.values())
        surv = sorted(k for k, c in codes.items() if STATUS.get(c, "suspicious") == "survived")
        eq = [k for k in surv if k in equivalent]
        survivors += [k for k in surv if k not in equivalent]
        n, killed = len(codes), count["killed"]
        denom = n - len(eq)
        score = (killed + count["timeout"]) / denom if denom else 1.0   # a mutant that hangs the tests is caught
        other = n - killed - count["survived"] - count["no tests"]
        print(f"{mod:28s} {n:7d} {killed:6d} {count['survived']:8d} {count['no tests']:8d} {other:5d} "
              f"{len(eq):5d} {score:6.1%}")
    if survivors:
        print(f"\n{len(survivors)} surviving mutants not listed in tests/EQUIVALENT_MUTANTS.md:")
        for name in survivors:
            print("  ", name)
            if show:
                subprocess.run([*mutmut, "show", name], cwd=work, env=env)
    print(f"\nworking copy kept in {work} (cd there and run `python -m mutmut browse` to inspect)")
    return 0


def run_issue_mutations() -> int:
    missed = 0
    with tempfile.TemporaryDirectory(prefix="kvcalc-issue-mutations-") as tmp:
        work = Path(tmp)
        _copy_tree(work, False, [])
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for name, rel, old, new, test in ISSUE_MUTATIONS:
            path = work / rel
            src = path.read_text()
            if src.count(old) != 1:
                print(f"STALE   {name}: the text to mutate is no longer in {rel} (update ISSUE_MUTATIONS)")
                missed += 1
                continue
            path.write_text(src.replace(old, new))
            try:
                p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
                                   cwd=work, env=env, capture_output=True, text=True)
            finally:
                path.write_text(src)
            last = (p.stdout.strip().splitlines() or [""])[-1]
            caught = p.returncode == 1
            missed += not caught
            print(f"{'CAUGHT' if caught else 'MISSED'}  {name:42s} {test.split('::')[-1]}  [{last}]", flush=True)
    return 1 if missed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", help="modules under py/kvcalc, e.g. benefit trace.stats (default: all)")
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="test files (or node ids file::test) mutmut runs")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="where the staging copy goes (default: a new temp dir)")
    ap.add_argument("--show", action="store_true", help="print the diff of every unlisted survivor")
    ap.add_argument("--issue-mutations", action="store_true", help="check issue #10's eight mutations")
    args = ap.parse_args(argv)
    if args.issue_mutations:
        return run_issue_mutations()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is missing: pip install -e .[test]", file=sys.stderr)
        return 2
    return run_mutmut(args.modules, args.tests, args.max_children, args.workdir, args.show)


if __name__ == "__main__":
    sys.exit(main())
