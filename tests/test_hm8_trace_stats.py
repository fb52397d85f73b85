"""trace.stats: what the mutation run of issue #10 found untested, with hand-worked values.

Each trace is written out line by line (Mooncake format, 4-token blocks); the expected
numbers are derived in the comments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kvcalc.trace import loads_trace
from kvcalc.trace import stats as st

BS = 4


def _trace(rows):
    """rows: (timestamp ms, input tokens, ids)."""
    text = "".join(json.dumps({"timestamp": t, "input_length": x, "output_length": 1, "hash_ids": ids}) + "\n"
                   for t, x, ids in rows)
    return loads_trace(text, block_size_tokens=BS)


def test_sessions_and_system_prompt_are_computed_once_per_trace(monkeypatch):
    tr = _trace([(0, 8, [1, 2]), (1000, 12, [1, 2, 3])])
    calls = {"sessions": 0, "prompt": 0}
    real_infer, real_prompt = st.infer_sessions, st._system_prompt_blocks

    def infer(trace):
        calls["sessions"] += 1
        return real_infer(trace)

    def prompt(trace, session):
        calls["prompt"] += 1
        return real_prompt(trace, session)

    monkeypatch.setattr(st, "infer_sessions", infer)
    monkeypatch.setattr(st, "_system_prompt_blocks", prompt)
    st.trace_stats(tr)
    st.fit_workload_report(tr)
    st.trace_stats(tr)
    assert calls == {"sessions": 1, "prompt": 1}
    st.trace_stats(_trace([(0, 8, [1, 2])]))          # another trace: its own entry
    assert calls == {"sessions": 2, "prompt": 2}


def test_request_index_dtype():
    assert st._req_dtype(10, 10) is np.int32
    assert st._req_dtype(0, (1 << 31) - 2) is np.int32 and st._req_dtype((1 << 31) - 2, 0) is np.int32
    assert st._req_dtype(0, (1 << 31) - 1) is np.int64 and st._req_dtype((1 << 31) - 1, 5) is np.int64
    assert st._req_dtype(1 << 40, 0) is np.int64


def test_system_prompt_of_requests_with_one_full_block():
    # Three requests, each one full block (id 1, shared) and a partial one: no follow-ups (a link
    # needs >= 2 full blocks), so three sessions; block 1 is in all three (>= max(2, ceil(3 / 2)))
    # and nothing follows it in full: the system prompt is 1 block = 4 tokens.
    tr = _trace([(0, 5, [1, 2]), (1000, 6, [1, 3]), (2000, 7, [1, 4])])
    s = st.trace_stats(tr)
    assert s["sessions"]["n_sessions"] == 3 and s["system_prompt_tokens"] == 4
    assert st.fit_workload(tr)["system_prompt_tokens"] == 4.0


def test_rates_over_a_span_under_one_second():
    # two unrelated requests 0.5 s apart: 2 / 0.5 = 4 requests and 4 sessions per second
    tr = _trace([(0, 8, [1, 2]), (500, 8, [3, 4])])
    s = st.trace_stats(tr)
    assert s["duration_s"] == 0.5
    assert s["arrival_rate_per_s"] == 4.0 and s["sessions"]["conversation_rate_per_s"] == 4.0
    one = st.trace_stats(_trace([(7, 8, [1, 2])]))
    assert one["arrival_rate_per_s"] is None and one["sessions"]["conversation_rate_per_s"] is None


def test_log_histogram_by_hand():
    # 1 bin per decade over [1, 100]: edges 1, 10, 100; 1 in the first bin, 10 and 100 in the last
    # (numpy's last bin is closed); 0 and -3 counted apart
    h = st.log_histogram(np.array([0, -3, 1, 10, 100]), bins_per_decade=1)
    assert h["n"] == 5 and h["n_zero"] == 2
    assert h["bin_edges"] == pytest.approx([1.0, 10.0, 100.0]) and h["counts"] == [1, 2]
    assert all(type(c) is int for c in h["counts"])
    assert h["mean"] == pytest.approx(108 / 5) and h["max"] == 100.0 and h["p50"] == 1.0
    # one value: a single bin of width 1 / bins_per_decade from floor(5 log10 x) / 5
    h = st.log_histogram([3.0])
    assert h["counts"] == [1] and h["bin_edges"] == pytest.approx([10 ** 0.4, 10 ** 0.6])
    e = st.log_histogram(np.zeros(0))
    assert e["n"] == 0 and e["counts"] == [] and e["mean"] is None


def test_unique_pairs_packed_and_fallback():
    a = np.array([5, 1, 5, 1, 2], np.int64)
    b = np.array([0, 3, 0, 2, 3], np.int64)
    x, y = st._unique_pairs(a, b)
    assert x.tolist() == [1, 1, 2, 5] and y.tolist() == [2, 3, 3, 0]         # sorted by (a, b)
    assert x.dtype.kind == "i" and y.dtype.kind == "i"
    e = st._unique_pairs(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert e[0].size == 0 and e[1].size == 0
    # ids beyond 2^53 stay exact (no float detour)
    big = 1 << 53
    x, y = st._unique_pairs(np.array([big + 1, big, big + 1]), np.array([0, 0, 0]))
    assert x.tolist() == [big, big + 1] and y.tolist() == [0, 0]
    # beyond 2^62 / (max b + 1): the pairs are sorted without packing, same answer
    huge = (1 << 62) + 5
    x, y = st._unique_pairs(np.array([huge, 3, huge, huge], np.int64), np.array([1, 2, 1, 0], np.int64))
    assert x.tolist() == [3, huge, huge] and y.tolist() == [2, 0, 1]
