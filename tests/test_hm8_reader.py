"""trace.reader against a second method: a plain ``bytes.split(b"\\n")`` of the whole input.

The reader streams chunks (any size, plain or gzip) and must give what splitting the whole
decompressed text gives: line numbers counting every line, blank lines (ASCII whitespace
only) skipped and counted, a line longer than ``max_line_bytes`` handed on as ``None``, a
last line without a newline numbered and flagged. Limits, errors and the status dict are
checked with values worked out by hand below.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.trace import reader as rd
from kvcalc.trace.reader import (BlobSource, LineReader, ReadLimits, StreamError, TraceCancelled,
                                 is_restartable)

_WS = b" \t\r\f\v"


def _reference(data: bytes, max_line_bytes: int):
    """(lines yielded, total lines, blank lines, unterminated line number) by a whole split."""
    pieces = data.split(b"\n")
    last = pieces.pop()              # after the last newline: '' or an unterminated line
    out, blank = [], 0
    for i, p in enumerate(pieces, start=1):
        if not p.strip(_WS):
            blank += 1
        else:
            out.append((i, None if len(p) > max_line_bytes else p))
    n = len(pieces)
    unterminated = 0
    if last.strip(_WS):
        n += 1
        unterminated = n
        out.append((n, None if len(last) > max_line_bytes else last))
    return out, n, blank, unterminated


def _random_text(rng, n_lines: int, long_len: int) -> bytes:
    """Lines that are blank, short, or longer than ``long_len``; a non-blank line starts non-blank."""
    parts = []
    for _ in range(n_lines):
        kind = rng.integers(0, 6)
        if kind == 0:
            parts.append(bytes(rng.choice(list(_WS), rng.integers(0, 90)).astype(np.uint8)))  # blank (may be long)
        elif kind == 1:
            parts.append(b"x" * int(rng.integers(long_len + 1, long_len + 200)))   # too long
        elif kind == 2:
            parts.append(b"y" * long_len)                                          # exactly the limit
        else:
            body = b"a" + bytes(rng.integers(97, 123, rng.integers(0, 40)).astype(np.uint8))
            lead = bytes(rng.choice(list(_WS), rng.integers(0, 30)).astype(np.uint8)) if kind == 5 else b""
            parts.append(lead + body + (b"\r" if kind == 3 else b"") + (b"  " if kind == 4 else b""))
    text = b"\n".join(parts)
    return text + (b"\n" if rng.integers(0, 2) else b"")


def _chunks(data: bytes, rng, max_chunk: int):
    i, out = 0, []
    while i < len(data):
        k = int(rng.integers(1, max_chunk + 1))
        out.append(data[i:i + k])
        i += k
    return out


@pytest.mark.parametrize("seed", range(6))
def test_lines_equal_a_whole_split_for_random_chunks(seed):
    rng = np.random.default_rng(seed)
    limit = 64
    data = _random_text(rng, 60, limit)
    want, n, blank, unterminated = _reference(data, limit)
    for max_chunk in (1, 3, 17, 70, 500, 10**6):
        r = LineReader(iter(_chunks(data, rng, max_chunk)), ReadLimits(max_line_bytes=limit))
        assert list(r) == want, max_chunk
        assert (r.lines, r.blank_lines, r.unterminated_line) == (n, blank, unterminated), max_chunk
        assert r.bytes_in == r.bytes_out == len(data) and r.gzip is False and r.bytes_total is None


@pytest.mark.parametrize("seed", range(3))
def test_gzip_lines_equal_the_plain_lines(seed):
    rng = np.random.default_rng(100 + seed)
    data = _random_text(rng, 80, 64)
    want, n, blank, unterminated = _reference(data, 64)
    blob = gzip.compress(data)
    for max_chunk in (1, 2, 13, 10**6):
        for step in (5, 1 << 20):          # the inflate step (output per call) is chunk_bytes
            r = LineReader(iter(_chunks(blob, rng, max_chunk)), ReadLimits(max_line_bytes=64), chunk_bytes=step)
            assert list(r) == want
            assert (r.lines, r.blank_lines, r.unterminated_line) == (n, blank, unterminated)
            assert r.gzip is True and r.bytes_in == len(blob) and r.bytes_out == len(data)


def test_bytes_bytearray_memoryview_and_path_sources(tmp_path):
    data = b"ab\n\ncd\n  ef\n"
    want = [(1, b"ab"), (3, b"cd"), (4, b"  ef")]
    p = tmp_path / "t.jsonl"
    p.write_bytes(data)
    for src in (data, bytearray(data), memoryview(data), p, str(p)):
        r = LineReader(src, chunk_bytes=3)
        assert list(r) == want and r.bytes_total == len(data) and r.lines == 4 and r.blank_lines == 1
    # chunks that are bytearray / memoryview are read as bytes; empty chunks are skipped
    r = LineReader(iter([bytearray(b"ab\n"), b"", memoryview(b"\ncd\n  ef\n")]))
    assert list(r) == want and r.bytes_in == len(data)
    assert is_restartable(data) and is_restartable(bytearray(data)) and is_restartable(memoryview(data))
    assert is_restartable(p) and is_restartable(BlobSource(lambda o, n: data[o:o + n], len(data)))
    assert not is_restartable(iter([data])) and not is_restartable(str(p))


def test_gzip_magic_split_over_two_one_byte_chunks_and_multi_member():
    data = b"one\ntwo\n"
    blob = gzip.compress(data)
    r = LineReader(iter([blob[:1], blob[1:2], blob[2:]]))
    assert list(r) == [(1, b"one"), (2, b"two")] and r.gzip is True
    # two members, then zero padding: all lines of both members
    two = gzip.compress(b"a\n") + gzip.compress(b"b\nc\n") + b"\x00" * 10
    assert [x for _, x in LineReader(two, chunk_bytes=4)] == [b"a", b"b", b"c"]
    # a lone first byte that is not the magic: plain text
    assert list(LineReader(iter([b"x", b"\n"]))) == [(1, b"x")]


def _err(source, **kw):
    with pytest.raises(StreamError) as ei:
        list(LineReader(source, **kw))
    return ei.value


def test_gzip_errors_have_codes_and_where():
    blob = gzip.compress(b"".join(b"line %d\n" % i for i in range(2000)))
    e = _err(blob[: len(blob) // 2])
    assert e.code == "trace_truncated_gzip" and e.field == "input" and e.value == "truncated gzip"
    assert e.bytes_read == len(blob) // 2 and e.line > 0
    e = _err(gzip.compress(b"a\n") + b"garbage")
    assert e.code == "trace_trailing_data" and e.value == "trailing data"
    bad = bytearray(gzip.compress(b"abc\n" * 50))
    bad[10:20] = b"\xff" * 10
    e = _err(bytes(bad))
    assert e.code == "trace_corrupt_gzip"


def test_limits_raise_with_field_line_and_bytes():
    data = b"aaaa\nbbbb\ncccc\n"                # 15 bytes, 3 lines
    assert [x for _, x in LineReader(data, ReadLimits(max_bytes=15, max_lines=3))] == [b"aaaa", b"bbbb", b"cccc"]
    e = _err(data, limits=ReadLimits(max_bytes=14), chunk_bytes=5)
    assert e.field == "trace.max_bytes" and e.code == "trace_max_bytes" and e.value == 15
    assert e.bytes_read == 15 and e.line == 2          # two lines were read before the third chunk
    e = _err(data, limits=ReadLimits(max_lines=2))
    assert e.field == "trace.max_lines" and e.code == "trace_max_lines" and e.value == 3 and e.line == 3
    # blank lines count toward max_lines: 3 blank lines + 1
    e = _err(b"\n\n\nx\n", limits=ReadLimits(max_lines=3))
    assert e.value == 4 and e.field == "trace.max_lines"
    assert list(LineReader(b"\n\n\nx\n", ReadLimits(max_lines=4))) == [(4, b"x")]
    # a last line without newline counts as a line
    e = _err(b"a\nb", limits=ReadLimits(max_lines=1))
    assert e.value == 2
    # carried over a chunk boundary, the line still counts
    e = _err(iter([b"a\nb", b"b\n"]), limits=ReadLimits(max_lines=1))
    assert e.value == 2 and e.line == 2


def test_long_line_across_chunks_and_unterminated():
    long = b"z" * 100
    r = LineReader(iter([long[:30], long[30:70], long[70:] + b"\nok\n"]), ReadLimits(max_line_bytes=64))
    assert list(r) == [(1, None), (2, b"ok")] and r.lines == 2
    r = LineReader(iter([b"ok\n", long[:70], long[70:]]), ReadLimits(max_line_bytes=64))
    assert list(r) == [(1, b"ok"), (2, None)] and r.unterminated_line == 2 and r.lines == 2
    # a line of exactly max_line_bytes is kept, one byte more is not
    for cut in (10, 64, 65):
        src = iter([(b"q" * 64)[:cut], (b"q" * 64)[cut:] + b"\n" + b"r" * 65 + b"\n"])
        assert list(LineReader(src, ReadLimits(max_line_bytes=64))) == [(1, b"q" * 64), (2, None)]
    # a carried line that exceeds the limit only once the newline's chunk arrives
    src = iter([b"s" * 40, b"s" * 40 + b"\nt\n"])
    assert list(LineReader(src, ReadLimits(max_line_bytes=64))) == [(1, None), (2, b"t")]


def test_whitespace_across_chunks_is_kept_exact():
    """Regression: a blank run at a chunk's end was carried as one space, so a blank line of
    120 bytes over three chunks became a "line too long" bad line, and a line's leading
    whitespace (e.g. a vertical tab, which JSON refuses) was rewritten to a space."""
    lim = ReadLimits(max_line_bytes=64)
    r = LineReader(iter([b"a\n" + b" " * 10, b" " * 100, b" " * 10 + b"\nb\n"]), lim)
    assert list(r) == [(1, b"a"), (3, b"b")] and r.blank_lines == 1 and r.lines == 3
    r = LineReader(iter([b"a\n" + b"\x0b" * 3, b"{}\n"]), lim)
    assert list(r) == [(1, b"a"), (2, b"\x0b\x0b\x0b{}")]
    # 60 spaces then "x": 71 bytes with the newline's chunk, over the limit (was 12 and kept)
    r = LineReader(iter([b"a\n" + b" " * 60, b" " * 10 + b"x\n"]), lim)
    assert list(r) == [(1, b"a"), (2, None)]
    # a long blank tail without newline is no line; a long one with a late non-blank byte is
    r = LineReader(iter([b"a\n", b" " * 70, b" " * 5]), lim)
    assert list(r) == [(1, b"a")] and r.lines == 1 and r.unterminated_line == 0
    r = LineReader(iter([b"a\n", b" " * 70, b"x"]), lim)
    assert list(r) == [(1, b"a"), (2, None)] and r.unterminated_line == 2
    r = LineReader(iter([b"a\n", b" " * 70, b" x\n"]), lim)
    assert list(r) == [(1, b"a"), (2, None)] and r.blank_lines == 0


def test_status_progress_and_cancel():
    data = b"a\nb\nc\nd\n"
    seen = []
    r = LineReader(data, progress=seen.append, chunk_bytes=2, requests_seen=lambda: 6)
    list(r)
    assert [s["bytes_read"] for s in seen] == [2, 4, 6, 8]
    assert [s["fraction"] for s in seen] == [0.25, 0.5, 0.75, 1.0]
    last = seen[-1]
    assert last["bytes_total"] == 8 and last["bytes_decompressed"] == 8 and last["lines"] == 4
    assert last["requests"] == 6 and last["elapsed_s"] > 0
    assert last["requests_per_s"] == pytest.approx(6 / last["elapsed_s"])
    s = LineReader(iter([data])).status()
    assert s["fraction"] is None and s["requests"] is None and s["requests_per_s"] is None
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(TraceCancelled) as ei:
        list(LineReader(data, cancel=cancel, chunk_bytes=2))
    e = ei.value
    assert e.code == "trace_cancelled" and e.field == "cancel" and e.bytes_read == 4 and len(calls) == 2
    assert isinstance(e, StreamError) and isinstance(e, InputError) and e.reason == "cancelled"
    assert e.params == {"line": e.line, "bytes_read": 4}
    # cancel also between gzip chunks
    calls.clear()
    blob = gzip.compress(data * 100)
    with pytest.raises(TraceCancelled):
        list(LineReader(blob, cancel=cancel, chunk_bytes=16))


def test_bad_sources_and_chunks():
    with pytest.raises(InputError) as ei:
        LineReader(os.path.join("/nonexistent", "x.jsonl"))
    assert ei.value.field == "path" and ei.value.problem == "file not found"
    with pytest.raises(InputError) as ei:
        LineReader(12345)
    assert ei.value.field == "text" and ei.value.value == "int"
    e = _err(iter([b"a\n", "text"]))
    assert e.code == "trace_chunk_not_bytes" and e.value == "str" and e.line == 1

    def broken():
        yield b"a\n"
        raise OSError("disk gone")

    e = _err(broken())
    assert e.code == "trace_read_error" and e.value == "disk gone" and e.field == "input"


def test_read_limits_validation():
    lim = ReadLimits()
    assert lim.as_dict() == rd.DEFAULT_LIMITS == {"max_bytes": 8 << 30, "max_lines": 10 ** 9,
                                                   "max_line_bytes": 8 << 20}
    assert ReadLimits(max_bytes=5.0).max_bytes == 5 and type(ReadLimits(max_bytes=5.0).max_bytes) is int
    assert ReadLimits(max_line_bytes=64).max_line_bytes == 64
    assert ReadLimits(max_lines=10 ** 12).max_lines == 10 ** 12
    for key, bad in (("max_bytes", 0), ("max_bytes", (1 << 44) + 1), ("max_lines", True), ("max_line_bytes", 63),
                     ("max_lines", 2.5), ("max_bytes", "7"), ("max_line_bytes", float(1 << 31))):
        with pytest.raises(InputError) as ei:
            ReadLimits(**{key: bad}, prefix="p")
        lo, hi = rd.LIMIT_RANGES[key]
        assert ei.value.field == f"p.{key}" and ei.value.value is bad
        assert ei.value.allowed == f"an integer in [{lo}, {hi}]"


def test_blob_source_reads_slices_and_refuses_bad_sizes():
    data = bytes(range(256)) * 3
    reads = []

    def read_at(off, n):
        reads.append((off, n))
        return data[off:off + n]

    b = BlobSource(read_at, len(data), name="f")
    assert b"".join(b.chunks(100)) == data
    assert reads == [(o, min(100, len(data) - o)) for o in range(0, len(data), 100)]

    class JsBytes:          # what Pyodide hands back for a Uint8Array
        def __init__(self, x):
            self.x = x

        def to_bytes(self):
            return self.x

    assert BlobSource(lambda o, n: JsBytes(data[o:o + n]), 10).read(2, 3) == data[2:5]
    assert BlobSource(lambda o, n: bytearray(data[o:o + n]), 10).read(0, 4) == data[:4]
    short = BlobSource(lambda o, n: data[o:o + n] if o < 200 else b"", 300, name="f")
    with pytest.raises(InputError) as ei:
        list(short.chunks(100))
    assert ei.value.code == "trace_file_unreadable" and ei.value.params == {"bytes_read": 200}
    assert ei.value.value == "f"
    for bad in (-1, True, 2.0, None):
        with pytest.raises(InputError) as ei:
            BlobSource(read_at, bad)
        assert ei.value.field == "text.size"
    assert BlobSource(read_at, 0).size == 0 and list(BlobSource(read_at, 0).chunks(10)) == []
    r = LineReader(BlobSource(lambda o, n: b"a\nb\n"[o:o + n], 4), chunk_bytes=3)
    assert list(r) == [(1, b"a"), (2, b"b")] and r.bytes_total == 4


def test_file_is_closed_after_reading(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_bytes(b"a\n")
    r = LineReader(p)
    fh = r._closer
    assert list(r) == [(1, b"a")]
    assert fh.closed and r._closer is None
    r.close()                                   # a second close is harmless


def test_multi_member_gzip_at_every_chunk_size():
    """Regression: when a member ended one byte before a chunk's end, the next member's first
    byte alone (0x1f) was taken for "data after the end of the gzip stream"."""
    one = gzip.compress(b"a\n")
    two = one + gzip.compress(b"b\nc\n") + b"\x00" * 10
    for cb in range(1, len(two) + 2):
        assert [x for _, x in LineReader(two, chunk_bytes=cb)] == [b"a", b"b", b"c"], cb
        for tail in (b"\x1f", b"x", b"\x00\x00z"):          # a stray byte, garbage, padding then garbage
            with pytest.raises(StreamError) as ei:
                list(LineReader(one + tail, chunk_bytes=cb))
            assert ei.value.code == "trace_trailing_data", (cb, tail)
        assert [x for _, x in LineReader(one + b"\x00" * 5, chunk_bytes=cb)] == [b"a"]


def test_error_messages_in_full():
    one = gzip.compress(b"a\n")
    e = _err(one + b"x")
    assert str(e) == ("input: data after the end of the gzip stream (after line 1, %d bytes read): got 'trailing data'; "
                      "allowed: a valid .jsonl.gz file" % len(one + b"x"))
    assert e.allowed == "a valid .jsonl.gz file" and e.problem.startswith("data after the end")
    e = _err(one[:-4])
    assert str(e) == ("input: the gzip stream ends early (file truncated?) (after line 1, %d bytes read): "
                      "got 'truncated gzip'; allowed: a complete .jsonl.gz file" % (len(one) - 4))
    bad = bytearray(gzip.compress(b"abc\n" * 50))
    bad[10:20] = b"\xff" * 10
    e = _err(bytes(bad))
    assert e.field == "input" and e.allowed == "a valid .jsonl.gz file" and e.reason == "corrupt gzip data"
    assert e.value.startswith("Error -3 while decompressing data")
    assert str(e).startswith("input: corrupt gzip data (after line 0, %d bytes read): got 'Error -3" % len(bad))
    e = _err(b"aaaa\n", limits=ReadLimits(max_bytes=4))
    assert str(e) == ("trace.max_bytes: the trace is larger than max_bytes (after line 0, 5 bytes read): got 5; "
                      "allowed: at most 4 bytes (decompressed)")
    with pytest.raises(InputError) as ei:
        BlobSource(lambda o, n: b"", -1)
    assert str(ei.value) == "text.size: not a size: got -1; allowed: a byte count >= 0"
    with pytest.raises(InputError) as ei:
        list(BlobSource(lambda o, n: b"", 5, name="f.jsonl").chunks(4))
    assert str(ei.value) == ("input: the file could not be read at byte 0: got 'f.jsonl'; "
                             "allowed: a file that can be read to its end")
    with pytest.raises(InputError) as ei:
        LineReader("/nonexistent/x.jsonl")
    assert str(ei.value) == ("path: file not found: got '/nonexistent/x.jsonl'; "
                             "allowed: an existing trace file (.jsonl or .jsonl.gz)")


def test_gzip_output_comes_in_steps_of_chunk_bytes():
    # 20,000 bytes inflate to pieces of at most chunk_bytes = 1000: the byte limit 5500 trips at
    # 6000 decompressed bytes (the sixth piece), never after inflating everything at once
    blob = gzip.compress(b"a\n" * 10_000)
    e = _err(blob, limits=ReadLimits(max_bytes=5500), chunk_bytes=1000)
    assert e.field == "trace.max_bytes" and e.value == 6000


def test_status_elapsed_from_the_reader_clock(monkeypatch):
    clock = iter([100.0, 100.25, 100.25])

    class FakeTime:
        @staticmethod
        def perf_counter():
            return next(clock)

    monkeypatch.setattr(rd, "time", FakeTime)
    r = LineReader(b"a\n", requests_seen=lambda: 5)
    s = r.status()
    assert s["elapsed_s"] == 0.25 and s["requests_per_s"] == 20.0


def test_path_read_in_chunks_and_typed_memoryview(tmp_path):
    import array
    data = b"ab\ncd\nef\n"                         # 9 bytes
    p = tmp_path / "t.jsonl"
    p.write_bytes(data)
    seen = []
    assert [x for _, x in LineReader(p, chunk_bytes=4, progress=seen.append)] == [b"ab", b"cd", b"ef"]
    assert [s["bytes_read"] for s in seen] == [4, 8, 9]
    even = data + b"\n"                            # 10 bytes = 5 unsigned shorts
    mv = memoryview(array.array("H", even))
    assert len(mv) == 5 and mv.nbytes == 10
    r = LineReader(mv, chunk_bytes=3)
    assert [x for _, x in r] == [b"ab", b"cd", b"ef"] and r.bytes_total == 10 and r.bytes_in == 10


def test_more_messages_values_and_states():
    r = LineReader(b"a\n")
    assert r.lines == 0 and r.status()["lines"] == 0 and r.blank_lines == 0 and r.bytes_in == 0
    e = _err(iter(["text"]))
    assert str(e) == ("text: a chunk is not bytes (after line 0, 0 bytes read): got 'str'; allowed: bytes chunks")

    def broken():
        yield b"a\n"
        raise OSError("x" * 200)

    e = _err(broken())
    assert e.value == "x" * 120 and e.allowed == "a readable file" and e.reason == "read error"
    with pytest.raises(TraceCancelled) as ei:
        list(LineReader(b"a\nb\n", cancel=lambda: True, chunk_bytes=2))
    assert str(ei.value) == "cancel: cancelled (after line 1, 2 bytes read): got True; allowed: not cancelled"
    assert ei.value.value is True
    e = _err(b"a\nb\nc\n", limits=ReadLimits(max_lines=2))
    assert str(e) == ("trace.max_lines: the trace has more lines than max_lines (after line 3, 6 bytes read): "
                      "got 3; allowed: at most 2 lines")


def test_gzip_magic_only_at_the_start():
    # a later chunk that happens to start with 0x1f 0x8b is text, not a gzip stream
    data = b"a\n" + b"\x1f\x8bxyz\n"
    assert list(LineReader(data, chunk_bytes=2)) == [(1, b"a"), (2, b"\x1f\x8bxyz")]


def test_long_blank_then_a_non_blank_first_byte():
    lim = ReadLimits(max_line_bytes=64)
    r = LineReader(iter([b"a\n", b" " * 70, b"x\n"]), lim)
    assert list(r) == [(1, b"a"), (2, None)] and r.blank_lines == 0


def test_defaults_bounds_and_the_non_source_message():
    with pytest.raises(InputError) as ei:
        ReadLimits(max_lines=0)
    assert ei.value.field == "trace.max_lines"                          # the default prefix
    assert ReadLimits(max_bytes=1.0).max_bytes == 1 and ReadLimits(max_bytes=float(1 << 44)).max_bytes == 1 << 44
    with pytest.raises(InputError) as ei:
        list(BlobSource(lambda o, n: b"", 3).chunks(2))
    assert ei.value.value == "file"                                     # the default name
    with pytest.raises(InputError) as ei:
        LineReader(3.5)
    assert str(ei.value) == ("text: not a trace source: got 'float'; "
                             "allowed: a path, bytes or an iterable of bytes chunks")
    one = gzip.compress(b"a\n")
    with pytest.raises(StreamError) as ei:
        list(LineReader(one + b"X"))
    assert ei.value.code == "trace_trailing_data"


def test_blank_runs_at_a_chunk_end_and_a_blank_last_line():
    # blank lines at the end of a chunk, then a line starting in the next chunk: only the
    # whitespace after the last newline joins it
    r = LineReader(iter([b"a\n\n \n  ", b"x\n"]))
    assert list(r) == [(1, b"a"), (4, b"  x")] and r.blank_lines == 2
    # a last line of whitespace without newline is no line
    r = LineReader(b"a\n  ")
    assert list(r) == [(1, b"a")] and r.lines == 1 and r.unterminated_line == 0
