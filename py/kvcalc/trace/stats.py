"""Trace statistics and a fit of the analytic model's workload to a trace.

Sessions: from the format where it carries them (Bailian ``chat_id`` /
``parent_chat_id`` chain, generic ``session_id``); otherwise inferred: a
request whose blocks extend every full block of an earlier request, that
earlier request having at least two full blocks (so a shared one-block system
prompt alone links nothing), is a follow-up turn of the latest such request.
"""

from __future__ import annotations

import math
import sys
import weakref

import numpy as np

from ..errors import InputError
from ..workload import WORKLOAD_LIMITS
from .curve import _stable_order
from .loaders import Trace
from .messages import session_source_detail, twin

__all__ = ["infer_sessions", "trace_stats", "fit_workload", "fit_workload_report",
           "DEFAULT_DECODE_S_PER_TOKEN", "log_histogram"]

#: Default decode time per output token [s] used for service_time_s (a trace has
#: no completion times): 30 ms per token, a typical single-request decode speed.
DEFAULT_DECODE_S_PER_TOKEN = 0.03
#: |CV - 1| at most this: exponential gaps; otherwise lognormal.
_EXPONENTIAL_CV_TOLERANCE = 0.25


def infer_sessions(trace: Trace) -> tuple[np.ndarray, np.ndarray, str]:
    """(session index per request, parent request row or -1, how they were found)."""
    n = trace.n_requests
    if trace.format == "bailian":
        return trace.session_ids, trace.parent_index, "chat_id/parent_chat_id chain"
    if trace.session_ids.size and (trace.session_ids >= 0).all():
        parent = np.full(n, -1, dtype=np.int64)
        last: dict = {}
        sids = trace.session_ids.tolist()
        for r, s in enumerate(sids):
            parent[r] = last.get(s, -1)
            last[s] = r
        return trace.session_ids, parent, "session_id field"
    session, parent = _inferred_sessions(trace)
    return session, parent, "inferred: a request extending all full blocks (>= 2) of an earlier one is its follow-up"


#: Per trace (a frozen Trace): sessions and the system prompt's length, computed once for
#: both trace_stats and fit_workload_report (read-only use inside this module).
_CACHE: "weakref.WeakKeyDictionary[Trace, dict]" = weakref.WeakKeyDictionary()


def _cached(trace: Trace) -> dict:
    c = _CACHE.get(trace)
    if c is None:
        c = {}
        _CACHE[trace] = c
    return c


def _sessions(trace: Trace) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`infer_sessions`, once per trace (callers here never write to the arrays)."""
    c = _cached(trace)
    if "sessions" not in c:
        c["sessions"] = infer_sessions(trace)
    return c["sessions"]


def _system_prompt_blocks_once(trace: Trace, session: np.ndarray) -> int:
    c = _cached(trace)
    if "system_prompt_blocks" not in c:
        c["system_prompt_blocks"] = _system_prompt_blocks(trace, session)
    return c["system_prompt_blocks"]


def _inferred_sessions(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised form of the rule (same result as a loop over requests).

    Loop form: ``end_of`` maps the id ending a request's full blocks (requests
    with >= 2 full blocks) to the latest such request; request r's parent is
    ``end_of[ids[k]]`` for the deepest position k >= 1 of r found there, looked
    up before r itself is entered. Here: every (id, request) end event sorted
    once; each reference at position >= 1 finds the latest event with its id
    from an earlier request by one binary search; the deepest hit per request
    wins; sessions follow parents by pointer jumping and are numbered in the
    order of their first request.
    """
    n = trace.n_requests
    bs = trace.block_size_tokens
    off = trace.block_offsets
    ids = trace.block_ids
    full = trace.input_tokens // bs
    parent = np.full(n, -1, dtype=np.int64)
    has_end = full >= 2
    ev_req = np.nonzero(has_end)[0]
    if ids.size and ev_req.size:
        ev_id = ids[off[ev_req] + full[ev_req] - 1]
        span = n + 1
        ev_key = np.sort(ev_id * span + ev_req)
        cnt = np.diff(off)
        req = np.repeat(np.arange(n, dtype=_req_dtype(n, ids.size)), cnt.astype(np.intp))
        # Only references at position >= 1 whose id ends some request's full
        # blocks can find an event.
        is_end = np.zeros(int(ids.max()) + 1, dtype=bool)
        is_end[ev_id] = True
        cand = is_end[ids]
        del is_end
        cand[off[:-1][cnt > 0]] = False             # position 0 of each request
        q = np.flatnonzero(cand)
        del cand
        qid = ids[q]
        k = np.searchsorted(ev_key, qid * span + req[q], side="left") - 1
        kc = np.maximum(k, 0)
        hit = (k >= 0) & (ev_key[kc] // span == qid)
        mi = q[hit]
        if mi.size:
            rq = req[mi]
            last = np.ones(mi.size, dtype=bool)
            last[:-1] = rq[1:] != rq[:-1]
            parent[rq[last]] = (ev_key[kc[hit]] % span)[last]
    root = np.arange(n, dtype=np.int64)
    has = parent >= 0
    root[has] = parent[has]
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    number = np.cumsum(~has) - 1
    return number[root].astype(np.int64), parent


def _req_dtype(n: int, total: int):
    """int32 for per-reference request indices while they fit, else int64."""
    return np.int32 if max(n, total) < (1 << 31) - 1 else np.int64


def _quantiles(x: np.ndarray) -> dict:
    if x.size == 0:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    q = np.percentile(x, [50, 90, 99])
    return {"n": int(x.size), "mean": float(x.mean()), "p50": float(q[0]), "p90": float(q[1]),
            "p99": float(q[2]), "max": float(x.max())}


def log_histogram(x: np.ndarray, bins_per_decade: int = 5) -> dict:
    """Histogram of positive values on log-spaced bins; zeros counted apart."""
    x = np.asarray(x, dtype=np.float64)
    pos = x[x > 0]
    out = {"n": int(x.size), "n_zero": int((x <= 0).sum()), "bin_edges": [], "counts": []}
    if pos.size:
        lo = math.floor(math.log10(pos.min()) * bins_per_decade) / bins_per_decade
        hi = math.ceil(math.log10(pos.max()) * bins_per_decade) / bins_per_decade
        if hi <= lo:
            hi = lo + 1.0 / bins_per_decade
        nb = int(round((hi - lo) * bins_per_decade))
        edges = np.power(10.0, np.linspace(lo, hi, nb + 1))
        counts, _ = np.histogram(pos, bins=edges)
        out["bin_edges"] = edges.tolist()
        out["counts"] = counts.astype(int).tolist()
    del pos                                     # freed before the quantiles' sorted copy of x
    out.update({k: v for k, v in _quantiles(x).items() if k != "n"})
    return out


def _system_prompt_blocks(trace: Trace, session: np.ndarray) -> int:
    """Length [blocks] of the most common shared prefix.

    Follow the most common first full block, then at each depth the most
    common continuation, while it is shared by at least two sessions and by at
    least half the sessions that share the first block.
    """
    bs = trace.block_size_tokens
    full = trace.input_tokens // bs
    off = trace.block_offsets
    rows = np.nonzero(full >= 1)[0]
    depth = 0
    need = None
    while rows.size:
        ids = trace.block_ids[off[rows] + depth]
        u, c = np.unique(_unique_pairs(ids, session[rows])[0], return_counts=True)
        best = int(np.argmax(c))
        if need is None:
            need = max(2, int(math.ceil(0.5 * c[best])))
        if c[best] < need:
            break
        depth += 1
        rows = rows[(ids == u[best]) & (full[rows] > depth)]
    return depth


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs of two non-negative int arrays, sorted (one 1-D sort of a*B + b)."""
    if a.size == 0:
        return a[:0], b[:0]
    nb = int(b.max()) + 1
    if int(a.max()) < (1 << 62) // max(nb, 1):
        u = np.unique(a.astype(np.int64) * nb + b)
        return u // nb, u % nb
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)  # pragma: no cover - huge ids
    return pairs[:, 0], pairs[:, 1]


def _sorted_repeats(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stable order of ``ids``, ``same``: sorted neighbours equal), without a sorted copy of the ids.

    ``same[k]`` is true when the ``k``-th and ``k+1``-th ids in sorted order are equal.
    """
    n = ids.shape[0]
    if n and n < (1 << 31) and int(ids.min()) >= 0 and int(ids.max()) < (1 << 31):
        key = ids.astype(np.int64)                  # ids << 32 | position: distinct keys, one plain sort
        key <<= 32
        halves = key.view(np.int32)
        lo, hi = (0, 1) if sys.byteorder == "little" else (1, 0)
        halves[lo::2] = np.arange(n, dtype=np.int32)
        key.sort()
        high = halves[hi::2]
        same = high[1:] == high[:-1]
        del high
        order = halves[lo::2].copy()
        del halves, key
        return order, same
    order, xs = _stable_order(ids)
    return order, xs[1:] == xs[:-1]


def _shared_tokens(trace: Trace, session: np.ndarray, req: np.ndarray) -> int:
    """Prompt tokens in block references whose block is used by more than one session.

    Every reference counts ``block_size`` tokens except a prompt's last one,
    which counts ``input - (n_ids - 1) * block_size`` (it may be partial).
    """
    ids = trace.block_ids
    sdt = np.int32 if session.shape[0] and int(session.max()) < (1 << 31) - 1 else np.int64
    sess_ref = session.astype(sdt, copy=False)[req]
    one = np.zeros(int(ids.max()) + 1, dtype=sdt)
    one[ids] = sess_ref
    differs = one[ids]
    differs = sess_ref != differs
    del sess_ref
    multi = np.zeros(one.shape[0], dtype=bool)
    del one
    multi[ids[differs]] = True
    del differs
    shared = multi[ids]
    del multi
    bs = trace.block_size_tokens
    total = int(np.count_nonzero(shared)) * bs
    n_ids = np.diff(trace.block_offsets)
    has = n_ids > 0
    last = trace.block_offsets[1:][has] - 1
    last_shared = shared[last]
    del shared
    part = trace.input_tokens[has][last_shared] - (n_ids[has][last_shared] - 1) * bs
    total += int(part.sum()) - bs * int(last_shared.sum())
    return total


def trace_stats(trace: Trace) -> dict:
    """Arrival rate, sessions, reuse gaps, lengths and shared-prefix share (JSON-simple)."""
    n = trace.n_requests
    ts = trace.timestamps_s
    span = float(ts[-1] - ts[0]) if n else 0.0
    session, parent, source = _sessions(trace)
    n_sessions = int(session.max()) + 1 if n else 0
    per_session = np.bincount(session.astype(np.intp), minlength=n_sessions) if n else np.zeros(0)
    follow = parent >= 0
    turn_gaps = ts[follow] - ts[parent[follow]]
    # Reuse gaps: time between consecutive uses of the same block.
    ids = trace.block_ids
    req = np.repeat(np.arange(n, dtype=_req_dtype(n, ids.size)), np.diff(trace.block_offsets).astype(np.intp))
    order, same = _sorted_repeats(ids)
    req_sorted = req[order]
    del order
    r_early = req_sorted[:-1][same]
    r_late = req_sorted[1:][same]
    del req_sorted, same
    reuse = ts[r_late]
    del r_late
    reuse -= ts[r_early]
    del r_early
    reuse_hist = log_histogram(reuse)
    del reuse
    # Shared-prefix share: prompt tokens in blocks used by more than one session.
    # A block has more than one session iff some reference's session differs from
    # the session of any one fixed reference of it (whichever the scatter keeps).
    shared_tokens = _shared_tokens(trace, session, req) if ids.size else 0
    del req
    prompt_tokens = int(trace.input_tokens.sum())
    return {
        "n_requests": n,
        "duration_s": span,
        "arrival_rate_per_s": n / span if span > 0 else None,
        "block_size_tokens": trace.block_size_tokens,
        "n_blocks_total": trace.n_blocks_total,
        "n_blocks_unique": trace.n_blocks_unique,
        "sessions": {
            "source": source,
            "source_detail": session_source_detail(source),
            "n_sessions": n_sessions,
            "conversation_rate_per_s": n_sessions / span if span > 0 else None,
            "requests_per_session": _quantiles(per_session.astype(np.float64)),
            "n_follow_up_requests": int(follow.sum()),
        },
        "input_tokens": _quantiles(trace.input_tokens.astype(np.float64)),
        "output_tokens": _quantiles(trace.output_tokens.astype(np.float64)),
        "reuse_gap_s": reuse_hist,
        "turn_gap_s": log_histogram(turn_gaps),
        "shared_prefix_token_share": shared_tokens / prompt_tokens if prompt_tokens else 0.0,
        "system_prompt_tokens": _system_prompt_blocks_once(trace, session) * trace.block_size_tokens,
    }


def _clamp(name: str, x: float, notes: list) -> float:
    lo, hi, lo_open = WORKLOAD_LIMITS[name]
    floor = lo if not lo_open else (lo + max(1e-9, abs(lo) * 1e-9) if lo == 0 else lo * (1 + 1e-9))
    y = min(max(x, floor), hi)
    if y != x:
        notes.append(twin("trace_fit_clamped", f"{name} {x:.6g} clamped to the model's range: {y:.6g}",
                          name=name, value=x, clamped=y))
    return float(y)


def fit_workload_report(trace: Trace, *, service_time_s: float | None = None) -> dict:
    """``{"workload": {...}, "notes": [...], "measured": {...}}``; see :func:`fit_workload`."""
    if service_time_s is not None and (isinstance(service_time_s, bool) or not isinstance(service_time_s, (int, float))
                                       or not 0 <= service_time_s <= 1e5):
        raise InputError("service_time_s", service_time_s, "a number in [0, 100000]")
    notes: list[dict] = []       # message twins; "notes" keeps their English text
    n = trace.n_requests
    ts = trace.timestamps_s
    span = float(ts[-1] - ts[0])
    session, parent, source = _sessions(trace)
    n_sessions = int(session.max()) + 1
    notes.append(dict(session_source_detail(source), message=f"sessions: {source}"))
    if span <= 0:
        notes.append(twin("trace_fit_one_timestamp", "all requests share one timestamp: rates use a 1 s window"))
        span = 1.0
    out_mean = float(trace.output_tokens.mean())
    if service_time_s is None:
        service_time_s = out_mean * DEFAULT_DECODE_S_PER_TOKEN
        notes.append(twin("trace_fit_service_time_default",
                          f"service_time_s = mean output tokens x {DEFAULT_DECODE_S_PER_TOKEN} s/token "
                          "(default decode speed, not measured: the trace has no completion times)",
                          decode_s_per_token=DEFAULT_DECODE_S_PER_TOKEN))
    follow = parent >= 0
    arrival_gaps = ts[follow] - ts[parent[follow]]
    gaps = np.maximum(arrival_gaps - service_time_s, 0.0)
    if gaps.size:
        gap_mean = float(gaps.mean())
        notes.append(twin("trace_fit_gap_mean",
                          "gap_mean_s = mean time between a turn's arrival and its follow-up's, minus service_time_s"))
        sd = float(gaps.std())
        cv = sd / gap_mean if gap_mean > 0 else 0.0
    else:
        gap_mean, cv = 60.0, 1.0
        notes.append(twin("trace_fit_no_follow_ups",
                          "no follow-up turns found: gap_mean_s left at the default 60 s (irrelevant with one turn)"))
    if abs(cv - 1.0) <= _EXPONENTIAL_CV_TOLERANCE:
        gap_dist, sigma = "exponential", 1.0
    else:
        gap_dist, sigma = "lognormal", math.sqrt(math.log1p(cv * cv))
    notes.append(twin(f"trace_fit_gap_{gap_dist}", f"gap coefficient of variation {cv:.3g}: {gap_dist}"
                      f" (exponential when |CV-1| <= {_EXPONENTIAL_CV_TOLERANCE}, else lognormal with sigma = "
                      "sqrt(ln(1+CV^2)))", cv=cv, tolerance=_EXPONENTIAL_CV_TOLERANCE, sigma=sigma))
    p_blocks = _system_prompt_blocks_once(trace, session)
    system_prompt = p_blocks * trace.block_size_tokens
    # New user tokens per turn: first turns bring input - P, follow-ups bring
    # input - (parent input + parent output); the mean keeps the miss volume.
    inp = trace.input_tokens.astype(np.float64)
    new = np.where(follow, inp - inp[np.maximum(parent, 0)] - trace.output_tokens[np.maximum(parent, 0)],
                   inp - system_prompt)
    user = float(np.maximum(new, 0.0).mean())
    notes.append(twin("trace_fit_user_tokens",
                      "user_tokens_per_turn = mean new prompt tokens per request (first turns: input - system "
                      "prompt; follow-ups: input - parent input - parent output)"))
    notes.append(twin("trace_fit_turns_geometric",
                      "turns_distribution: geometric (the model's default), with the measured mean"))
    workload = {
        "conversation_rate_per_s": _clamp("conversation_rate_per_s", n_sessions / span, notes),
        "turns_mean": _clamp("turns_mean", n / n_sessions, notes),
        "turns_distribution": "geometric",
        "gap_mean_s": _clamp("gap_mean_s", gap_mean, notes),
        "gap_distribution": gap_dist,
        "gap_lognormal_sigma": _clamp("gap_lognormal_sigma", sigma, notes),
        "user_tokens_per_turn": _clamp("user_tokens_per_turn", user, notes),
        "output_tokens_per_turn": _clamp("output_tokens_per_turn", out_mean, notes),
        "system_prompt_tokens": _clamp("system_prompt_tokens", float(system_prompt), notes),
        "service_time_s": _clamp("service_time_s", float(service_time_s), notes),
    }
    measured = {"gap_cv": cv, "n_sessions": n_sessions, "n_follow_ups": int(follow.sum()),
                "arrival_gap_mean_s": float(arrival_gaps.mean()) if arrival_gaps.size else None,
                "block_size_tokens": trace.block_size_tokens}
    return {"workload": workload, "notes": [n["message"] for n in notes], "note_details": notes,
            "measured": measured}


def fit_workload(trace: Trace, *, service_time_s: float | None = None) -> dict:
    """Workload fields of the analytic model fitted to a trace.

    Keys (exactly :class:`kvcalc.workload.Workload`'s): conversation_rate_per_s,
    turns_mean, turns_distribution, gap_mean_s, gap_distribution,
    gap_lognormal_sigma, user_tokens_per_turn, output_tokens_per_turn,
    system_prompt_tokens, service_time_s. Values are clamped to the model's
    ranges; :func:`fit_workload_report` says how each was obtained.
    """
    return fit_workload_report(trace, service_time_s=service_time_s)["workload"]
