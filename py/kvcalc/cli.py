"""Command line: ``python -m kvcalc``.

    python -m kvcalc [--model ID] [--gpu ID] [--tp N] [workload flags]   readable table
    python -m kvcalc compute [--request FILE]     request JSON (stdin) -> result JSON
    python -m kvcalc simulate [--request FILE]    request JSON (stdin) -> simulation JSON
    python -m kvcalc trace FILE [...]             exact hit-rate curve of a request trace
    python -m kvcalc limits --json                the table of limits (py/kvcalc/limits.json)
    python -m kvcalc samples --json               the sample traces' sizes (data/traces/mooncake/samples.json)

Errors print ``error: <field>: <problem>: got <value>; allowed: <range>`` to
stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import InputError
from .limits import MAX_DEPTH, limits_json

__all__ = ["main", "MAX_REQUEST_CHARS"]

#: Longest request text the CLI reads (a config.json with per-layer lists is ~100 kB).
MAX_REQUEST_CHARS = 10_000_000

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B"
DEFAULT_GPU = "h100-sxm-80gb"

# flag -> request key path (workload and cache fields)
_WORKLOAD_FLAGS = {
    "rate": ("workload", "conversation_rate_per_s", float, "new conversations per second"),
    "turns": ("workload", "turns_mean", float, "mean turns per conversation"),
    "turns-distribution": ("workload", "turns_distribution", str, "geometric | fixed"),
    "gap": ("workload", "gap_mean_s", float, "mean seconds between turns"),
    "gap-distribution": ("workload", "gap_distribution", str, "exponential | deterministic | lognormal"),
    "gap-sigma": ("workload", "gap_lognormal_sigma", float, "lognormal shape of the gap"),
    "user-tokens": ("workload", "user_tokens_per_turn", float, "user tokens per turn"),
    "output-tokens": ("workload", "output_tokens_per_turn", float, "output tokens per turn"),
    "system-prompt": ("workload", "system_prompt_tokens", float, "shared system prompt tokens"),
    "service-time": ("workload", "service_time_s", float, "seconds a request runs"),
    "capacity-tokens": ("cache", "capacity_tokens", float, "cache capacity override, tokens"),
    "block-size": ("cache", "block_size_tokens", int, "tokens per KV block"),
    "eviction": ("cache", "eviction", str, "lru | fifo | ttl | lfu"),
    "ttl": ("cache", "ttl_s", float, "idle expiry for --eviction ttl, s"),
}


def _read_request(path: str | None) -> dict:
    if path in (None, "-"):
        text = sys.stdin.read(MAX_REQUEST_CHARS + 1)
    else:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read(MAX_REQUEST_CHARS + 1)
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark (Windows editors write one): not content
        text = text[1:]
    if len(text) > MAX_REQUEST_CHARS:
        raise InputError("request", f"more than {MAX_REQUEST_CHARS} characters",
                         f"a request of at most {MAX_REQUEST_CHARS} characters", "too large")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError("request", text[:60], "a JSON object", "invalid JSON",
                         params={"reason": f"{exc.msg} at line {exc.lineno}"}) from None
    except RecursionError:  # nested deeper than the parser's stack
        raise InputError("request", "<deeply nested JSON>", f"at most {MAX_DEPTH} levels of nesting",
                         "too deep") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts (4300 digits)
        digits = "digits" in str(exc)
        raise InputError("request", text[:60], "a JSON object" + (" whose numbers have at most 4300 digits"
                                                                  if digits else ""),
                         "invalid JSON: a number has too many digits" if digits else "invalid JSON",
                         code="invalid_json", params={"reason": str(exc)[:200]}) from None


def _dumps(out, indent=None) -> str:
    """JSON that is always valid: NaN/inf were turned into null by the core; refuse any left."""
    from .request import finite_json
    return json.dumps(finite_json(out), indent=indent, allow_nan=False)


def _table_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kvcalc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model preset id (default {DEFAULT_MODEL})")
    p.add_argument("--gpu", default=DEFAULT_GPU, help=f"GPU preset id (default {DEFAULT_GPU})")
    p.add_argument("--tp", type=int, default=1, help="tensor parallel size")
    p.add_argument("--util", type=float, default=0.9, help="gpu_memory_utilization")
    p.add_argument("--kv-dtype", default="auto", help="KV cache dtype (auto, bf16, fp8, fp4, ...)")
    p.add_argument("--hit-model", default="refined", help="refined | che | closed | seed")
    p.add_argument("--target", type=float, default=0.8, help="target token hit rate for the inverse")
    for flag, (_, _, typ, help_text) in _WORKLOAD_FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, default=None, help=help_text)
    p.add_argument("--json", action="store_true", help="print the result JSON instead of a table")
    return p


def _request_from_args(ns: argparse.Namespace) -> dict:
    req: dict = {"model": ns.model, "gpu": ns.gpu, "tensor_parallel": ns.tp,
                 "gpu_memory_utilization": ns.util, "kv_cache_dtype": ns.kv_dtype,
                 "hit_model": ns.hit_model, "target_token_hit_rate": ns.target,
                 "workload": {}, "cache": {}}
    for flag, (group, key, _, _) in _WORKLOAD_FLAGS.items():
        value = getattr(ns, flag.replace("-", "_"))
        if value is not None:
            req[group][key] = value
    return req


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _num(x, unit: str = "", digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}{(' ' + unit) if unit else ''}"


def format_table(req: dict, r: dict) -> str:
    """A readable summary of a compute() result."""
    occ = r.get("occupancy") or {}
    inv = r.get("inverse") or {}
    rows = [
        ("model", str(req.get("model"))),
        ("gpu x tensor parallel", f"{req.get('gpu')} x {req.get('tensor_parallel', 1)}"),
        ("KV bytes per token (per GPU)", _num(r.get("kv_bytes_per_token"), "B")),
        ("KV budget per GPU", _num(r.get("kv_budget_gib"), "GiB", 2)),
        ("KV capacity", f"{_num(r.get('kv_capacity_tokens'), 'tokens')} = {_num(r.get('kv_capacity_blocks'), 'blocks')}"),
        ("max concurrency at mean context", _num(r.get("max_concurrency"), "", 1)),
        ("", ""),
        ("token hit rate", f"{_pct(r.get('token_hit_rate'))}  ({r.get('hit_model')} model)"),
        ("request hit rate", _pct(r.get("request_hit_rate"))),
        ("ideal (infinite cache)", _pct(r.get("ideal_token_hit_rate"))),
        ("seed formula (legacy)", _pct(r.get("seed_token_hit_rate"))),
        ("characteristic time", _num(r.get("characteristic_time_s"), "s", 1)),
        ("occupancy pinned/prompt/returning/finished",
         " / ".join(_pct(occ.get(f"{p}_fraction")) for p in ("pinned", "system_prompt", "returning", "finished"))),
    ]
    if inv:
        if inv.get("reachable"):
            need = f"{_num(inv.get('capacity_tokens'), 'tokens')}"
            if inv.get("kv_gib_per_gpu") is not None:
                need += f" = {inv['kv_gib_per_gpu']:.2f} GiB of KV per GPU"
        else:
            need = inv.get("message", "unreachable")
        rows.append((f"for {_pct(inv.get('target_token_hit_rate'))} you need", need))
    if r.get("overload"):
        rows.append(("OVERLOAD", r.get("overload_message", "")))
    for w in r.get("warnings", []):
        rows.append(("note", w))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" if k else "" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["trace"]:
            from .trace.cli import main as trace_main
            return trace_main(argv[1:])
        if argv[:1] in (["compute"], ["simulate"]):
            p = argparse.ArgumentParser(prog=f"python -m kvcalc {argv[0]}")
            p.add_argument("--request", default=None, help="request JSON file (default: stdin)")
            p.add_argument("--indent", type=int, default=2)
            ns = p.parse_args(argv[1:])
            from . import api
            req = _read_request(ns.request)
            out = api.compute(req) if argv[0] == "compute" else api.simulate(req)
            print(_dumps(out, indent=ns.indent or None))
            return 0
        if argv[:1] == ["limits"]:
            p = argparse.ArgumentParser(prog="python -m kvcalc limits",
                                        description="the table of limits (py/kvcalc/limits.py) as JSON")
            p.add_argument("--json", action="store_true", help="JSON (the only format; the page reads it)")
            p.parse_args(argv[1:])
            sys.stdout.write(limits_json())
            return 0
        if argv[:1] == ["samples"]:
            p = argparse.ArgumentParser(prog="python -m kvcalc samples",
                                        description="the shipped sample traces' sizes as JSON")
            p.add_argument("--json", action="store_true", help="JSON (the only format; the page reads it)")
            p.parse_args(argv[1:])
            from .trace.sample_traces import samples_json
            sys.stdout.write(samples_json())
            return 0
        ns = _table_parser().parse_args(argv)
        from .api import compute
        req = _request_from_args(ns)
        result = compute(req)
        print(_dumps(result, indent=2) if ns.json else format_table(req, result))
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"error: request: too deep: allowed: at most {MAX_DEPTH} levels of nesting", file=sys.stderr)
        return 2
    except (ArithmeticError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError) as exc:
        # a defect of the core (trace loaders included): one line, not a traceback
        print(f"error: internal error ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        return 2
