"""Exports built in Python: CSV text of the curves, sweeps and trace curves, and the summary.

The page only triggers downloads: it asks compute() with ``"export": true`` and saves the
texts it gets back (``result["export"]["csv"][name]``); the trace CLI's ``--csv`` and the
trace tab use :func:`trace_curve_csv`. Every CSV is written by :func:`csv_text`: a header
row of unit-suffixed names, numbers in full precision (``repr``: a value read back equals
the one in the JSON result), empty cells for missing values.

The plain-text summary is a list of message codes with parameters
(``{"code", "params", "message"}``, the English text for the CLI); the page renders each
line from its catalogue (``msg.<code>``), so the summary is in the page's language.
"""

from __future__ import annotations

import math

__all__ = ["csv_text", "figure_csvs", "trace_curve_csv", "summary_lines", "SUMMARY_CODES"]


def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else ""
    if isinstance(x, int):
        return str(x)
    s = str(x)
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n\r') else s


def csv_text(header: list[str], rows) -> str:
    """RFC 4180 text (LF line ends) of a header and rows of numbers or strings."""
    lines = [",".join(header)]
    lines += [",".join(_cell(x) for x in row) for row in rows]
    return "\n".join(lines) + "\n"


def _curve(f: dict) -> str:
    gib = f.get("capacity_gib")
    header = ["capacity_tokens"] + (["capacity_gib"] if gib else []) + [
        "token_hit_rate", "request_hit_rate", "seed_token_hit_rate", "ideal_token_hit_rate"]
    rows = []
    for i, cap in enumerate(f["capacity_tokens"]):
        rows.append([cap] + ([gib[i]] if gib else []) + [
            f["token_hit_rate"][i], f["request_hit_rate"][i], f["seed_token_hit_rate"][i],
            f["ideal_token_hit_rate"]])
    return csv_text(header, rows)


def _sweeps(f: dict) -> str:
    rows = []
    for key, sw in f.items():
        if not isinstance(sw, dict):
            continue
        for v, h in zip(sw["values"], sw["token_hit_rate"]):
            rows.append([key, v, h, sw["current"]])
    return csv_text(["parameter", "value", "token_hit_rate", "current_value"], rows)


def _tornado(f: dict) -> str:
    return csv_text(["parameter", "low_value", "high_value", "low_token_hit_rate", "high_token_hit_rate", "swing"],
                    [[r["parameter"], r["low_value"], r["high_value"], r["low_token_hit_rate"],
                      r["high_token_hit_rate"], r["swing"]] for r in f["rows"]])


def _heatmap(f: dict) -> str:
    rows = []
    for rate, row in zip(f["conversation_rate_per_s"], f["token_hit_rate"]):
        for cap, h in zip(f["capacity_tokens"], row):
            rows.append([rate, cap, h])
    return csv_text(["conversation_rate_per_s", "capacity_tokens", "token_hit_rate"], rows)


def _recommender(rec: dict) -> str:
    c = rec["curve"]
    keys = [k for k in ("kv_gib_per_gpu_without_sharing", "kv_gib_per_gpu_with_sharing",
                        "prefill_s_without_sharing", "prefill_s_with_sharing") if k in c]
    return csv_text(["candidates"] + keys, [[n] + [c[k][i] for k in keys] for i, n in enumerate(c["candidates"])])


_WRITERS = {"curve": _curve, "sweeps": _sweeps, "tornado": _tornado, "heatmap": _heatmap}


def figure_csvs(result: dict) -> dict:
    """{name: CSV text} for every figure in the result (and the recommender curve)."""
    out = {name: _WRITERS[name](f) for name, f in (result.get("figures") or {}).items() if name in _WRITERS}
    if result.get("recommender"):
        out["recommender"] = _recommender(result["recommender"])
    return out


def trace_curve_csv(res: dict) -> str:
    """A trace result's exact curve (the trace CLI's --csv and the trace tab's download)."""
    cv = res["curve"]
    bs = cv["block_size_tokens"]
    return csv_text(["capacity_blocks", "capacity_tokens", "block_hit_rate", "token_hit_rate"],
                    [[c, c * bs, b, t] for c, b, t in zip(cv["capacities_blocks"], cv["block_hit_rate"],
                                                          cv["token_hit_rate"])])


#: the summary's message codes (msg.<code> in the page's catalogues)
SUMMARY_CODES = ("summary_setup", "summary_workload", "summary_hit_rate", "summary_memory", "summary_target",
                 "summary_benefit", "summary_recommender")


def _line(code: str, message: str, **params) -> dict:
    return {"code": code, "params": params, "message": message}


def summary_lines(request: dict, result: dict) -> list[dict]:
    """The plain-text summary of one result, line by line, as message codes."""
    lines = []
    if result.get("model_id"):
        lines.append(_line("summary_setup", f"{result['model_id']} on {result.get('gpu_id') or '-'}, "
                           f"TP {result.get('tensor_parallel')}",
                           model=result["model_id"], gpu=result.get("gpu_id") or "-",
                           tensor_parallel=result.get("tensor_parallel")))
    w = request.get("workload") or {}
    if w:
        lines.append(_line("summary_workload",
                           f"workload: {w.get('conversation_rate_per_s')} conversations/s, "
                           f"{w.get('turns_mean')} turns, {w.get('gap_mean_s')} s between turns",
                           conversation_rate_per_s=w.get("conversation_rate_per_s"), turns_mean=w.get("turns_mean"),
                           gap_mean_s=w.get("gap_mean_s")))
    if result.get("token_hit_rate") is not None:
        lines.append(_line("summary_hit_rate",
                           f"token hit rate {result['token_hit_rate']:.1%} (ceiling "
                           f"{(result.get('ideal_token_hit_rate') or 0):.1%})",
                           token_hit_rate=result["token_hit_rate"],
                           ideal_token_hit_rate=result.get("ideal_token_hit_rate")))
    if result.get("cache_capacity_tokens") is not None:
        lines.append(_line("summary_memory",
                           f"cache: {result['cache_capacity_tokens']:,.0f} tokens",
                           cache_capacity_tokens=result["cache_capacity_tokens"],
                           cache_capacity_gib=result.get("cache_capacity_gib")))
    inv = result.get("inverse") or {}
    if inv.get("kv_gib_per_gpu") is not None:
        lines.append(_line("summary_target",
                           f"for {inv['target_token_hit_rate']:.0%}: {inv['kv_gib_per_gpu']:.2f} GiB of KV per GPU",
                           target_token_hit_rate=inv["target_token_hit_rate"], kv_gib_per_gpu=inv["kv_gib_per_gpu"]))
    b = result.get("benefit") or {}
    if b.get("prefill_speedup") is not None:
        lines.append(_line("summary_benefit",
                           f"prefill {b['prefill_ttft_no_cache_s']:.3g} s -> {b['prefill_ttft_with_cache_s']:.3g} s "
                           f"({b['prefill_speedup']:.2f}x)",
                           prefill_ttft_no_cache_s=b["prefill_ttft_no_cache_s"],
                           prefill_ttft_with_cache_s=b["prefill_ttft_with_cache_s"],
                           prefill_speedup=b["prefill_speedup"]))
    rec = result.get("recommender") or {}
    if rec:
        lines.append(_line("summary_recommender",
                           f"recommender, {rec['candidates']} candidates: KV {rec['kv_gib_per_gpu_without_sharing']:.2f}"
                           f" GiB without sharing, {rec['kv_gib_per_gpu_with_sharing']:.2f} GiB with",
                           candidates=rec["candidates"],
                           without_sharing_gib=rec["kv_gib_per_gpu_without_sharing"],
                           with_sharing_gib=rec["kv_gib_per_gpu_with_sharing"]))
    return lines
