"""The engine's own view: read vLLM / SGLang start-up log lines and compare them with the estimate.

Lines read (any order, with or without the logger prefix; numbers may carry
thousands separators):

vLLM (v1)::

    Available KV cache memory: 8.11 GiB
    GPU KV cache size: 178,880 tokens
    Maximum concurrency for 2,048 tokens per request: 997.08x
    Model loading took 7.6785 GiB and 2.195456 seconds

vLLM (v0, older)::

    Loading model weights took 14.9888 GB          (vLLM divides by 2**30: GiB)
    # GPU blocks: 1952, # CPU blocks: 2048
    Memory profiling results: ... kv_cache_size=3.81GiB ...

SGLang::

    KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB
    Load weight end. ... mem usage=14.99 GB.       (SGLang divides by 2**30 as well)

:func:`parse_engine_log` returns what was found; :func:`compare_with_estimate`
puts it beside a :func:`kvcalc.memory.memory_report` and gives the values to
adopt: the engine's capacity in tokens and the runtime reserve it implies
(usable memory - weights - the engine's KV memory).
"""

from __future__ import annotations

import re

from .errors import InputError

__all__ = ["parse_engine_log", "compare_with_estimate", "EXPECTED_LINES", "MAX_LOG_CHARS"]

#: what the parser looks for, shown when nothing is found
EXPECTED_LINES = ("vLLM: 'Available KV cache memory: 8.11 GiB', 'GPU KV cache size: 178,880 tokens', "
                  "'Maximum concurrency for 2,048 tokens per request: 997.08x' (or v0's '# GPU blocks: 1952'); "
                  "SGLang: 'KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB'")
MAX_LOG_CHARS = 2_000_000

_NUM = r"([0-9][0-9,]*(?:\.[0-9]+)?)"
_PATTERNS = {
    "available_kv_cache_gib": re.compile(r"Available KV cache memory:\s*" + _NUM + r"\s*GiB"),
    "kv_cache_tokens": re.compile(r"GPU KV cache size:\s*" + _NUM + r"\s*tokens"),
    "max_concurrency": re.compile(r"Maximum concurrency for\s*" + _NUM + r"\s*tokens per request:\s*" + _NUM + r"\s*x"),
    "weights_gib": re.compile(r"(?:Model loading took|Loading model weights took)\s*" + _NUM + r"\s*Gi?B"),
    "gpu_blocks": re.compile(r"(?:#\s*)?GPU blocks:\s*" + _NUM),
    "profile_kv_cache_gib": re.compile(r"kv_cache_size=\s*" + _NUM + r"\s*GiB"),
    "sglang_kv": re.compile(r"KV Cache is allocated\.\s*#tokens:\s*" + _NUM + r",\s*K size:\s*" + _NUM
                            + r"\s*GB,\s*V size:\s*" + _NUM + r"\s*GB"),
    "sglang_weights": re.compile(r"Load weight end\..*?mem usage=\s*" + _NUM + r"\s*GB"),
}


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def parse_engine_log(text) -> dict:
    """Values found in pasted start-up log text; InputError on "engine_log" if none.

    When a line occurs several times (one per TP worker) the last one counts;
    ``lines`` lists the matched lines.
    """
    if not isinstance(text, str):
        raise InputError("engine_log", text, "the text of the engine's start-up log", "not text")
    if len(text) > MAX_LOG_CHARS:
        raise InputError("engine_log", f"{len(text)} characters", f"at most {MAX_LOG_CHARS} characters "
                         "(paste the start-up part)", "too long")
    out: dict = {"engine": None, "available_kv_cache_gib": None, "kv_cache_tokens": None,
                 "max_concurrency": None, "max_concurrency_context_tokens": None, "weights_gib": None,
                 "gpu_blocks": None, "kv_cache_bytes_per_token": None, "lines": []}
    engines = set()
    for raw in text.splitlines():
        line = raw.strip()
        hit = False
        for key, pat in _PATTERNS.items():
            m = pat.search(line)
            if not m:
                continue
            hit = True
            if key == "max_concurrency":
                out["max_concurrency_context_tokens"] = int(_num(m.group(1)))
                out["max_concurrency"] = _num(m.group(2))
                engines.add("vllm")
            elif key == "sglang_kv":
                tokens, k_gib, v_gib = _num(m.group(1)), _num(m.group(2)), _num(m.group(3))
                out["kv_cache_tokens"] = int(tokens)
                out["available_kv_cache_gib"] = k_gib + v_gib  # SGLang prints GB computed as bytes / 2**30
                engines.add("sglang")
            elif key == "sglang_weights":
                out["weights_gib"] = _num(m.group(1))
                engines.add("sglang")
            elif key == "kv_cache_tokens":
                out["kv_cache_tokens"] = int(_num(m.group(1)))
                engines.add("vllm")
            elif key == "gpu_blocks":
                out["gpu_blocks"] = int(_num(m.group(1)))
                engines.add("vllm")
            elif key == "profile_kv_cache_gib":
                if out["available_kv_cache_gib"] is None:
                    out["available_kv_cache_gib"] = _num(m.group(1))
                engines.add("vllm")
            else:
                out[key] = _num(m.group(1))
                engines.add("vllm")
        if hit:
            out["lines"].append(line[:300])
    if not out["lines"]:
        raise InputError("engine_log", text.strip()[:80], EXPECTED_LINES, "no vLLM or SGLang KV cache line found",
                         code="engine_log_unreadable")
    if len(engines) > 1:
        raise InputError("engine_log", "vLLM and SGLang lines", "the log of one engine", "mixed engine logs",
                         code="engine_log_mixed")
    out["engine"] = engines.pop()
    if out["available_kv_cache_gib"] is not None and out["kv_cache_tokens"]:
        out["kv_cache_bytes_per_token"] = out["available_kv_cache_gib"] * 2**30 / out["kv_cache_tokens"]
    return out


def _diff(engine_value, estimate_value) -> dict:
    rel = None
    if engine_value is not None and estimate_value is not None and engine_value != 0:
        rel = (estimate_value - engine_value) / engine_value
    return {"engine": engine_value, "estimate": estimate_value, "relative_difference": rel,
            "relative_difference_pct": None if rel is None else 100.0 * rel}


def compare_with_estimate(parsed: dict, report: dict, tolerance: float = 0.05) -> dict:
    """The engine's numbers beside the estimate's, and the values to adopt.

    report: a memory_report with a GPU. ``adopt`` holds ``capacity_tokens``
    (the engine's "GPU KV cache size", or blocks x block size) and
    ``runtime_reserve_gib`` = usable GiB - weights GiB - the engine's KV GiB
    (None when the log lacks the KV memory or would give a negative reserve).
    ``messages`` are {"code", "params", "message"} for each figure off by more
    than ``tolerance``.
    """
    if report.get("kv_capacity_tokens") is None:
        raise InputError("gpu", None, "a GPU, so the estimate has a capacity to compare", "missing")
    block = report.get("vllm_block_size_tokens") or 16
    tokens = parsed.get("kv_cache_tokens")
    if tokens is None and parsed.get("gpu_blocks") is not None:
        tokens = parsed["gpu_blocks"] * block
    conc_est = None
    if parsed.get("max_concurrency_context_tokens"):
        if report.get("max_model_len_tokens") == parsed["max_concurrency_context_tokens"]:
            conc_est = report.get("max_concurrency_at_context")
        else:
            conc_est = report["kv_capacity_tokens"] / parsed["max_concurrency_context_tokens"]
    rows = {
        "kv_cache_gib": _diff(parsed.get("available_kv_cache_gib"), report.get("kv_budget_gib")),
        "kv_cache_tokens": _diff(tokens, report.get("kv_capacity_tokens")),
        "max_concurrency": _diff(parsed.get("max_concurrency"), conc_est),
        "weights_gib_per_gpu": _diff(parsed.get("weights_gib"), report.get("weights_gib_per_gpu")),
        "kv_bytes_per_token": _diff(parsed.get("kv_cache_bytes_per_token"), report.get("kv_bytes_per_token")),
    }
    messages = []
    for name, row in rows.items():
        rel = row["relative_difference"]
        if rel is not None and abs(rel) > tolerance:
            messages.append({"code": "engine_differs", "params": {"quantity": name, **row},
                             "message": f"{name}: the estimate {row['estimate']:.4g} differs from the engine's "
                                        f"{row['engine']:.4g} by {rel * 100:+.1f}%."})
    reserve = None
    if parsed.get("available_kv_cache_gib") is not None and report.get("usable_gib_per_gpu") is not None:
        weights = parsed["weights_gib"] if (parsed.get("weights_gib") is not None and parsed["engine"] == "vllm") \
            else report["weights_gib_per_gpu"]
        r = report["usable_gib_per_gpu"] - weights - parsed["available_kv_cache_gib"]
        if r >= 0:
            reserve = r
        else:
            messages.append({"code": "engine_reserve_negative", "params": {"reserve_gib": r},
                             "message": "The engine's KV memory exceeds this GPU's usable memory less the weights: "
                                        "check the GPU, tensor parallelism and memory fraction match the run."})
    # the values as the page's boxes take them (request key -> value): the reserve to 6 digits
    page_inputs = {}
    if tokens is not None:
        page_inputs["cache.capacity_tokens"] = tokens
    if reserve is not None:
        page_inputs["runtime_reserve_gib"] = float(f"{reserve:.6g}")
    return {"engine": parsed["engine"], "rows": rows, "messages": messages,
            "adopt": {"capacity_tokens": tokens, "runtime_reserve_gib": reserve, "page_inputs": page_inputs}}
