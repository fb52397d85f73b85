"""kvcalc.trace.stats against plain-Python counts over small hand-written traces.

Every expected value is either written out by hand in the docstring beside it or
counted here with dicts, sets and loops (no numpy in the reference), following
the rules the module states: a request extending every full block (>= 2) of an
earlier one is the follow-up of the latest such request; reuse gaps are the times
between consecutive uses of one block; the shared-prefix share counts prompt tokens
in blocks used by more than one session; the system prompt follows the most common
first block while >= 2 and >= half of those sessions share the continuation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace.loaders import Trace
from kvcalc.trace.stats import (DEFAULT_DECODE_S_PER_TOKEN, fit_workload, fit_workload_report, infer_sessions,
                                log_histogram, trace_stats)

BS = 4   # tokens per block in every trace here

# (timestamp s, input tokens, output tokens, block ids head first); ids 0, 1 are a shared
# two-block system prompt. Sessions by the rule (worked by hand):
#   r0 A1  full blocks 0 1 2 (ends at 2)
#   r1 B1  0 1 4 (ends at 4): no earlier request ends at 1, 4 or 5
#   r2 A2  holds 2 at position 2 -> parent r0; ends at 8
#   r3 C1  10 11 (ends at 11)
#   r4 B2  holds 4 at position 2 -> parent r1
#   r5 A3  holds 2 (-> r0) and 8 (-> r2) at positions 2 and 5: the deepest wins -> r2
#   r6 D1  one full block: never a parent, 17 ends nothing -> new session
#   r7 C2  holds 11 at position 1 -> parent r3; ends at 11 too
#   r8 C3  holds 11 at position 1: the latest request ending at 11 is r7 -> parent r7
ROWS = [
    (0.0, 14, 6, [0, 1, 2, 3]),
    (2.0, 13, 2, [0, 1, 4, 5]),
    (5.0, 26, 4, [0, 1, 2, 6, 7, 8, 9]),
    (9.0, 8, 1, [10, 11]),
    (12.0, 20, 0, [0, 1, 4, 12, 13]),
    (15.0, 36, 2, [0, 1, 2, 6, 7, 8, 14, 15, 16]),
    (16.0, 5, 3, [19, 17]),
    (20.0, 8, 0, [10, 11]),
    (22.0, 12, 0, [10, 11, 18]),
]
PARENT = [-1, -1, 0, -1, 1, 2, -1, 3, 7]
SESSION = [0, 1, 0, 2, 1, 0, 3, 2, 2]     # numbered in the order of each session's first request


def _trace(rows, fmt="mooncake", sessions=None, parents=None, bs=BS) -> Trace:
    n = len(rows)
    off = [0]
    for r in rows:
        off.append(off[-1] + len(r[3]))
    return Trace(
        timestamps_s=np.array([r[0] for r in rows], dtype=np.float64),
        input_tokens=np.array([r[1] for r in rows], dtype=np.int64),
        output_tokens=np.array([r[2] for r in rows], dtype=np.int64),
        block_offsets=np.array(off, dtype=np.int64),
        block_ids=np.array([b for r in rows for b in r[3]], dtype=np.int64),
        block_size_tokens=bs, format=fmt,
        session_ids=np.array(sessions if sessions is not None else [-1] * n, dtype=np.int64),
        parent_index=np.array(parents if parents is not None else [-1] * n, dtype=np.int64))


def _plain_sessions(rows, bs=BS):
    """The rule as a loop: end_of[id ending a request's full blocks (>= 2)] = latest such request."""
    end_of, parent = {}, []
    for r, (_, inp, _, ids) in enumerate(rows):
        full = inp // bs
        p = -1
        for k in range(1, len(ids)):
            if ids[k] in end_of:
                p = end_of[ids[k]]          # deeper positions overwrite: the deepest wins
        parent.append(p)
        if full >= 2:
            end_of[ids[full - 1]] = r
    session, number = [], {}
    for r, p in enumerate(parent):
        if p < 0:
            number[r] = len(number)
            session.append(number[r])
        else:
            session.append(session[p])
    return session, parent


def _plain_percentile(xs, q):
    """Linear interpolation between closest ranks (numpy's default), written out."""
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _plain_quantiles(xs):
    return {"n": len(xs), "mean": sum(xs) / len(xs), "p50": _plain_percentile(xs, 50),
            "p90": _plain_percentile(xs, 90), "p99": _plain_percentile(xs, 99), "max": max(xs)}


def test_inferred_sessions_by_hand_and_by_the_loop_rule():
    tr = _trace(ROWS)
    session, parent, source = infer_sessions(tr)
    assert parent.tolist() == PARENT
    assert session.tolist() == SESSION
    assert (SESSION, PARENT) == _plain_sessions(ROWS)      # the hand reading agrees with the loop
    assert source.startswith("inferred")


def test_trace_stats_against_plain_counts():
    """Counts by hand: 9 requests over 22 s, 4 sessions of 3, 2, 3, 1 requests, 5 follow-ups with
    turn gaps 5, 10, 10, 11, 2 s; the reuse gaps come from a dict of each block's use times."""
    tr = _trace(ROWS)
    s = trace_stats(tr)
    assert s["n_requests"] == 9 and s["duration_s"] == 22.0
    assert s["arrival_rate_per_s"] == pytest.approx(9 / 22, rel=1e-15)
    assert s["block_size_tokens"] == BS
    assert s["n_blocks_total"] == sum(len(r[3]) for r in ROWS) == 38
    assert s["n_blocks_unique"] == 20                      # ids 0..19
    ss = s["sessions"]
    assert ss["n_sessions"] == 4 and ss["n_follow_up_requests"] == 5
    assert ss["conversation_rate_per_s"] == pytest.approx(4 / 22, rel=1e-15)
    assert ss["source"].startswith("inferred") and ss["source_detail"]["code"] == "trace_sessions_inferred"
    assert ss["requests_per_session"] == pytest.approx(_plain_quantiles([3.0, 2.0, 3.0, 1.0]), rel=1e-12)
    assert s["input_tokens"] == pytest.approx(_plain_quantiles([float(r[1]) for r in ROWS]), rel=1e-12)
    assert s["output_tokens"] == pytest.approx(_plain_quantiles([float(r[2]) for r in ROWS]), rel=1e-12)

    turn = [5.0, 10.0, 10.0, 11.0, 2.0]
    assert s["turn_gap_s"]["n"] == 5 and s["turn_gap_s"]["n_zero"] == 0
    for k, v in _plain_quantiles(turn).items():
        if k != "n":
            assert s["turn_gap_s"][k] == pytest.approx(v, rel=1e-12), k
    assert sum(s["turn_gap_s"]["counts"]) == 5

    uses: dict = {}
    for t, _, _, ids in ROWS:
        for b in ids:
            uses.setdefault(b, []).append(t)
    reuse = [b - a for ts in uses.values() for a, b in zip(ts, ts[1:])]
    # by hand: ids 0 and 1 at 0, 2, 5, 12, 15 s (gaps 2 3 7 3 each); id 2 at 0, 5, 15 (5, 10);
    # 4, 6, 7, 8 once each (10); id 10 at 9, 20, 22 (11, 2); id 11 likewise
    assert sorted(reuse) == sorted([2, 3, 7, 3] * 2 + [5, 10] + [10] * 4 + [11, 2] * 2)
    r = s["reuse_gap_s"]
    assert r["n"] == len(reuse) == 18 and r["n_zero"] == 0
    for k, v in _plain_quantiles(reuse).items():
        if k != "n":
            assert r[k] == pytest.approx(v, rel=1e-12), k

    # shared prefix: ids 0 and 1 are used by sessions A and B, no other id by two sessions;
    # both are full blocks (4 tokens) in the 5 requests that hold them: 5 x 2 x 4 = 40 tokens
    assert s["shared_prefix_token_share"] == pytest.approx(40 / sum(r[1] for r in ROWS), rel=1e-15)
    # the system prompt: first blocks by session 0 (A, B), 10 (C), 19 (D): id 0 with 2 >= max(2,
    # ceil(2/2)); then 1 (A, B): 2; then 2 (A) and 4 (B): 1 each < 2 -> 2 blocks = 8 tokens
    assert s["system_prompt_tokens"] == 8


def test_shared_prefix_share_counts_a_partial_last_block_by_its_tokens():
    """Two sessions (session_id field), block size 4: r0 = ids 0, 1 with 6 tokens (the last block
    holds 2), r1 = ids 0, 1, 2 with 11 tokens (3 in the last). Shared ids 0 and 1: 4 + 2 tokens in
    r0, 4 + 4 in r1 -> 14 of 17 prompt tokens. The sessions come from the field, in row order."""
    rows = [(0.0, 6, 1, [0, 1]), (1.0, 11, 1, [0, 1, 2]), (3.0, 9, 0, [3, 4, 5])]
    tr = _trace(rows, fmt="generic", sessions=[5, 7, 5])
    s = trace_stats(tr)
    assert s["shared_prefix_token_share"] == pytest.approx(14 / 26, rel=1e-15)
    session, parent, source = infer_sessions(tr)
    assert session.tolist() == [5, 7, 5] and parent.tolist() == [-1, -1, 0]
    assert source == "session_id field" and s["sessions"]["source_detail"]["code"] == "trace_sessions_field"
    assert s["sessions"]["n_follow_up_requests"] == 1
    assert s["turn_gap_s"]["mean"] == 3.0
    assert s["sessions"]["n_sessions"] == 8   # indices 0..7 (the field's values are the indices)


def test_bailian_sessions_come_from_the_chain_given():
    rows = [(0.0, 8, 2, [0, 1]), (4.0, 12, 0, [0, 1, 2]), (5.0, 8, 0, [3, 4])]
    tr = _trace(rows, fmt="bailian", sessions=[0, 0, 1], parents=[-1, 0, -1])
    session, parent, source = infer_sessions(tr)
    assert session.tolist() == [0, 0, 1] and parent.tolist() == [-1, 0, -1]
    assert source == "chat_id/parent_chat_id chain"
    s = trace_stats(tr)
    assert s["sessions"]["source_detail"]["code"] == "trace_sessions_chat"
    assert s["turn_gap_s"]["mean"] == 4.0 and s["sessions"]["n_sessions"] == 2


def test_a_one_block_shared_prompt_links_nothing():
    """Requests need >= 2 full blocks to be a parent: three sessions sharing one 4-token block 0
    (a one-block system prompt) each then diverge; none is anyone's follow-up. The system prompt is
    still found: block 0 is the first block of all 3 sessions, its continuations differ."""
    rows = [(0.0, 8, 0, [0, 1]), (1.0, 8, 0, [0, 2]), (2.0, 9, 0, [0, 3, 4])]
    tr = _trace(rows)
    session, parent, _ = infer_sessions(tr)
    assert parent.tolist() == [-1, -1, -1] and session.tolist() == [0, 1, 2]
    assert trace_stats(tr)["system_prompt_tokens"] == 4
    # with 2 full blocks r0 ends at 1, and a request holding 1 at position 1 follows it
    rows2 = rows + [(3.0, 12, 0, [0, 1, 5])]
    assert infer_sessions(_trace(rows2))[1].tolist() == [-1, -1, -1, 0]


def test_system_prompt_needs_half_of_the_sessions():
    """Six sessions start with block 0; five continue with 1, then three of those with 2, then
    two with 3. need = max(2, ceil(6 / 2)) = 3: depth 1 (5 >= 3), depth 2 (3 >= 3), then 2 < 3
    stops: 3 blocks. (With the >= 2 rule alone it would go one deeper.)"""
    rows = [
        (0.0, 20, 0, [0, 1, 2, 3, 10]),
        (1.0, 20, 0, [0, 1, 2, 3, 11]),
        (2.0, 20, 0, [0, 1, 2, 12, 13]),
        (3.0, 20, 0, [0, 1, 14, 15, 16]),
        (4.0, 20, 0, [0, 1, 17, 18, 19]),
        (5.0, 20, 0, [0, 20, 21, 22, 23]),
    ]
    tr = _trace(rows, fmt="generic", sessions=[0, 1, 2, 3, 4, 5])
    assert trace_stats(tr)["system_prompt_tokens"] == 3 * BS
    # sessions count once: the same session repeating block 0 does not make it common
    one = _trace([(0.0, 8, 0, [0, 1]), (1.0, 8, 0, [0, 1]), (2.0, 8, 0, [2, 3])], fmt="generic",
                 sessions=[0, 0, 1])
    assert trace_stats(one)["system_prompt_tokens"] == 0


def test_fit_against_hand_values():
    """Service 1 s: gaps = arrival gaps - 1 = 4, 9, 9, 10, 1: mean 6.6, population sd sqrt(61.2 / 5)
    (deviations -2.6, 2.4, 2.4, 3.4, -5.6); CV = 0.530 is 0.47 from 1 > 0.25: lognormal with sigma =
    sqrt(ln(1 + CV^2)). System prompt P = 8. New tokens: first turns input - P = 6, 5, 0, -3 -> 0;
    follow-ups input - parent input - parent output: r2 26-14-6 = 6, r4 20-13-2 = 5, r5 36-26-4 = 6,
    r7 8-8-1 = -1 -> 0, r8 12-8-0 = 4; sum 32 over 9 requests. Output mean 18 / 9 = 2."""
    rep = fit_workload_report(_trace(ROWS), service_time_s=1.0)
    fit = rep["workload"]
    sd = math.sqrt(61.2 / 5)
    cv = sd / 6.6
    assert fit["conversation_rate_per_s"] == pytest.approx(4 / 22, rel=1e-12)
    assert fit["turns_mean"] == pytest.approx(9 / 4, rel=1e-12)
    assert fit["turns_distribution"] == "geometric"
    assert fit["gap_mean_s"] == pytest.approx(6.6, rel=1e-12)
    assert fit["gap_distribution"] == "lognormal"
    assert fit["gap_lognormal_sigma"] == pytest.approx(math.sqrt(math.log(1 + cv * cv)), rel=1e-12)
    assert fit["user_tokens_per_turn"] == pytest.approx(32 / 9, rel=1e-12)
    assert fit["output_tokens_per_turn"] == pytest.approx(2.0, rel=1e-12)
    assert fit["system_prompt_tokens"] == 8.0 and fit["service_time_s"] == 1.0
    m = rep["measured"]
    assert m["gap_cv"] == pytest.approx(cv, rel=1e-12)
    assert m["n_sessions"] == 4 and m["n_follow_ups"] == 5 and m["block_size_tokens"] == BS
    assert m["arrival_gap_mean_s"] == pytest.approx(38 / 5, rel=1e-12)
    codes = [d["code"] for d in rep["note_details"] if "code" in d]
    assert codes == ["trace_sessions_inferred", "trace_fit_gap_mean", "trace_fit_gap_lognormal",
                     "trace_fit_user_tokens", "trace_fit_turns_geometric"]
    assert rep["notes"] == [d["message"] for d in rep["note_details"]]
    gap_note = rep["note_details"][2]
    assert gap_note["params"]["cv"] == pytest.approx(cv) and gap_note["params"]["tolerance"] == 0.25
    assert fit_workload(_trace(ROWS), service_time_s=1.0) == fit


def test_fit_default_service_time_and_exponential_gaps():
    """No service time given: mean output 2 tokens x 0.03 s/token = 0.06 s. Arrival gaps 1.06, 1.06,
    7.06 s -> gaps 1, 1, 7: mean 3, population sd sqrt((4 + 4 + 16) / 3) = sqrt(8): CV 0.943,
    |CV - 1| = 0.057 <= 0.25 -> exponential with sigma 1."""
    rows = [(0.0, 8, 2, [0, 1]), (1.06, 12, 2, [0, 1, 2]),
            (10.0, 8, 2, [3, 4]), (11.06, 12, 2, [3, 4, 5]), (18.12, 16, 2, [3, 4, 5, 6])]
    tr = _trace(rows, fmt="generic", sessions=[0, 0, 1, 1, 1])
    rep = fit_workload_report(tr)
    fit = rep["workload"]
    assert fit["service_time_s"] == pytest.approx(2 * DEFAULT_DECODE_S_PER_TOKEN, rel=1e-12)
    assert DEFAULT_DECODE_S_PER_TOKEN == 0.03
    assert fit["gap_mean_s"] == pytest.approx(3.0, rel=1e-9)
    assert rep["measured"]["gap_cv"] == pytest.approx(math.sqrt(8.0) / 3.0, rel=1e-9)
    assert fit["gap_distribution"] == "exponential" and fit["gap_lognormal_sigma"] == 1.0
    codes = [d["code"] for d in rep["note_details"] if "code" in d]
    assert "trace_fit_service_time_default" in codes and "trace_fit_gap_exponential" in codes
    note = next(d for d in rep["note_details"] if d.get("code") == "trace_fit_service_time_default")
    assert note["params"]["decode_s_per_token"] == 0.03


def test_gap_distribution_boundary_at_cv_tolerance():
    """Two follow-up gaps g1 = 1 < g2 (service 0): mean (g1 + g2) / 2, population sd (g2 - g1) / 2,
    CV = (g2 - g1) / (g1 + g2). g2 = 7: CV = 6 / 8 = 0.75 exactly, |CV - 1| = 0.25 <= 0.25 ->
    exponential (the boundary belongs to it); g2 = 7.2 (CV 0.756) also; g2 = 6.8 (CV 5.8 / 7.8 =
    0.744) is lognormal with sigma = sqrt(ln(1 + CV^2))."""
    def fit_for(g2):
        rows = [(0.0, 8, 0, [0, 1]), (1.0, 12, 0, [0, 1, 2]), (10.0, 8, 0, [3, 4]), (10.0 + g2, 12, 0, [3, 4, 5])]
        return fit_workload_report(_trace(rows, fmt="generic", sessions=[0, 0, 1, 1]), service_time_s=0.0)
    assert fit_for(7.0)["workload"]["gap_distribution"] == "exponential"
    assert fit_for(7.0)["measured"]["gap_cv"] == 0.75
    assert fit_for(7.2)["workload"]["gap_distribution"] == "exponential"
    low = fit_for(6.8)
    assert low["workload"]["gap_distribution"] == "lognormal"
    cv = 5.8 / 7.8
    assert low["workload"]["gap_lognormal_sigma"] == pytest.approx(math.sqrt(math.log(1 + cv * cv)), rel=1e-12)


def test_fit_without_follow_ups_and_with_one_timestamp():
    """Two one-turn sessions at the same instant: rates use a 1 s window (2 conversations/s), the
    gap is left at 60 s with CV 1 (exponential), turns 1; no arrival gap is measured."""
    rows = [(3.0, 8, 4, [0, 1]), (3.0, 12, 2, [2, 3, 4])]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0, 1]), service_time_s=0.5)
    fit = rep["workload"]
    assert fit["conversation_rate_per_s"] == 2.0 and fit["turns_mean"] == 1.0
    assert fit["gap_mean_s"] == 60.0 and fit["gap_distribution"] == "exponential"
    assert fit["user_tokens_per_turn"] == pytest.approx(10.0)          # (8 + 12) / 2, P = 0
    assert rep["measured"]["arrival_gap_mean_s"] is None and rep["measured"]["gap_cv"] == 1.0
    codes = [d["code"] for d in rep["note_details"] if "code" in d]
    assert "trace_fit_one_timestamp" in codes and "trace_fit_no_follow_ups" in codes
    s = trace_stats(_trace(rows, fmt="generic", sessions=[0, 1]))
    assert s["arrival_rate_per_s"] is None and s["sessions"]["conversation_rate_per_s"] is None
    assert s["duration_s"] == 0.0 and s["turn_gap_s"]["n"] == 0 and s["turn_gap_s"]["mean"] is None


def test_fit_clamps_to_the_model_range_and_says_so():
    """A follow-up 0.5 s later with service 1 s: gap max(0.5 - 1, 0) = 0, below the open lower end
    0 of gap_mean_s: raised to 1e-9 (the smallest step above 0), with a note naming the field. A zero
    mean gap has CV 0 (not 1), |0 - 1| > 0.25: lognormal with sigma sqrt(ln 1) = 0, raised to the closed
    lower end 0.05. User tokens: first turn 8 - 0 = 8, follow-up 8 - 8 - 0 = 0 -> mean 4 (in range)."""
    rows = [(0.0, 8, 0, [0, 1]), (0.5, 8, 0, [0, 1])]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0, 0]), service_time_s=1.0)
    assert rep["workload"]["gap_mean_s"] == pytest.approx(1e-9, rel=1e-12)
    clamped = [d for d in rep["note_details"] if d.get("code") == "trace_fit_clamped"]
    assert [d["params"]["name"] for d in clamped] == ["gap_mean_s", "gap_lognormal_sigma"]
    assert rep["workload"]["gap_lognormal_sigma"] == 0.05 and rep["workload"]["user_tokens_per_turn"] == 4.0
    assert clamped[0]["params"]["value"] == 0.0 and clamped[0]["params"]["clamped"] == pytest.approx(1e-9)
    # two sessions 1 microsecond apart: 2 / 1e-6 = 2e6 conversations/s, above the closed upper
    # end 1e6: lowered to it, with a note
    fast = fit_workload_report(_trace([(0.0, 8, 0, [0, 1]), (1e-6, 8, 0, [2, 3])], fmt="generic",
                                      sessions=[0, 1]), service_time_s=0.0)
    assert fast["workload"]["conversation_rate_per_s"] == 1e6
    clamped = [d["params"] for d in fast["note_details"] if d.get("code") == "trace_fit_clamped"]
    assert [(d["name"], d["clamped"]) for d in clamped] == [("conversation_rate_per_s", 1e6)]
    assert clamped[0]["value"] == pytest.approx(2e6, rel=1e-9)


def test_fit_refuses_a_bad_service_time():
    tr = _trace(ROWS)
    for bad in (-1.0, 1e5 + 1, True, "1", float("nan")):
        with pytest.raises(InputError) as e:
            fit_workload_report(tr, service_time_s=bad)
        assert e.value.field == "service_time_s"
    for ok in (0, 1e5):
        assert fit_workload_report(tr, service_time_s=ok)["workload"]["service_time_s"] == float(ok)


def test_log_histogram_by_hand():
    """x = 0, 1, 10, 100 at 5 bins a decade: edges 10^0 .. 10^2 in 10 bins; 1 in the first, 10
    starts the sixth ([10, 15.8)), 100 closes the last; the zero counted apart."""
    h = log_histogram(np.array([0.0, 1.0, 10.0, 100.0]))
    assert h["n"] == 4 and h["n_zero"] == 1
    assert h["bin_edges"] == pytest.approx([10 ** (k / 5) for k in range(11)], rel=1e-12)
    assert h["counts"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert h["mean"] == pytest.approx(27.75) and h["max"] == 100.0 and h["p50"] == pytest.approx(5.5)
    # one value on an edge (log10 10 = 1): lo = hi, widened to one bin [10, 10^1.2]
    one = log_histogram(np.array([10.0]))
    assert one["bin_edges"] == pytest.approx([10.0, 10 ** 1.2], rel=1e-12) and one["counts"] == [1]
    # 5 and 5: log10 5 = 0.699 -> floor(3.49) / 5 = 0.6, ceil(3.49) / 5 = 0.8: one bin
    two = log_histogram(np.array([5.0, 5.0]))
    assert two["bin_edges"] == pytest.approx([10 ** 0.6, 10 ** 0.8], rel=1e-12) and two["counts"] == [2]
    # 2 bins a decade over 0.3 .. 30: lo = floor(-1.046) / 2 = -1, hi = ceil(2.954) / 2 = 1.5: 5 bins
    h2 = log_histogram(np.array([0.3, 3.0, 30.0]), bins_per_decade=2)
    assert h2["bin_edges"] == pytest.approx([10 ** (-1 + k / 2) for k in range(6)], rel=1e-12)
    assert h2["counts"] == [1, 0, 1, 0, 1]
    # negative values count as zeros; nothing positive: no bins
    neg = log_histogram(np.array([-1.0, 0.0]))
    assert neg["n_zero"] == 2 and neg["bin_edges"] == [] and neg["counts"] == []
    empty = log_histogram(np.array([]))
    assert empty["n"] == 0 and empty["mean"] is None and empty["max"] is None


# ----------------------------------------------------------------------------- random traces

def _random_rows(seed: int):
    """Conversations on a block-level prefix trie (ids prefix-chained, numbered in first-seen
    order like the loaders): an optional shared prompt, follow-ups extending all of their
    parent's blocks, prompts that end mid-block, one-block and empty requests."""
    rng = np.random.default_rng(seed)
    intern: dict = {}
    conversations = []
    system = [("sys", i) for i in range(int(rng.integers(0, 4)))]
    for c in range(int(rng.integers(2, 9))):
        content = (system if rng.random() < 0.7 else []) + [(c, "first", i) for i in range(int(rng.integers(0, 4)))]
        turns, t = [], float(rng.uniform(0.0, 50.0))
        for k in range(int(rng.integers(1, 5))):
            content = content + [(c, k, i) for i in range(int(rng.integers(0, 4)))]
            partial = int(rng.integers(0, BS))
            turns.append((t, list(content), partial, int(rng.integers(0, 9))))
            t += float(rng.exponential(10.0)) + 0.25
        conversations += turns
    conversations.sort(key=lambda x: x[0])
    rows = []
    for t, content, partial, out in conversations:
        blocks = [intern.setdefault(tuple(content[:i + 1]), len(intern)) for i in range(len(content))]
        inp = len(blocks) * BS
        if partial and blocks:
            inp -= BS - partial                      # the last block holds `partial` tokens
        rows.append((t, inp, out, blocks))
    return rows


def _plain_system_prompt_blocks(rows, session, bs=BS):
    """The rule in the module docstring, with dicts: at each depth the id most sessions continue
    with (the smallest id on a tie), kept while >= 2 and >= half the first depth's sessions."""
    rows_at = [r for r, row in enumerate(rows) if row[1] // bs >= 1]
    depth, need = 0, None
    while rows_at:
        sessions_of: dict = {}
        for r in rows_at:
            sessions_of.setdefault(rows[r][3][depth], set()).add(session[r])
        best = min(sessions_of, key=lambda i: (-len(sessions_of[i]), i))
        count = len(sessions_of[best])
        if need is None:
            need = max(2, math.ceil(0.5 * count))
        if count < need:
            break
        depth += 1
        rows_at = [r for r in rows_at if rows[r][3][depth - 1] == best and rows[r][1] // bs > depth]
    return depth


@pytest.mark.parametrize("seed", range(12))
def test_random_traces_against_the_loop_rules(seed):
    rows = _random_rows(seed)
    tr = _trace(rows)
    session, parent, _ = infer_sessions(tr)
    want_session, want_parent = _plain_sessions(rows)
    assert parent.tolist() == want_parent
    assert session.tolist() == want_session
    assert parent.dtype == np.int64 and session.dtype == np.int64
    s = trace_stats(tr)
    assert s["system_prompt_tokens"] == _plain_system_prompt_blocks(rows, want_session) * BS
    sessions_of: dict = {}
    for r, row in enumerate(rows):
        for b in row[3]:
            sessions_of.setdefault(b, set()).add(want_session[r])
    shared = 0
    for r, (_, inp, _, ids) in enumerate(rows):
        for k, b in enumerate(ids):
            if len(sessions_of[b]) > 1:
                shared += inp - k * BS if k == len(ids) - 1 else BS
    total = sum(row[1] for row in rows)
    assert s["shared_prefix_token_share"] == pytest.approx(shared / total if total else 0.0, rel=1e-12, abs=0)
    assert s["sessions"]["n_follow_up_requests"] == sum(p >= 0 for p in want_parent)


def test_a_trace_ending_with_an_empty_request():
    """An empty prompt (no blocks) last: no position 0 to clear, nothing to find."""
    rows = [(0.0, 8, 0, [0, 1]), (1.0, 12, 0, [0, 1, 2]), (2.0, 0, 0, [])]
    session, parent, _ = infer_sessions(_trace(rows))
    assert parent.tolist() == [-1, 0, -1] and session.tolist() == [0, 0, 1]
