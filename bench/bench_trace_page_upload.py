#!/usr/bin/env python3
"""Trace mode in the page on a large uploaded trace: time, reading rate and memory.

    PYTHONPATH=py python bench/gen_trace.py 1000000 /tmp/t1e6.jsonl     # ~200 MB, not committed
    python bench/bench_trace_page_upload.py /tmp/t1e6.jsonl [--sampling 0.01] [--cpython]

Opens tests/browser/trace_harness.html (the trace tab standalone) in headless Chromium with
?trace.sampling=<rate> in the URL, uploads FILE through the file input (the tab hands the File
to the worker, which reads it by 1 MiB slices) and waits for the result. Prints:

  upload->drawn    wall time seen by Playwright, file chosen until the tab says done
  Python           kvcalc's analysis inside Pyodide (the worker's clock around the call)
  reading status   the last status Python posted: bytes read, requests, requests per second
  memory           peak resident memory (RSS, sampled every 0.2 s from /proc) of the Chromium
                   process holding the worker (the renderer), and of all Chromium processes
                   started by this script; the file size next to them. A page that held the
                   file would need at least its size again in the renderer (bytes + Python copy).

With --cpython, CPython's trace_analyze on the same file and rate is timed too (ratio).
Any request not to 127.0.0.1 fails the run. The machine is shared: run it with nice -n 10.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))
from trace_page_harness import HarnessError, open_trace_harness, wait_trace_state  # noqa: E402

MIB = 1 << 20


def _descendants(root_pid: int) -> dict[int, str]:
    """{pid: cmdline} of every process under root_pid (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            try:
                out[c] = Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            todo.append(c)
    return out


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRss(threading.Thread):
    """Peak RSS of Chromium's renderers and of all its processes, sampled every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_renderer = 0
        self.peak_total = 0

    def run(self):
        while not self.stop.is_set():
            procs = {p: c for p, c in _descendants(os.getpid()).items() if "chrom" in c}
            rss = {p: _rss_bytes(p) for p in procs}
            rend = [rss[p] for p, c in procs.items() if "--type=renderer" in c]
            self.peak_renderer = max(self.peak_renderer, max(rend, default=0))
            self.peak_total = max(self.peak_total, sum(rss.values()))
            self.stop.wait(0.2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--sampling", default="0.01", help="auto, exact or a rate (default 0.01)")
    ap.add_argument("--cpython", action="store_true", help="also time CPython's trace_analyze")
    ap.add_argument("--timeout-s", type=float, default=1800)
    args = ap.parse_args(argv)
    size = args.file.stat().st_size
    try:
        with open_trace_harness(f"?memory=none&trace.sampling={args.sampling}") as (page, blocked, _):
            mon = PeakRss()
            mon.start()
            time.sleep(0.5)
            idle_renderer = mon.peak_renderer
            t = time.perf_counter()
            page.set_input_files("input[type=file]", str(args.file))
            state = wait_trace_state(page, ("done", "error", "cancelled"), timeout_s=args.timeout_s, polling_ms=500)
            wall = time.perf_counter() - t
            mon.stop.set()
            mon.join()
            if state != "done":
                print("analysis failed:", page.inner_text("#trace-root")[:2000])
                return 2
            tm = page.evaluate("__trace.tab.timings")
            res = page.evaluate("({s: __trace.tab.result.sampling, d: __trace.tab.result.detection, "
                                "i: __trace.tab.result.ideal_token_hit_rate})")
    except HarnessError as exc:
        print(exc)
        return 2

    st = tm.get("status") or {}
    s = res["s"]
    print(f"trace {args.file.name}: {size / 1e6:.0f} MB, {res['d']['n_requests']} requests; "
          f"sampling={args.sampling} -> {s['mode']}, rate {s['rate']:.4g}, {s.get('sampled_references')} refs kept, "
          f"stated bound {s.get('error_bound_pp', 0):.2f} pp; ideal token hit rate {res['i']:.4f}")
    print(f"upload->drawn   {wall:8.1f} s")
    print(f"Python          {tm['pythonMs'] / 1e3:8.1f} s   (draw {tm['drawMs'] / 1e3:.2f} s)")
    if st:
        print(f"reading status  {st['bytes_read'] / MIB:.0f} of {st['bytes_total'] / MIB:.0f} MiB, "
              f"{st['requests']} requests, {st['requests_per_s']:.0f} requests/s over {st['elapsed_s']:.1f} s")
    print(f"memory          renderer peak {mon.peak_renderer / MIB:.0f} MiB (idle before upload "
          f"{idle_renderer / MIB:.0f} MiB, +{(mon.peak_renderer - idle_renderer) / MIB:.0f} MiB); all Chromium "
          f"processes {mon.peak_total / MIB:.0f} MiB; file {size / MIB:.0f} MiB")
    if args.cpython:
        from kvcalc.trace.api import trace_analyze
        rate = args.sampling if args.sampling in ("auto", "exact") else float(args.sampling)
        t = time.perf_counter()
        trace_analyze({"path": str(args.file), "sampling": rate, "model_curve": True})
        cp = time.perf_counter() - t
        print(f"CPython trace_analyze (same rate): {cp:.1f} s; Pyodide / CPython {tm['pythonMs'] / 1e3 / cp:.1f}x")
    if blocked:
        print("requests not to 127.0.0.1 (blocked):", *blocked, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
