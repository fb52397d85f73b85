"""trace.fastload: the chunked scan of canonical Mooncake lines against hand values and second methods.

Second methods: the general loader (one JSON line at a time) for the whole trace; a plain
Python dict numbering (ids by first appearance) for ``densify_verified``; a direct filter of
every reference's hash for the sampled scan; a sketch filled from a plain list of the full
blocks' hashes. (The heavy stratum, helper hx6's HotRuns, is tested in test_trace_sample_stream.py.)
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from kvcalc.trace import fastload as fl
from kvcalc.trace import load_trace
from kvcalc.trace import sample as smp
from kvcalc.trace.reader import LineReader, ReadLimits

BS = 4


def _line(ts, x, y, ids) -> str:
    return json.dumps({"timestamp": ts, "input_length": x, "output_length": y, "hash_ids": ids}) + "\n"


# (timestamp ms, input tokens, output tokens, raw ids): ceil(x / 4) ids each
ROWS = [(0, 9, 2, [100, 200, 300]), (5, 8, 1, [100, 200]), (5, 12, 0, [100, 200, 301]),
        (20, 3, 4, [900]), (31, 0, 7, []), (40, 16, 3, [100, 200, 301, 7])]
TEXT = "".join(_line(*r) for r in ROWS).encode()


@pytest.fixture(autouse=True)
def _fresh_skeletons():
    """The skeleton cache is module state: empty it so each test builds its own."""
    fl._SKELETONS.clear()
    yield
    fl._SKELETONS.clear()


def _scan(data, chunk_bytes=1 << 20, limits=None, **kw):
    return fl.scan_mooncake(LineReader(data, limits, chunk_bytes=chunk_bytes), BS, **kw)


def _dense_by_dict(raw):
    seen = {}
    return [seen.setdefault(r, len(seen)) for r in raw], len(seen)


@pytest.mark.parametrize("chunk_bytes", [7, 64, 97, 1 << 20])
def test_scan_hand_values_at_any_chunk_size(chunk_bytes):
    counter = [0]
    a = _scan(TEXT, chunk_bytes, counter=counter)
    assert a["ts_ms"].tolist() == [r[0] for r in ROWS]
    assert a["input_tokens"].tolist() == [r[1] for r in ROWS]
    assert a["output_tokens"].tolist() == [r[2] for r in ROWS]
    assert a["counts"].tolist() == [3, 2, 3, 1, 0, 4]
    assert a["raw_ids"].tolist() == [i for r in ROWS for i in r[3]]
    for k in ("ts_ms", "input_tokens", "output_tokens", "counts", "raw_ids"):
        assert a[k].dtype == np.int64, k
    assert a["truncated"] is False and a["lines"] == 6 and counter == [6]
    assert set(a) == {"ts_ms", "input_tokens", "output_tokens", "counts", "truncated", "lines", "raw_ids"}


@pytest.mark.parametrize("chunk_bytes", [50, 1 << 20])
def test_max_requests_truncates(chunk_bytes):
    for m in (1, 2, 4, 6, 7):
        a = _scan(TEXT, chunk_bytes, max_requests=m)
        k = min(m, 6)
        assert a["ts_ms"].tolist() == [r[0] for r in ROWS[:k]]
        assert a["counts"].tolist() == [len(r[3]) for r in ROWS[:k]]
        assert a["raw_ids"].tolist() == [i for r in ROWS[:k] for i in r[3]]
        assert a["truncated"] is (m < 6), m


def test_last_line_without_newline_and_gzip():
    a = _scan(TEXT[:-1], 13)
    assert a["counts"].tolist() == [3, 2, 3, 1, 0, 4] and a["lines"] == 6
    b = _scan(gzip.compress(TEXT), 9)
    assert b["raw_ids"].tolist() == [i for r in ROWS for i in r[3]]


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (TEXT + b"  ", "trailing blank"),
    (TEXT + b"\n", "line not in canonical form"),                 # a blank line
    (_line(0, 9, 2, [1, 2]).encode(), "block count inconsistent"),  # ceil(9/4) = 3 ids, 2 given
    (_line(5, 4, 1, [1]).encode() + _line(4, 4, 1, [1]).encode(), "timestamps not monotone"),
    (json.dumps({"timestamp": 0, "input_length": 4, "output_length": 1, "hash_ids": [1]}, indent=1).encode(),
     "line not in canonical form"),
    (gzip.compress(TEXT)[:-12], "stream error"),
])
@pytest.mark.parametrize("chunk_bytes", [16, 1 << 20])
def test_not_canonical(data, why, chunk_bytes):
    with pytest.raises(fl.NotCanonical, match=f"^{why}$"):
        _scan(data, chunk_bytes)


def test_time_backwards_across_chunks_and_equal_times_allowed():
    a = _line(5, 4, 1, [1]).encode()
    b = _line(4, 4, 1, [2]).encode()
    with pytest.raises(fl.NotCanonical):
        fl.scan_mooncake(LineReader(iter([a, b])), BS)
    same = _line(5, 4, 1, [2]).encode()
    assert fl.scan_mooncake(LineReader(iter([a, same])), BS)["ts_ms"].tolist() == [5, 5]


def test_limits_make_it_not_canonical():
    n = TEXT.count(b"\n")
    assert _scan(TEXT, limits=ReadLimits(max_lines=n))["lines"] == n
    with pytest.raises(fl.NotCanonical, match="^max_lines$"):
        _scan(TEXT, limits=ReadLimits(max_lines=n - 1))
    assert _scan(TEXT, limits=ReadLimits(max_bytes=len(TEXT)))["lines"] == n
    with pytest.raises(fl.NotCanonical, match="^max_bytes$"):
        _scan(TEXT, limits=ReadLimits(max_bytes=len(TEXT) - 1))
    with pytest.raises(fl.NotCanonical, match="^max_bytes$"):      # summed over chunks, each far below
        _scan(TEXT, 16, limits=ReadLimits(max_bytes=len(TEXT) - 1))
    r = LineReader(TEXT, chunk_bytes=16)
    fl.scan_mooncake(r, BS)
    assert r.bytes_out == len(TEXT)
    # a line longer than max_line_bytes with no newline in the chunks read so far
    long = _line(0, 4 * 40, 1, list(range(1, 41))).encode()
    # a line of exactly max_line_bytes (without its newline) is kept, as the general reader keeps it
    assert _scan(long, 16, limits=ReadLimits(max_line_bytes=len(long) - 1))["counts"].tolist() == [40]
    # the line without its newline held whole in the carry, exactly at the limit: kept
    n_line = len(long) - 1
    r = LineReader(iter([long[:-1], b"\n"]), ReadLimits(max_line_bytes=n_line))
    assert fl.scan_mooncake(r, BS)["counts"].tolist() == [40]
    with pytest.raises(fl.NotCanonical, match="^long line$"):
        _scan(long, 16, limits=ReadLimits(max_line_bytes=64))


def test_densify_hand_values_and_against_a_dict():
    dense, nu = fl.densify_verified(np.array([10, 20, 10, 30, 10, 20, 31], np.int64), np.array([2, 2, 3]))
    assert dense.tolist() == [0, 1, 0, 2, 0, 1, 3] and nu == 4 and dense.dtype == np.int64
    # ids that differ by 2^32 must stay apart (an int32 key would fold them together)
    dense, nu = fl.densify_verified(np.array([5, (1 << 32) + 5, 5, 7], np.int64), np.array([1, 1, 1, 1]))
    assert dense.tolist() == [0, 1, 0, 2] and nu == 3
    d0, n0 = fl.densify_verified(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert d0.size == 0 and n0 == 0
    # ids beyond int32 (the int64 key path) and a random prefix-chained trace
    rng = np.random.default_rng(4)
    for big in (0, 1 << 40):
        raw, counts, chains = [], [], {}
        for _ in range(300):
            k = int(rng.integers(0, 6))
            prefix = []
            for j in range(k):
                key = tuple(prefix) + (int(rng.integers(0, 3)),)
                chains.setdefault(key, big + int(rng.integers(0, 1 << 30)) * 8 + j)   # j: ids unique per depth
                prefix = list(key)
                raw.append(chains[key])
            counts.append(k)
        want, nu_want = _dense_by_dict(raw)
        got, nu = fl.densify_verified(np.array(raw, np.int64), np.array(counts, np.int64))
        assert got.tolist() == want and nu == nu_want


@pytest.mark.parametrize("raw, counts", [
    ([5, 6, 6], [2, 1]),            # 6 at position 1, then at position 0
    ([1, 3, 2, 3], [2, 2]),         # 3 after 1, then after 2
    ([1, 2, 2], [3]),               # 2 twice in one request (positions 1 and 2)
])
def test_densify_refuses_ids_that_are_not_prefix_chained(raw, counts):
    with pytest.raises(fl.NotCanonical):
        fl.densify_verified(np.array(raw, np.int64), np.array(counts, np.int64))


def test_fast_path_equals_general_loader():
    fast = load_trace(TEXT)
    slow = load_trace(TEXT, fast_path=False)
    assert fast.info["loader"].startswith("fast") and slow.info["loader"].startswith("general")
    for k in ("timestamps_s", "input_tokens", "output_tokens", "block_offsets", "block_ids"):
        x, y = getattr(fast, k), getattr(slow, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert fast.block_ids.tolist() == [0, 1, 2, 0, 1, 0, 1, 3, 4, 0, 1, 3, 5]


def _all_refs():
    ids = np.array([i for r in ROWS for i in r[3]], np.int64)
    req = np.repeat(np.arange(len(ROWS)), [len(r[3]) for r in ROWS])
    pos = np.concatenate([np.arange(len(r[3])) for r in ROWS])
    x = np.array([r[1] for r in ROWS])
    return ids, req, pos, x


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("chunk_bytes", [60, 1 << 20])
def test_sampled_scan_keeps_exactly_the_refs_under_the_threshold(seed, chunk_bytes):
    ids, req, pos, x = _all_refs()
    h = smp.hash_ids(ids, seed)
    bits = (h >> np.uint64(40)).astype(np.int64)         # the top 24 bits
    for threshold in (0, int(np.median(bits)) + 1, int(bits[3]), 1 << 24):   # bits[3]: a ref exactly at T, left out
        a = _scan(TEXT, chunk_bytes, sample_threshold=threshold, sample_seed=seed)
        keep = bits < threshold
        assert a["ids"].tolist() == ids[keep].tolist()
        assert a["hashes"].dtype == np.uint64 and a["hashes"].tolist() == h[keep].tolist()
        assert a["req"].tolist() == req[keep].tolist() and a["pos"].tolist() == pos[keep].tolist()
        assert a["threshold"] == threshold and a["sketch"] is None and "raw_ids" not in a
        assert a["req"].dtype == np.int32 and a["pos"].dtype == np.int32 and a["ids"].dtype == np.int64
        # the sampled scan keeps per-request arrays narrow (int32 while they fit)
        assert a["input_tokens"].dtype == np.int32 and a["counts"].dtype == np.int32
        assert a["input_tokens"].tolist() == x.tolist()


def test_fixed_size_halves_the_threshold_to_the_largest_that_fits():
    rng = np.random.default_rng(1)
    rows, t = [], 0
    for i in range(200):
        k = int(rng.integers(1, 5))
        rows.append(_line(t, 4 * k, 1, [int(v) for v in rng.integers(1, 1 << 40, k)]))
        t += 1
    text = "".join(rows).encode()
    h = smp.hash_ids(np.array([i for r in rows for i in json.loads(r)["hash_ids"]], np.int64), 0)
    bits = (h >> np.uint64(40)).astype(np.int64)
    for cap in (0, 5, 60, int(bits.size), 10_000):      # bits.size: every reference fits at rate 1
        want = 1 << 24
        while (bits < want).sum() > cap and want > 1:
            want //= 2
        a = _scan(text, 300, sample_threshold=1 << 24, max_sampled_refs=cap)
        assert a["threshold"] == want and type(a["threshold"]) is int, cap
        assert a["ids"].size == int((bits < want).sum())
        assert sorted(a["hashes"].tolist()) == sorted(h[bits < want].tolist())


@pytest.mark.parametrize("full", [True, False])
def test_sketch_holds_the_full_blocks_or_all(full):
    ids, req, pos, x = _all_refs()
    h = smp.hash_ids(ids, 2)
    sel = [hh for hh, p, r in zip(h.tolist(), pos.tolist(), req.tolist()) if not full or p < x[r] // BS]
    want = np.zeros(1 << smp.HLL_BITS, np.uint8)
    smp.hll_add(want, np.array(sel, np.uint64))
    a = _scan(TEXT, 60, sample_threshold=1, sample_seed=2, sketch_full_blocks=full)
    assert a["sketch"].dtype == np.uint8 and np.array_equal(a["sketch"], want)
    assert int((a["sketch"] > 0).sum()) == len(set(sel))      # few blocks: one register each


def test_hot_blocks_not_kept_whole_unless_asked():
    hot = "".join(_line(i, 4, 1, [1]) for i in range(20)).encode()   # block 1 in all 20 requests
    assert _scan(hot, sample_threshold=0)["ids"].size == 0             # threshold 0 keeps nothing by hash


def test_parse_chunk_bytes_numbers_per_line():
    # ids of up to 18 digits; the timestamp may have 15, the lengths 12
    data = (_line(10 ** 14, 10 ** 11, 10 ** 11 + 1, [10 ** 17, 5])
            + _line(10 ** 14 + 1, 0, 0, []) + _line(10 ** 14 + 2, 4, 0, [1])).encode()
    ts, x, y, k, ids = fl._parse_chunk_bytes(data)
    assert ts.tolist() == [10 ** 14, 10 ** 14 + 1, 10 ** 14 + 2] and k.tolist() == [2, 0, 1]
    assert x.tolist() == [10 ** 11, 0, 4] and y.tolist() == [10 ** 11 + 1, 0, 0]
    assert ids.tolist() == [10 ** 17, 5, 1]
    assert fl._skeleton(2) == (b'{"timestamp": D, "input_length": D, "output_length": D, "hash_ids": [D, D]}\n')
    assert fl._skeleton(0).endswith(b"[]}\n") and len(fl._SKELETONS) == 3
    # one digit too many for each field: the bytes parser declines
    for bad in (_line(10 ** 15, 4, 0, [1]), _line(0, 10 ** 12, 0, [1]), _line(0, 4, 10 ** 12, [1]),
                _line(0, 4, 0, [10 ** 18])):
        assert fl._parse_chunk_bytes(bad.encode()) is None
    assert fl._parse_chunk_bytes(b"") is None
    assert all(a.size == 0 and a.dtype == np.int64 for a in fl._parse_chunk_regex(b""))


def test_regex_path_hand_values():
    data = (_line(7, 9, 2, [1, 2, 3]).replace("\n", "\r\n") + _line(8, 0, 1, [])).encode()
    ts, x, y, cnt, ids = fl._parse_chunk(data)
    assert ts.tolist() == [7, 8] and x.tolist() == [9, 0] and y.tolist() == [2, 1]
    assert cnt.tolist() == [3, 0] and ids.tolist() == [1, 2, 3]
    assert all(a.dtype == np.int64 for a in (ts, x, y, cnt, ids))
    # the regular expression's path with no ids at all (every line empty)
    none = (_line(7, 0, 2, []).replace("\n", "\r\n") + _line(8, 0, 1, [])).encode()
    ts, x, y, cnt, ids = fl._parse_chunk(none)
    assert cnt.tolist() == [0, 0] and ids.size == 0 and ids.dtype == np.int64


def test_narrow_and_head():
    assert fl._narrow(np.array([0, (1 << 31) - 2], np.int64)).dtype == np.int32
    assert fl._narrow(np.array([0, (1 << 31) - 1], np.int64)).dtype == np.int64
    assert fl._narrow(np.array([-1, 5], np.int64)).dtype == np.int64
    assert fl._narrow(np.zeros(0, np.int64)).dtype == np.int64
    parsed = fl._parse_chunk(TEXT)
    ts, x, y, cnt, ids = fl._head(parsed, 2)
    assert ts.tolist() == [0, 5] and cnt.tolist() == [3, 2] and ids.tolist() == [100, 200, 300, 100, 200]
