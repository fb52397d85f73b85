#!/usr/bin/env python3
"""Trace mode in the page on a large uploaded trace: time, reading rate and memory.

    PYTHONPATH=py python bench/gen_trace.py 1000000 /tmp/t1e6.jsonl     # ~200 MB, not committed
    python bench/bench_trace_page_upload.py /tmp/t1e6.jsonl [--sampling 0.01] [--runs 5] [--cpython]
    python bench/bench_trace_page_upload.py /tmp/t1e6.jsonl --read-only 3        # slices vs File.stream()
    python bench/bench_trace_page_upload.py /tmp/t1e6.jsonl --cancel-after-s 10  # Cancel mid-file

Each run opens tests/browser/trace_harness.html (the trace tab standalone) in a fresh headless
Chromium page with ?trace.sampling=<rate> in the URL, waits for the worker to be ready, uploads
FILE through the file input (the tab hands the File to the worker, which reads it by 1 MiB
slices) and waits for the result. Prints medians and ranges over the runs of:

  upload->drawn    wall time seen by Playwright, file chosen until the tab says done; split into
                   set_input_files (Playwright handing the file over), the tab's own clock (what
                   its closing note says), Python (the worker's clock around the call), drawing
  reading status   the last status Python posted: bytes read, requests, requests per second
  memory           peak resident memory (RSS, sampled every 0.2 s from /proc) of the Chromium
                   renderer (it holds the worker and its wasm heap, which never shrinks), over
                   its idle size before the upload, and of all Chromium processes; the page's
                   main-thread JS heap; the file size next to them. A page that held the file
                   would need at least its size again in the renderer (bytes + Python copy).

--read-only times reading the file in a bare worker without Python, by File.slice +
FileReaderSync (what the tab does) and by File.stream().getReader(). --cancel-after-s presses
Cancel mid-file and times the restart, then analyses a sample. With --cpython, CPython's
trace_analyze on the same file and rate is timed too (ratio). Any request not to 127.0.0.1
fails the run. The machine is shared: run it with nice -n 10.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def one_run(file: Path, sampling: str, timeout_s: float) -> dict:
    """One fresh page: upload the file, wait for the curve, return the figures of the run."""
    with open_trace_harness(f"?memory=none&trace.sampling={sampling}") as (page, blocked, _):
        mon = PeakRss()
        mon.start()
        time.sleep(0.5)
        idle_renderer = mon.peak_renderer
        heap0 = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        t = time.perf_counter()
        page.set_input_files("input[type=file]", str(file))
        t_set = time.perf_counter() - t
        state = wait_trace_state(page, ("done", "error", "cancelled"), timeout_s=timeout_s, polling_ms=500)
        wall = time.perf_counter() - t
        mon.stop.set()
        mon.join()
        if state != "done":
            raise HarnessError("analysis failed: " + page.inner_text("#trace-root")[:2000])
        tm = page.evaluate("__trace.tab.timings")
        heap1 = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        res = page.evaluate("({s: __trace.tab.result.sampling, d: __trace.tab.result.detection, "
                            "i: __trace.tab.result.ideal_token_hit_rate})")
        closing = page.inner_text(".kvt-status-text")
        return {"wall": wall, "set_files": t_set, "in_page": tm["totalMs"] / 1e3, "python": tm["pythonMs"] / 1e3,
                "call": tm["callMs"] / 1e3, "draw": tm["drawMs"] / 1e3, "status": tm.get("status") or {},
                "renderer_peak": mon.peak_renderer, "renderer_idle": idle_renderer, "all_peak": mon.peak_total,
                "page_heap": (heap0, heap1), "res": res, "blocked": list(blocked), "closing": closing}


READ_WORKER = r"""
self.onmessage = async (e) => {
  const { file, how, chunk } = e.data;
  const t0 = performance.now();
  let n = 0, bytes = 0, newlines = 0;
  const count = (u8) => { bytes += u8.length; n += 1; for (let i = 0; i < u8.length; i += 4096) if (u8[i] === 10) newlines++; };
  if (how === "slices") {
    for (let off = 0; off < file.size; off += chunk) {
      count(new Uint8Array(new FileReaderSync().readAsArrayBuffer(file.slice(off, off + chunk))));
    }
  } else {
    const reader = file.stream().getReader();
    for (;;) { const { done, value } = await reader.read(); if (done) break; count(value); }
  }
  self.postMessage({ how, ms: performance.now() - t0, chunks: n, bytes, newlines });
};
"""


def read_only(file: Path, rounds: int) -> None:
    """Reading the file in a bare worker, without Python: File.slice + FileReaderSync by 1 MiB (what
    the tab does) against File.stream().getReader() (the chunks the browser hands out)."""
    with open_trace_harness("?memory=none") as (page, blocked, _):
        page.evaluate("""() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'bench-file';
                                 document.body.append(i); }""")
        page.set_input_files("#bench-file", str(file))
        rows = {"slices": [], "stream": []}
        for _ in range(rounds):
            for how in ("slices", "stream"):
                r = page.evaluate("""([code, how]) => new Promise((resolve) => {
                    const w = new Worker(URL.createObjectURL(new Blob([code], {type: 'text/javascript'})));
                    w.onmessage = (e) => { w.terminate(); resolve(e.data); };
                    w.postMessage({file: document.getElementById('bench-file').files[0], how, chunk: 1 << 20});
                })""", [READ_WORKER, how])
                rows[how].append(r)
        for how, rs in rows.items():
            ms = [r["ms"] for r in rs]
            print(f"read {file.stat().st_size / MIB:.0f} MiB in a worker by {how:6s}: median {statistics.median(ms) / 1e3:.2f} s "
                  f"[{min(ms) / 1e3:.2f} .. {max(ms) / 1e3:.2f}] over {len(ms)} rounds, {rs[0]['chunks']} chunks of "
                  f"{rs[0]['bytes'] / rs[0]['chunks'] / 1024:.0f} KiB on average")


def cancel_run(file: Path, sampling: str, after_s: float) -> None:
    """Upload, let it read for after_s seconds, press Cancel: how long until the tab says cancelled
    (the worker is terminated and restarted), and whether a sample then analyses."""
    with open_trace_harness(f"?memory=none&trace.sampling={sampling}") as (page, blocked, _):
        page.set_input_files("input[type=file]", str(file))
        time.sleep(after_s)
        shown = page.inner_text(".kvt-status-text")
        t = time.perf_counter()
        page.click("button.kvt-cancel")
        state = wait_trace_state(page, ("cancelled", "done", "error"), timeout_s=120, polling_ms=100)
        t_state = time.perf_counter() - t
        page.wait_for_function("document.querySelector('.kvt-status-text').textContent !== ''"
                               " && !document.querySelector('.kvt-cancel').offsetParent", timeout=120_000)
        page.wait_for_function("window.__trace.client && true", timeout=1000)
        t0 = time.perf_counter()
        page.click("button[data-sample=synthetic]")
        again = wait_trace_state(page, ("done", "error"), timeout_s=300, polling_ms=100)
        print(f"status after {after_s:g} s: {shown!r}")
        print(f"cancel -> state {state!r} in {t_state:.2f} s; status now {page.inner_text('.kvt-status-text')!r}")
        print(f"then the synthetic sample: {again} in {time.perf_counter() - t0:.1f} s (includes the new worker's start-up)")


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):8.1f}   [{min(xs):.1f} .. {max(xs):.1f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--sampling", default="0.01", help="auto, exact or a rate (default 0.01)")
    ap.add_argument("--runs", type=int, default=1, help="runs, each in a fresh page (medians and ranges printed)")
    ap.add_argument("--cpython", action="store_true", help="also time CPython's trace_analyze")
    ap.add_argument("--timeout-s", type=float, default=1800)
    ap.add_argument("--read-only", type=int, default=0, metavar="ROUNDS",
                    help="only time reading the file in a bare worker: slices vs File.stream(), ROUNDS rounds")
    ap.add_argument("--cancel-after-s", type=float, default=0, metavar="S",
                    help="only check Cancel: press it S seconds after the upload, then analyse a sample")
    args = ap.parse_args(argv)
    size = args.file.stat().st_size
    if args.read_only:
        read_only(args.file, args.read_only)
        return 0
    if args.cancel_after_s:
        cancel_run(args.file, args.sampling, args.cancel_after_s)
        return 0
    runs = []
    try:
        for i in range(args.runs):
            r = one_run(args.file, args.sampling, args.timeout_s)
            runs.append(r)
            print(f"run {i + 1}: upload->drawn {r['wall']:.1f} s (in the tab {r['in_page']:.1f} s, Python {r['python']:.1f} s), "
                  f"renderer +{(r['renderer_peak'] - r['renderer_idle']) / MIB:.0f} MiB", flush=True)
    except HarnessError as exc:
        print(exc)
        return 2

    last = runs[-1]
    s, st = last["res"]["s"], last["status"]
    print(f"trace {args.file.name}: {size / 1e6:.0f} MB, {last['res']['d']['n_requests']} requests; "
          f"sampling={args.sampling} -> {s['mode']}, rate {s['rate']:.4g}, {s.get('sampled_references')} refs kept, "
          f"stated bound {s.get('error_bound_pp', 0):.2f} pp; ideal token hit rate {last['res']['i']:.4f}")
    print(f"{len(runs)} run(s), each in a fresh page; median [min .. max]")
    print(f"upload->drawn   {_spread([r['wall'] for r in runs])} s   (Playwright: set_input_files until the tab says done)")
    print(f"  set_input_files {_spread([r['set_files'] for r in runs])} s   (Playwright handing the file to Chromium: "
          "not seen by a user)")
    print(f"  in the tab    {_spread([r['in_page'] for r in runs])} s   (file chosen -> drawn, the tab's clock: "
          "what the closing note says)")
    print(f"  Python        {_spread([r['python'] for r in runs])} s   (the worker's clock around the call)")
    print(f"  draw          {_spread([r['draw'] for r in runs])} s")
    if st:
        print(f"reading status  {st['bytes_read'] / MIB:.0f} of {st['bytes_total'] / MIB:.0f} MiB, "
              f"{st['requests']} requests, {st['requests_per_s']:.0f} requests/s over {st['elapsed_s']:.1f} s (last run)")
    print(f"memory          renderer peak {_spread([r['renderer_peak'] / MIB for r in runs])} MiB; over idle "
          f"{_spread([(r['renderer_peak'] - r['renderer_idle']) / MIB for r in runs])} MiB; all Chromium processes "
          f"{_spread([r['all_peak'] / MIB for r in runs])} MiB; file {size / MIB:.0f} MiB")
    h0, h1 = last["page_heap"]
    if h0 is not None:
        print(f"page JS heap    {h0 / MIB:.0f} MiB before, {h1 / MIB:.0f} MiB after (main thread; the file is never "
              "read there)")
    print(f"closing note    {last['closing']}")
    if args.cpython:
        from kvcalc.trace.api import trace_analyze
        rate = args.sampling if args.sampling in ("auto", "exact") else float(args.sampling)
        t = time.perf_counter()
        trace_analyze({"path": str(args.file), "sampling": rate, "model_curve": True})
        cp = time.perf_counter() - t
        py = statistics.median(r["python"] for r in runs)
        print(f"CPython trace_analyze (same rate): {cp:.1f} s; Pyodide / CPython {py / cp:.1f}x")
    blocked = sorted({u for r in runs for u in r["blocked"]})
    if blocked:
        print("requests not to 127.0.0.1 (blocked):", *blocked, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
