"""Trace mode at scale: bounded reading (#12), streaming, the fast loader, SHARDS sampling (#11)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.errors import InputError
from kvcalc.trace import load_trace, loads_trace, lru_curve
from kvcalc.trace.api import trace_analyze
from kvcalc.trace.cli import main as trace_main
from kvcalc.trace.reader import LineReader, TraceCancelled
from kvcalc.trace.sample import refs_from_trace, shards_curve

REPO = Path(__file__).resolve().parents[1]
MOONCAKE = REPO / "data" / "traces" / "mooncake"
CONV = MOONCAKE / "conversation_trace.jsonl"
SYNTH = MOONCAKE / "synthetic_trace.jsonl"
ARRAYS = ("timestamps_s", "input_tokens", "output_tokens", "block_offsets", "block_ids", "session_ids",
          "parent_index")


def _mc(ts, n_in, ids, out=5):
    return json.dumps({"timestamp": ts, "input_length": n_in, "output_length": out, "hash_ids": ids})


GOOD = "\n".join(_mc(i, 1024, [0, i + 1]) for i in range(5))


def _same_trace(a, b):
    for k in ARRAYS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k
    ia = {k: v for k, v in a.info.items() if k not in ("loader", "read", "bytes_read")}
    ib = {k: v for k, v in b.info.items() if k not in ("loader", "read", "bytes_read")}
    assert ia == ib


def _gen_module():
    spec = importlib.util.spec_from_file_location("gen_trace", REPO / "bench" / "gen_trace.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated Mooncake-format trace (bench/gen_trace.py): 30,000 requests."""
    path = tmp_path_factory.mktemp("gen") / "gen30k.jsonl"
    path.write_text("".join(_gen_module().generate(30_000, seed=3)))
    return path


# ----------------------------------------------------------------------------- reader: bounded work

def test_reader_lines_match_split_at_every_chunk_size():
    data = b'{"a": 1}\n\n  \n{"b": 2}\n \n{"c":3}\n\n\n\n  {"d":4}  \n\t\n{"e": 5}'
    expected = [(i + 1, line.strip()) for i, line in enumerate(data.split(b"\n")) if line.strip()]
    for cb in range(1, 24):
        r = LineReader(data, chunk_bytes=cb)
        assert [(n, x.strip()) for n, x in r] == expected
        assert r.lines == data.count(b"\n") + 1 and r.unterminated_line == 12


def test_blank_line_gzip_bomb_is_bounded():
    """Same shape as 1 MB of gzip holding 1 GiB of newlines, scaled to 64 MiB: kept memory stays small."""
    n_blank = 64 << 20
    blob = gzip.compress(b"\n" * n_blank + GOOD.encode() + b"\n", compresslevel=9)
    assert len(blob) < 200_000
    tracemalloc.start()
    try:
        tr = loads_trace(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tr.n_requests == 5
    assert tr.info["read"]["blank_lines"] == n_blank and tr.info["read"]["gzip"] is True
    assert peak < 24 << 20, peak          # chunks of 1 MiB, never the 64 MiB of lines
    with pytest.raises(InputError, match="trace.max_lines"):
        loads_trace(blob, max_lines=1000)


def test_gzip_bomb_bounded_by_decompressed_bytes():
    blob = gzip.compress(b"x" * (48 << 20), compresslevel=9)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as ei:
            loads_trace(blob, max_bytes=4 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.field == "trace.max_bytes"
    assert peak < 24 << 20, peak
    # One line longer than max_line_bytes: a bad line, never held whole.
    with pytest.raises(InputError, match="line 1: bad trace line 1: line too long"):
        loads_trace(b"x" * 100_000 + b"\n" + GOOD.encode(), max_line_bytes=1000)
    tr = loads_trace(b"x" * 100_000 + b"\n" + GOOD.encode(), max_line_bytes=1000, skip_bad_lines=True)
    assert tr.n_requests == 5 and tr.info["bad_lines_by_reason"] == {"line_too_long": 1}


def test_deep_nesting_huge_ints_and_wrong_types_refused_per_line():
    deep = "[" * 100_000 + "]" * 100_000
    deep_obj = '{"timestamp": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bad_lines = {
        deep: "too_deep",
        deep_obj: "too_deep",
        _mc(10 ** 400, 1024, [0, 9]): "bad_value",
        _mc(1, 10 ** 400, [0, 9]): "bad_value",
        _mc(1, 1024, [0, 10 ** 400]): "bad_value",
        _mc(1, 1024, [0, 2 ** 64]): "bad_value",
        '{"timestamp": 1, "input_length": ' + "9" * 5000 + ', "output_length": 1, "hash_ids": []}': "malformed_json",
        _mc(1, "1024", [0, 9]): "bad_value",
        _mc([1], 1024, [0, 9]): "bad_value",
        _mc(1, 1024, {"a": 1}): "bad_value",
        _mc(1, 1024, [0, [9]]): "bad_value",
        _mc(1, 1024, [0, None]): "bad_value",
        _mc(1, 1024, [0, True]): "bad_value",
        _mc(1e400, 1024, [0, 9]).replace("Infinity", "1e400"): "bad_value",
    }
    for line, reason in bad_lines.items():
        text = GOOD + "\n" + line + "\n" + _mc(100, 1024, [0, 77])
        with pytest.raises(InputError) as ei:
            loads_trace(text)
        assert ei.value.field == "line 6", (reason, str(ei.value)[:200])
        assert reason.replace("_", " ") in str(ei.value)
        tr = loads_trace(text, skip_bad_lines=True)
        assert tr.n_requests == 6 and tr.info["bad_lines_by_reason"] == {reason: 1}
    # Bailian chat ids too.
    line = json.dumps({"chat_id": 10 ** 400, "parent_chat_id": -1, "timestamp": 1.0, "input_length": 16,
                       "output_length": 1, "hash_ids": [1]})
    with pytest.raises(InputError, match="line 1"):
        loads_trace(line, format="bailian")


def test_no_line_parses_is_said_only_when_true():
    garbage = "garbage\n" * 250
    tr = loads_trace(garbage + GOOD, skip_bad_lines=True)      # valid lines after 250 bad ones
    assert tr.n_requests == 5 and tr.info["bad_lines_by_reason"] == {"malformed_json": 250}
    with pytest.raises(InputError, match=r"none of the 250 non-blank lines is a JSON object "
                                         r"\(skipped: malformed json 250; first: line 1"):
        loads_trace(garbage, skip_bad_lines=True)
    # Objects without trace fields: a different, true message.
    with pytest.raises(InputError, match="cannot detect the trace format from the field names"):
        loads_trace('{"a": 1}\n' * 3, skip_bad_lines=True)


# ----------------------------------------------------------------------------- broken streams

def test_truncated_gzip_reports_where_and_keeps_partial():
    blob = gzip.compress(CONV.read_bytes())
    cut = blob[: len(blob) * 6 // 10]
    with pytest.raises(InputError, match="gzip stream ends early") as ei:
        loads_trace(cut)
    assert "after line" in str(ei.value) and "bytes read" in str(ei.value)
    tr = loads_trace(cut, keep_partial=True)
    full = load_trace(CONV)
    assert 0 < tr.n_requests < full.n_requests
    assert tr.info["stopped"]["reason"].startswith("the gzip stream ends early")
    k = tr.n_requests - 1   # the requests kept are the file's first ones (the last may be cut)
    assert np.array_equal(tr.input_tokens[:k], full.input_tokens[:k])
    corrupt = bytearray(blob)
    corrupt[len(blob) // 2: len(blob) // 2 + 64] = b"\x00" * 64
    with pytest.raises(InputError, match="corrupt gzip|ends early|bad trace line"):
        loads_trace(bytes(corrupt))


def test_line_cut_in_half_and_format_change():
    text = GOOD + "\n" + _mc(50, 1024, [0, 60])[:30]
    with pytest.raises(InputError, match="line 6: bad trace line 6: truncated line"):
        loads_trace(text)
    tr = loads_trace(text, keep_partial=True)
    assert tr.n_requests == 5 and tr.info["stopped"]["line"] == 6
    # 1,000 good Mooncake lines, then lines of the generic format: reported at line 1001.
    lines = [_mc(i, 1024, [0, i + 1]) for i in range(1000)]
    lines += [json.dumps({"timestamp_s": 2.0, "input_tokens": 16, "output_tokens": 1, "block_hashes": [i]})
              for i in range(5)]
    text = "\n".join(lines)
    with pytest.raises(InputError, match="line 1001: bad trace line 1001: missing field"):
        loads_trace(text)
    tr = loads_trace(text, keep_partial=True)
    assert tr.n_requests == 1000 and tr.info["stopped"]["reason"] == "missing_field"


def test_cancel_and_progress():
    data = CONV.read_bytes()
    seen = []
    calls = [0]

    def cancel():
        calls[0] += 1
        return calls[0] > 2

    with pytest.raises(TraceCancelled) as ei:
        load_trace(data, cancel=cancel, chunk_bytes=1 << 16, fast_path=False)
    assert ei.value.field == "cancel" and isinstance(ei.value, InputError)
    tr = load_trace(data, cancel=cancel, chunk_bytes=1 << 16, keep_partial=True, fast_path=False)
    assert 0 < tr.n_requests < 12031 and tr.info["stopped"]["reason"] == "cancelled"
    load_trace(data, progress=seen.append, chunk_bytes=1 << 18)
    b = [s["bytes_read"] for s in seen]
    assert b == sorted(b) and b[-1] == len(data) and seen[-1]["fraction"] == 1.0
    assert seen[-1]["requests"] > 0 and seen[-1]["requests_per_s"] > 0


# ----------------------------------------------------------------------------- streaming == whole file

@pytest.mark.parametrize("path", [CONV, SYNTH])
def test_streaming_equals_whole_file(path, tmp_path):
    data = path.read_bytes()
    whole = load_trace(data, fast_path=False)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(len(data), 40, replace=False))
    chunks = [data[a:b] for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(data)])]
    _same_trace(load_trace(iter(chunks)), whole)                       # a stream of odd-sized chunks
    _same_trace(load_trace(path), whole)                               # the fast path
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    _same_trace(load_trace(gz), whole)
    gz_chunks = [gz.read_bytes()[i:i + 7777] for i in range(0, gz.stat().st_size, 7777)]
    _same_trace(load_trace(iter(gz_chunks)), whole)
    assert load_trace(path).info["loader"].startswith("fast")
    assert load_trace(iter(chunks)).info["loader"].startswith("general")


def test_fast_path_falls_back_on_a_non_canonical_line():
    lines = CONV.read_text().splitlines()
    lines[5000] = json.dumps(json.loads(lines[5000]), indent=None, separators=(",", ":"))  # other spacing
    data = ("\n".join(lines) + "\n").encode()
    a = load_trace(data)
    assert a.info["loader"].startswith("general")
    _same_trace(a, load_trace(CONV))
    lines[7000] = "garbage"
    b = load_trace(("\n".join(lines)).encode(), skip_bad_lines=True)
    assert b.n_requests == 12030 and b.info["bad_lines_by_reason"] == {"malformed_json": 1}


# ----------------------------------------------------------------------------- fuzz over trace lines

_json_leaf = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30), st.sampled_from([10 ** 400, -1, 0, 2 ** 64]),
                       st.floats(allow_nan=False), st.text(max_size=5), st.booleans(), st.none())
_json = st.recursive(_json_leaf, lambda c: st.one_of(st.lists(c, max_size=4),
                                                     st.dictionaries(st.text(max_size=4), c, max_size=4)),
                     max_leaves=12)
_field = st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids", "chat_id", "parent_chat_id",
                          "timestamp_s", "input_tokens", "block_hashes", "session_id", "kvcalc_trace"])
_line = st.one_of(
    st.dictionaries(_field, _json, max_size=6).map(json.dumps),
    st.builds(lambda n, ids: _mc(n, 512 * max(len(ids), 0), ids),
              st.integers(0, 10 ** 6), st.lists(st.integers(-(2 ** 70), 2 ** 70), max_size=4)),
    st.integers(1, 3000).map(lambda d: "[" * d + "]" * d),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    _json.map(json.dumps),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_line, min_size=0, max_size=8), skip=st.booleans(), keep=st.booleans(),
       fmt=st.sampled_from(["auto", "mooncake", "bailian", "generic"]))
def test_fuzz_trace_lines_give_a_trace_or_input_error(lines, skip, keep, fmt):
    text = "\n".join(lines).encode("utf-8", "surrogatepass") if lines else b""
    try:
        tr = loads_trace(text, skip_bad_lines=skip, keep_partial=keep, format=fmt)
    except InputError as exc:
        assert exc.field and str(exc)
        return
    assert tr.n_requests >= 1
    assert np.all(np.isfinite(tr.timestamps_s))
    curve = lru_curve(tr)
    assert 0.0 <= curve.ideal_token_hit_rate <= 1.0


# ----------------------------------------------------------------------------- API and CLI hardening

@pytest.mark.parametrize("request_, field", [
    ({"sample": ["x"]}, "sample"),
    ({"sample": {"a": 1}}, "sample"),
    ({"sample": "conversation", "capacities_blocks": [10 ** 400]}, "capacities_blocks[0]"),
    ({"sample": "conversation", "max_bytes": 10 ** 400}, "max_bytes"),
    ({"sample": "conversation", "warmup_fraction": 10 ** 400}, "warmup_fraction"),
    ({"sample": "conversation", "sampling": 2}, "sampling"),
    ({"sample": "conversation", "sampling": 0}, "sampling"),
    ({"sample": "conversation", "sampling": "x"}, "sampling"),
    ({"sample": "conversation", "sampling": [0.1]}, "sampling"),
    ({"sample": "conversation", "format": ["auto"]}, "format"),
    ({"sample": "conversation", "chain": {"a": 1}}, "chain"),
    ({"sample": "conversation", "max_line_bytes": 10}, "max_line_bytes"),
    ({"sample": "conversation", "keep_partial": "yes"}, "keep_partial"),
    ({"text": "[" * 100_000}, "line 1"),
    ({"text": 12}, "text"),
])
def test_api_refuses_with_the_field(request_, field):
    with pytest.raises(InputError) as ei:
        trace_analyze(request_)
    assert ei.value.field == field


def test_cli_sample_options(capsys, tmp_path):
    assert trace_main([str(CONV), "--sample", "0.1", "--capacities", "1000,20000"]) == 0
    out = capsys.readouterr().out
    assert "SAMPLED: SHARDS" in out and "rate 10 %" in out
    assert trace_main([str(CONV), "--sample", "1.5"]) == 2
    assert "sampling rate outside (0, 1]" in capsys.readouterr().err
    assert trace_main([str(CONV), "--sample", "exact", "--max-bytes", "1000"]) == 2
    assert "trace.max_bytes" in capsys.readouterr().err
    cut = tmp_path / "cut.jsonl.gz"
    blob = gzip.compress(CONV.read_bytes())
    cut.write_bytes(blob[: len(blob) // 2])
    assert trace_main([str(cut)]) == 2
    assert "gzip stream ends early" in capsys.readouterr().err
    assert trace_main([str(cut), "--keep-partial"]) == 0
    assert "STOPPED EARLY" in capsys.readouterr().out


# ----------------------------------------------------------------------------- SHARDS

def _errors_pp(curve, sc):
    caps = np.asarray(sc["capacities_blocks"])
    eb, et = curve.rates_at(caps)
    db = np.abs(np.asarray(sc["block_hit_rate"]) - eb) * 100
    dt = np.abs(np.asarray(sc["token_hit_rate"]) - et) * 100
    return max(db.mean(), dt.mean()), max(db.max(), dt.max())


def test_shards_at_rate_one_is_exact():
    tr = load_trace(CONV)
    for full in (True, False):
        curve = lru_curve(tr, full_blocks_only=full)
        sc = shards_curve(refs_from_trace(tr, 1.0, full_blocks_only=full), with_error=False)
        caps = np.asarray(sc["capacities_blocks"])
        eb, et = curve.rates_at(caps)
        assert np.allclose(sc["block_hit_rate"], eb, atol=1e-12) and np.allclose(sc["token_hit_rate"], et, atol=1e-12)


@pytest.fixture(scope="module")
def no_shared_prompt(tmp_path_factory):
    """Generated trace without shared system prompts (no heavy-hitter blocks): 30,000 requests."""
    path = tmp_path_factory.mktemp("gen") / "gen30k0.jsonl"
    path.write_text("".join(_gen_module().generate(30_000, seed=3, system_prompts=0)))
    return path


def test_shards_nearly_unbiased_and_bound_covers(no_shared_prompt):
    """At 10 % the mean of 6 independent hash seeds is within 4 standard errors of the mean (sd/sqrt(6))
    of exact + 1 pp everywhere on the grid (measured over 8 seeds: at most 0.9 pp, near C = 500 blocks,
    where the window-ratio distances hand over to k / R; elsewhere under 0.1 pp); each seed's worst
    error over all capacities is inside its stated bound (|bias| + 3 standard errors from 8 hash groups)."""
    tr = load_trace(no_shared_prompt)
    curve = lru_curve(tr)
    rate = 0.1
    caps = curve.grid(200)
    runs = [shards_curve(refs_from_trace(tr, rate, seed=s), capacities_blocks=caps) for s in range(6)]
    est = np.array([r["token_hit_rate"] for r in runs])
    exact = curve.rates_at(caps)[1]
    se_of_mean = est.std(axis=0, ddof=1) / math.sqrt(6)
    assert np.all(np.abs(est.mean(axis=0) - exact) <= 4 * se_of_mean + 1e-2)
    for r in runs:
        assert r["resolved_from_capacity_blocks"] == 10
        _, max_pp = _errors_pp(curve, r)
        assert max_pp <= r["error_bound_pp"], (max_pp, r["error_bound_pp"])


@pytest.mark.parametrize("path", [CONV, SYNTH], ids=["conversation", "synthetic"])
def test_shards_target_at_ten_percent(path):
    """#11's target (within 0.5 pp mean and 2 pp max of exact) at 10 %, for 4 hash seeds each, on both
    Mooncake traces (measured over 8 seeds: conversation 0.04-0.08 pp mean, 0.27-0.43 max; synthetic
    0.14-0.30 mean, 0.58-1.31 max)."""
    tr = load_trace(path)
    curve = lru_curve(tr)
    for s in range(4):
        mean_pp, max_pp = _errors_pp(curve, shards_curve(refs_from_trace(tr, 0.1, seed=s), with_error=False))
        assert mean_pp < 0.5 and max_pp < 2.0, (s, mean_pp, max_pp)


def test_shards_target_generated_trace(generated):
    """The same target at 10 % on a generated trace with 16 shared system prompts (heavy blocks: ~40 %
    of the references on ~100 blocks), 3 seeds (measured over 8: 0.10-0.25 pp mean, 0.55-1.00 max)."""
    tr = load_trace(generated)
    curve = lru_curve(tr)
    for s in range(3):
        mean_pp, max_pp = _errors_pp(curve, shards_curve(refs_from_trace(tr, 0.1, seed=s), with_error=False))
        assert mean_pp < 0.5 and max_pp < 2.0, (s, mean_pp, max_pp)


@pytest.mark.parametrize("rate", [0.01, 0.1])
def test_shards_stated_error_covers_mooncake(rate):
    """The stated error (|bias| + 3 standard errors from the 8 hash groups, at the worst capacity)
    covers the actual worst error on both Mooncake traces, 3 seeds each, at 1 % and 10 %."""
    for path in (CONV, SYNTH):
        tr = load_trace(path)
        curve = lru_curve(tr)
        for s in range(3):
            sc = shards_curve(refs_from_trace(tr, rate, seed=s))
            mean_pp, max_pp = _errors_pp(curve, sc)
            assert max_pp <= sc["error_bound_pp"] and mean_pp <= sc["error_bound_pp"], (path.name, s, max_pp, sc)


@pytest.mark.xfail(strict=True, reason="measured over 8 seeds at 1 %: synthetic trace (3,993 requests, 40,148 "
                   "blocks: ~400 in the sample) 0.42-0.88 pp mean, 2.1-3.7 pp max; the standard error alone is "
                   "up to 1.9 pp there (docs/trace-sampling.md)")
def test_shards_mooncake_one_percent_target():
    for path in (CONV, SYNTH):
        tr = load_trace(path)
        curve = lru_curve(tr)
        errs = [_errors_pp(curve, shards_curve(refs_from_trace(tr, 0.01, seed=s), with_error=False))
                for s in range(3)]
        assert all(m < 0.5 and x < 2.0 for m, x in errs), (path.name, errs)


def test_shards_says_when_the_sample_is_too_small():
    """At 1 % the synthetic trace's sample (~400 blocks) states an error above 2 pp and says so, with
    the rate that would reach 2 pp (error ~ 1/sqrt(rate)); at 10 % on the conversation trace it does not."""
    tr = load_trace(SYNTH)
    sc = shards_curve(refs_from_trace(tr, 0.01, seed=0))
    acc = sc["accuracy_warning"]
    assert sc["error_bound_pp"] > 2.0 and acc["sampled_blocks"] == sc["sampled_blocks"] < 1000
    assert acc["rate_needed_fraction"] == pytest.approx(min(1.0, 0.01 * (sc["error_bound_pp"] / 2.0) ** 2),
                                                         rel=0.1)
    res = trace_analyze({"sample": "synthetic", "sampling": 0.01})
    assert res["sampling"]["warning_detail"]["code"] in ("trace_sampling_accuracy", "trace_sampling_heavy_hitters")
    ok = shards_curve(refs_from_trace(load_trace(CONV), 0.1, seed=0))
    assert ok["error_bound_pp"] <= 2.0 and "accuracy_warning" not in ok


def test_sampled_api_fast_scan_and_fixed_size(no_shared_prompt):
    generated = no_shared_prompt
    exact = trace_analyze({"path": str(generated), "sampling": "exact", "capacities_blocks": [2000, 20000]})
    assert exact["sampling"]["mode"] == "exact"
    res = trace_analyze({"path": str(generated), "sampling": 0.05, "capacities_blocks": [2000, 20000]})
    assert res["sampling"]["loader"].startswith("fast path with sampling")
    for r, e in zip(res["capacities"], exact["capacities"]):
        assert abs(r["token_hit_rate"] - e["token_hit_rate"]) * 100 <= res["sampling"]["error_bound_pp"]
    small = trace_analyze({"path": str(generated), "sampling": 1.0, "sampling_max_refs": 5000})
    # the fixed size bounds the hashed references (the heavy stratum is not stored per reference)
    sm = small["sampling"]
    assert sm["sampled_references"] - sm["heavy_references"] <= 5000
    assert sm["rate"] < 0.05
    # A stream that is not canonical Mooncake is loaded exactly and sampled after (said so).
    text = generated.read_text().replace('"timestamp": ', '"timestamp":', 1)
    res2 = trace_analyze({"text": text, "sampling": 0.05})
    assert "then sampled" in res2["sampling"]["loader"]


def test_sampled_scan_keeps_heavy_blocks_whole(generated, no_shared_prompt):
    """16 shared system prompts (~40 % of references on ~100 blocks): the streaming scan finds them in its
    first chunk and keeps them whole, so the sampled stratum's size stays near R x N (no heavy-hitter
    warning) and the curve at 1 % is within 1 pp mean of exact (measured 0.34-0.61 over 3 seeds; one
    here, the run takes ~8 s). A fixed size bounds the hashed references only: the heavy stratum
    (2 bytes a request) stays whole under any size."""
    from kvcalc.trace.sample import load_sampled
    tr = load_trace(generated)
    curve = lru_curve(tr)
    n_refs = curve.blocks_total
    for seed in (1,):
        res = trace_analyze({"path": str(generated), "sampling": 0.01, "sampling_seed": seed})
        smp = res["sampling"]
        assert smp["loader"].startswith("fast path with sampling")
        assert smp["heavy_references"] > 0.3 * n_refs and abs(smp["sample_size_deviation"]) <= 0.2
        assert (smp.get("warning_detail") or {}).get("code") != "trace_sampling_heavy_hitters"
        caps = np.asarray(res["curve"]["capacities_blocks"])
        err = np.abs(np.asarray(res["curve"]["token_hit_rate"]) - curve.rates_at(caps)[1]) * 100
        assert err.mean() < 1.0 and err.max() <= smp["error_bound_pp"], (seed, err.mean(), err.max())
        plain = trace_analyze({"path": str(no_shared_prompt), "sampling": 0.01, "sampling_seed": seed})
        assert abs(plain["sampling"]["sample_size_deviation"]) <= 0.2
    refs, _, _ = load_sampled(generated, 0.01, max_refs=2000)
    assert refs.hot.n_heavy > 0.3 * n_refs and refs.ids.size <= 2000


def test_fast_scan_distinct_sketch_and_target(no_shared_prompt):
    """The streaming scan's HyperLogLog count of distinct full blocks is within 1 % of the exact count
    (linear counting below 5 x 2^18), and its sampled curve meets #11's target at 10 % on both Mooncake
    traces (3 seeds) with the stated error covering the actual one."""
    from kvcalc.trace.curve import _kept
    from kvcalc.trace.sample import load_sampled
    for path in (CONV, SYNTH):
        tr = load_trace(path)
        curve = lru_curve(tr)
        exact_d = np.unique(_kept(tr, True)[0]).size
        for seed in range(3):
            refs, _, _ = load_sampled(path, 0.1, seed=seed)
            assert abs(refs.distinct_estimate / exact_d - 1) < 0.01
            sc = shards_curve(refs)
            mean_pp, max_pp = _errors_pp(curve, sc)
            assert mean_pp < 0.5 and max_pp < 2.0 and max_pp <= sc["error_bound_pp"], (path.name, seed, mean_pp, max_pp)


# ----------------------------------------------------------------------------- fleets and tiers

def test_fleet_k1_and_pooled_equal_the_single_cache():
    from kvcalc.trace.fleet import fleet_at, fleet_curves
    tr = load_trace(CONV)
    single = lru_curve(tr)
    caps = [0, 10, 500, 5859, 30000]
    b, t = single.hits_at(caps)
    for routing in ("affinity", "random", "round_robin", "pooled"):
        curves, _ = fleet_curves(tr, 1, routing)
        at = fleet_at(curves, caps)
        assert np.array_equal(at["block_hits"], b) and np.array_equal(at["token_hits"], t)
    # Pooled K instances of C blocks = one cache of K x C (exact hits).
    res = trace_analyze({"sample": "conversation", "cluster": {"instances": 10, "routing": "pooled"}})
    f = res["fleet"]
    kc = np.asarray(f["capacities_blocks_per_instance"]) * 10
    _, t10 = single.rates_at(kc)
    assert np.allclose(f["token_hit_rate"], t10, rtol=0, atol=1e-15)
    # Split K ways, each instance gets fewer reuses: never above the pool of K x C.
    rr = trace_analyze({"sample": "conversation", "cluster": {"instances": 10, "routing": "round_robin"}})["fleet"]
    assert np.all(np.asarray(rr["token_hit_rate"]) <= np.asarray(f["token_hit_rate"]) + 1e-12)


def test_fleet_routing_by_instance_is_a_partition_and_affinity_keeps_sessions():
    from kvcalc.trace.fleet import route
    rows = [{"timestamp_s": float(i), "input_tokens": 32, "output_tokens": 1, "block_hashes": [f"s{i % 7}", f"t{i}"],
             "session_id": f"u{i % 7}"} for i in range(70)]
    text = json.dumps({"kvcalc_trace": 1, "block_size_tokens": 16}) + "\n" + "\n".join(json.dumps(r) for r in rows)
    tr = loads_trace(text)
    inst, how = route(tr, 3, "affinity", seed=1)
    assert how == "hash of the session"
    for s in range(7):
        assert len(set(inst[tr.session_ids == s].tolist())) == 1
    rr, _ = route(tr, 3, "round_robin")
    assert rr.tolist() == [i % 3 for i in range(70)]
    rnd, _ = route(tr, 3, "random", seed=5)
    assert np.array_equal(rnd, route(tr, 3, "random", seed=5)[0]) and set(rnd.tolist()) <= {0, 1, 2}


def test_exclusive_tiers_sum_to_the_single_cache_at_the_summed_capacity():
    tiers = [{"name": "gpu", "capacity_tokens": 512 * 700, "read_gb_per_s": 1000},
             {"name": "cpu", "capacity_gib": 40, "read_gb_per_s": 50},
             {"name": "ssd", "capacity_tokens": 512 * 20000, "read_gb_per_s": 5}]
    for cluster in (None, {"instances": 4, "routing": "random", "seed": 2}):
        req = {"sample": "conversation", "tiers": tiers, "kv_bytes_per_token": 131072}
        if cluster:
            req["cluster"] = cluster
        res = trace_analyze(req)
        rows = res["fleet"]["tiers"]
        total_blocks = rows[-1]["cumulative_capacity_blocks"]
        assert rows[1]["capacity_blocks"] == int(40 * 2 ** 30 / 131072) // 512
        f = res["fleet"]
        from kvcalc.trace.fleet import fleet_at, fleet_curves
        tr = load_trace(CONV)
        curves, _ = fleet_curves(tr, (cluster or {}).get("instances", 1), (cluster or {}).get("routing", "pooled"),
                                 seed=(cluster or {}).get("seed", 0))
        at = fleet_at(curves, [total_blocks])
        assert sum(r["token_hits"] for r in rows) == int(at["token_hits"][0])
        assert sum(r["block_hits"] for r in rows) == int(at["block_hits"][0])
        assert all(r["read_s_per_request"] >= 0 for r in rows) and f["instances"] == (cluster or {}).get("instances", 1)
    with pytest.raises(InputError) as ei:
        trace_analyze({"sample": "conversation", "tiers": [{"name": "x", "capacity_gib": 1}]})
    assert ei.value.field == "tiers[0].capacity_gib"
    with pytest.raises(InputError) as ei:
        trace_analyze({"sample": "conversation", "cluster": {"instances": 2, "routing": "nearest"}})
    assert ei.value.field == "cluster.routing"
    # a fleet with sampling is sampled (tests/test_trace_fleet_sample.py), no longer refused
    res = trace_analyze({"sample": "conversation", "cluster": {"instances": 2, "routing": "random"}, "sampling": 0.1})
    assert res["fleet"]["sampling"]["mode"] == "sampled" and res["fleet"]["instances_used"] == 2


def test_cli_fleet_and_tiers(capsys):
    assert trace_main([str(CONV), "--instances", "10", "--routing", "random", "--capacities", "5859",
                       "--tier", "gpu:1e6:1000", "--tier", "cpu:2e6:50"]) == 0
    out = capsys.readouterr().out
    assert "fleet: 10 instances, routing random" in out and "tier gpu: 1953 blocks" in out
    assert trace_main([str(CONV), "--tier", "gpu"]) == 2
    assert "--tier" in capsys.readouterr().err


# ---------------------------------------------------------------- the page's File, read by slices


class _FakeFile:
    """A browser File as the worker hands it to Python: size, name, read(offset, n); reads logged."""

    def __init__(self, data: bytes, name: str = "t.jsonl"):
        self.data, self.size, self.name, self.reads = data, len(data), name, []

    def read(self, offset, n):
        self.reads.append((offset, n))
        return self.data[offset:offset + n]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sampling", ["exact", 0.1])
def test_blob_source_equals_bytes_and_reads_bounded_slices(gz, sampling):
    from kvcalc.trace.reader import CHUNK_BYTES, BlobSource
    data = CONV.read_bytes()
    data = gzip.compress(data) if gz else data
    f = _FakeFile(data)
    got = trace_analyze({"text": BlobSource(f.read, f.size, f.name), "sampling": sampling})
    ref = trace_analyze({"text": data, "sampling": sampling})
    assert got["curve"]["token_hit_rate"] == ref["curve"]["token_hit_rate"]
    assert got["detection"]["n_requests"] == ref["detection"]["n_requests"] == 12031
    # never more than one chunk asked for at a time (memory bounded by the chunk, not the file)
    assert f.reads and max(n for _, n in f.reads) <= CHUNK_BYTES
    if not gz and sampling == "exact":  # the fast path read the file, not the general loader
        assert "fast" in got["detection"]["loader"]


def test_bridge_files_become_blob_sources_with_status():
    """js/kvcalc_bridge.py: {"$file": i} -> a BlobSource; status dicts -> progress(fraction, json)."""
    spec = importlib.util.spec_from_file_location("kvcalc_bridge_files", REPO / "js" / "kvcalc_bridge.py")
    bridge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bridge)
    data = CONV.read_bytes()
    seen = []
    out = json.loads(bridge.call("trace", json.dumps([{"text": {"$file": 0}}]),
                                 lambda f, d=None: seen.append((f, d)), None, [_FakeFile(data)]))
    assert out["ok"], out
    assert out["result"]["detection"]["n_requests"] == 12031
    details = [json.loads(d) for _, d in seen if d is not None]
    assert details and details[-1]["bytes_read"] == len(data) and details[-1]["bytes_total"] == len(data)
    assert details[-1]["requests"] > 0 and details[-1]["requests_per_s"] > 0
    bad = json.loads(bridge.call("trace", json.dumps([{"text": {"$file": 2}}]), None, None, [_FakeFile(data)]))
    assert bad["ok"] is False and bad["error"]["field"] == "files"


def test_auto_threshold_and_message_twins():
    """auto samples above sampling_auto_above_mib (the page sends 64); the reasons and the
    detection come as message twins the page renders from msg.<code> (kvcalc/trace/messages.py)."""
    from kvcalc.trace.messages import TRACE_CODES
    small = trace_analyze({"path": str(CONV), "sampling_auto_above_mib": 1})      # 3.0 MB > 1 MiB
    assert small["sampling"]["mode"] == "sampled"
    assert small["sampling"]["why_detail"]["code"] == "trace_sampling_auto_sampled"
    assert small["sampling"]["why_detail"]["params"]["above_mib"] == 1
    exact = trace_analyze({"path": str(CONV)})                                      # default 256 MiB
    assert exact["sampling"]["mode"] == "exact"
    assert exact["sampling"]["why_detail"]["code"] == "trace_sampling_auto_exact"
    d = exact["detection"]
    assert (d["format_source_detail"]["code"], d["block_size_source_detail"]["code"], d["chaining_detail"]["code"]) \
        == ("trace_format_detected", "trace_bs_format_default", "trace_chain_verified")
    # no warm-up: a code of its own, not "the first 0 % of requests not counted"
    assert exact["counting_rule_detail"] == {"code": "trace_counting_full_all", "params": {},
                                             "message": exact["counting_rule"]}
    assert [n["message"] for n in exact["fit"]["note_details"]] == exact["fit"]["notes"]
    assert all(n["code"] in TRACE_CODES for n in exact["fit"]["note_details"])
    with pytest.raises(InputError) as e:
        trace_analyze({"path": str(CONV), "sampling_auto_above_mib": 0})
    assert e.value.field == "sampling_auto_above_mib"
    # a bad line: its code names the reason, its params the line
    with pytest.raises(InputError) as e:
        trace_analyze({"text": GOOD + "\n{bad\n"})
    assert e.value.code == "trace_bad_malformed_json" and e.value.params["line"] == 6


def test_capacity_beyond_the_trace_is_explained():
    """#11 'capacities beyond the trace are explained': a row at or above the saturation capacity (every
    reuse hits) carries a note with a message code in both catalogues; its rate is the ideal one."""
    for sampling in ("exact", 0.1):
        res = trace_analyze({"sample": "conversation", "capacities_blocks": [1000, 10 ** 7], "sampling": sampling})
        low, high = res["capacities"]
        assert "beyond_trace" not in low
        assert high["beyond_trace"] and high["note_detail"]["code"] == "trace_capacity_beyond_trace"
        assert high["note_detail"]["params"]["saturation_capacity_blocks"] == res["curve"]["saturation_capacity_blocks"]
        assert high["token_hit_rate"] == pytest.approx(res["ideal_token_hit_rate"], abs=1e-12)
    for lang in ("en", "zh-CN"):
        catalogue = json.loads((REPO / "i18n" / f"{lang}.json").read_text())["messages"]
        assert "{saturation_capacity_blocks}" in catalogue["msg.trace_capacity_beyond_trace"]
        assert "{rate_needed_fraction}" in catalogue["msg.trace_sampling_accuracy"]
