"""Trace mode's door: ``trace_analyze(request) -> dict`` (JSON-simple in and out).

Request keys (exactly one of ``text``, ``path``, ``sample``)::

    text                 the trace content (str, bytes; .gz ok), or a reader.BlobSource (the
                         page's File, read by slices in the worker: bounded memory)
    path                 a trace file (.jsonl or .jsonl.gz)
    sample               "conversation" | "synthetic" (the shipped Mooncake traces)
    format               auto (default) | mooncake | bailian | generic
    chain                auto (default) | verify | rechain
    block_size_tokens    override the detected block size
    warmup_fraction      first share of requests replayed but not counted, [0, 1) (default 0)
    full_blocks_only     true (default, vLLM) | false (the partial last block counts too)
    capacities_blocks    capacities [blocks] to report exactly (list of integers >= 0)
    max_points           grid points of the curve (default 400, 2..5000)
    fifo                 also replay FIFO at capacities_blocks (default false)
    targets              token hit rates to size for, e.g. [0.2, 0.3] (default none)
    skip_bad_lines       skip and count bad lines instead of failing (default false)
    max_requests         read at most this many requests (the rest is ignored, reported)
    max_bytes            refuse larger inputs (decompressed bytes; default 8 GiB)
    max_lines            refuse inputs with more lines (blank ones included; default 10^9)
    max_line_bytes       a longer line is a bad line, never read into memory (default 8 MiB)
    keep_partial         a stream that breaks (truncated gzip, a limit, a bad line without
                         skip_bad_lines): keep the analysis of what was read, say where it
                         stopped in detection.stopped (default false: an error)
    sampling             "auto" (default: exact up to 256 MiB of trace, sampled above, and
                         says so) | "exact" | a rate in (0, 1] (SHARDS, see sample.py)
    sampling_max_refs    fixed-size sampling: the rate is halved whenever more references
                         are kept (default 2,000,000 with auto; none with a given rate)
    sampling_seed        seed of the sampling hash (default 0)
    sampling_auto_above_mib  with "auto": sample traces above this many MiB of text (default 256;
                         the page sends 64: exact mode holds ~9 bytes per byte of trace, and a
                         browser tab has less memory than the CLI)
    cluster              {"instances": K, "routing": affinity|random|round_robin|pooled, "seed": s}:
                         adds fleet, the replay across K instances of capacities_blocks each
                         (see fleet.py); sampled like a single cache (auto: above the same size;
                         fleet.sampling: rate and error, see fleet_sample.py)
    tiers                [{"name", "capacity_tokens" | "capacity_gib", "read_gb_per_s"}, ...]:
                         exclusive tiers per instance from one LRU stack (adds fleet.tiers)
    service_time_s       service time for the workload fit (default: from output lengths)
    kv_bytes_per_token   KV bytes per token of a model/GPU/TP (from compute()): adds the
                         capacities in GiB (curve.capacity_gib, capacities[].capacity_gib)
    operating_capacity_tokens  a cache size [tokens]: adds operating_point, the exact
                         rates there (and its GiB with kv_bytes_per_token)
    model_curve          true: also the analytic model (Che, LRU) of the fitted workload at
                         the curve's capacities (model_curve), for drawing over the exact curve,
                         with where it holds: valid_from_capacity_tokens, in_domain per capacity,
                         domain (model_domain) and domain_detail (why, a message twin)

Result keys: detection, stats, curve_csv (the curve as CSV text, kvcalc.export), curve (see :meth:`HitCurve.to_dict`, plus
capacity_tokens and, with kv_bytes_per_token, capacity_gib, one per capacities_blocks),
capacities (exact rows at the requested capacities), ideal_block_hit_rate,
ideal_token_hit_rate, counting_rule, fit {workload, notes, measured}, and when
asked fifo, targets, operating_point and model_curve.

``progress``, when given, is called with fractions in [0, 1] between the stages
(load, curve, statistics and fit). ``status``, when given, is called after each
chunk read with ``{bytes_read, bytes_total, requests, requests_per_s, ...}``;
``cancel``, when given, is checked between chunks (true: stop, an InputError
with field "cancel", or the partial analysis with keep_partial).

With sampling the result has ``sampling`` (mode, rate, error estimate, why),
``curve`` from the sampled references (SHARDS, see sample.py), light statistics (no
sessions, reuse gaps or workload fit: those need every block) and
``fit: {"available": false}``.
"""

from __future__ import annotations

import math

from pathlib import Path

from ..errors import InputError, require_int, require_number
from ..limits import CHOICE_DEFAULTS, limit, page_inputs
from ..units import GIB_BYTES
from .curve import capacity_for_hit_rate, counting_rule_text, fifo_replay, lru_curve
from .fleet import parse_cluster
from .loaders import CHAIN_MODES, FORMATS, load_trace, loads_trace
from .messages import counting_rule_detail, detection_details, twin
from .reader import LIMIT_RANGES, BlobSource
from .stats import fit_workload_report, trace_stats

__all__ = ["trace_analyze", "SAMPLES", "REQUEST_KEYS", "sample_path"]

SAMPLES = {"conversation": "conversation_trace.jsonl", "synthetic": "synthetic_trace.jsonl"}
REQUEST_KEYS = ("text", "path", "sample", "format", "chain", "block_size_tokens", "warmup_fraction",
                "full_blocks_only", "capacities_blocks", "max_points", "fifo", "targets",
                "skip_bad_lines", "max_requests", "max_bytes", "service_time_s",
                "kv_bytes_per_token", "operating_capacity_tokens", "model_curve", "max_lines",
                "max_line_bytes", "keep_partial", "sampling", "sampling_max_refs", "sampling_seed",
                "sampling_auto_above_mib",
                "cluster", "tiers")
_MAX_CAPACITIES = 200


#: auto sampling: exact up to this many (estimated decompressed) bytes of trace, sampled above.
AUTO_SAMPLE_ABOVE_BYTES = 256 << 20
#: fixed-size sampling with auto: at most this many kept references.
AUTO_MAX_SAMPLED_REFS = 2_000_000
_GZIP_RATIO_GUESS = 6
_BIG_INT = 1 << 62


def _no_huge_ints(request: dict) -> None:
    """Integers beyond 2^62 anywhere at the top level or in a list value: refused by name."""
    for k, v in request.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        for i, x in enumerate(vals[:_MAX_CAPACITIES + 1]):
            if isinstance(x, int) and not isinstance(x, bool) and abs(x) > _BIG_INT:
                name = k if vals is not v else f"{k}[{i}]"
                raise InputError(name, x, "an integer of at most 2^62", "integer too large")


def sample_path(name: str) -> Path:
    """The shipped copy of a Mooncake sample trace (``data/traces/mooncake`` of the repo)."""
    if not isinstance(name, str) or name not in SAMPLES:
        raise InputError("sample", name, "one of " + ", ".join(SAMPLES), "unknown sample")
    return Path(__file__).resolve().parents[3] / "data" / "traces" / "mooncake" / SAMPLES[name]


def _bool(request: dict, key: str, default: bool) -> bool:
    v = request.get(key, default)
    if not isinstance(v, bool):
        raise InputError(key, v, "true or false", "not a boolean")
    return v


def _int_list(request: dict, key: str) -> list[int]:
    v = request.get(key, [])
    if v is None:
        return []
    if not isinstance(v, (list, tuple)) or len(v) > _MAX_CAPACITIES:
        raise InputError(key, v, f"a list of at most {_MAX_CAPACITIES} integers >= 0", "not a list")
    return [require_int(f"{key}[{i}]", x, 0, 10 ** 15) for i, x in enumerate(v)]


def model_domain(w, block_size_tokens: int) -> dict:
    """Smallest capacity [tokens] at which the analytic model of workload ``w`` is in its domain.

    The model (MODEL.md) pins every running request's blocks and holds the shared prompt while
    any request runs. Below the in-flight working set O(0) (``overload_ends_at_capacity_tokens``:
    lambda*S*sum_k P(N>=k)*Bpin_k + P_s blocks) it is in overload: it keeps the prompt hitting
    (requests would wait), which a replay of the trace, whose requests are not pinned, never
    does. Below one mean request (P_s + sum_k P(N>=k)*Bpin_k / E[N] blocks, rounded up) not
    even one request fits. The model's curve is drawn from the larger of the two.
    """
    import dataclasses

    from ..hitrate.occupancy import overload_ends_at_capacity_tokens
    from ..hitrate.structure import structure
    from ..workload import CacheConfig

    b = int(block_size_tokens)
    c = CacheConfig(capacity_tokens=float(b), block_size_tokens=b, eviction="lru")
    st = structure(w, c)
    overload_ends = float(overload_ends_at_capacity_tokens(st))
    # sum_k P(N>=k) Bpin_k: the pinned blocks lambda*S*(...) at lambda*S = 1
    unit = structure(dataclasses.replace(w, conversation_rate_per_s=1.0, service_time_s=1.0), c)
    request_blocks = float(st.Ps) + float(unit.pin_mean) / float(st.EN)
    one_request = math.ceil(request_blocks - 1e-9) * b
    in_flight = float(st.lam * st.EN * st.S)
    limited_by = "overload" if overload_ends >= one_request else "one_request"
    start = max(overload_ends, float(one_request))
    return {"valid_from_capacity_tokens": start, "limited_by": limited_by,
            "overload_ends_at_capacity_tokens": overload_ends, "request_capacity_tokens": float(one_request),
            "in_flight_requests": in_flight, "system_prompt_tokens": float(st.Ps) * b}


def _model_curve(fit: dict, capacities_tokens: list, block_size_tokens: int) -> dict:
    """The analytic model (Che, LRU) of the fitted workload at the trace curve's capacities, with
    where it holds (``valid_from_capacity_tokens``, ``in_domain`` per capacity; ``model_domain``)."""
    from ..sweeps import curve_vs_capacity
    from ..workload import CacheConfig, Workload

    try:
        w = Workload.from_dict(fit["workload"])
        bsz = min(block_size_tokens, 4096)
        c = CacheConfig(capacity_tokens=float(max(capacities_tokens[-1], 1)),
                        block_size_tokens=bsz, eviction="lru")
        m = curve_vs_capacity(w, c, capacities_tokens=[float(x) for x in capacities_tokens], model="che")
        dom = model_domain(w, bsz)
    except InputError as exc:  # a fit outside the model's limits: say so, keep the trace result
        return {"available": False, "message": f"the fitted workload cannot be modelled: {exc}",
                "message_detail": twin("trace_model_unavailable", f"the fitted workload cannot be modelled: {exc}",
                                       field=exc.field, detail=exc.problem)}
    start = dom["valid_from_capacity_tokens"]
    if dom["limited_by"] == "overload":
        domain = twin("trace_model_domain_overload",
                      f"model drawn from {start:,.0f} tokens: below that the {dom['in_flight_requests']:.1f} "
                      f"requests in flight and the {dom['system_prompt_tokens']:,.0f}-token shared prompt do not fit "
                      "(the model pins them and keeps the prompt hitting; the replay does not pin requests)",
                      valid_from_capacity_tokens=start, in_flight_requests=dom["in_flight_requests"],
                      system_prompt_tokens=dom["system_prompt_tokens"])
    else:
        domain = twin("trace_model_domain_one_request",
                      f"model drawn from {start:,.0f} tokens: below that not even one mean request fits",
                      valid_from_capacity_tokens=start, request_capacity_tokens=dom["request_capacity_tokens"])
    return {"available": True, "model": m["model"], "token_hit_rate": m["token_hit_rate"],
            "ideal_token_hit_rate": m["ideal_token_hit_rate"],
            "valid_from_capacity_tokens": start, "domain": dom,
            "in_domain": [float(x) >= start for x in capacities_tokens],
            "domain_message": domain["message"], "domain_detail": domain}


def _sampling_option(request: dict):
    v = request.get("sampling", CHOICE_DEFAULTS["trace.sampling"])
    if isinstance(v, str):
        if v not in ("auto", "exact"):
            raise InputError("sampling", v, "'auto', 'exact' or a rate in (0, 1]", "unknown value")
        return v
    from .sample import check_rate
    return check_rate(v, "sampling")


def _source_size(request: dict, given: str) -> tuple[int | None, bool]:
    """(bytes on disk or in memory, gzip?) of the trace source."""
    try:
        if given == "text" and isinstance(request["text"], BlobSource):
            blob = request["text"]
            return blob.size, blob.size >= 2 and blob.read(0, 2) == b"\x1f\x8b"
        if given == "text":
            t = request["text"]
            b = t if isinstance(t, (bytes, bytearray)) else None
            return len(t), bool(b is not None and bytes(b[:2]) == b"\x1f\x8b")
        path = Path(request["path"]) if given == "path" else sample_path(request["sample"])
        with open(path, "rb") as fh:
            head = fh.read(2)
        return path.stat().st_size, head == b"\x1f\x8b"
    except OSError:
        return None, False


def trace_analyze(request: dict, progress=None, status=None, cancel=None) -> dict:
    """Load a trace and return its statistics, exact LRU curve, workload fit and detection."""
    try:
        result = _analyze(request, progress, status, cancel)
    except RecursionError:
        raise InputError("trace", "nested", "a trace without deep nesting", "input nested too deeply") from None
    except MemoryError:
        raise InputError("trace", "too large", "a smaller trace, or sampling (sampling: 0.01)",
                         "out of memory while analysing the trace", code="trace_out_of_memory") from None
    from ..export import trace_curve_csv   # the curve as the page's CSV download (and the CLI's --csv)
    result["curve_csv"] = trace_curve_csv(result)
    return result


def _analyze(request: dict, progress=None, status=None, cancel=None) -> dict:
    def report(fraction: float) -> None:
        if progress is not None:
            progress(fraction)

    if not isinstance(request, dict):
        raise InputError("request", request, "a JSON object", "not an object")
    unknown = sorted(str(k) for k in set(request) - set(REQUEST_KEYS))
    if unknown:
        raise InputError(unknown[0], request.get(unknown[0]), "one of the keys " + ", ".join(REQUEST_KEYS),
                         "unknown key")
    _no_huge_ints(request)
    given = [k for k in ("text", "path", "sample") if request.get(k) is not None]
    if len(given) != 1:
        raise InputError("text", None if not given else given, "exactly one of text, path, sample",
                         "no trace given" if not given else "more than one trace source")
    fmt = request.get("format", CHOICE_DEFAULTS["trace.format"])
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise InputError("format", fmt, "one of " + ", ".join(FORMATS), "unknown format")
    chain = request.get("chain", "auto")
    if not isinstance(chain, str) or chain not in CHAIN_MODES:
        raise InputError("chain", chain, "one of " + ", ".join(CHAIN_MODES), "unknown value")
    bs = request.get("block_size_tokens")
    lim_bs, lim_warm = limit("trace.block_size_tokens"), limit("trace.warmup_fraction")
    bs = None if bs is None else require_int("block_size_tokens", bs, int(lim_bs.lo), int(lim_bs.hi))
    warm = require_number("warmup_fraction", request.get("warmup_fraction", 0.0), lim_warm.lo, lim_warm.hi,
                          hi_open=lim_warm.hi_open)
    full = _bool(request, "full_blocks_only", CHOICE_DEFAULTS["trace.full_blocks_only"])
    caps = _int_list(request, "capacities_blocks")
    max_points = require_int("max_points", request.get("max_points", 400), 2, 5000)
    fifo = _bool(request, "fifo", False)
    targets = request.get("targets")
    targets = [] if targets is None else targets  # null: none; 0, {} or "" are not lists of rates
    if not isinstance(targets, (list, tuple)) or len(targets) > 50:
        raise InputError("targets", targets, "a list of at most 50 hit rates in [0, 1]", "not a list")
    targets = [require_number(f"targets[{i}]", t, 0.0, 1.0) for i, t in enumerate(targets)]
    skip = _bool(request, "skip_bad_lines", CHOICE_DEFAULTS["trace.skip_bad_lines"])
    keep_partial = _bool(request, "keep_partial", CHOICE_DEFAULTS["trace.keep_partial"])
    limits = {}
    for key in ("max_requests", "max_bytes", "max_lines", "max_line_bytes"):
        if request.get(key) is not None:     # the reader's ranges (one table), max_requests the loader's
            lo, hi = LIMIT_RANGES.get(key, (1, 1 << 50))
            limits[key] = require_int(key, request[key], lo, hi)
    service = request.get("service_time_s")
    service = None if service is None else require_number("service_time_s", service, 0.0, 1e5)
    bpt = request.get("kv_bytes_per_token")
    bpt = None if bpt is None else require_number("kv_bytes_per_token", bpt, 0.0, 1e12, lo_open=True)
    op = request.get("operating_capacity_tokens")
    op = None if op is None else require_number("operating_capacity_tokens", op, 0.0, 1e15)
    want_model = _bool(request, "model_curve", False)
    sampling = _sampling_option(request)
    max_refs = request.get("sampling_max_refs")
    max_refs = None if max_refs is None else require_int("sampling_max_refs", max_refs, 1000, 1 << 40)
    seed = require_int("sampling_seed", request.get("sampling_seed", 0), 0, 1 << 31)
    if "text" in given:
        text = request["text"]
        if isinstance(text, memoryview):
            text = text.tobytes()
        if not isinstance(text, (str, bytes, bytearray, BlobSource)):
            raise InputError("text", type(text).__name__, "the trace as text or bytes", "not text")
    elif "path" in given and not isinstance(request["path"], str):
        raise InputError("path", request["path"], "a file path", "not a string")
    elif "sample" in given:
        sample_path(request["sample"])
    report(0.0)

    # Exact or sampled.
    size, gz = _source_size(request, given[0])
    est = None if size is None else size * (_GZIP_RATIO_GUESS if gz else 1)
    lim_above = limit("trace.sampling_auto_above_mib")
    above = require_int("sampling_auto_above_mib", request.get("sampling_auto_above_mib", AUTO_SAMPLE_ABOVE_BYTES >> 20),
                        int(lim_above.lo), int(lim_above.hi))
    if sampling == "auto":
        if est is not None and est > above << 20:
            rate, max_refs = 1.0, max_refs or AUTO_MAX_SAMPLED_REFS
            why = twin("trace_sampling_auto_sampled",
                       f"auto: the trace ({size} bytes{', gzip' if gz else ''}, about {est // (1 << 20)} MiB of text) "
                       f"is above {above} MiB: sampled, at most {max_refs} references kept",
                       size_bytes=size, gzip=gz, text_mib=est // (1 << 20), above_mib=above, max_refs=max_refs)
        else:
            rate = None
            why = twin("trace_sampling_auto_exact", f"auto: exact (the trace is at most {above} MiB)", above_mib=above)
    elif sampling == "exact":
        rate, why = None, twin("trace_sampling_exact_asked", "exact (asked)")
    else:
        rate, why = sampling, twin("trace_sampling_rate_asked", f"sampled at the rate asked ({sampling:g})",
                                   rate_fraction=sampling)

    opts = dict(format=fmt, block_size_tokens=bs, skip_bad_lines=skip, chain=chain, keep_partial=keep_partial,
                progress=status, cancel=cancel, **limits)
    if "text" in given:
        source = request["text"]
        if not isinstance(source, BlobSource):
            source = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    elif "path" in given:
        source = Path(request["path"])
    else:
        source = sample_path(request["sample"])
    cluster = None if request.get("cluster") is None else parse_cluster(request["cluster"])
    tiers_req = request.get("tiers")
    if rate is not None:
        return _analyze_sampled(source, opts, rate=rate, max_refs=max_refs, seed=seed, full=full, warm=warm,
                                caps=caps, max_points=max_points, targets=targets, bpt=bpt, op=op, why=why,
                                report=report, cluster=cluster, tiers_req=tiers_req, auto=sampling == "auto")
    trace = load_trace(source, **opts)
    # Statistics and fit first: their temporaries then never coexist with the curve's arrays.
    stats = trace_stats(trace)
    fit = fit_workload_report(trace, service_time_s=service)
    fit["page_inputs"] = page_inputs(fit["workload"], prefix="workload.")   # "use this fit" in the page
    report(0.5)
    curve = lru_curve(trace, full_blocks_only=full, warmup_fraction=warm)
    curve_dict = curve.to_dict(caps, max_points)
    report(0.8)
    bsz = trace.block_size_tokens
    gib = (lambda tokens: tokens * bpt / GIB_BYTES) if bpt else None
    curve_dict["capacity_tokens"] = [c * bsz for c in curve_dict["capacities_blocks"]]
    curve_dict["saturation_capacity_tokens"] = curve_dict["saturation_capacity_blocks"] * bsz
    if gib:
        curve_dict["kv_bytes_per_token"] = bpt
        curve_dict["capacity_gib"] = [gib(t) for t in curve_dict["capacity_tokens"]]
        curve_dict["saturation_capacity_gib"] = gib(curve_dict["saturation_capacity_tokens"])
    rows = [{"capacity_blocks": r["capacity_blocks"], "capacity_tokens": r["capacity_blocks"] * bsz,
             "block_hit_rate": r["block_hit_rate"], "token_hit_rate": r["token_hit_rate"]}
            for r in curve_dict.pop("at_capacities", [])]
    if gib:
        for r in rows:
            r["capacity_gib"] = gib(r["capacity_tokens"])
    _note_beyond_trace(rows, curve_dict["saturation_capacity_blocks"])
    result = {
        "detection": trace.info,
        "stats": stats,
        "curve": curve_dict,
        "capacities": rows,
        "ideal_block_hit_rate": curve.ideal_block_hit_rate,
        "ideal_token_hit_rate": curve.ideal_token_hit_rate,
        "counting_rule": curve.counting_rule,
        "fit": fit,
        "sampling": {"mode": "exact", "rate": 1.0, "why": why["message"], "why_detail": why, "error_bound_pp": 0.0},
        "counting_rule_detail": counting_rule_detail(full, warm, curve.counting_rule),
    }
    detection_details(result["detection"])
    report(0.9)
    if op is not None:
        blocks = int(op // bsz)
        b, t = curve.rates_at([blocks])
        result["operating_point"] = {
            "capacity_tokens": op, "capacity_blocks": blocks,
            "capacity_gib": gib(op) if gib else None,
            "block_hit_rate": float(b[0]), "token_hit_rate": float(t[0])}
        _note_beyond_trace([result["operating_point"]], curve_dict["saturation_capacity_blocks"])
    if want_model:
        result["model_curve"] = _model_curve(result["fit"], curve_dict["capacity_tokens"], bsz)
        if op is not None and result["model_curve"]["available"]:
            result["operating_point"]["model_token_hit_rate"] = _model_curve(
                result["fit"], [op], bsz)["token_hit_rate"][0]
    if fifo:
        result["fifo"] = [
            {k: v for k, v in fifo_replay(trace, c, full_blocks_only=full, warmup_fraction=warm).items()}
            for c in sorted(set(caps))]
    if targets:
        result["targets"] = [dict(capacity_for_hit_rate(curve, t), target=t, metric="token_hit_rate")
                             for t in targets]
    if cluster is not None or tiers_req is not None:
        result["fleet"] = _fleet(trace, curve, curve_dict, cluster or {"instances": 1, "routing": "pooled", "seed": 0},
                                 tiers_req, full, warm, bpt)
    report(1.0)
    return result


def _fleet(trace, curve, curve_dict: dict, cluster: dict, tiers_req, full: bool, warm: float, bpt) -> dict:
    """The replay across instances (and tiers) at the curve's capacities per instance."""
    from .fleet import fleet_at, fleet_curves, parse_tiers, tier_split
    k, routing = cluster["instances"], cluster["routing"]
    pooled = routing == "pooled" and k > 1
    if routing == "pooled" or k == 1:
        curves, how = [curve], ("one shared pool of K x C" if pooled else "one cache")
    else:
        curves, how = fleet_curves(trace, k, routing, seed=cluster["seed"], full_blocks_only=full,
                                   warmup_fraction=warm)
    caps = curve_dict["capacities_blocks"]
    at = fleet_at(curves, caps, k if pooled else 1)
    shares = sorted((c.n_requests / trace.n_requests for c in curves), reverse=True)
    out = {"instances": k, "routing": routing, "routing_key": how, "routing_key_detail": _routing_detail(how),
           "seed": cluster["seed"],
           "capacities_blocks_per_instance": caps,
           "capacity_tokens_per_instance": [c * trace.block_size_tokens for c in caps],
           "block_hit_rate": at["block_hit_rate"].tolist(), "token_hit_rate": at["token_hit_rate"].tolist(),
           "busiest_instance_request_share": shares[0] if not pooled else 1.0 / k,
           "instances_used": len(curves) if not pooled else k,
           "note": "each instance an exact LRU cache of the capacity per instance; fleet rate = all hits / all "
                   "lookups; warm-up per instance" + ("; pooled: one cache of K x the capacity" if pooled else "")}
    out["note_detail"] = twin("trace_fleet_note_pooled" if pooled else "trace_fleet_note", out["note"])
    if tiers_req is not None:
        tiers = parse_tiers(tiers_req, trace.block_size_tokens, bpt)
        counted = sum(c.n_requests_counted for c in curves)
        out["tiers"] = tier_split(curves, tiers, k if pooled else 1, bpt, counted)
    return out


def _analyze_sampled(source, opts: dict, *, rate, max_refs, seed, full, warm, caps, max_points, targets,
                     bpt, op, why, report, cluster=None, tiers_req=None, auto=False) -> dict:
    """The SHARDS curve with light statistics (see the module docstring)."""
    import numpy as np

    from .sample import load_sampled, shards_curve
    fleet_keys = {} if cluster is not None or tiers_req is not None else None
    refs, info, per_request = load_sampled(source, rate, max_refs=max_refs, seed=seed, full_blocks_only=full,
                                           fleet_keys=fleet_keys, **opts)
    report(0.5)
    sc = shards_curve(refs, warmup_fraction=warm, max_points=max_points, extra_capacities=caps)
    report(0.8)
    bsz = refs.block_size_tokens
    gib = (lambda tokens: tokens * bpt / GIB_BYTES) if bpt else None
    grid = np.asarray(sc["capacities_blocks"])
    curve = {k: sc[k] for k in ("capacities_blocks", "block_hit_rate", "token_hit_rate", "ideal_block_hit_rate",
                                "ideal_token_hit_rate", "saturation_capacity_blocks", "blocks_looked_up",
                                "prompt_tokens")}
    curve.update({"policy": "lru", "full_blocks_only": full, "warmup_fraction": warm,
                  "block_size_tokens": bsz, "n_requests": info["n_requests"],
                  "counting_rule": counting_rule_text(full, warm) + "; estimated from a hashed sample of blocks",
                  "capacity_tokens": [int(c) * bsz for c in sc["capacities_blocks"]],
                  "saturation_capacity_tokens": sc["saturation_capacity_blocks"] * bsz,
                  "standard_error_token": sc.get("standard_error_token"),
                  "standard_error_block": sc.get("standard_error_block")})
    if gib:
        curve["kv_bytes_per_token"] = bpt
        curve["capacity_gib"] = [gib(t) for t in curve["capacity_tokens"]]
    rows = []
    for c in sorted(set(caps)):
        i = int(np.searchsorted(grid, c))
        row = {"capacity_blocks": c, "capacity_tokens": c * bsz, "block_hit_rate": sc["block_hit_rate"][i],
               "token_hit_rate": sc["token_hit_rate"][i]}
        if gib:
            row["capacity_gib"] = gib(c * bsz)
        rows.append(row)
    _note_beyond_trace(rows, sc["saturation_capacity_blocks"], sampled=True)
    sampling = {k: sc[k] for k in ("method", "rate", "threshold", "hash_bits", "sampled_references",
                                   "expected_references", "error_bound_pp", "error_mean_pp", "error_estimate",
                                   "sampled_blocks", "heavy_references", "heavy_unseen_references",
                                   "resolved_from_capacity_blocks")}
    sampling["warning"] = sc.get("warning")
    sampling["sample_size_deviation"] = sc.get("sample_size_deviation")
    sampling.update({"mode": "sampled", "why": why["message"], "why_detail": why, "seed": seed, "max_refs": max_refs,
                     "loader": info.get("loader")})
    if sampling["warning"]:
        sampling["warning_detail"] = twin("trace_sampling_heavy_hitters", sampling["warning"],
                                          deviation_fraction=sc.get("sample_size_deviation"))
    elif sc.get("accuracy_warning"):
        acc = sc["accuracy_warning"]
        sampling["warning"] = acc["message"]
        sampling["warning_detail"] = twin("trace_sampling_accuracy", acc["message"],
                                          **{k: v for k, v in acc.items() if k != "message"})
    result = {
        "detection": info,
        "stats": per_request,
        "curve": curve,
        "capacities": rows,
        "ideal_block_hit_rate": sc["ideal_block_hit_rate"],
        "ideal_token_hit_rate": sc["ideal_token_hit_rate"],
        "counting_rule": curve["counting_rule"],
        "counting_rule_detail": counting_rule_detail(full, warm, curve["counting_rule"], sampled=True),
        "fit": {"available": False, "workload": {}, "notes": ["no workload fit with sampling: the fit needs "
                                                               "every block (use sampling: 'exact')"]},
        "sampling": sampling,
    }
    detection_details(info)
    if op is not None:
        blocks = int(op // bsz)
        sb = shards_curve(refs, warmup_fraction=warm, capacities_blocks=[blocks], with_error=False)
        result["operating_point"] = {"capacity_tokens": op, "capacity_blocks": blocks,
                                     "capacity_gib": gib(op) if gib else None,
                                     "block_hit_rate": sb["block_hit_rate"][0],
                                     "token_hit_rate": sb["token_hit_rate"][0]}
        _note_beyond_trace([result["operating_point"]], sc["saturation_capacity_blocks"], sampled=True)
    if targets:
        result["targets"] = [dict(capacity_for_hit_rate(curve, t), target=t, metric="token_hit_rate")
                             for t in targets]
    if fleet_keys is not None:
        result["fleet"] = _fleet_sampled(refs, info["n_requests"], fleet_keys, curve["capacities_blocks"],
                                         cluster or {"instances": 1, "routing": "pooled", "seed": 0}, tiers_req,
                                         rate=rate, seed=seed, full=full, warm=warm, bpt=bpt, max_refs=max_refs,
                                         auto=auto)
    report(1.0)
    return result


def _fleet_sampled(refs, n_requests: int, fleet_keys: dict, caps: list, cluster: dict, tiers_req, *, rate, seed,
                   full: bool, warm: float, bpt, max_refs, auto: bool) -> dict:
    """The sampled replay across instances (and tiers) at the curve's capacities per instance
    (see fleet_sample.py)."""
    import numpy as np

    from .fleet import parse_tiers
    from .fleet_sample import instance_refs, instance_refs_from_trace, route_sampled, sampled_fleet_curves
    k, routing = cluster["instances"], cluster["routing"]
    pooled = routing == "pooled" and k > 1
    bsz = refs.block_size_tokens
    trace = fleet_keys.get("trace")
    tiers = None if tiers_req is None else parse_tiers(tiers_req, bsz, bpt)
    grid = np.asarray(caps, dtype=np.float64)
    bounds = np.zeros(0) if tiers is None else np.cumsum([0] + [t["capacity_blocks"] for t in tiers]).astype(np.float64)
    evaluate = np.concatenate([grid, bounds])
    if pooled or k == 1:
        inst, how = np.zeros(n_requests, dtype=np.int64), ("one shared pool of K x C" if pooled else "one cache")
    else:
        inst, how = route_sampled(n_requests, k, routing, cluster["seed"], trace=trace,
                                  first_ids=fleet_keys.pop("first_ids", None))
        inst = inst.astype(np.int32)         # K <= 4096; half the memory of a long trace's routing
    scale = k if pooled else 1
    order = np.argsort(evaluate, kind="stable")
    if pooled or k == 1:
        parts = instance_refs(refs, inst, 1)            # the single cache's sample itself
    elif trace is not None:
        parts = instance_refs_from_trace(trace, inst, k, rate, seed=seed, full_blocks_only=full, max_refs=max_refs)
    else:
        parts = instance_refs(refs, inst, k)
    fc = sampled_fleet_curves(parts, evaluate[order] * scale, warmup_fraction=warm)
    at = {}
    for key in ("block_hit_rate", "token_hit_rate", "error_bound_token", "error_bound_block"):
        v = np.empty(evaluate.shape)
        v[order] = fc[key]
        at[key] = v
    m = grid.shape[0]
    per_inst = np.bincount(inst, minlength=k) if not pooled else np.full(k, n_requests / k)
    used = int((per_inst > 0).sum())
    out = {"instances": k, "routing": routing, "routing_key": how, "routing_key_detail": _routing_detail(how),
           "seed": cluster["seed"],
           "capacities_blocks_per_instance": list(caps),
           "capacity_tokens_per_instance": [int(c) * bsz for c in caps],
           "block_hit_rate": at["block_hit_rate"][:m].tolist(), "token_hit_rate": at["token_hit_rate"][:m].tolist(),
           "busiest_instance_request_share": float(per_inst.max() / n_requests) if n_requests else 0.0,
           "instances_used": used}
    bound = float(100 * max(at["error_bound_token"][:m].max(), at["error_bound_block"][:m].max())) if m else 0.0
    out["sampling"] = {
        "mode": "sampled", "rate": fc["rate"], "error_bound_pp": bound, "error_mean_pp": fc["error_mean_pp"],
        "error_bound_token": at["error_bound_token"][:m].tolist(),
        "error_bound_block": at["error_bound_block"][:m].tolist(),
        "auto": auto,
        "error_estimate": "per instance: the single cache's estimator on the instance's share of the hashed "
                          "sample; fleet standard error and bias from the fleet's own hash-group curves, the "
                          "instances' hand-over and distinct-total errors added linearly; bound = |bias| + 3 "
                          "standard errors + those"}
    auto_text = " With auto, a fleet is sampled above the same size as a single cache."
    if pooled:
        out["note"] = (f"Pooled: one LRU cache of K x the capacity per instance, estimated from the hashed sample of "
                       f"the blocks (rate {fc['rate']:.3g}); stated error up to {bound:.2f} pp." + auto_text)
    else:
        out["note"] = ("Each instance is an LRU cache of the capacity per instance, estimated from the hashed sample "
                       f"of the blocks (rate {fc['rate']:.3g}; every request routed exactly); fleet rate = all hits / "
                       f"all lookups; warm-up per instance; stated error up to {bound:.2f} pp." + auto_text)
    out["note_detail"] = twin("trace_fleet_note_sampled_pooled" if pooled else "trace_fleet_note_sampled", out["note"],
                              rate_fraction=fc["rate"], error_bound_pp=round(bound, 2))
    if tiers is not None:
        counted_blocks = fc["blocks_looked_up"]
        b_at = at["block_hit_rate"][m:]
        t_at = at["token_hit_rate"][m:]
        rows = []
        n_counted = _counted_requests(per_inst if not pooled else np.array([n_requests]), warm)
        for j, t in enumerate(tiers):
            row = {"name": t["name"], "capacity_blocks": t["capacity_blocks"], "capacity_tokens": t["capacity_tokens"],
                   "cumulative_capacity_blocks": int(bounds[j + 1]),
                   "block_hit_rate": float(b_at[j + 1] - b_at[j]), "token_hit_rate": float(t_at[j + 1] - t_at[j]),
                   "block_hits": float((b_at[j + 1] - b_at[j]) * counted_blocks),
                   "token_hits": float((t_at[j + 1] - t_at[j]) * fc["prompt_tokens"])}
            if bpt and n_counted:
                read_bytes = row["token_hits"] * bpt / n_counted
                row["read_bytes_per_request"] = read_bytes
                if t["read_gb_per_s"]:
                    row["read_s_per_request"] = read_bytes / (t["read_gb_per_s"] * 1e9)
            rows.append(row)
        out["tiers"] = rows
    return out


def _counted_requests(per_instance, warm: float) -> int:
    """Requests counted after each instance's own warm-up (as the exact replay counts them)."""
    from .curve import _n_warm
    return int(sum(int(n) - _n_warm(int(n), warm) for n in per_instance if n))


def _note_beyond_trace(rows: list, saturation_blocks: int, sampled: bool = False) -> None:
    """Rows at or above the capacity where every reuse already hits get a note saying so."""
    for r in rows:
        if saturation_blocks and r["capacity_blocks"] >= saturation_blocks:
            est = " (estimated from the sample)" if sampled else ""
            r["beyond_trace"] = True
            r["note_detail"] = twin("trace_capacity_beyond_trace",
                                    f"{r['capacity_blocks']} blocks is at or above the {saturation_blocks} blocks "
                                    f"where every reuse of this trace already hits{est}: the hit rate is the trace's "
                                    "ceiling, a larger cache gains nothing on it",
                                    capacity_blocks=r["capacity_blocks"], saturation_capacity_blocks=saturation_blocks)


_ROUTING_CODES = (("one cache", "trace_routing_one_cache"), ("one shared pool", "trace_routing_pool"),
                  ("request index", "trace_routing_index"), ("uniform", "trace_routing_uniform"),
                  ("hash of the session", "trace_routing_session"), ("hash of the first block", "trace_routing_first_block"))


def _routing_detail(how: str) -> dict:
    code = next((c for prefix, c in _ROUTING_CODES if how.startswith(prefix)), "trace_routing_one_cache")
    return twin(code, how)
