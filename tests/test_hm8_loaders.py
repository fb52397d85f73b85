"""trace.loaders: field checks at their bounds, detection, block size, chaining and sessions.

Expected values are worked out by hand in each test (small traces written out line by line)
or come from a second method: a plain-Python re-chaining dict, a plain loop over Bailian
parents, the general loader for the fast path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace import loaders as ld
from kvcalc.trace import load_trace, loads_trace


def _mc(ts, x, ids, out=1):
    return json.dumps({"timestamp": ts, "input_length": x, "output_length": out, "hash_ids": ids})


def _gen(ts, x, ids, out=1, **extra):
    return json.dumps({"timestamp_s": ts, "input_tokens": x, "output_tokens": out, "block_hashes": ids, **extra})


def _bl(chat, par, ts, x, ids, out=1):
    return json.dumps({"chat_id": chat, "parent_chat_id": par, "timestamp": ts, "input_length": x,
                       "output_length": out, "hash_ids": ids})


def _text(*lines):
    return ("\n".join(lines) + "\n").encode()


def _bad(fn, obj, name):
    with pytest.raises(ld._BadLine) as ei:
        fn(obj, name)
    return ei.value


# ----------------------------------------------------------------------------- field checks

def test_int_and_length_fields_at_their_bounds():
    M = ld.MAX_LENGTH_TOKENS
    assert M == 1 << 40
    assert ld._int_field({"a": M}, "a") == M and ld._int_field({"a": -M}, "a") == -M
    assert ld._int_field({"a": 3.0}, "a") == 3 and type(ld._int_field({"a": 3.0}, "a")) is int
    assert ld._int_field({"a": float(M)}, "a") == M
    for v, code in ((M + 1, "trace_line_beyond_tokens"), (-M - 1, "trace_line_beyond_tokens"),
                    (float(2 * M), "trace_line_beyond_tokens"), (2.5, "trace_line_not_integer"),
                    (float("nan"), "trace_line_not_integer"), (float("inf"), "trace_line_not_integer"),
                    (True, "trace_line_not_integer"), ("3", "trace_line_not_integer"), (None, "trace_line_not_integer")):
        e = _bad(ld._int_field, {"a": v}, "a")
        assert e.reason == "bad_value" and e.detail_twin["code"] == code, v
        assert e.detail_twin["params"]["field"] == "a"
    e = _bad(ld._int_field, {}, "a")
    assert e.reason == "missing_field" and e.detail_twin["params"] == {"field": "a"}
    assert e.detail == "missing field 'a'"
    assert ld._length_field({"a": 0}, "a") == 0
    e = _bad(ld._length_field, {"a": -1}, "a")
    assert e.reason == "negative_length" and e.detail_twin["params"] == {"field": "a", "value": "-1"}


def test_time_field_at_its_bounds():
    T = ld.MAX_ABS_TIMESTAMP
    assert T == 1e15
    assert ld._time_field({"t": 10 ** 15}, "t") == 1e15 and ld._time_field({"t": -(10 ** 15)}, "t") == -1e15
    assert ld._time_field({"t": 2.5}, "t") == 2.5 and ld._time_field({"t": 0}, "t") == 0.0
    assert isinstance(ld._time_field({"t": 7}, "t"), float)
    for v, code in ((10 ** 15 + 1, "trace_line_beyond_time"), (-(10 ** 15) - 1, "trace_line_beyond_time"),
                    (1.0000001e15, "trace_line_not_finite_time"), (float("inf"), "trace_line_not_finite_time"),
                    (float("nan"), "trace_line_not_finite_time"), (False, "trace_line_not_a_number"),
                    ("1", "trace_line_not_a_number"), ([1], "trace_line_not_a_number")):
        e = _bad(ld._time_field, {"t": v}, "t")
        assert e.reason == "bad_value" and e.detail_twin["code"] == code, v
    assert _bad(ld._time_field, {}, "t").reason == "missing_field"


def test_ids_field_range_and_types():
    lo, hi = -(1 << 63), (1 << 64) - 1
    assert ld._ids_field({"h": [lo, hi, "s", 0]}, "h") == [lo, hi, "s", 0]
    assert ld._ids_field({"h": []}, "h") == []
    for v, code in (([lo - 1], "trace_line_id_out_of_range"), ([hi + 1], "trace_line_id_out_of_range"),
                    ([1.0], "trace_line_bad_id"), ([True], "trace_line_bad_id"), ([None], "trace_line_bad_id"),
                    ("1, 2", "trace_line_not_a_list"), ({"a": 1}, "trace_line_not_a_list")):
        e = _bad(ld._ids_field, {"h": v}, "h")
        assert e.reason == "bad_value" and e.detail_twin["code"] == code, v
    assert _bad(ld._ids_field, {}, "h").reason == "missing_field"


def test_short_repr():
    assert ld._short(5) == "5" and ld._short("ab") == "'ab'"
    assert ld._short(10 ** 300) == "an integer of 301 digits"
    assert ld._short(2 ** 198) == str(2 ** 198)                     # 199 bits: still printed
    assert ld._short(2 ** 199) == "an integer of 60 digits"          # 200 bits
    s = ld._short("x" * 100)
    assert len(s) == 80 and s.endswith("...") and s.startswith("'xxx")
    assert ld._short("x" * 78) == "'" + "x" * 78 + "'"              # exactly 80 characters: kept


def test_decode_and_depth():
    assert ld._decode(b"  {\"a\": 1}\t\r") == '{"a": 1}'
    assert ld._decode(b"   ") is None
    assert ld._decode("é".encode()) == "é"
    for raw, code in ((None, "trace_line_too_long"), (b"a\x00b", "trace_line_binary"), (b"\xff", "trace_line_not_utf8")):
        with pytest.raises(ld._BadLine) as ei:
            ld._decode(raw)
        assert ei.value.detail_twin["code"] == code
    ok = "[" * 32 + "]" * 32
    ld._check_depth(ok)
    assert ld._parse_obj('{"a": ' + "[" * 31 + "]" * 31 + "}") == {"a": [[]] if False else json.loads("[" * 31 + "]" * 31)}
    with pytest.raises(ld._BadLine) as ei:
        ld._check_depth("[" * 33 + "]" * 33)
    assert ei.value.reason == "too_deep" and ei.value.detail_twin["params"] == {"depth": 33, "max": 32}
    # brackets inside strings do not count (nor do escaped quotes end the string)
    ld._check_depth('{"s": "' + "[" * 100 + '\\"' + "{" * 50 + '"}')
    # many brackets but shallow: 40 sibling lists at depth 2
    ld._check_depth("[" + ", ".join(["[]"] * 40) + "]")


def test_parse_obj_errors():
    for text, reason, code in (("[1]", "not_an_object", "trace_line_not_an_object"),
                               ('{"a": ', "malformed_json", "trace_line_malformed_json_at"),
                               ("7", "not_an_object", "trace_line_not_an_object")):
        with pytest.raises(ld._BadLine) as ei:
            ld._parse_obj(text)
        assert ei.value.reason == reason and ei.value.detail_twin["code"] == code
    with pytest.raises(ld._BadLine) as ei:
        ld._parse_obj('{"a": ')
    assert ei.value.detail_twin["params"]["column"] == 7
    assert ei.value.detail.startswith("malformed JSON (Expecting value at column 7")


# ----------------------------------------------------------------------------- detection and block size

def test_detect_format_by_field_names():
    assert ld._detect_format([{"x": 1}, {"block_hashes": []}]) == "generic"
    assert ld._detect_format([{"input_tokens": 1}]) == "generic" and ld._detect_format([{"timestamp_s": 1}]) == "generic"
    assert ld._detect_format([{"chat_id": 1, "hash_ids": []}]) == "bailian"
    assert ld._detect_format([{"parent_chat_id": 1}]) == "bailian"
    assert ld._detect_format([{"hash_ids": []}]) == "mooncake" and ld._detect_format([{"input_length": 1}]) == "mooncake"
    assert ld._detect_format([{"timestamp": 1}, {}]) is None and ld._detect_format([]) is None


def test_infer_block_size_by_hand():
    # (input, n ids): ceil(x / b) == n. 100 tokens in 7 ids: b in [15, 16] fits; 16 is common and first
    assert ld._infer_block_size([(100, 7)]) == (16, 1.0)
    # 1000 in 10: b = 100 only (not common): found among ceil(x / n) = 100
    assert ld._infer_block_size([(1000, 10), (950, 10)]) == (100, 1.0)
    # two lines say 64 (100 in 2, 128 in 2), one says 16 (100 in 7): 64 wins with 2 of 3
    b, share = ld._infer_block_size([(100, 2), (128, 2), (100, 7)])
    assert b == 64 and share == pytest.approx(2 / 3)
    assert ld._infer_block_size([]) == (None, 0.0)
    assert ld._consistent(16, [(100, 7), (16, 1), (17, 1)]) == 2
    assert ld._sample_sizes([{"input_length": 10, "hash_ids": [1]}, {"input_length": 0, "hash_ids": []},
                             {"input_length": "x", "hash_ids": [1]}, {"input_length": 5}], "mooncake") == [(10, 1)]


def test_block_size_sources_in_order():
    lines = [_gen(0, 100, [1, 2]), _gen(1, 90, [1, 3])]       # 2 blocks each: b in [50, 89]; 64 is common
    tr = loads_trace(_text(*lines))
    assert tr.block_size_tokens == 64 and tr.info["block_size_source"].startswith("inferred")
    assert tr.info["block_size_consistent_share"] == 1.0 and tr.info["block_size_sample_lines"] == 2
    hdr = json.dumps({"kvcalc_trace": 1, "block_size_tokens": 50})
    tr = loads_trace(_text(hdr, *lines))
    assert tr.block_size_tokens == 50 and tr.info["block_size_source"] == "header"
    assert tr.info["block_size_consistent_share"] == 1.0
    tr = loads_trace(_text(hdr, *lines), block_size_tokens=64)
    assert tr.block_size_tokens == 64 and tr.info["block_size_source"] == "user"
    # Mooncake default 512 kept while at least half the sample agrees
    mc = [_mc(0, 1000, [1, 2]), _mc(1, 100, [3, 4])]           # 1000 in 2 fits 512; 100 in 2 does not
    tr = loads_trace(_text(*mc), skip_bad_lines=True)
    assert tr.block_size_tokens == 512 and tr.info["block_size_source"] == "format default"
    assert tr.n_requests == 1 and tr.info["block_size_consistent_share"] == 0.5
    mc = [_mc(0, 100, [1, 2]), _mc(1, 100, [3, 4]), _mc(2, 1000, [5, 6])]   # 1 of 3: inferred
    tr = loads_trace(_text(*mc), skip_bad_lines=True)
    assert tr.block_size_tokens == 64 and tr.info["block_size_source"].startswith("inferred")
    assert tr.n_requests == 2 and tr.info["block_size_consistent_share"] == pytest.approx(2 / 3)
    # an empty sample keeps the default
    tr = loads_trace(_text(_mc(0, 0, []), _mc(1, 0, [])))
    assert tr.block_size_tokens == 512 and tr.info["block_size_consistent_share"] is None
    # no default and nothing to infer from: ask for it
    with pytest.raises(InputError) as ei:
        loads_trace(_text(_gen(0, 0, []), _gen(1, 0, [])))
    assert ei.value.field == "block_size_tokens" and ei.value.code == "trace_block_size_unknown"
    for bad in (0, "16", True, 1 << 21):
        with pytest.raises(InputError) as ei:
            loads_trace(_text(json.dumps({"kvcalc_trace": 1, "block_size_tokens": bad}), *lines))
        assert ei.value.field == "line 1" and ei.value.code == "trace_bad_header_block_size"
    tr = loads_trace(_text(json.dumps({"kvcalc_trace": 1, "block_size_tokens": 1 << 20}), _gen(0, 5, [1])))
    assert tr.block_size_tokens == 1 << 20


def test_load_options_are_checked():
    good = _text(_mc(0, 10, [1]))
    for kw, field in (({"format": "x"}, "format"), ({"format": 1}, "format"), ({"chain": "no"}, "chain"),
                      ({"block_size_tokens": 0}, "block_size_tokens"), ({"block_size_tokens": (1 << 20) + 1}, "block_size_tokens"),
                      ({"block_size_tokens": 2.0}, "block_size_tokens"), ({"block_size_tokens": True}, "block_size_tokens"),
                      ({"max_requests": 0}, "max_requests"), ({"max_requests": (1 << 50) + 1}, "max_requests"),
                      ({"max_requests": True}, "max_requests"), ({"skip_bad_lines": 1}, "skip_bad_lines"),
                      ({"keep_partial": None}, "keep_partial")):
        with pytest.raises(InputError) as ei:
            loads_trace(good, **kw)
        assert ei.value.field == field, kw
    assert loads_trace(good, block_size_tokens=1 << 20, max_requests=1 << 50).n_requests == 1
    with pytest.raises(InputError) as ei:
        load_trace("some/path.jsonl")
    assert ei.value.field == "path"
    with pytest.raises(InputError) as ei:
        loads_trace(12)
    assert ei.value.field == "text"
    assert loads_trace(_mc(0, 10, [1]) + "\n").n_requests == 1           # str content
    assert loads_trace(bytearray(good)).n_requests == 1


# ----------------------------------------------------------------------------- chaining

def _rechain_by_dict(rows):
    d, out = {}, []
    for ids in rows:
        prev, r = -1, []
        for x in ids:
            prev = d.setdefault((prev, x), len(d))
            r.append(prev)
        out.append(r)
    return out


def test_rechain_equals_a_plain_dict():
    rng = np.random.default_rng(7)
    rows = [[int(v) for v in rng.integers(0, 4, rng.integers(0, 6))] for _ in range(60)]
    lines = [_gen(i, 4 * len(r), r) for i, r in enumerate(rows)]
    hdr = json.dumps({"kvcalc_trace": 1, "block_size_tokens": 4, "prefix_chained": False})
    tr = loads_trace(_text(hdr, *lines))
    want = _rechain_by_dict(rows)
    assert [tr.blocks_of(i).tolist() for i in range(len(rows))] == want
    assert tr.info["ids_prefix_chained"] is False and tr.info["chaining"].startswith("re-chained")
    assert tr.info["n_blocks_unique"] == len({x for r in want for x in r}) == tr.n_blocks_unique
    tr2 = loads_trace(_text(*lines), block_size_tokens=4, chain="rechain")
    assert [tr2.blocks_of(i).tolist() for i in range(len(rows))] == want
    # raw ids already chained: re-chaining only renumbers, and says they were chained
    chained = [[1, 2, 3], [1, 2], [1, 5]]
    tr3 = loads_trace(_text(*[_gen(i, 4 * len(r), r) for i, r in enumerate(chained)]), block_size_tokens=4,
                      chain="rechain")
    assert tr3.info["ids_prefix_chained"] is True
    assert [tr3.blocks_of(i).tolist() for i in range(3)] == [[0, 1, 2], [0, 1], [0, 3]]
    # a repeated raw id inside a request is fine when re-chaining (it is a new prefix)
    tr4 = loads_trace(_text(_gen(0, 12, [9, 9, 9])), block_size_tokens=4, chain="rechain")
    assert tr4.blocks_of(0).tolist() == [0, 1, 2] and tr4.info["ids_prefix_chained"] is False


def test_verify_numbers_by_first_appearance_and_refuses_broken_chains():
    tr = loads_trace(_text(_mc(0, 30, [7, 8, 9], out=3), _mc(1500, 20, [7, 8]), _mc(1500, 25, [7, 4, 2])),
                     block_size_tokens=10)
    assert [tr.blocks_of(i).tolist() for i in range(3)] == [[0, 1, 2], [0, 1], [0, 3, 4]]
    assert tr.timestamps_s.tolist() == [0.0, 1.5, 1.5] and tr.info["timestamp_unit"] == "ms"
    assert tr.output_tokens.tolist() == [3, 1, 1] and tr.input_tokens.tolist() == [30, 20, 25]
    assert tr.block_offsets.tolist() == [0, 3, 5, 8]
    assert tr.info["n_blocks_total"] == 8 and tr.info["n_blocks_unique"] == 5 and tr.info["t0_s"] == 0.0
    # an id seen at another position, or after another id, or twice in a request: bad lines
    for bad, code in ((_mc(2000, 20, [8, 1]), "trace_line_chain_moved"),
                      (_mc(2000, 20, [3, 8]), "trace_line_chain_moved"),
                      (_mc(2000, 30, [7, 6, 6]), "trace_line_chain_repeat")):
        with pytest.raises(InputError) as ei:
            loads_trace(_text(_mc(0, 30, [7, 8, 9]), bad), block_size_tokens=10, fast_path=False)
        assert ei.value.value_detail["code"] == code
        # a bad line changes nothing: the next line numbers its new ids after the good ones
        tr = loads_trace(_text(_mc(0, 30, [7, 8, 9]), bad, _mc(3000, 20, [7, 11])), block_size_tokens=10,
                         skip_bad_lines=True)
        assert tr.blocks_of(1).tolist() == [0, 3] and tr.n_blocks_unique == 4


def test_generic_sessions_and_timestamps():
    lines = [_gen(10.5, 4, [1], session_id="a"), _gen(11, 4, [2], session_id=[1, 2]),
             _gen(12, 4, [3], session_id="a"), _gen(13, 4, [4], session_id={"k": 1}), _gen(14, 4, [5]),
             _gen(15, 4, [6], session_id=[1, 2])]
    tr = loads_trace(_text(*lines), block_size_tokens=4)
    assert tr.session_ids.tolist() == [0, 1, 0, 2, -1, 1]
    assert tr.info["session_source"] == "session_id field" and tr.info["timestamp_unit"] == "s"
    assert tr.timestamps_s.tolist() == [0.0, 0.5, 1.5, 2.5, 3.5, 4.5] and tr.info["t0_s"] == 10.5
    tr = loads_trace(_text(_gen(0, 4, [1]), _gen(1, 4, [2])), block_size_tokens=4)
    assert tr.session_ids.tolist() == [-1, -1] and tr.info["session_source"] is None
    assert tr.parent_index.tolist() == [-1, -1] and tr.format == "generic"


def _bailian_by_loop(chat, parent):
    """Parent = latest earlier request with that chat id; session = root of the parent chain,
    a missing parent rooting its own session (shared by all its children); a root's session is
    keyed by its chat id (a chat id used again for a new conversation joins the same session)."""
    n = len(chat)
    last, pidx = {}, []
    for i in range(n):
        pidx.append(last.get(parent[i], -1) if parent[i] != -1 else -1)
        last[chat[i]] = i
    key = []
    for i in range(n):
        r = i
        while pidx[r] >= 0:
            r = pidx[r]
        key.append(("missing", parent[r]) if parent[r] != -1 else ("root", chat[r]))
    return pidx, key


def _same_partition(a, b):
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("seed", range(4))
def test_bailian_sessions_equal_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    n = 40
    chat = [int(v) for v in rng.integers(0, 25 if seed % 2 else 1000, n)]   # odd seeds: repeated chat ids
    parent = [-1 if rng.random() < 0.3 else int(rng.integers(0, 30)) for _ in range(n)]
    sess, pidx, missing = ld._bailian_sessions(np.array(chat, np.int64), np.array(parent, np.int64))
    want_p, key = _bailian_by_loop(chat, parent)
    assert pidx.tolist() == want_p
    assert _same_partition(sess.tolist(), key)
    assert sorted(set(sess.tolist())) == list(range(len(set(key))))
    assert missing == sum(1 for i in range(n) if parent[i] != -1 and want_p[i] == -1)


def test_bailian_trace_by_hand():
    lines = [_bl(1, -1, 0, 16, [5]), _bl(2, 1, 1, 32, [5, 6]), _bl(3, 99, 2, 16, [7]), _bl(4, 99, 3, 16, [8]),
             _bl("s", 2, 4, 48, [5, 6, 9]), _bl("t", "s", 5, 16, [1])]
    tr = loads_trace(_text(*lines))
    assert tr.format == "bailian" and tr.block_size_tokens == 16 and tr.info["timestamp_unit"] == "s"
    assert tr.parent_index.tolist() == [-1, 0, -1, -1, 1, 4]
    s = tr.session_ids.tolist()
    assert s[0] == s[1] == s[4] == s[5] and s[2] == s[3] and s[0] != s[2] and sorted(set(s)) == [0, 1]
    assert tr.info["parents_outside_trace"] == 2 and tr.info["chaining"].startswith("re-chained")
    assert tr.info["session_source"] == "chat_id/parent_chat_id chain"


def test_chat_int():
    m = {}
    assert ld._chat_int(5, m) == 5 and ld._chat_int(-1, m) == -1 and ld._chat_int((1 << 62) - 1, m) == (1 << 62) - 1
    assert ld._chat_int("a", m) == -2 and ld._chat_int(-7, m) == -3 and ld._chat_int(1 << 62, m) == -4
    assert ld._chat_int("a", m) == -2 and ld._chat_int(-7, m) == -3 and ld._chat_int("b", m) == -5
    assert ld._chat_int(("int", 5)[1], {}) == 5


# ----------------------------------------------------------------------------- bad lines, partial, limits

def test_skip_bad_lines_counts_peek_and_body():
    lines = ["not json", _mc(0, 10, [1]), "[1]", _mc(1, 10, [2])] + [_mc(2 + i, 10, [3 + i]) for i in range(250)]
    lines += ["oops", "{}"]
    tr = loads_trace(_text(*lines), block_size_tokens=10, skip_bad_lines=True)
    assert tr.n_requests == 252
    assert tr.info["bad_lines_by_reason"] == {"malformed_json": 2, "missing_field": 1, "not_an_object": 1}
    assert tr.info["bad_lines_skipped"] == 4
    assert tr.info["bad_lines_first"]["malformed_json"].startswith("line 1: malformed JSON")
    assert tr.info["bad_lines_first_detail"]["not_an_object"]["line"] == 3
    assert tr.info["bad_lines_first_detail"]["missing_field"]["line"] == 256
    with pytest.raises(InputError) as ei:
        loads_trace(_text(*lines), block_size_tokens=10)
    assert ei.value.field == "line 1" and ei.value.code == "trace_bad_malformed_json"


def test_keep_partial_keeps_what_was_read():
    lines = [_mc(i, 10, [i]) for i in range(5)] + ["bad"] + [_mc(9, 10, [9])]
    tr = loads_trace(_text(*lines), block_size_tokens=10, keep_partial=True)
    assert tr.n_requests == 5
    st = tr.info["stopped"]
    assert st["line"] == 6 and st["reason"] == "malformed_json" and st["detail"]["field"] == "line 6"
    assert st["message"].startswith("line 6: bad trace line 6: malformed json")
    tr = loads_trace(_text(*lines[:5]), keep_partial=True)
    assert tr.info["stopped"] is None
    # a bad first line with keep_partial: nothing read, so it still raises
    with pytest.raises(InputError):
        loads_trace(_text("bad", *lines[:5]), keep_partial=True)
    # a limit hit after requests were read: kept with the reason
    big = _text(*[_mc(i, 10, [i]) for i in range(400)])
    tr = loads_trace(big, max_lines=300, keep_partial=True, fast_path=False)
    assert tr.n_requests == 300 and tr.info["stopped"]["reason"] == "the trace has more lines than max_lines"
    with pytest.raises(InputError) as ei:
        loads_trace(big, max_lines=300)
    assert ei.value.field == "trace.max_lines"


def test_empty_and_undetectable():
    with pytest.raises(InputError) as ei:
        loads_trace(b"\n \n")
    assert ei.value.code == "trace_empty" and ei.value.params == {"lines": 2}
    assert "only blank lines" in str(ei.value)
    with pytest.raises(InputError) as ei:
        loads_trace(b"")
    assert ei.value.params == {"lines": 0} and "only blank" not in str(ei.value)
    with pytest.raises(InputError) as ei:
        loads_trace(_text('{"a": 1}', '{"b": 2}'))
    assert ei.value.code == "trace_format_undetected" and ei.value.params == {"fields": "a, b"}
    with pytest.raises(InputError) as ei:
        loads_trace(_text("x", "y"), skip_bad_lines=True)
    assert ei.value.code == "trace_no_json_lines" and ei.value.params == {"lines": 2}
    assert "none of the 2 non-blank lines" in str(ei.value) and "malformed json 2" in str(ei.value)
    # a header alone: no requests
    with pytest.raises(InputError) as ei:
        loads_trace(_text(json.dumps({"kvcalc_trace": 1, "block_size_tokens": 4})))
    assert "no valid requests" in str(ei.value)
    # all lines bad but the format known: the summary names the first
    with pytest.raises(InputError) as ei:
        loads_trace(_text(_mc(0, 10, [1, 2, 3])), block_size_tokens=10, skip_bad_lines=True)
    assert "1 bad lines skipped" == ei.value.value


def test_max_requests_and_read_info():
    hdr = json.dumps({"kvcalc_trace": 1, "block_size_tokens": 4})
    lines = [_gen(i, 4, [i]) for i in range(5)]
    tr = loads_trace(_text(hdr, *lines), max_requests=3)
    assert tr.n_requests == 3 and tr.info["truncated"] is True
    tr = loads_trace(_text(hdr, *lines), max_requests=5)
    assert tr.n_requests == 5 and tr.info["truncated"] is False
    data = b"\n" + _text(*lines[:2]) + b"\n"
    tr = loads_trace(data, block_size_tokens=4)
    r = tr.info["read"]
    assert r["lines"] == 4 and r["blank_lines"] == 2 and r["gzip"] is False
    assert r["bytes_read"] == len(data) == r["bytes_decompressed"] and tr.info["bytes_read"] == len(data)
    assert r["limits"] == {"max_bytes": 8 << 30, "max_lines": 10 ** 9, "max_line_bytes": 8 << 20}


def test_fast_path_info_equals_the_general_loaders():
    lines = [_mc(1000, 1030, [1, 2, 3], out=4), _mc(1000, 600, [1, 2]), _mc(2500, 10, [8])]
    data = _text(*lines)
    fast, slow = loads_trace(data), loads_trace(data, fast_path=False)
    assert fast.info["loader"].startswith("fast") and slow.info["loader"].startswith("general")
    skip = ("loader", "read")
    assert {k: v for k, v in fast.info.items() if k not in skip} == {k: v for k, v in slow.info.items() if k not in skip}
    assert fast.info["read"] == slow.info["read"]
    for k in ("timestamps_s", "input_tokens", "output_tokens", "block_offsets", "block_ids", "session_ids",
              "parent_index"):
        assert np.array_equal(getattr(fast, k), getattr(slow, k)) and getattr(fast, k).dtype == getattr(slow, k).dtype
    assert fast.timestamps_s.tolist() == [0.0, 0.0, 1.5] and fast.info["t0_s"] == 1.0
    assert fast.info["n_blocks_total"] == 6 and fast.info["n_blocks_unique"] == 4 and fast.format == "mooncake"
    # max_requests through the fast path
    t2 = loads_trace(data, max_requests=2)
    assert t2.info["loader"].startswith("fast") and t2.n_requests == 2 and t2.info["truncated"] is True
    # re-chaining or another format never takes the fast path
    assert loads_trace(data, chain="rechain").info["loader"].startswith("general")
    # a non-canonical line falls back, with the same result
    alt = data.replace(b'"timestamp": 2500', b'"timestamp":2500')
    t3 = loads_trace(alt)
    assert t3.info["loader"].startswith("general") and np.array_equal(t3.block_ids, fast.block_ids)


def test_trace_properties():
    tr = loads_trace(_text(_mc(0, 20, [4, 5]), _mc(1, 0, [])), block_size_tokens=10)
    assert tr.n_requests == 2 and tr.n_blocks_total == 2 and tr.n_blocks_unique == 2
    assert tr.blocks_of(0).tolist() == [0, 1] and tr.blocks_of(1).tolist() == []
    empty_ids = loads_trace(_text(_mc(0, 0, [])), block_size_tokens=10)
    assert empty_ids.n_blocks_unique == 0 and empty_ids.block_ids.dtype == np.int64


def test_truncated_last_line():
    data = _text(_mc(0, 10, [1])) + b'{"timestamp": 3'
    with pytest.raises(InputError) as ei:
        loads_trace(data, block_size_tokens=10)
    assert ei.value.code == "trace_bad_truncated_line" and ei.value.value_detail["code"] == "trace_line_truncated_at"
    # a malformed line that is not the last one stays malformed
    with pytest.raises(InputError) as ei:
        loads_trace(data + b"\n" + _text(_mc(5, 10, [1])), block_size_tokens=10)
    assert ei.value.code == "trace_bad_malformed_json"
