#!/usr/bin/env python3
"""Cold page loads in headless Chromium: how much the page adds to Pyodide's own start-up.

    python bench/bench_page_load.py [--runs 5] [--page index.html] [--loaders] [--breakdown]

Each load gets a new browser context (empty HTTP cache, so no cached wasm either) with the
cache also disabled through CDP, from the local runtime/ on a 127.0.0.1 server. Prints medians:

  bare      bench/bare.html: loadPyodide + loadPackage numpy + import numpy in a module worker
  page      --page opened -> first compute result; the page must set
            window.__kvcalcFirstResultMs = performance.now() when its first result is shown
            (tests/browser/harness.html?autorun=... does; index.html should too)
  ratio     page / bare (target <= 1.3)

--breakdown prints, per run and as medians, when each start-up step ended (ms since
navigation): for bare, its worker's steps; for the page, the compute worker's (the marks in
its ready message, js/worker-runtime.js), when the page created the worker, when the ready
message and the first reply arrived, and the first reply's Python time.

--loaders also compares two ways to get kvcalc into Pyodide after numpy: fetch its files and
write them into the FS (what the worker does) vs micropip.install of a wheel (deps=False).
Any request that is not to 127.0.0.1 is reported and fails the run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_runtime  # noqa: E402
import serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# a request the real kvcalc.api answers (model and GPU presets from presets/)
DEFAULT_PAGE = ("tests/browser/harness.html?autorun="
                + quote(json.dumps({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb"})))


def build_wheel() -> Path:
    """A pure-Python wheel of py/kvcalc in runtime/bench/ (for the micropip comparison only)."""
    out = ROOT / "runtime" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / "kvcalc-0.1.0-py3-none-any.whl"
    dist = "kvcalc-0.1.0.dist-info"
    files = {p.relative_to(ROOT / "py").as_posix(): p.read_bytes()
             for p in sorted((ROOT / "py" / "kvcalc").rglob("*.py")) if "__pycache__" not in p.parts}
    files[f"{dist}/METADATA"] = b"Metadata-Version: 2.1\nName: kvcalc\nVersion: 0.1.0\n"
    files[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


# --breakdown: the page's side of the worker's start-up, recorded by wrapping Worker (times in
# ms since navigation; the worker's marks are epoch ms, converted with this page's time origin)
PROBE = r"""
(() => {
  const W = window.Worker;
  const probe = window.__probe = { created: null, ready: null, marks: null, reply: null, pythonMs: null };
  window.Worker = function (url, opts) {
    const w = new W(url, opts);
    if (probe.created === null) probe.created = performance.now();
    w.addEventListener("message", ({ data }) => {
      if (!data) return;
      if (data.type === "event:ready" && probe.ready === null) {
        probe.ready = performance.now();
        probe.marks = Object.fromEntries(Object.entries(data.marks || {})
          .map(([k, v]) => [k, v - performance.timeOrigin]));
      }
      if (data.type === "reply" && probe.reply === null) { probe.reply = performance.now(); probe.pythonMs = data.ms; }
    });
    return w;
  };
  window.Worker.prototype = W.prototype;
})();
"""
PROBE_READ = ("window.__probe ? {created: window.__probe.created, ...window.__probe.marks, "
              "ready_received: window.__probe.ready, first_reply: window.__probe.reply, "
              "first_python_ms: window.__probe.pythonMs} : null")
BARE_READ = "window.__bare ? {created: window.__bare.workerCreatedMs, ...window.__bare.marks} : null"


def cold_load(browser, url: str, expr: str, timeout_ms: int = 120_000, breakdown: str | None = None):
    ctx = browser.new_context(bypass_csp=True)  # index.html's CSP blocks wait_for_function's eval
    if breakdown == "page":
        ctx.add_init_script(PROBE)
    remote: list[str] = []

    def note(request):
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and parts.hostname != "127.0.0.1":
            remote.append(request.url)

    ctx.on("request", note)
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        page.goto(url)
        page.wait_for_function(f"({expr}) || (window.__bare && window.__bare.error) || "
                               "(window.__harness && window.__harness.fatal)", timeout=timeout_ms)
        value = page.evaluate(f"({expr})")
        if value is None:
            problem = page.evaluate("(window.__bare && window.__bare.error) || "
                                    "(window.__harness && JSON.stringify(window.__harness.fatal))")
            raise RuntimeError(f"{url}: {problem}")
        extra = page.evaluate("window.__harness ? {ready: window.__harness.ready, "
                              "first: window.__harness.firstResult && (window.__harness.firstResult.status === 'ok' ? 'ok' : "
                              "JSON.stringify(window.__harness.firstResult))} : "
                              "window.__bare")
        if breakdown:
            steps = page.evaluate(PROBE_READ if breakdown == "page" else BARE_READ) or {}
            steps["first_result"] = value
            extra = {**(extra or {}), "steps": {k: round(v) for k, v in steps.items() if isinstance(v, (int, float))}}
    finally:
        ctx.close()
    if remote:
        raise RuntimeError(f"{url} made non-local requests: {remote[:5]}")
    return value, extra


def median_ms(values) -> str:
    return f"{statistics.median(values) / 1000:.2f} s (n={len(values)}, " \
           f"min {min(values) / 1000:.2f}, max {max(values) / 1000:.2f})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--page", default=DEFAULT_PAGE,
                    help="page to time, relative to the repo root (default: %(default)s)")
    ap.add_argument("--expr", default="window.__kvcalcFirstResultMs",
                    help="JS expression that becomes the first-result time in ms")
    ap.add_argument("--breakdown", action="store_true",
                    help="print when each start-up step ended, for bare and the page")
    ap.add_argument("--loaders", action="store_true",
                    help="also compare FS writes vs micropip wheel install for kvcalc")
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    build_runtime.build(quiet=True)
    wheel = build_wheel() if args.loaders else None
    srv = serve.serve_in_thread(root=ROOT, port=0)
    base = f"http://127.0.0.1:{srv.server_port}/"
    results: dict[str, list[float]] = {"bare": [], "page": [], "files": [], "wheel": []}
    steps: dict[str, dict[str, list[float]]] = {"bare": {}, "page": {}}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            cold_load(browser, base + "bench/bare.html", "window.__bare.numpyMs")  # warm the OS
            for i in range(args.runs):
                # interleaved, so drift in machine load hits both alike
                bd = args.breakdown
                bare, bare_extra = cold_load(browser, base + "bench/bare.html", "window.__bare.numpyMs",
                                             breakdown="bare" if bd else None)
                page, extra = cold_load(browser, base + args.page, args.expr, breakdown="page" if bd else None)
                results["bare"].append(bare)
                results["page"].append(page)
                line = f"run {i + 1}: bare {bare / 1000:.2f} s, page {page / 1000:.2f} s"
                if extra and extra.get("ready"):
                    line += f"  (worker stages {extra['ready']['timings']}, first reply {extra['first']})"
                print(line, flush=True)
                if bd:
                    for who, ex in (("bare", bare_extra), ("page", extra)):
                        row = ex.get("steps", {})
                        for k, v in row.items():
                            steps[who].setdefault(k, []).append(v)
                        print(f"  {who}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
                if args.loaders:
                    for loader in ("files", "wheel"):
                        q = f"bench/bare.html?loader={loader}&wheel={base}runtime/bench/{wheel.name}"
                        _, bare_extra = cold_load(browser, base + q, "window.__bare.kvcalcMs")
                        results[loader].append(bare_extra["loaderMs"])
            browser.close()
    finally:
        srv.shutdown()
    bare_m = statistics.median(results["bare"])
    page_m = statistics.median(results["page"])
    print(f"\nbare Pyodide + numpy in a worker : {median_ms(results['bare'])}")
    print(f"page -> first compute result    : {median_ms(results['page'])}  [{args.page}]")
    print(f"ratio page / bare               : {page_m / bare_m:.2f}x (target <= 1.3x)")
    if args.breakdown:
        for who in ("bare", "page"):
            print(f"{who} steps, median ms since navigation (spread):")
            for k, v in steps[who].items():
                print(f"  {k:22} {statistics.median(v):7.0f}  ({min(v):.0f}-{max(v):.0f})")
    if args.loaders:
        for loader, label in (("files", "kvcalc via FS writes (+import)"),
                              ("wheel", "kvcalc via micropip wheel (+import)")):
            ms = results[loader]
            print(f"{label:33}: median {statistics.median(ms):.0f} ms "
                  f"(min {min(ms):.0f}, max {max(ms):.0f}) after numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
