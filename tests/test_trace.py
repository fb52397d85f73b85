"""Trace mode: loaders, the exact one-pass LRU curve against a replay, stats, API and CLI."""

from __future__ import annotations

import gzip
import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.errors import InputError
from kvcalc.trace import (capacity_for_hit_rate, fifo_replay, ideal_hit_rates, load_trace, loads_trace,
                          lru_curve, lru_replay)
from kvcalc.trace.api import sample_path, trace_analyze
from kvcalc.trace.cli import main as trace_main
from kvcalc.trace.stats import fit_workload, infer_sessions, trace_stats
from kvcalc.workload import Workload

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
MOONCAKE = REPO / "data" / "traces" / "mooncake"


@pytest.fixture(scope="module")
def real_traces():
    return {name: load_trace(MOONCAKE / f"{name}_trace.jsonl") for name in ("conversation", "synthetic")}


# ----------------------------------------------------------------------------- one-pass curve == replay

@pytest.mark.parametrize("name", ["conversation", "synthetic"])
@pytest.mark.parametrize("full_blocks_only", [True, False])
def test_curve_equals_replay_on_mooncake(real_traces, name, full_blocks_only):
    trace = real_traces[name]
    warm = 0.1 if full_blocks_only else 0.0
    curve = lru_curve(trace, full_blocks_only=full_blocks_only, warmup_fraction=warm)
    caps = [0, 1, 37, 1000, 8000, 30000, curve.saturation_capacity_blocks - 1, 10 ** 7]
    blocks, tokens = curve.hits_at(caps)
    for c, b, t in zip(caps, blocks, tokens):
        ref = lru_replay(trace, c, full_blocks_only=full_blocks_only, warmup_fraction=warm)
        assert (int(b), int(t)) == (ref["block_hits"], ref["token_hits"]), c
        assert ref["blocks_looked_up"] == curve.blocks_total and ref["prompt_tokens"] == curve.tokens_total
    ideal = ideal_hit_rates(trace, full_blocks_only=full_blocks_only, warmup_fraction=warm)
    assert ideal["ideal_block_hits"] == curve.ideal_block_hits
    assert ideal["ideal_token_hits"] == curve.ideal_token_hits
    assert curve.hits_at([curve.saturation_capacity_blocks])[0][0] == curve.ideal_block_hits
    assert curve.hits_at([curve.saturation_capacity_blocks - 1])[0][0] < curve.ideal_block_hits


def _direct_ideal(trace, full_blocks_only):
    """Infinite cache by hand: a block hits iff an earlier request had it (and its prefix)."""
    seen, hb, ht = set(), 0, 0
    bs = trace.block_size_tokens
    for r in range(trace.n_requests):
        ids = trace.blocks_of(r).tolist()
        x = int(trace.input_tokens[r])
        m = x // bs if full_blocks_only else len(ids)
        for i, b in enumerate(ids[:m]):
            if b in seen:
                hb += 1
                ht += bs if (i < m - 1 or x - i * bs >= bs) else x - i * bs
        seen.update(ids[:m])
    return hb, ht


def test_ideal_is_direct_count(real_traces):
    for trace in real_traces.values():
        for full in (True, False):
            curve = lru_curve(trace, full_blocks_only=full)
            assert (curve.ideal_block_hits, curve.ideal_token_hits) == _direct_ideal(trace, full)


def _random_trace(draw):
    bs = draw(st.sampled_from([1, 2, 4, 16]))
    n = draw(st.integers(1, 25))
    alphabet = draw(st.integers(1, 4))
    rows, t = [], 0.0
    for _ in range(n):
        nb = draw(st.integers(0, 7))
        ids = [draw(st.integers(0, alphabet - 1)) for _ in range(nb)]
        last = draw(st.integers(1, bs)) if nb else 0
        x = (nb - 1) * bs + last if nb else 0
        t += draw(st.sampled_from([0.0, 0.5, 3.0]))
        rows.append({"timestamp_s": t, "input_tokens": x, "output_tokens": 1, "block_hashes": ids})
    text = json.dumps({"kvcalc_trace": 1, "block_size_tokens": bs}) + "\n"
    text += "\n".join(json.dumps(r) for r in rows)
    return loads_trace(text, chain="rechain")


@st.composite
def random_traces(draw):
    return _random_trace(draw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=random_traces(), full=st.booleans(), warm=st.sampled_from([0.0, 0.3]))
def test_curve_equals_replay_random(trace, full, warm):
    curve = lru_curve(trace, full_blocks_only=full, warmup_fraction=warm)
    caps = list(range(0, trace.n_blocks_unique + 2))
    blocks, tokens = curve.hits_at(caps)
    for c, b, t in zip(caps, blocks, tokens):
        ref = lru_replay(trace, c, full_blocks_only=full, warmup_fraction=warm)
        assert (int(b), int(t)) == (ref["block_hits"], ref["token_hits"])
    assert np.all(np.diff(blocks) >= 0) and np.all(np.diff(tokens) >= 0)
    ideal = ideal_hit_rates(trace, full_blocks_only=full, warmup_fraction=warm)
    assert (ideal["ideal_block_hits"], ideal["ideal_token_hits"]) == (curve.ideal_block_hits, curve.ideal_token_hits)
    if warm == 0.0:
        assert (curve.ideal_block_hits, curve.ideal_token_hits) == _direct_ideal(trace, full)
    # FIFO never beats the infinite cache and equals LRU at capacity 0.
    for c in (0, 2):
        f = fifo_replay(trace, c, full_blocks_only=full, warmup_fraction=warm)
        assert f["block_hits"] <= curve.ideal_block_hits
    assert fifo_replay(trace, 0, full_blocks_only=full)["block_hits"] == 0


@settings(max_examples=100, deadline=None)
@given(trace=random_traces())
def test_present_blocks_form_a_prefix(trace):
    """Under LRU with tail-first refresh and chained ids, present blocks are a prefix (any C)."""
    for cap in range(1, 8):
        cache = OrderedDict()
        for r in range(trace.n_requests):
            ids = trace.blocks_of(r).tolist()
            present = [b in cache for b in ids]
            h = present.index(False) if False in present else len(ids)
            assert not any(present[h:])
            for b in reversed(ids):
                cache[b] = None
                cache.move_to_end(b)
                if len(cache) > cap:
                    cache.popitem(last=False)


def test_capacity_for_hit_rate(real_traces):
    curve = lru_curve(real_traces["synthetic"])
    ans = capacity_for_hit_rate(curve, 0.3)
    c = ans["capacity_blocks"]
    _, rt = curve.rates_at([c - 1, c])
    assert rt[0] < 0.3 <= rt[1]
    above = capacity_for_hit_rate(curve, 0.99)
    assert above["capacity_blocks"] is None and "above the ceiling of" in above["reason"]
    grid = capacity_for_hit_rate(curve.to_dict(), 0.3)
    assert grid["capacity_blocks"] >= c and not grid["exact"]
    with pytest.raises(InputError):
        capacity_for_hit_rate(curve, 1.5)


def test_curve_dict_grid(real_traces):
    d = lru_curve(real_traces["conversation"]).to_dict([1000, 10000], max_points=400)
    caps = d["capacities_blocks"]
    assert len(caps) <= 403 and caps == sorted(caps) and 1000 in caps and 10000 in caps
    assert d["token_hit_rate"][-1] == pytest.approx(d["ideal_token_hit_rate"])
    for key in ("capacities_blocks", "block_hit_rate", "token_hit_rate", "ideal_block_hit_rate",
                "ideal_token_hit_rate", "counting_rule", "n_requests", "n_blocks_total", "block_size_tokens"):
        assert key in d
    json.dumps(d)
    assert [r["capacity_blocks"] for r in d["at_capacities"]] == [1000, 10000]


# ----------------------------------------------------------------------------- detection and loaders

def test_detect_mooncake():
    tr = load_trace(DATA / "trace_mooncake_small.jsonl")
    assert tr.info["format"] == "mooncake" and tr.block_size_tokens == 512
    assert tr.info["ids_prefix_chained"] is True
    assert tr.timestamps_s.tolist() == [0.0, 0.0, 1.5, 2.5, 4.0]
    assert tr.blocks_of(4).tolist() == [0, 1, 4, 5, 6]  # dense ids in first-seen order
    sess, parent, _ = infer_sessions(tr)
    assert parent.tolist() == [-1, -1, 0, -1, 2]     # request 4 extends request 2's full blocks
    assert sess[4] == sess[2] == sess[0]


def test_detect_bailian_and_rechain():
    tr = load_trace(DATA / "trace_bailian_small.jsonl")
    assert tr.info["format"] == "bailian" and tr.block_size_tokens == 16
    assert tr.info["ids_prefix_chained"] is False          # raw 7 and 8 appear at two positions
    chained = [tr.blocks_of(r).tolist() for r in range(tr.n_requests)]
    assert chained == [[0, 1, 2], [0, 1, 2, 3, 4], [5, 6], [0, 1, 2, 3, 4, 7], [0]]
    assert tr.parent_index.tolist() == [-1, 0, -1, 1, -1]
    s = tr.session_ids.tolist()
    assert s[0] == s[1] == s[3] and len({s[0], s[2], s[4]}) == 3
    assert tr.info["parents_outside_trace"] == 1


def test_detect_generic_header_and_inferred_block_size():
    tr = load_trace(DATA / "trace_generic_small.jsonl")
    assert tr.info["format"] == "generic" and tr.block_size_tokens == 256
    assert tr.info["block_size_source"] == "header"
    assert tr.session_ids.tolist() == [0, 1, 0]
    tr2 = load_trace(DATA / "trace_generic_noheader.jsonl")
    assert tr2.block_size_tokens == 64 and tr2.info["block_size_source"].startswith("inferred")
    tr3 = load_trace(DATA / "trace_generic_noheader.jsonl", block_size_tokens=64, format="generic")
    assert tr3.info["block_size_source"] == "user" and tr3.info["format_source"] == "user"


def test_gzip_and_bytes_input(tmp_path):
    raw = (DATA / "trace_mooncake_small.jsonl").read_bytes()
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress(raw))
    a = load_trace(gz)
    b = loads_trace(gzip.compress(raw))
    c = loads_trace(raw.decode())
    for t in (b, c):
        assert np.array_equal(a.block_ids, t.block_ids) and np.array_equal(a.timestamps_s, t.timestamps_s)
    corrupt = tmp_path / "bad.jsonl.gz"
    corrupt.write_bytes(gzip.compress(raw)[:40])
    with pytest.raises(InputError):
        load_trace(corrupt)


def _mc(ts, x, ids):
    return json.dumps({"timestamp": ts, "input_length": x, "output_length": 1, "hash_ids": ids})


GOOD = [_mc(0, 600, [0, 1]), _mc(10, 1100, [0, 1, 2])]
BAD_CASES = {
    "malformed_json": '{"timestamp": 20, "input_length": ',
    "missing_field": json.dumps({"timestamp": 20, "input_length": 600, "hash_ids": [0, 1]}),
    "non_monotone_timestamp": _mc(5, 600, [0, 1]),
    "negative_length": json.dumps({"timestamp": 20, "input_length": -3, "output_length": 1, "hash_ids": []}),
    "hash_ids_inconsistent_with_input_length": _mc(20, 600, [0, 1, 2]),
    "prefix_chain_broken": _mc(20, 600, [1, 0]),
    "not_an_object": "[1, 2, 3]",
    "bad_value": _mc(20, "600", [0, 1]),
}


@pytest.mark.parametrize("reason", sorted(BAD_CASES))
def test_bad_line_names_line(reason):
    text = "\n".join(GOOD + [BAD_CASES[reason], _mc(30, 600, [0, 1])]) + "\n"
    with pytest.raises(InputError) as ei:
        loads_trace(text, format="mooncake")
    assert "line 3" in str(ei.value) and reason.replace("_", " ") in str(ei.value)
    tr = loads_trace(text, format="mooncake", skip_bad_lines=True)
    assert tr.n_requests == 3
    assert tr.info["bad_lines_by_reason"] == {reason: 1} and tr.info["bad_lines_skipped"] == 1


def test_empty_binary_and_guards():
    for data in (b"", b"\n\n  \n"):
        with pytest.raises(InputError, match="empty trace"):
            loads_trace(data)
    with pytest.raises(InputError, match="line 1"):
        loads_trace(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError, match="line 1"):
        loads_trace(bytes(range(128, 256)))
    with pytest.raises(InputError, match=r"none of the 2 non-blank lines is a JSON object \(skipped: not text 2"):
        loads_trace(b"\x00\x01\x02\n\xff\xfe\n", skip_bad_lines=True)
    text = "\n".join(GOOD + [_mc(30, 600, [0, 1])])
    tr = loads_trace(text, max_requests=2)
    assert tr.n_requests == 2 and tr.info["truncated"] is True
    with pytest.raises(InputError, match="larger than max_bytes"):
        loads_trace(text, max_bytes=50)
    with pytest.raises(InputError):
        loads_trace(text, format="nope")
    with pytest.raises(InputError, match="file not found"):
        load_trace(Path("/nonexistent/trace.jsonl"))


# ----------------------------------------------------------------------------- stats, fit, API, CLI

def test_stats_and_fit(real_traces):
    tr = real_traces["conversation"]
    s = trace_stats(tr)
    json.dumps(s)
    # second reading of the file: Mooncake timestamps are in milliseconds
    stamps_ms = [json.loads(line)["timestamp"] for line in
                 (MOONCAKE / "conversation_trace.jsonl").read_text().splitlines() if line.strip()]
    span_s = (max(stamps_ms) - min(stamps_ms)) / 1000
    assert s["n_requests"] == len(stamps_ms) and s["duration_s"] == pytest.approx(span_s, rel=1e-12)
    assert s["arrival_rate_per_s"] == pytest.approx(len(stamps_ms) / span_s, rel=1e-12)
    assert 0 < s["shared_prefix_token_share"] < 1
    assert sum(s["reuse_gap_s"]["counts"]) + s["reuse_gap_s"]["n_zero"] == s["reuse_gap_s"]["n"]
    assert s["input_tokens"]["p50"] <= s["input_tokens"]["p90"] <= s["input_tokens"]["p99"]
    fit = fit_workload(tr)
    assert set(fit) == {"conversation_rate_per_s", "turns_mean", "turns_distribution", "gap_mean_s",
                        "gap_distribution", "gap_lognormal_sigma", "user_tokens_per_turn",
                        "output_tokens_per_turn", "system_prompt_tokens", "service_time_s"}
    Workload.from_dict(fit)
    assert fit["turns_mean"] >= 1 and fit["gap_distribution"] in ("exponential", "lognormal")
    b = load_trace(DATA / "trace_bailian_small.jsonl")
    sb = trace_stats(b)
    assert sb["sessions"]["n_sessions"] == 3 and sb["sessions"]["source"].startswith("chat_id")
    Workload.from_dict(fit_workload(b))


def test_api_sample_and_text():
    assert sample_path("conversation").is_file() and sample_path("synthetic").is_file()
    res = trace_analyze({"sample": "synthetic", "capacities_blocks": [1000, 10000], "fifo": True,
                         "targets": [0.3, 0.99], "warmup_fraction": 0.1, "max_points": 100})
    json.dumps(res)
    assert [r["capacity_blocks"] for r in res["capacities"]] == [1000, 10000]
    assert res["fifo"][1]["token_hit_rate"] <= res["capacities"][1]["token_hit_rate"] + 0.02
    assert res["targets"][1]["capacity_blocks"] is None
    for key in ("detection", "stats", "curve", "fit", "ideal_block_hit_rate", "counting_rule"):
        assert key in res
    text = (DATA / "trace_bailian_small.jsonl").read_text()
    r2 = trace_analyze({"text": text.encode(), "full_blocks_only": False})
    assert r2["detection"]["format"] == "bailian"
    for bad, field, words in (({"text": "garbage\n"}, None, "line 1"), ({"sample": "nope"}, "sample", ""),
                              ({"sample": "synthetic", "bogus": 1}, "bogus", "")):
        with pytest.raises(InputError) as e:
            trace_analyze(bad)
        assert (field is None or e.value.field == field) and words in str(e.value)



def test_api_units_operating_point_and_model_curve():
    """kv_bytes_per_token -> GiB capacities; operating_capacity_tokens -> the exact rates there."""
    bpt = 131072.0                       # Llama-3.1-8B, bf16 KV, TP 1: 128 KiB per token
    seen = []
    res = trace_analyze({"sample": "synthetic", "kv_bytes_per_token": bpt, "capacities_blocks": [1000],
                         "operating_capacity_tokens": 1000 * 512 + 511, "model_curve": True},
                        progress=seen.append)
    json.dumps(res, allow_nan=False)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    c = res["curve"]
    bs = c["block_size_tokens"]
    assert c["capacity_tokens"] == [b * bs for b in c["capacities_blocks"]]
    # 1 GiB = 2**30 bytes = 8192 tokens of 128 KiB
    assert c["capacity_gib"] == pytest.approx([t / 8192 for t in c["capacity_tokens"]], rel=1e-12)
    assert c["saturation_capacity_gib"] == pytest.approx(c["saturation_capacity_tokens"] / 8192)
    assert res["capacities"][0]["capacity_gib"] == pytest.approx(1000 * bs / 8192)
    op = res["operating_point"]
    assert op["capacity_blocks"] == 1000             # a partial block holds nothing
    assert op["token_hit_rate"] == res["capacities"][0]["token_hit_rate"]
    assert op["block_hit_rate"] == res["capacities"][0]["block_hit_rate"]
    assert op["capacity_gib"] == pytest.approx((1000 * 512 + 511) / 8192)
    m = res["model_curve"]
    assert m["available"] and len(m["token_hit_rate"]) == len(c["capacities_blocks"])
    assert all(0.0 <= h <= 1.0 for h in m["token_hit_rate"])
    assert np.all(np.diff(m["token_hit_rate"]) >= -1e-12)          # monotone in capacity
    assert 0.0 <= op["model_token_hit_rate"] <= 1.0
    plain = trace_analyze({"sample": "synthetic"})
    assert "capacity_gib" not in plain["curve"] and "operating_point" not in plain
    assert "model_curve" not in plain
    for bad in ({"kv_bytes_per_token": 0}, {"operating_capacity_tokens": -1}, {"model_curve": "yes"}):
        with pytest.raises(InputError) as e:
            trace_analyze({"sample": "synthetic", **bad})
        assert e.value.field == next(iter(bad))

def test_cli(capsys, tmp_path):
    path = str(MOONCAKE / "synthetic_trace.jsonl")
    assert trace_main([path, "--capacities", "1000,10000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["capacities"]
    assert [r["capacity_blocks"] for r in rows] == [1000, 10000]
    assert set(rows[0]) >= {"capacity_blocks", "block_hit_rate", "token_hit_rate"}
    assert "ideal_block_hit_rate" in out and "LRU" in out["counting_rule"]
    assert trace_main([path, "--csv", "--partial-blocks", "--warmup", "0.2"]) == 0
    assert capsys.readouterr().out.startswith("capacity_blocks,")
    assert trace_main([str(DATA / "trace_generic_small.jsonl")]) == 0
    assert "counting rule" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD[0] + "\n{oops\n")
    assert trace_main([str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert trace_main([str(bad), "--skip-bad-lines"]) == 0
    assert trace_main([path, "--capacities", "x"]) == 2


def test_api_targets_must_be_a_list():
    """Audit (#12 D5): targets 0 and {} were taken as "no targets"; the documented type is a list."""
    import pytest
    from kvcalc.errors import InputError
    for bad in (0, {}, "", False, 0.5):
        with pytest.raises(InputError) as e:
            trace_analyze({"sample": "synthetic", "targets": bad, "max_points": 20})
        assert e.value.field == "targets", (bad, str(e.value))
    res = trace_analyze({"sample": "synthetic", "targets": None, "max_points": 20})  # null: none asked
    assert "targets" not in res


# ----------------------------------------------------------------------------- fast exact mode's helpers (#11)
# Each is checked against a second, direct method (brute force or numpy's own
# function), on the edge sizes and on random inputs.

def test_count_earlier_smaller_equals_brute_force():
    from kvcalc.trace.curve import _count_earlier_smaller
    rng = np.random.default_rng(7)
    assert _count_earlier_smaller(np.zeros(0, dtype=np.int64)).shape == (0,)
    assert _count_earlier_smaller(np.array([0])).tolist() == [0]
    assert _count_earlier_smaller(np.array([5, 3, 9, 0, 4])).tolist() == [0, 0, 2, 0, 2]   # by hand
    for n in (2, 3, 17, 256, 1000):
        a = rng.permutation(3 * n)[:n]
        brute = [int((a[:t] < a[t]).sum()) for t in range(n)]
        assert _count_earlier_smaller(a).tolist() == brute


def test_stable_order_equals_stable_argsort():
    from kvcalc.trace.curve import _stable_order
    rng = np.random.default_rng(8)
    for x in (rng.integers(0, 5, 1000), rng.integers(0, 1 << 31, 500), np.array([3, 3, 3]),
              np.array([1 << 40, 2, 1 << 40])):      # beyond 31 bits: the argsort fallback
        order, xs = _stable_order(x)
        ref = np.argsort(x, kind="stable")
        assert order.tolist() == ref.tolist() and xs.tolist() == x[ref].tolist()


@pytest.mark.parametrize("name", ["conversation", "synthetic"])
def test_shared_prefix_share_equals_a_direct_count(name):
    """Tokens in blocks used by more than one session, counted with Python sets."""
    tr = load_trace(sample_path(name))
    session, _, _ = infer_sessions(tr)
    sessions_of: dict = {}
    for r in range(tr.n_requests):
        for b in tr.blocks_of(r).tolist():
            sessions_of.setdefault(b, set()).add(int(session[r]))
    shared = 0
    for r in range(tr.n_requests):
        blocks = tr.blocks_of(r).tolist()
        for k, b in enumerate(blocks):
            if len(sessions_of[b]) > 1:
                last = k == len(blocks) - 1
                shared += int(tr.input_tokens[r]) - k * tr.block_size_tokens if last else tr.block_size_tokens
    assert trace_stats(tr)["shared_prefix_token_share"] == pytest.approx(shared / int(tr.input_tokens.sum()), rel=1e-12)


# ----------------------------------------------------------------------------- a bad line's detail as a message twin

def _bl(ts, x, ids, chat=1, par=-1, **extra):
    return json.dumps({"chat_id": chat, "parent_chat_id": par, "timestamp": ts, "input_length": x,
                       "output_length": 1, "hash_ids": ids, **extra})


_HUGE_INT = "1" * 5000   # beyond Python's int-from-text digit limit: json raises ValueError without a column
#: code -> (format, bad line 3 as bytes, last line or not, load options); one case per trace_line_* code
DETAIL_CASES = {
    "trace_line_missing_field": ("mooncake", json.dumps({"timestamp": 20, "input_length": 600, "hash_ids": [0, 1]}), {}),
    "trace_line_not_integer": ("mooncake", _mc(20, "600", [0, 1]), {}),
    "trace_line_beyond_tokens": ("mooncake", _mc(20, 2 ** 41, [0, 1]), {}),
    "trace_line_negative": ("mooncake", _mc(20, -3, []), {}),
    "trace_line_not_a_number": ("mooncake", _mc("x", 600, [0, 1]), {}),
    "trace_line_beyond_time": ("mooncake", _mc(10 ** 16, 600, [0, 1]), {}),
    "trace_line_not_finite_time": ("mooncake", _mc(1e16, 600, [0, 1]), {}),
    "trace_line_not_a_list": ("mooncake", _mc(20, 600, "ab"), {}),
    "trace_line_bad_id": ("mooncake", _mc(20, 600, [0, 1.5]), {}),
    "trace_line_id_out_of_range": ("mooncake", _mc(20, 600, [0, 2 ** 64]), {}),
    "trace_line_too_long": ("mooncake", json.dumps({"timestamp": 20, "pad": "x" * 5000}), {"max_line_bytes": 4096}),
    "trace_line_binary": ("mooncake", b"ab\x00cd", {}),
    "trace_line_not_utf8": ("mooncake", b"\xff\xfe{}", {}),
    "trace_line_too_deep": ("mooncake", "[" * 40 + "]" * 40, {}),
    "trace_line_malformed_json_at": ("mooncake", '{"timestamp": 20, "input_length": ', {}),
    "trace_line_malformed_json": ("mooncake", '{"timestamp": ' + _HUGE_INT + "}", {}),
    "trace_line_not_an_object": ("mooncake", "[1, 2, 3]", {}),
    "trace_line_truncated_at": ("mooncake", '{"timestamp": 30', {"last": True}),
    "trace_line_truncated": ("mooncake", '{"timestamp": ' + _HUGE_INT, {"last": True}),
    "trace_line_ids_mismatch": ("mooncake", _mc(20, 600, [0, 1, 2]), {}),
    "trace_line_time_backwards": ("mooncake", _mc(5, 600, [0, 1]), {}),
    "trace_line_chain_moved": ("mooncake", _mc(20, 600, [1, 0]), {}),
    "trace_line_chain_repeat": ("mooncake", _mc(20, 1100, [5, 6, 5]), {}),
    "trace_line_missing_chat": ("bailian", json.dumps({"timestamp": 20, "input_length": 600, "output_length": 1,
                                                       "hash_ids": [0, 1]}), {}),
    "trace_line_bad_chat_id": ("bailian", _bl(20, 600, [0, 1], chat=1.5), {}),
}


def _detail_trace(fmt, bad, last):
    good = GOOD if fmt == "mooncake" else [_bl(0, 600, [0, 1]), _bl(10, 1100, [0, 1, 2], chat=2, par=1)]
    tail = _mc(30, 600, [0, 1]) if fmt == "mooncake" else _bl(30, 600, [0, 1], chat=3, par=-1)
    bad = bad if isinstance(bad, bytes) else bad.encode()
    head = ("\n".join(good) + "\n").encode()
    return head + bad if last else head + bad + b"\n" + tail.encode() + b"\n"


def _fill_en(code, params):
    """msg.<code> of i18n/en.json filled with params (numbers as Python prints them)."""
    import re
    en = json.loads((Path(__file__).resolve().parents[1] / "i18n" / "en.json").read_text())["messages"]
    tpl = en[f"msg.{code}"]
    assert set(re.findall(r"\{(\w+)\}", tpl)) == set(params), (code, tpl, params)
    return re.sub(r"\{(\w+)\}", lambda m: (f"{params[m.group(1)]:g}" if isinstance(params[m.group(1)], float)
                                           else str(params[m.group(1)])), tpl)


def test_every_bad_line_detail_has_a_catalogue_code():
    """Each kind of bad line yields its detail as {code, params, message}: in the InputError (value_detail)
    and in info["bad_lines_first_detail"]; the English catalogue text with those params is the message
    (chain_moved drops the CLI's --rechain hint), so the Chinese page shows the same facts."""
    import re
    from kvcalc.trace.messages import TRACE_CODES
    from kvcalc.trace import loaders
    src = Path(loaders.__file__).read_text()     # the imported module (also in the mutation script's copy)
    in_loader = set(re.findall(r'"(trace_line_\w+)"', src))
    listed = {c for c in TRACE_CODES if c.startswith("trace_line_")}
    assert in_loader == listed
    # every code a raise site can emit is exercised (the recursion fallback cannot be reached: depth is checked first)
    assert set(DETAIL_CASES) == listed - {"trace_line_too_deep_plain"}
    for code, (fmt, bad, opts) in DETAIL_CASES.items():
        opts = dict(opts)
        data = _detail_trace(fmt, bad, opts.pop("last", False))
        with pytest.raises(InputError) as ei:
            loads_trace(data, format=fmt, block_size_tokens=512, **opts)
        err = ei.value.to_dict()
        d = err["value_detail"]
        assert d["code"] == code, (code, d)
        assert err["field"] == "line 3" and err["params"]["line"] == 3
        assert d["message"] == err["value"] and d["message"].startswith(_fill_en(code, d["params"])), d
        json.dumps(err)
        tr = loads_trace(data, format=fmt, block_size_tokens=512, skip_bad_lines=True, **opts)
        (reason, first), = tr.info["bad_lines_first_detail"].items()
        assert first["line"] == 3 and first["detail"] == d
        assert tr.info["bad_lines_first"][reason] == f"line 3: {d['message']}"
    # the values the page shows: the field name and the value as found in the file
    d = DETAIL_CASES["trace_line_not_integer"]
    with pytest.raises(InputError) as ei:
        loads_trace(_detail_trace("mooncake", d[1], False), format="mooncake")
    assert ei.value.to_dict()["value_detail"]["params"] == {"field": "input_length", "value": "'600'"}
