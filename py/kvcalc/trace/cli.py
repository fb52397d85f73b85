"""``python -m kvcalc trace FILE [options]``: statistics and the exact hit-rate curve of a trace.

``main(argv)`` takes the arguments after ``trace``; it returns 0, or 2 after
printing the error to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..errors import InputError
from .api import trace_analyze

__all__ = ["main", "build_parser"]


def _capacities(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r}") from None
        if value < 0 or value != int(value):
            raise argparse.ArgumentTypeError(f"not a whole number of blocks >= 0: {part!r}")
        out.append(int(value))
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit code 2 through main(), not SystemExit
        raise InputError("arguments", " ".join(sys.argv[1:])[:80], self.format_usage().strip(), message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m kvcalc trace",
                description="Exact LRU prefix-cache hit-rate curve and statistics of a request trace.")
    p.add_argument("file", help="trace file: .jsonl or .jsonl.gz (Mooncake, Bailian or generic)")
    p.add_argument("--format", default="auto", choices=["auto", "mooncake", "bailian", "generic"])
    p.add_argument("--chain", default="auto", choices=["auto", "verify", "rechain"],
                   help="verify prefix-chained ids or re-chain them (auto: re-chain Bailian only)")
    p.add_argument("--block-size", type=int, default=None, metavar="N", help="block size in tokens")
    p.add_argument("--capacities", type=_capacities, default=[], metavar="C1,C2,...",
                   help="capacities in blocks to report exactly")
    p.add_argument("--warmup", type=float, default=0.0, metavar="F",
                   help="share of first requests replayed but not counted (default 0)")
    p.add_argument("--partial-blocks", action="store_true",
                   help="count and cache the partial last block too (default: full blocks only, as vLLM)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip and count bad lines")
    p.add_argument("--fifo", action="store_true", help="also replay FIFO at the capacities")
    p.add_argument("--max-points", type=int, default=400, help="curve grid points (default 400)")
    p.add_argument("--sample", default="auto", metavar="auto|exact|RATE",
                   help="auto (default: exact up to 256 MiB of trace, SHARDS sampling above), exact, "
                        "or a sampling rate in (0, 1], e.g. 0.01")
    p.add_argument("--sample-max-refs", type=int, default=None, metavar="N",
                   help="fixed-size sampling: halve the rate whenever more than N references are kept")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling hash (default 0)")
    p.add_argument("--max-bytes", type=int, default=None, metavar="B",
                   help="refuse traces larger than B decompressed bytes (default 8 GiB)")
    p.add_argument("--max-lines", type=int, default=None, metavar="N", help="refuse traces of more lines")
    p.add_argument("--max-line-bytes", type=int, default=None, metavar="B",
                   help="a longer line is a bad line (default 8 MiB)")
    p.add_argument("--max-requests", type=int, default=None, metavar="N", help="read at most N requests")
    p.add_argument("--keep-partial", action="store_true",
                   help="if the file breaks (truncated gzip, a limit, a bad line), analyse what was read")
    p.add_argument("--progress", action="store_true", help="print reading progress to stderr")
    p.add_argument("--instances", type=int, default=None, metavar="K",
                   help="replay across K instances, each of the capacity (cluster.instances)")
    p.add_argument("--routing", default="affinity", choices=["affinity", "random", "round_robin", "pooled"],
                   help="routing across instances (default affinity: by session, else by first block)")
    p.add_argument("--tier", action="append", default=[], metavar="NAME:TOKENS[:GB_PER_S]",
                   help="an exclusive cache tier per instance, fastest first (repeat: --tier gpu:3e6:1000 "
                        "--tier cpu:2e7:50)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--csv", action="store_true", help="print the curve as CSV")
    return p


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:6.2f} %"


def _num(x, fmt="{:.4g}") -> str:
    return "-" if x is None else fmt.format(x)


def _sampled_report(res: dict) -> str:
    det, st, cv, sm = res["detection"], res["stats"], res["curve"], res["sampling"]
    bs = det["block_size_tokens"]
    lines = [
        f"format: {det['format']} ({det['format_source']}); block size {bs} tokens ({det['block_size_source']})",
        f"requests: {st['n_requests']} over {st['duration_s']:.1f} s ({_num(st['arrival_rate_per_s'])} req/s); "
        f"blocks: {st['n_blocks_total']}" + ("; TRUNCATED at max_requests" if det.get("truncated") else ""),
        f"SAMPLED: {sm['method']}; rate {100 * sm['rate']:.4g} % ({sm['sampled_references']} references kept); "
        f"{sm['why']}",
        f"error estimate: +/- {sm['error_bound_pp']:.2f} pp at worst (|bias| + 3 standard errors), "
        f"{sm['error_mean_pp']:.2f} pp mean (bias and standard error)",
        *( [f"WARNING: {sm['warning']}"] if sm.get("warning") else [] ),
        "input tokens:  mean {} p50 {} p90 {} p99 {}".format(*(_num(st['input_tokens'][k], '{:.0f}')
                                                              for k in ('mean', 'p50', 'p90', 'p99'))),
        "",
        f"counting rule: {res['counting_rule']}",
        f"ideal (infinite cache): block hit {_pct(res['ideal_block_hit_rate'])}, "
        f"token hit {_pct(res['ideal_token_hit_rate'])}",
        "",
        f"{'capacity_blocks':>16} {'capacity_tokens':>16} {'block_hit':>10} {'token_hit':>10}",
    ]
    lines += _rows(res, bs)
    lines += _fleet_report(res)
    if det.get("stopped"):
        lines.append(f"STOPPED EARLY: {det['stopped']['message']}")
    return "\n".join(lines)


def _rows(res: dict, bs: int) -> list[str]:
    cv = res["curve"]
    if res["capacities"]:
        return [f"{r['capacity_blocks']:>16} {r['capacity_blocks'] * bs:>16} {_pct(r['block_hit_rate']):>10} "
                f"{_pct(r['token_hit_rate']):>10}" + ("  (beyond the trace: its ceiling)" if r.get("beyond_trace") else "")
                for r in res["capacities"]]
    else:
        caps = np.asarray(cv["capacities_blocks"])
        pick = np.unique(np.searchsorted(caps, np.geomspace(1, max(caps[-1], 1), 16), side="right") - 1)
        rows = [(cv["capacities_blocks"][i], cv["block_hit_rate"][i], cv["token_hit_rate"][i]) for i in pick]
    return [f"{c:>16} {c * bs:>16} {_pct(b):>10} {_pct(t):>10}" for c, b, t in rows]


def _text_report(res: dict) -> str:
    if res.get("sampling", {}).get("mode") == "sampled":
        return _sampled_report(res)
    det, st, cv = res["detection"], res["stats"], res["curve"]
    bs = det["block_size_tokens"]
    lines = [
        f"format: {det['format']} ({det['format_source']}); block size {bs} tokens ({det['block_size_source']}); "
        f"ids: {det['chaining']}" + ("" if det["ids_prefix_chained"] else " [raw ids were not prefix-chained]"),
        f"requests: {st['n_requests']} over {st['duration_s']:.1f} s ({_num(st['arrival_rate_per_s'])} req/s); "
        f"blocks: {st['n_blocks_total']} ({st['n_blocks_unique']} distinct)"
        + ("; TRUNCATED at max_requests" if det.get("truncated") else ""),
    ]
    if det.get("bad_lines_skipped"):
        lines.append(f"bad lines skipped: {det['bad_lines_skipped']} {det['bad_lines_by_reason']}")
    ss = st["sessions"]
    rps = ss["requests_per_session"]
    lines += [
        f"sessions: {ss['n_sessions']} ({ss['source']}); requests/session mean {_num(rps['mean'])}, "
        f"p90 {_num(rps['p90'])}, max {_num(rps['max'])}",
        "input tokens:  mean {} p50 {} p90 {} p99 {}".format(*(_num(st['input_tokens'][k], '{:.0f}')
                                                              for k in ('mean', 'p50', 'p90', 'p99'))),
        "output tokens: mean {} p50 {} p90 {} p99 {}".format(*(_num(st['output_tokens'][k], '{:.0f}')
                                                              for k in ('mean', 'p50', 'p90', 'p99'))),
        f"reuse gap of a block: p50 {_num(st['reuse_gap_s']['p50'])} s, p90 {_num(st['reuse_gap_s']['p90'])} s; "
        f"turn gap: p50 {_num(st['turn_gap_s']['p50'])} s",
        f"shared-prefix token share: {_pct(st['shared_prefix_token_share'])}; "
        f"most common shared prefix: {st['system_prompt_tokens']} tokens",
        "",
        f"counting rule: {res['counting_rule']}",
        f"ideal (infinite cache): block hit {_pct(res['ideal_block_hit_rate'])}, "
        f"token hit {_pct(res['ideal_token_hit_rate'])}, reached at {cv['saturation_capacity_blocks']} blocks",
        "",
        f"{'capacity_blocks':>16} {'capacity_tokens':>16} {'block_hit':>10} {'token_hit':>10}",
    ]
    lines += _rows(res, bs)
    if det.get("stopped"):
        lines.append(f"STOPPED EARLY: {det['stopped']['message']}")
    if "fifo" in res:
        lines += ["", "FIFO (replay):"]
        for r in res["fifo"]:
            lines.append(f"{r['capacity_blocks']:>16} {r['capacity_blocks'] * bs:>16} "
                         f"{_pct(r['block_hit_rate']):>10} {_pct(r['token_hit_rate']):>10}")
    wl = res["fit"]["workload"]
    lines += _fleet_report(res)
    lines += ["", "sampling: " + res["sampling"]["why"]]
    lines += ["", "fitted workload: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in wl.items())]
    return "\n".join(lines)


def _csv(res: dict) -> str:
    from ..export import trace_curve_csv   # the same text as the trace tab's download
    return trace_curve_csv(res).rstrip("\n")


def _tier_arg(text: str) -> dict:
    parts = text.split(":")
    try:
        if not 2 <= len(parts) <= 3:
            raise ValueError
        tier = {"name": parts[0], "capacity_tokens": float(parts[1])}
        if len(parts) == 3:
            tier["read_gb_per_s"] = float(parts[2])
        return tier
    except ValueError:
        raise InputError("--tier", text, "NAME:TOKENS or NAME:TOKENS:GB_PER_S, e.g. cpu:2e7:50",
                         "not a tier") from None


def _fleet_report(res: dict) -> list[str]:
    f = res.get("fleet")
    if not f:
        return []
    bs = res["curve"]["block_size_tokens"]
    lines = ["", f"fleet: {f['instances']} instances, routing {f['routing']} ({f['routing_key']}); "
             f"busiest instance takes {100 * f['busiest_instance_request_share']:.0f} % of requests"]
    if f.get("sampling"):
        fs = f["sampling"]
        lines.append(f"fleet SAMPLED at rate {100 * fs['rate']:.4g} % (every request routed exactly): error estimate "
                     f"+/- {fs['error_bound_pp']:.2f} pp at worst, {fs['error_mean_pp']:.2f} pp mean")
    caps = np.asarray(f["capacities_blocks_per_instance"])
    want = [r["capacity_blocks"] for r in res["capacities"]] or \
        caps[np.unique(np.searchsorted(caps, np.geomspace(1, max(caps[-1], 1), 8), side="right") - 1)].tolist()
    for c in want:
        i = int(np.searchsorted(caps, c))
        if i < caps.size:
            lines.append(f"{int(caps[i]):>16} {int(caps[i]) * bs:>16} per instance: fleet token hit "
                         f"{_pct(f['token_hit_rate'][i])}")
    for t in f.get("tiers", []):
        extra = f", read {t['read_s_per_request'] * 1e3:.2f} ms/request" if "read_s_per_request" in t else ""
        lines.append(f"tier {t['name']}: {t['capacity_blocks']} blocks, token hit {_pct(t['token_hit_rate'])}{extra}")
    return lines


def _sampling_arg(text: str):
    if text in ("auto", "exact"):
        return text
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise InputError("--sample", text, "auto, exact or a rate in (0, 1] such as 0.01 or 1%",
                         "not a sampling mode") from None


def _progress_printer():
    import time
    last = [0.0]

    def show(st: dict) -> None:
        now = time.perf_counter()
        if now - last[0] < 0.5:
            return
        last[0] = now
        frac = f" ({100 * st['fraction']:.0f} %)" if st.get("fraction") is not None else ""
        rps = st.get("requests_per_s")
        print(f"\rread {st['bytes_read'] / 1e6:.1f} MB{frac}, {st.get('requests') or 0} requests"
              + (f", {rps:,.0f} requests/s" if rps else ""), end="", file=sys.stderr, flush=True)
    return show


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = build_parser().parse_args(argv)
        if ns.json and ns.csv:
            raise InputError("--csv", True, "either --json or --csv", "both given")
        req = {"path": ns.file, "format": ns.format, "chain": ns.chain, "warmup_fraction": ns.warmup,
               "full_blocks_only": not ns.partial_blocks, "capacities_blocks": ns.capacities,
               "max_points": ns.max_points, "skip_bad_lines": ns.skip_bad_lines, "fifo": ns.fifo}
        if ns.block_size is not None:
            req["block_size_tokens"] = ns.block_size
        req["sampling"] = _sampling_arg(ns.sample)
        req["sampling_seed"] = ns.seed
        req["keep_partial"] = ns.keep_partial
        for key in ("sample_max_refs", "max_bytes", "max_lines", "max_line_bytes", "max_requests"):
            v = getattr(ns, key)
            if v is not None:
                req["sampling_max_refs" if key == "sample_max_refs" else key] = v
        if ns.instances is not None:
            req["cluster"] = {"instances": ns.instances, "routing": ns.routing, "seed": ns.seed}
        if ns.tier:
            req["tiers"] = [_tier_arg(t) for t in ns.tier]
        status = _progress_printer() if ns.progress else None
        res = trace_analyze(req, status=status)
        if ns.progress:
            print(file=sys.stderr)
        if ns.json:
            print(json.dumps(res, indent=2))
        elif ns.csv:
            print(_csv(res))
        else:
            print(_text_report(res))
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RecursionError) as exc:
        print(f"error: trace: {type(exc).__name__}: the trace is too large or too deeply nested; "
              "try --sample 0.01 or --max-bytes", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
