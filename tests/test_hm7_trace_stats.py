"""kvcalc.trace.stats on the edges the hand-worked traces of test_derived_trace_stats do not reach:
an empty trace, session ids given for only some requests, the fit's clamps at closed ends.
Every expected value is counted by hand in the comments."""

import math

import numpy as np
import pytest

from kvcalc.trace.loaders import Trace
from kvcalc.trace.stats import fit_workload_report, infer_sessions, trace_stats

BS = 4


def _trace(rows, fmt="mooncake", sessions=None, bs=BS) -> Trace:
    """rows: (timestamp s, input tokens, output tokens, block ids head first)."""
    n = len(rows)
    off = [0]
    for r in rows:
        off.append(off[-1] + len(r[3]))
    return Trace(timestamps_s=np.array([r[0] for r in rows], dtype=np.float64),
                 input_tokens=np.array([r[1] for r in rows], dtype=np.int64),
                 output_tokens=np.array([r[2] for r in rows], dtype=np.int64),
                 block_offsets=np.array(off, dtype=np.int64),
                 block_ids=np.array([b for r in rows for b in r[3]], dtype=np.int64), block_size_tokens=bs,
                 format=fmt, session_ids=np.array(sessions if sessions is not None else [-1] * n, dtype=np.int64),
                 parent_index=np.full(n, -1, dtype=np.int64))


def test_an_empty_trace_has_zero_counts_and_no_rates():
    s = trace_stats(_trace([]))
    none_q = {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    assert (s["n_requests"], s["duration_s"], s["arrival_rate_per_s"]) == (0, 0.0, None)
    assert (s["n_blocks_total"], s["n_blocks_unique"], s["block_size_tokens"]) == (0, 0, BS)
    ss = s["sessions"]
    assert (ss["n_sessions"], ss["conversation_rate_per_s"], ss["n_follow_up_requests"]) == (0, None, 0)
    assert ss["requests_per_session"] == none_q and s["input_tokens"] == none_q and s["output_tokens"] == none_q
    for k in ("reuse_gap_s", "turn_gap_s"):
        assert s[k] == {"n": 0, "n_zero": 0, "bin_edges": [], "counts": [], **{q: None for q in none_q if q != "n"}}
    assert (s["shared_prefix_token_share"], s["system_prompt_tokens"]) == (0.0, 0)


def test_session_ids_given_for_only_some_requests_are_not_used():
    # r1 has no session id (-1): the rule infers them. r0 ends its 2 full blocks at id 1, which
    # r1 holds at position 1: r1 follows r0; r2 (ids 3 4) starts a second session.
    rows = [(0.0, 8, 0, [0, 1]), (1.0, 12, 0, [0, 1, 2]), (2.0, 8, 0, [3, 4])]
    session, parent, source = infer_sessions(_trace(rows, fmt="generic", sessions=[3, -1, 3]))
    assert session.tolist() == [0, 0, 1] and parent.tolist() == [-1, 0, -1] and source.startswith("inferred")
    # all given: the field, parents the previous request of the same session
    session, parent, source = infer_sessions(_trace(rows, fmt="generic", sessions=[3, 0, 3]))
    assert session.tolist() == [3, 0, 3] and parent.tolist() == [-1, -1, 0] and source == "session_id field"


def test_fit_clamps_at_closed_ends():
    # 250 one-block requests of one session (session_id field), 1 s apart, each repeating the
    # previous prompt exactly: turns 250 > 200 -> 200; new tokens: first 4 - 0 (no system prompt:
    # one session), then 4 - 4 - 0 = 0 -> mean 4 / 250 = 0.016 < 1 -> 1 (user tokens' closed end).
    rows = [(float(i), 4, 0, [0]) for i in range(250)]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0] * 250), service_time_s=0.0)
    w = rep["workload"]
    assert w["turns_mean"] == 200.0 and w["user_tokens_per_turn"] == 1.0
    assert w["conversation_rate_per_s"] == pytest.approx(1 / 249, rel=1e-12)
    clamped = {d["params"]["name"]: d["params"] for d in rep["note_details"] if d.get("code") == "trace_fit_clamped"}
    assert clamped["turns_mean"]["value"] == 250.0 and clamped["turns_mean"]["clamped"] == 200.0
    assert clamped["user_tokens_per_turn"]["value"] == pytest.approx(0.016, rel=1e-12)
    assert clamped["user_tokens_per_turn"]["clamped"] == 1.0
    # every gap 1 s exactly: CV 0, lognormal with sigma 0 -> 0.05 (closed lower end)
    assert w["gap_mean_s"] == 1.0 and w["gap_distribution"] == "lognormal" and w["gap_lognormal_sigma"] == 0.05
    assert math.isclose(rep["measured"]["gap_cv"], 0.0, abs_tol=1e-15)


def test_fit_notes_carry_english_text_and_refusals_name_the_range():
    from kvcalc.errors import InputError
    rows = [(float(i), 4, 0, [0]) for i in range(250)]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0] * 250), service_time_s=0.0)
    assert all(isinstance(m, str) and m for m in rep["notes"])
    assert rep["notes"][0] == "sessions: session_id field"
    # the clamp's note with its numbers (6 significant digits)
    assert "turns_mean 250 clamped to the model's range: 200" in rep["notes"]
    assert "user_tokens_per_turn 0.016 clamped to the model's range: 1" in rep["notes"]
    one = fit_workload_report(_trace([(3.0, 8, 4, [0, 1]), (3.0, 12, 2, [2, 3, 4])], fmt="generic", sessions=[0, 1]))
    assert all(isinstance(m, str) and m for m in one["notes"])
    assert [d["message"] for d in one["note_details"]] == one["notes"]
    with pytest.raises(InputError) as e:
        fit_workload_report(_trace(rows[:2]), service_time_s=-2.0)
    assert (e.value.field, e.value.value, e.value.allowed) == ("service_time_s", -2.0, "a number in [0, 100000]")


def test_gap_cv_for_a_mean_gap_below_one_second():
    # two sessions, one follow-up each, 0.25 s and 0.75 s later (service 0): mean 0.5 s,
    # population sd 0.25 s, CV 0.5 (|CV - 1| > 0.25): lognormal with sigma sqrt(ln(1 + 0.25))
    rows = [(0.0, 8, 0, [0, 1]), (0.25, 12, 0, [0, 1, 2]), (10.0, 8, 0, [3, 4]), (10.75, 12, 0, [3, 4, 5])]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0, 0, 1, 1]), service_time_s=0.0)
    assert rep["measured"]["gap_cv"] == pytest.approx(0.5, rel=1e-12)
    assert rep["workload"]["gap_mean_s"] == pytest.approx(0.5, rel=1e-12)
    assert rep["workload"]["gap_lognormal_sigma"] == pytest.approx(math.sqrt(math.log(1.25)), rel=1e-12)
    note = next(d for d in rep["note_details"] if d.get("code") == "trace_fit_gap_lognormal")
    assert note["params"]["sigma"] == pytest.approx(math.sqrt(math.log(1.25)), rel=1e-12)
    assert note["params"]["cv"] == pytest.approx(0.5, rel=1e-12) and note["params"]["tolerance"] == 0.25


def test_inferred_parents_edge_cases():
    # by the loop rule (a request's ids at positions >= 1 looked up among the ends of earlier
    # requests with >= 2 full blocks): r1 holds 4 at position 1, no earlier request ends at 4;
    # r2 holds 3, none ends at 3 either: no parents. (r2 ends at 3, r1 at 4: their (id, request)
    # keys must not collide.)
    rows = [(0.0, 8, 0, [5, 6]), (1.0, 8, 0, [7, 4]), (2.0, 8, 0, [0, 3])]
    assert infer_sessions(_trace(rows))[1].tolist() == [-1, -1, -1]
    # a one-block request whose only id (position 0) ends r0: position 0 is never looked up
    rows = [(0.0, 8, 0, [0, 1]), (1.0, 4, 0, [1])]
    assert infer_sessions(_trace(rows))[1].tolist() == [-1, -1]


def test_fit_clamps_output_service_and_system_prompt_at_their_upper_ends():
    # block size 4e6 tokens; two sessions share blocks 0 1 2 (then differ): system prompt
    # 3 x 4e6 = 1.2e7 > 1e7; output 2e7 tokens per request > 1e7; the default service time
    # 2e7 x 0.03 s = 6e5 s > 1e5 s. All three lowered to their upper ends, each with a note.
    bs = 4_000_000
    rows = [(0.0, 4 * bs, 20_000_000, [0, 1, 2, 3]), (1.0, 4 * bs, 20_000_000, [0, 1, 2, 4])]
    rep = fit_workload_report(_trace(rows, fmt="generic", sessions=[0, 1], bs=bs))
    w = rep["workload"]
    assert (w["output_tokens_per_turn"], w["service_time_s"], w["system_prompt_tokens"]) == (1e7, 1e5, 1e7)
    clamped = {d["params"]["name"]: d["params"]["value"] for d in rep["note_details"]
               if d.get("code") == "trace_fit_clamped"}
    assert clamped["output_tokens_per_turn"] == 2e7 and clamped["service_time_s"] == pytest.approx(6e5)
    assert clamped["system_prompt_tokens"] == 1.2e7
    assert w["user_tokens_per_turn"] == 4e6                    # 1.6e7 - 1.2e7 per first turn


def test_shared_share_of_one_partial_block():
    # two sessions, each a 2-token prompt in the one (partial) block 0: 2 + 2 shared tokens of 4
    rows = [(0.0, 2, 0, [0]), (1.0, 2, 0, [0])]
    assert trace_stats(_trace(rows, fmt="generic", sessions=[0, 1]))["shared_prefix_token_share"] == 1.0
