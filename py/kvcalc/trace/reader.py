"""Bounded, streaming reading of a trace: chunks in, non-blank numbered lines out.

Input is read in chunks (a path, ``bytes``, or any iterable of ``bytes`` chunks,
as a browser ``File.stream()`` delivers them). gzip is detected from the first
two bytes and inflated with a bound on the output of each step, so a gzip bomb
costs at most ``max_bytes`` of decompressed data, never the memory to hold it.
Limits are checked before any line is parsed:

* ``max_bytes``: decompressed bytes read (all lines, blank ones included);
* ``max_lines``: lines read (blank ones included);
* ``max_line_bytes``: the length of one line; a longer line is not kept: its
  bytes are dropped up to the next newline and it is handed on as too long.

Blank lines (only ASCII whitespace) are counted and skipped without being kept:
runs of them are stepped over with C-level searches, so a file of a GiB of
newlines costs a scan, not a Python object per line.

A stream that breaks (truncated or corrupt gzip, a read error, a limit, a
cancel) raises :class:`StreamError`, which says where (line, bytes) and what.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError

__all__ = ["StreamError", "TraceCancelled", "ReadLimits", "LineReader", "DEFAULT_LIMITS", "LIMIT_RANGES",
           "BlobSource", "is_restartable"]

_GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 20
_NONBLANK = re.compile(rb"[^ \t\r\n\f\v]")

#: Defaults (CLI and API): 8 GiB decompressed, 10^9 lines, 8 MiB per line.
DEFAULT_LIMITS = {"max_bytes": 8 << 30, "max_lines": 10 ** 9, "max_line_bytes": 8 << 20}
#: Allowed range of each limit.
LIMIT_RANGES = {"max_bytes": (1, 1 << 44), "max_lines": (1, 10 ** 12), "max_line_bytes": (64, 1 << 30)}


class StreamError(InputError):
    """The input stream broke or hit a limit; ``line`` and ``bytes_read`` say where."""

    def __init__(self, field: str, value, allowed: str, problem: str, *, line: int, bytes_read: int,
                 code: str | None = None):
        super().__init__(field, value, allowed, f"{problem} (after line {line}, {bytes_read} bytes read)",
                         code=code, params={"line": line, "bytes_read": bytes_read})
        self.line = line
        self.bytes_read = bytes_read
        self.reason = problem


class TraceCancelled(StreamError):
    """The cancel hook asked to stop."""


class ReadLimits:
    """Validated reading limits (``None`` keeps the default)."""

    def __init__(self, max_bytes=None, max_lines=None, max_line_bytes=None, prefix: str = "trace"):
        vals = {"max_bytes": max_bytes, "max_lines": max_lines, "max_line_bytes": max_line_bytes}
        for key, v in vals.items():
            lo, hi = LIMIT_RANGES[key]
            if v is None:
                v = DEFAULT_LIMITS[key]
            elif isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                if isinstance(v, float) and v.is_integer() and lo <= v <= hi:
                    v = int(v)
                else:
                    raise InputError(f"{prefix}.{key}", v, f"an integer in [{lo}, {hi}]")
            setattr(self, key, int(v))

    def as_dict(self) -> dict:
        return {"max_bytes": self.max_bytes, "max_lines": self.max_lines, "max_line_bytes": self.max_line_bytes}


class BlobSource:
    """A trace read by slices: ``read_at(offset, n) -> bytes`` and its ``size`` in bytes.

    The page's worker wraps a browser ``File`` this way (``FileReaderSync`` over
    ``File.slice``): the file is never in memory whole, one chunk at a time is,
    and it can be read again from the start (the fast path and the sampled
    loader read a head first), unlike a one-shot stream of chunks.
    ``name`` is shown in messages only.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], size: int, name: str = "file"):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError("text.size", size, "a byte count >= 0", "not a size")
        self.read_at = read_at
        self.size = size
        self.name = name

    def read(self, offset: int, n: int) -> bytes:
        b = self.read_at(offset, n)
        if hasattr(b, "to_bytes"):           # a JsProxy of a Uint8Array (Pyodide)
            b = b.to_bytes()
        return bytes(b)

    def chunks(self, chunk_bytes: int) -> Iterator[bytes]:
        for off in range(0, self.size, chunk_bytes):
            b = self.read(off, min(chunk_bytes, self.size - off))
            if not b:
                raise InputError("input", self.name, "a file that can be read to its end",
                                 f"the file could not be read at byte {off}", code="trace_file_unreadable",
                                 params={"bytes_read": off})
            yield b


def is_restartable(source) -> bool:
    """Can the source be read again from its start (path, bytes, BlobSource)?"""
    return isinstance(source, (bytes, bytearray, memoryview, os.PathLike, BlobSource))


def _raw_chunks(source, chunk_bytes: int) -> tuple[Iterator[bytes], int | None, object]:
    """(chunk iterator, total size if known, closer) of a path, bytes or iterable of chunks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = memoryview(source).cast("B") if not isinstance(source, bytes) else source
        n = len(data)

        def gen():
            for i in range(0, n, chunk_bytes):
                yield bytes(data[i:i + chunk_bytes])
        return gen(), n, None
    if isinstance(source, BlobSource):
        return source.chunks(chunk_bytes), source.size, None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError("path", str(source), "an existing trace file (.jsonl or .jsonl.gz)", "file not found")
        fh = open(path, "rb")
        size = os.fstat(fh.fileno()).st_size

        def gen():
            while True:
                b = fh.read(chunk_bytes)
                if not b:
                    return
                yield b
        return gen(), size, fh
    try:
        it = iter(source)
    except TypeError:
        raise InputError("text", type(source).__name__, "a path, bytes or an iterable of bytes chunks",
                         "not a trace source") from None
    return it, None, None


class LineReader:
    """Iterate ``(line_number, line_bytes)`` over the non-blank lines of a source.

    ``line_bytes`` is ``None`` for a line longer than ``max_line_bytes`` (dropped).
    ``progress(status_dict)`` is called after each chunk; ``cancel()`` is checked
    between chunks (a true result raises :class:`TraceCancelled`).
    Attributes after (or during) iteration: ``bytes_in`` (raw, possibly
    compressed), ``bytes_out`` (decompressed), ``lines``, ``blank_lines``,
    ``gzip``, ``unterminated_line`` (number of a last line without newline, or 0).
    """

    def __init__(self, source, limits: ReadLimits | None = None, *, progress: Callable | None = None,
                 cancel: Callable | None = None, chunk_bytes: int = CHUNK_BYTES, requests_seen: Callable | None = None):
        self.limits = limits or ReadLimits()
        self._chunks, self.bytes_total, self._closer = _raw_chunks(source, chunk_bytes)
        self.chunk_bytes = chunk_bytes
        self.progress = progress
        self.cancel = cancel
        self.requests_seen = requests_seen
        self.bytes_in = 0
        self.bytes_out = 0
        self.lines = 0
        self.blank_lines = 0
        self.gzip = False
        self.unterminated_line = 0
        self._t0 = time.perf_counter()

    # -- errors
    def _error(self, field, value, allowed, problem, cls=StreamError, code=None):
        return cls(field, value, allowed, problem, line=self.lines, bytes_read=self.bytes_in, code=code)

    def close(self):
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def status(self) -> dict:
        el = max(time.perf_counter() - self._t0, 1e-9)
        req = self.requests_seen() if self.requests_seen else None
        return {"bytes_read": self.bytes_in, "bytes_total": self.bytes_total, "bytes_decompressed": self.bytes_out,
                "lines": self.lines, "requests": req, "elapsed_s": el,
                "requests_per_s": (req / el) if req is not None else None,
                "fraction": (self.bytes_in / self.bytes_total) if self.bytes_total else None}

    # -- decompressed chunks
    def _plain(self) -> Iterator[bytes]:
        try:
            first = True
            for raw in self._chunks:
                if isinstance(raw, (bytearray, memoryview)):
                    raw = bytes(raw)
                if not isinstance(raw, bytes):
                    raise self._error("text", type(raw).__name__, "bytes chunks", "a chunk is not bytes",
                                      code="trace_chunk_not_bytes")
                if not raw:
                    continue
                self.bytes_in += len(raw)
                if first:
                    first = False
                    if raw[:2] == _GZIP_MAGIC or (len(raw) == 1 and raw == _GZIP_MAGIC[:1]):
                        yield from self._gunzip(raw)
                        return
                yield raw
                self._tick()
        except OSError as exc:
            raise self._error("input", str(exc)[:120], "a readable file", "read error",
                              code="trace_read_error") from None

    def _tick(self):
        if self.cancel is not None and self.cancel():
            raise self._error("cancel", True, "not cancelled", "cancelled", cls=TraceCancelled,
                              code="trace_cancelled")
        if self.progress is not None:
            self.progress(self.status())

    def _gunzip(self, first: bytes) -> Iterator[bytes]:
        self.gzip = True
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        step = self.chunk_bytes

        def trailing():
            return self._error("input", "trailing data", "a valid .jsonl.gz file",
                               "data after the end of the gzip stream", code="trace_trailing_data")

        def inflate(data: bytes):
            nonlocal d
            while data:
                try:
                    out = d.decompress(data, step)
                except zlib.error as exc:
                    raise self._error("input", str(exc)[:80], "a valid .jsonl.gz file",
                                      "corrupt gzip data", code="trace_corrupt_gzip") from None
                if out:
                    yield out
                if d.eof:
                    rest = d.unused_data
                    if not rest:
                        return
                    if rest == _GZIP_MAGIC[:1]:
                        return        # the next member's first byte: later input joins it in unused_data
                    if rest[:2] != _GZIP_MAGIC and rest.strip(b"\x00"):
                        raise trailing()
                    if rest[:2] != _GZIP_MAGIC:
                        return
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
                    continue
                data = d.unconsumed_tail
                if not data and not out:
                    return

        yield from inflate(first)
        self._tick()
        for raw in self._chunks:
            raw = bytes(raw)
            self.bytes_in += len(raw)
            yield from inflate(raw)
            self._tick()
        # Flush what is left; a stream that did not reach its end is truncated.
        try:
            tail = d.flush()
        except zlib.error:  # pragma: no cover - defensive
            tail = b""
        if tail:
            yield tail
        if not d.eof:
            raise self._error("input", "truncated gzip", "a complete .jsonl.gz file",
                              "the gzip stream ends early (file truncated?)", code="trace_truncated_gzip")
        if d.unused_data.strip(b"\x00"):   # a stray byte kept for a next member that never came
            raise trailing()

    # -- lines
    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        lim = self.limits
        carry = b""               # the exact bytes of the line in progress (at most max_line_bytes)
        dropping = False          # inside a line longer than max_line_bytes
        dropping_blank = False    # ... and every byte of it so far is whitespace
        lineno = 0
        try:
            for chunk in self._plain():
                self.bytes_out += len(chunk)
                if self.bytes_out > lim.max_bytes:
                    raise self._error("trace.max_bytes", self.bytes_out, f"at most {lim.max_bytes} bytes "
                                      "(decompressed)", "the trace is larger than max_bytes",
                                      code="trace_max_bytes")
                start = 0
                n = len(chunk)
                if dropping:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        dropping_blank = dropping_blank and not _NONBLANK.search(chunk)
                        continue
                    lineno += 1
                    self._check_lines(lineno)
                    dropping = False
                    if dropping_blank and not _NONBLANK.search(chunk, 0, nl):
                        self.blank_lines += 1     # a long blank line is still blank
                    else:
                        yield lineno, None
                    start = nl + 1
                elif carry:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        carry += chunk
                        if len(carry) > lim.max_line_bytes:
                            dropping_blank = not _NONBLANK.search(carry)
                            carry, dropping = b"", True
                        continue
                    line = carry + chunk[:nl]
                    carry = b""
                    lineno += 1
                    self._check_lines(lineno)
                    start = nl + 1
                    if not _NONBLANK.search(line):
                        self.blank_lines += 1
                    elif len(line) > lim.max_line_bytes:
                        yield lineno, None
                    else:
                        yield lineno, line
                # Whole lines of this chunk, stepping over blank runs.
                while start < n:
                    m = _NONBLANK.search(chunk, start)
                    if m is None:
                        k = chunk.count(b"\n", start)
                        lineno += k
                        self.blank_lines += k
                        self._check_lines(lineno)
                        tail = chunk.rfind(b"\n", start) + 1 if k else start
                        carry = chunk[tail:]      # a blank line in progress, kept exact while short
                        if len(carry) > lim.max_line_bytes:
                            carry, dropping, dropping_blank = b"", True, True
                        break
                    ls = chunk.rfind(b"\n", start, m.start()) + 1
                    if ls == 0:
                        ls = start
                    elif ls > start:
                        k = chunk.count(b"\n", start, ls)
                        lineno += k
                        self.blank_lines += k
                    nl = chunk.find(b"\n", m.start())
                    if nl < 0:
                        carry = chunk[ls:]
                        if len(carry) > lim.max_line_bytes:
                            carry, dropping, dropping_blank = b"", True, False
                        break
                    lineno += 1
                    self._check_lines(lineno)
                    if nl - ls > lim.max_line_bytes:
                        yield lineno, None
                    else:
                        yield lineno, chunk[ls:nl]
                    start = nl + 1
                self.lines = lineno
            if dropping and not dropping_blank:
                lineno += 1
                self.unterminated_line = lineno
                yield lineno, None
            elif carry and _NONBLANK.search(carry):
                lineno += 1
                self._check_lines(lineno)
                self.unterminated_line = lineno
                yield lineno, carry
            self.lines = lineno
        finally:
            self.close()

    def _check_lines(self, lineno: int):
        self.lines = lineno
        if lineno > self.limits.max_lines:
            raise self._error("trace.max_lines", lineno, f"at most {self.limits.max_lines} lines",
                              "the trace has more lines than max_lines", code="trace_max_lines")
