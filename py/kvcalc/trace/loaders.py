"""Request-trace loaders: Mooncake, Alibaba Bailian (Qwen) and a generic JSONL.

Every loader streams the input line by line into compact arrays (no Python
object is kept per line once the line is parsed) and returns a :class:`Trace`.

Formats (one JSON object per line, blank lines ignored):

* ``mooncake`` (kvcache-ai/Mooncake FAST25 traces): ``timestamp`` [ms],
  ``input_length``, ``output_length`` [tokens], ``hash_ids`` (one id per
  512-token block of the prompt, the last block usually partial). Ids are
  prefix-chained: equal ids at a position mean equal prefixes.
* ``bailian`` (Alibaba Bailian / Qwen traces): ``chat_id``, ``parent_chat_id``
  (-1 when none), ``timestamp`` [s], ``input_length``, ``output_length``,
  ``hash_ids`` over 16-token blocks. Ids may be per-block content ids rather
  than prefix-chained, so they are always re-chained (see below). The parent
  link groups requests into sessions; a request's ``hash_ids`` must cover its
  whole prompt (a follow-up turn repeats its parent's ids at the head).
* ``generic``: ``timestamp_s``, ``input_tokens``, ``output_tokens``,
  ``block_hashes`` (ints or strings), optional ``session_id``; the block size
  comes from the caller or from a first header line
  ``{"kvcalc_trace": 1, "block_size_tokens": N}`` (optionally
  ``"prefix_chained": false`` to ask for re-chaining).

Re-chaining rule: ``chained_0 = intern((-1, raw_0))`` and
``chained_i = intern((chained_{i-1}, raw_i))``, so equal chained ids at
position ``i`` mean equal raw prefixes ``raw_0..raw_i``. ``intern`` maps each
distinct key to the next dense integer. When the raw ids already are
prefix-chained this changes nothing but the numbering.

Prefix-chain check (``chain="verify"``): a raw id must always appear at the
same position with the same predecessor; a line breaking that is a bad line.

Block ids in the result are dense integers ``0..n_unique-1`` numbered in order
of first appearance. Block count consistency: ``len(hash_ids) ==
ceil(input_length / block_size)``.
"""

from __future__ import annotations

import json
import math
import os
import re
from array import array
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .messages import twin
from .reader import CHUNK_BYTES, LineReader, ReadLimits, StreamError, is_restartable

__all__ = ["Trace", "load_trace", "loads_trace", "FORMATS", "FORMAT_BLOCK_SIZE"]

FORMATS = ("auto", "mooncake", "bailian", "generic")
#: Block size each published format uses [tokens].
FORMAT_BLOCK_SIZE = {"mooncake": 512, "bailian": 16}
CHAIN_MODES = ("auto", "verify", "rechain")
_GZIP_MAGIC = b"\x1f\x8b"
_PEEK_LINES = 200
_FIELDS = {
    "mooncake": ("timestamp", "input_length", "output_length", "hash_ids"),
    "bailian": ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length", "hash_ids"),
    "generic": ("timestamp_s", "input_tokens", "output_tokens", "block_hashes"),
}


@dataclass(frozen=True, eq=False)
class Trace:
    """A request trace in compact arrays (one row per request, arrival order).

    ``block_ids[block_offsets[r]:block_offsets[r+1]]`` are request ``r``'s
    prompt blocks head first, as dense prefix-chained ids. ``session_ids`` is
    -1 where the format carries no session; ``parent_index`` is the row of the
    parent request (Bailian) or -1.
    """

    timestamps_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    block_offsets: np.ndarray
    block_ids: np.ndarray
    block_size_tokens: int
    format: str
    session_ids: np.ndarray
    parent_index: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_requests(self) -> int:
        return int(self.timestamps_s.shape[0])

    @property
    def n_blocks_total(self) -> int:
        return int(self.block_ids.shape[0])

    @property
    def n_blocks_unique(self) -> int:
        return int(self.block_ids.max()) + 1 if self.block_ids.size else 0

    def blocks_of(self, r: int) -> np.ndarray:
        return self.block_ids[self.block_offsets[r]:self.block_offsets[r + 1]]


class _BadLine(Exception):
    """A bad line: ``reason`` (one of messages.BAD_LINE_REASONS), the English ``detail`` and its twin
    ``detail_twin`` = {code, params, message} (code in messages.TRACE_CODES, for the page)."""

    def __init__(self, reason: str, detail: str, code: str, **params):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.detail_twin = twin(code, detail, **params)


# ----------------------------------------------------------------------------- field checks

#: Largest prompt or output length accepted [tokens]; larger values are bad lines.
MAX_LENGTH_TOKENS = 1 << 40
#: Largest |timestamp| accepted (in the format's unit).
MAX_ABS_TIMESTAMP = 1e15
#: Integer block / chat ids must lie in [-2^63, 2^64) (64-bit hashes, signed or not).
_ID_LO, _ID_HI = -(1 << 63), 1 << 64
#: Deepest JSON nesting accepted in a line (a trace line needs 2).
MAX_LINE_DEPTH = 32


def _int_field(obj: dict, name: str) -> int:
    if name not in obj:
        raise _BadLine("missing_field", f"missing field {name!r}", "trace_line_missing_field", field=name)
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadLine("bad_value", f"field {name!r} is not an integer: {_short(v)}",
                       "trace_line_not_integer", field=name, value=_short(v))
    if isinstance(v, int):
        if abs(v) > MAX_LENGTH_TOKENS:
            raise _BadLine("bad_value", f"field {name!r} = {_short(v)} is beyond {MAX_LENGTH_TOKENS} tokens",
                           "trace_line_beyond_tokens", field=name, value=_short(v), max=MAX_LENGTH_TOKENS)
        return v
    if not math.isfinite(v) or v != int(v):
        raise _BadLine("bad_value", f"field {name!r} is not an integer: {v!r}",
                       "trace_line_not_integer", field=name, value=repr(v))
    if abs(v) > MAX_LENGTH_TOKENS:
        raise _BadLine("bad_value", f"field {name!r} = {v!r} is beyond {MAX_LENGTH_TOKENS} tokens",
                       "trace_line_beyond_tokens", field=name, value=repr(v), max=MAX_LENGTH_TOKENS)
    return int(v)


def _short(v) -> str:
    r = repr(v) if not isinstance(v, int) or v.bit_length() < 200 else f"an integer of {len(str(v))} digits"
    return r if len(r) <= 80 else r[:77] + "..."


def _length_field(obj: dict, name: str) -> int:
    v = _int_field(obj, name)
    if v < 0:
        raise _BadLine("negative_length", f"field {name!r} is negative: {v}",
                       "trace_line_negative", field=name, value=str(v))
    return v


def _time_field(obj: dict, name: str) -> float:
    if name not in obj:
        raise _BadLine("missing_field", f"missing field {name!r}", "trace_line_missing_field", field=name)
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadLine("bad_value", f"field {name!r} is not a finite number: {_short(v)}",
                       "trace_line_not_a_number", field=name, value=_short(v))
    if isinstance(v, int) and abs(v) > MAX_ABS_TIMESTAMP:
        raise _BadLine("bad_value", f"field {name!r} = {_short(v)} is beyond {MAX_ABS_TIMESTAMP:g}",
                       "trace_line_beyond_time", field=name, value=_short(v), max=MAX_ABS_TIMESTAMP)
    v = float(v)
    if not math.isfinite(v) or abs(v) > MAX_ABS_TIMESTAMP:
        raise _BadLine("bad_value", f"field {name!r} is not a finite number within {MAX_ABS_TIMESTAMP:g}: {v!r}",
                       "trace_line_not_finite_time", field=name, value=repr(v), max=MAX_ABS_TIMESTAMP)
    return v


def _ids_field(obj: dict, name: str) -> list:
    if name not in obj:
        raise _BadLine("missing_field", f"missing field {name!r}", "trace_line_missing_field", field=name)
    v = obj[name]
    if not isinstance(v, list):
        raise _BadLine("bad_value", f"field {name!r} is not a list: {_short(v)}",
                       "trace_line_not_a_list", field=name, value=_short(v))
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            raise _BadLine("bad_value", f"field {name!r} holds a non-integer, non-string id: {_short(x)}",
                           "trace_line_bad_id", field=name, value=_short(x))
        if isinstance(x, int) and not _ID_LO <= x < _ID_HI:
            raise _BadLine("bad_value", f"field {name!r} holds an id outside [-2^63, 2^64): {_short(x)}",
                           "trace_line_id_out_of_range", field=name, value=_short(x))
    return v


def _decode(line: bytes | None) -> str | None:
    if line is None:
        raise _BadLine("line_too_long", "line longer than max_line_bytes (not read)", "trace_line_too_long")
    if b"\x00" in line:
        raise _BadLine("not_text", "binary data (NUL byte); expected UTF-8 JSON lines", "trace_line_binary")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadLine("not_text", "not UTF-8 text; expected JSON lines (.jsonl or .jsonl.gz)",
                       "trace_line_not_utf8") from None
    text = text.strip()
    return text or None


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _check_depth(text: str) -> None:
    """Refuse lines nested deeper than MAX_LINE_DEPTH before json.loads sees them."""
    if text.count("[") + text.count("{") <= MAX_LINE_DEPTH:
        return
    bare = _STRINGS.sub("", text).encode("utf-8", "replace")
    a = np.frombuffer(bare, dtype=np.uint8)
    step = ((a == 91) | (a == 123)).astype(np.int32) - ((a == 93) | (a == 125)).astype(np.int32)
    depth = int(np.cumsum(step).max()) if step.size else 0
    if depth > MAX_LINE_DEPTH:
        raise _BadLine("too_deep", f"JSON nested {depth} levels deep; at most {MAX_LINE_DEPTH}",
                       "trace_line_too_deep", depth=depth, max=MAX_LINE_DEPTH)


def _parse_obj(text: str) -> dict:
    _check_depth(text)
    try:
        obj = json.loads(text)
    except RecursionError:  # pragma: no cover - _check_depth comes first
        raise _BadLine("too_deep", "JSON nested too deeply", "trace_line_too_deep_plain") from None
    except ValueError as exc:
        where = f" at column {exc.colno}" if hasattr(exc, "colno") else ""
        msg = getattr(exc, "msg", str(exc))[:100]
        if where:
            raise _BadLine("malformed_json", f"malformed JSON ({msg}{where})", "trace_line_malformed_json_at",
                           error=msg, column=exc.colno) from None
        raise _BadLine("malformed_json", f"malformed JSON ({msg})", "trace_line_malformed_json", error=msg) from None
    if not isinstance(obj, dict):
        raise _BadLine("not_an_object", "a line must be one JSON object", "trace_line_not_an_object")
    return obj


def _truncated(exc: _BadLine) -> _BadLine:
    """The unterminated last line's malformed JSON, as a truncated line."""
    p = exc.detail_twin["params"]
    return _BadLine("truncated_line", "the last line has no newline and is not valid JSON "
                    "(file cut in half?): " + exc.detail,
                    "trace_line_truncated_at" if "column" in p else "trace_line_truncated", **p)


# ----------------------------------------------------------------------------- detection

def _detect_format(objs: list[dict]) -> str | None:
    for obj in objs:
        if "block_hashes" in obj or "input_tokens" in obj or "timestamp_s" in obj:
            return "generic"
        if "chat_id" in obj or "parent_chat_id" in obj:
            return "bailian"
        if "hash_ids" in obj or "input_length" in obj:
            return "mooncake"
    return None


def _sample_sizes(objs: list[dict], fmt: str) -> list[tuple[int, int]]:
    """(input length, number of ids) of the sample lines that have both and are non-empty."""
    f_in, f_ids = _FIELDS[fmt][-3], _FIELDS[fmt][-1]
    out = []
    for obj in objs:
        try:
            x = _length_field(obj, f_in)
            n = len(_ids_field(obj, f_ids))
        except _BadLine:
            continue
        if n and x:
            out.append((x, n))
    return out


def _consistent(b: int, pairs) -> int:
    return sum(1 for x, n in pairs if -(-x // b) == n)


_COMMON_BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 1, 2, 4, 8)


def _infer_block_size(pairs) -> tuple[int | None, float]:
    """The block size consistent with the most sample lines (common sizes win ties)."""
    if not pairs:
        return None, 0.0
    candidates = list(_COMMON_BLOCK_SIZES) + sorted({-(-x // n) for x, n in pairs})
    best, score = None, 0
    for b in candidates:
        c = _consistent(b, pairs)
        if c > score:
            best, score = b, c
    return best, score / len(pairs)


# ----------------------------------------------------------------------------- main parser

def load_trace(source, *, format: str = "auto", block_size_tokens: int | None = None,
               skip_bad_lines: bool = False, max_requests: int | None = None,
               max_bytes: int | None = None, max_lines: int | None = None,
               max_line_bytes: int | None = None, chain: str = "auto", keep_partial: bool = False,
               progress=None, cancel=None, chunk_bytes: int = CHUNK_BYTES, fast_path: bool = True) -> Trace:
    """Load a trace: a path (``.jsonl`` or ``.jsonl.gz``), raw ``bytes`` or an iterable of byte chunks.

    The input is read in chunks of ``chunk_bytes`` (see :mod:`.reader`): memory
    holds the compact arrays of the requests read, not the file.
    ``format``: auto|mooncake|bailian|generic. ``block_size_tokens``: overrides
    the format default / header / inference. ``skip_bad_lines``: skip and count
    bad lines by reason instead of raising :class:`InputError`.
    ``max_requests``: stop after that many requests (``info["truncated"]``).
    ``max_bytes`` / ``max_lines`` / ``max_line_bytes``: reading limits checked
    before parsing (decompressed bytes; lines, blank ones included; one line).
    ``chain``: auto (verify Mooncake/generic, re-chain Bailian) | verify | rechain.
    ``keep_partial``: when the stream breaks (corrupt or truncated gzip, a limit,
    a bad line without ``skip_bad_lines``), keep the requests read so far and
    say where and why in ``info["stopped"]`` instead of raising.
    ``progress(status)``: called after each chunk with bytes read, requests and
    requests per second; ``cancel()``: checked between chunks, true stops
    (:class:`~.reader.TraceCancelled`, an InputError; kept with ``keep_partial``).
    ``fast_path``: parse canonical Mooncake files (path or bytes) a chunk at a
    time (:mod:`.fastload`; same result, several times faster), falling back to
    the general loader at the first line that is not canonical.
    """
    if isinstance(source, str) and not isinstance(source, os.PathLike):
        raise InputError("path", source[:80], "load_trace(Path(...)) for a path, loads_trace(text) for content",
                         "a str is ambiguous")
    _check_load_options(format, chain, block_size_tokens, max_requests, skip_bad_lines, keep_partial)
    limits = ReadLimits(max_bytes, max_lines, max_line_bytes)
    counter = [0]

    def new_reader():
        return LineReader(source, limits, progress=progress, cancel=cancel, chunk_bytes=chunk_bytes,
                          requests_seen=lambda: counter[0])

    restartable = is_restartable(source)
    for fast in ((True, False) if restartable and fast_path else (False,)):
        reader = new_reader()
        try:
            return _parse(reader, format=format, block_size_tokens=block_size_tokens,
                          skip_bad_lines=skip_bad_lines, max_requests=max_requests, chain=chain,
                          keep_partial=keep_partial, counter=counter, fast=new_reader if fast else None)
        except _Fallback:
            counter[0] = 0
        finally:
            reader.close()
    raise AssertionError("unreachable")  # pragma: no cover


class _Fallback(Exception):
    """The fast path declined: parse again with the general loader."""


def loads_trace(data: bytes | str, **kwargs) -> Trace:
    """Load a trace from its content (``bytes``, possibly gzip, or ``str``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError("text", type(data).__name__, "trace content as str or bytes", "not text")
    return load_trace(bytes(data), **kwargs)


def _check_load_options(format, chain, block_size_tokens, max_requests, skip_bad_lines, keep_partial):
    if not isinstance(format, str) or format not in FORMATS:
        raise InputError("format", format, "one of " + ", ".join(FORMATS), "unknown format")
    if not isinstance(chain, str) or chain not in CHAIN_MODES:
        raise InputError("chain", chain, "one of " + ", ".join(CHAIN_MODES), "unknown value")
    if block_size_tokens is not None:
        if isinstance(block_size_tokens, bool) or not isinstance(block_size_tokens, int) or not 1 <= block_size_tokens <= 1 << 20:
            raise InputError("block_size_tokens", block_size_tokens, "an integer in [1, 1048576]")
    if max_requests is not None and (isinstance(max_requests, bool) or not isinstance(max_requests, int)
                                     or not 1 <= max_requests <= 1 << 50):
        raise InputError("max_requests", max_requests, "an integer in [1, 2^50]")
    for name, v in (("skip_bad_lines", skip_bad_lines), ("keep_partial", keep_partial)):
        if not isinstance(v, bool):
            raise InputError(name, v, "true or false", "not a boolean")


#: The peek that detects format and block size keeps at most this many bytes of lines.
_PEEK_MAX_BYTES = 16 << 20
#: With skip_bad_lines, the peek steps over at most this many bad lines looking for requests.
_PEEK_MAX_BAD_LINES = 100_000


def _parse(reader: LineReader, *, format: str, block_size_tokens, skip_bad_lines: bool,
           max_requests, chain: str, keep_partial: bool, counter: list, fast=None) -> Trace:
    bad_counts: dict[str, int] = {}
    first_bad: dict[str, str] = {}
    first_bad_detail: dict[str, dict] = {}   # reason -> {line, detail: twin}, for the page
    stopped: dict = {}

    class _Stop(Exception):
        pass

    def bad(lineno: int, exc: _BadLine):
        if lineno == reader.unterminated_line and exc.reason == "malformed_json":
            exc = _truncated(exc)
        if not skip_bad_lines:
            err = InputError(f"line {lineno}", exc.detail, "see the trace format documentation",
                             f"bad trace line {lineno}: {exc.reason.replace('_', ' ')}",
                             code=f"trace_bad_{exc.reason}", params={"line": lineno}, value_detail=exc.detail_twin)
            if keep_partial and counter[0] > 0:
                stopped.update({"line": lineno, "bytes_read": reader.bytes_in, "reason": exc.reason,
                                "message": str(err), "detail": err.to_dict()})
                raise _Stop
            raise err
        bad_counts[exc.reason] = bad_counts.get(exc.reason, 0) + 1
        first_bad.setdefault(exc.reason, f"line {lineno}: {exc.detail}")
        first_bad_detail.setdefault(exc.reason, {"line": lineno, "detail": exc.detail_twin})

    it = iter(reader)
    # Peek a sample of parsed lines to detect format, header and block size.
    peeked: list[tuple[int, bytes | None]] = []
    peek_bad: dict[str, int] = {}
    peek_first_bad: dict[str, str] = {}
    peek_first_bad_detail: dict[str, dict] = {}
    sample: list[dict] = []
    header: dict | None = None
    peek_bytes = 0
    n_peek_bad = 0
    exhausted = False
    try:
        while True:
            try:
                lineno, raw = next(it)
            except StopIteration:
                exhausted = True
                break
            try:
                text = _decode(raw)
                if text is None:  # pragma: no cover - the reader drops blank lines
                    continue
                obj = _parse_obj(text)
            except _BadLine as exc:
                if lineno == reader.unterminated_line and exc.reason == "malformed_json":
                    exc = _truncated(exc)
                peek_bad[exc.reason] = peek_bad.get(exc.reason, 0) + 1
                peek_first_bad.setdefault(exc.reason, f"line {lineno}: {exc.detail}")
                peek_first_bad_detail.setdefault(exc.reason, {"line": lineno, "detail": exc.detail_twin})
                n_peek_bad += 1
                if not skip_bad_lines:
                    peeked.append((lineno, raw))
                    peek_bytes += len(raw) if raw is not None else 0
                elif n_peek_bad >= _PEEK_MAX_BAD_LINES:
                    break
                if len(peeked) >= _PEEK_LINES or peek_bytes > _PEEK_MAX_BYTES:
                    break
                continue
            peeked.append((lineno, raw))
            peek_bytes += len(raw)
            if header is None and not sample and "kvcalc_trace" in obj:
                header = obj
            else:
                sample.append(obj)
            if len(sample) >= _PEEK_LINES or len(peeked) >= _PEEK_LINES or peek_bytes > _PEEK_MAX_BYTES:
                break
    except StreamError as exc:
        if not (keep_partial and sample):
            raise
        stopped.update({"line": exc.line, "bytes_read": exc.bytes_read, "reason": exc.reason, "message": str(exc),
                        "detail": exc.to_dict()})
        exhausted = True

    fmt = format
    if fmt == "auto":
        fmt = "generic" if header is not None else (_detect_format(sample) or "")
        if not fmt:
            if not peeked and not n_peek_bad:
                raise InputError("input", f"{reader.lines} lines", "one JSON object per line",
                                 "empty trace: no requests" + (" (only blank lines)" if reader.lines else ""),
                                 code="trace_empty", params={"lines": reader.lines})
            if not sample:
                n_seen = len(peeked) if not skip_bad_lines else n_peek_bad
                where = f"the first {n_seen} non-blank lines" if not exhausted else \
                    f"the {n_seen} non-blank lines"
                if not skip_bad_lines and peeked:
                    first_line = peeked[0][0]
                    reason, detail = next(iter(peek_first_bad.items()))
                    raise InputError(f"line {first_line}", detail.split(": ", 1)[-1], "one JSON object per line",
                                     f"bad trace line {first_line}: {reason.replace('_', ' ')}",
                                     code=f"trace_bad_{reason}", params={"line": first_line},
                                     value_detail=peek_first_bad_detail[reason]["detail"])
                counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(peek_bad.items()))
                raise InputError("input", f"{sum(peek_bad.values())} bad lines skipped",
                                 "lines that are JSON objects with trace fields",
                                 f"cannot detect the trace format: none of {where} is a JSON object "
                                 f"(skipped: {counts}; first: {_summary(peek_first_bad)})",
                                 code="trace_no_json_lines", params={"lines": n_seen})
            keys = sorted({k for o in sample for k in o})[:12]
            raise InputError("format", "auto", "mooncake, bailian or generic fields",
                             f"cannot detect the trace format from the field names (seen: {', '.join(keys)})",
                             code="trace_format_undetected", params={"fields": ", ".join(keys)})
    detection = {"format": fmt, "format_source": "user" if format != "auto" else "detected"}

    # Block size.
    pairs = _sample_sizes(sample, fmt)
    header_bs = None
    if header is not None:
        hb = header.get("block_size_tokens")
        if isinstance(hb, int) and not isinstance(hb, bool) and 1 <= hb <= 1 << 20:
            header_bs = hb
        elif hb is not None:
            raise InputError(f"line {peeked[0][0]}", _short(hb), "an integer in [1, 1048576]",
                             "bad header block_size_tokens", code="trace_bad_header_block_size",
                             params={"line": peeked[0][0]})
    default = FORMAT_BLOCK_SIZE.get(fmt)
    if block_size_tokens is not None:
        bs, bs_source = block_size_tokens, "user"
    elif header_bs is not None:
        bs, bs_source = header_bs, "header"
    elif default is not None and (not pairs or 2 * _consistent(default, pairs) >= len(pairs)):
        bs, bs_source = default, "format default"
    else:
        bs, share = _infer_block_size(pairs)
        if bs is None or share < 0.5:
            raise InputError("block_size_tokens", None, "a block size in tokens (--block-size N)",
                             "cannot infer the block size from ceil(input_length / len(hash_ids)); give it",
                             code="trace_block_size_unknown")
        bs_source = "inferred from ceil(input_length / len(hash_ids))"
    detection.update({"block_size_tokens": bs, "block_size_source": bs_source,
                      "block_size_consistent_share": (_consistent(bs, pairs) / len(pairs)) if pairs else None,
                      "block_size_sample_lines": len(pairs)})

    if chain == "auto":
        rechain = fmt == "bailian" or (header is not None and header.get("prefix_chained") is False)
    else:
        rechain = chain == "rechain"

    if fast is not None:
        if fmt != "mooncake" or rechain:
            raise _Fallback
        trace = _fast_build(fast(), bs, max_requests, detection, counter)
        if trace is None:
            raise _Fallback
        return trace

    if skip_bad_lines:
        for reason, k in peek_bad.items():
            bad_counts[reason] = bad_counts.get(reason, 0) + k
        first_bad.update({r: d for r, d in peek_first_bad.items() if r not in first_bad})
        first_bad_detail.update({r: d for r, d in peek_first_bad_detail.items() if r not in first_bad_detail})

    def all_lines():
        yield from peeked
        peeked.clear()
        if exhausted:
            return
        try:
            yield from it
        except StreamError as exc:
            if not (keep_partial and counter[0] > 0):
                raise
            stopped.update({"line": exc.line, "bytes_read": exc.bytes_read, "reason": exc.reason,
                            "message": str(exc), "detail": exc.to_dict()})

    try:
        trace = _build(all_lines(), fmt, bs, rechain, header is not None, bad, bad_counts, first_bad,
                       max_requests, detection, reader, counter, _Stop)
        trace.info["bad_lines_first_detail"] = dict(sorted(first_bad_detail.items()))
    finally:
        pass
    trace.info["stopped"] = stopped or None
    trace.info["loader"] = "general (one JSON line at a time)"
    trace.info["read"] = {"bytes_read": reader.bytes_in, "bytes_decompressed": reader.bytes_out,
                          "gzip": reader.gzip, "lines": reader.lines, "blank_lines": reader.blank_lines,
                          "limits": reader.limits.as_dict()}
    return trace


def _build(numbered_lines, fmt, bs, rechain, has_header, bad, bad_counts, first_bad,
           max_requests, detection, reader, counter, stop_exc) -> Trace:
    f_ts, f_in, f_out, f_ids = _FIELDS[fmt][-4:]
    ts_scale = 1e-3 if fmt == "mooncake" else 1.0
    ts_arr, in_arr, out_arr = array("d"), array("q"), array("q")
    offsets, blocks = array("q", [0]), array("q")
    chat_arr, parent_arr, session_arr = array("q"), array("q"), array("q")
    session_map: dict = {}
    chat_map: dict = {}      # Bailian chat ids that are strings -> ints (ints pass through)
    # verify mode: raw id -> dense id; dense id -> (position, predecessor dense id)
    dense: dict = {}
    pos_of, pred_of = array("q"), array("q")
    # rechain mode: raw id -> first chained id seen (to report whether raw ids were chained)
    raw_to_chained: dict = {}
    raw_chained_violations = 0
    last_ts = -math.inf
    n_req = 0
    truncated = False
    header_skipped = not has_header

    try:
        for lineno, raw in numbered_lines:
            try:
                text = _decode(raw)
                if text is None:
                    continue
                obj = _parse_obj(text)
                if not header_skipped:
                    header_skipped = True
                    if "kvcalc_trace" in obj:
                        continue
                if max_requests is not None and n_req >= max_requests:
                    truncated = True
                    break
                ts = _time_field(obj, f_ts) * ts_scale
                x_in = _length_field(obj, f_in)
                x_out = _length_field(obj, f_out)
                ids = _ids_field(obj, f_ids)
                if len(ids) != -(-x_in // bs):
                    raise _BadLine("hash_ids_inconsistent_with_input_length",
                                   f"{len(ids)} block ids for {f_in}={x_in}; expected ceil({x_in}/{bs}) = {-(-x_in // bs)}",
                                   "trace_line_ids_mismatch", n_ids=len(ids), field=f_in, value=x_in,
                                   block_size_tokens=bs, expected=-(-x_in // bs))
                if ts < last_ts:
                    raise _BadLine("non_monotone_timestamp",
                                   f"timestamp {obj[f_ts]!r} is earlier than the previous request's",
                                   "trace_line_time_backwards", value=_short(obj[f_ts]))
                if fmt == "bailian":
                    chat = obj.get("chat_id")
                    par = obj.get("parent_chat_id")
                    if chat is None or par is None:
                        raise _BadLine("missing_field", "missing field 'chat_id' or 'parent_chat_id'",
                                       "trace_line_missing_chat")
                    for nm, v in (("chat_id", chat), ("parent_chat_id", par)):
                        if isinstance(v, bool) or not isinstance(v, (int, str)) or (
                                isinstance(v, int) and not _ID_LO <= v < _ID_HI):
                            raise _BadLine("bad_value", f"field {nm!r} is not an integer in [-2^63, 2^64) "
                                           f"or a string: {_short(v)}", "trace_line_bad_chat_id",
                                           field=nm, value=_short(v))
                # Chain the ids (check everything before mutating any state).
                if rechain:
                    new_keys = 0
                    out_ids = []
                    prev = -1
                    pending: dict = {}
                    for r in ids:
                        key = (prev, r)
                        d = dense.get(key)
                        if d is None:
                            d = pending.get(key)
                            if d is None:
                                d = len(dense) + new_keys
                                new_keys += 1
                                pending[key] = d
                        out_ids.append(d)
                        prev = d
                    dense.update(pending)
                    for r, d in zip(ids, out_ids):
                        seen = raw_to_chained.setdefault(r, d)
                        if seen != d:
                            raw_chained_violations += 1
                            raw_to_chained[r] = d
                else:
                    out_ids = []
                    prev = -1
                    pending = {}
                    for i, r in enumerate(ids):
                        d = dense.get(r)
                        if d is not None:
                            if pos_of[d] != i or pred_of[d] != prev:
                                raise _BadLine("prefix_chain_broken",
                                               f"block id {r!r} at position {i} was seen at position {pos_of[d]} "
                                               "or after a different id; ids are not prefix-chained "
                                               "(use chain='rechain' / --rechain)", "trace_line_chain_moved",
                                               value=_short(r), position=i, seen_position=pos_of[d])
                        else:
                            p = pending.get(r)
                            if p is not None:
                                raise _BadLine("prefix_chain_broken",
                                               f"block id {r!r} repeats inside the request at position {i}",
                                               "trace_line_chain_repeat", value=_short(r), position=i)
                            d = len(dense) + len(pending)
                            pending[r] = (d, i, prev)
                        out_ids.append(d)
                        prev = d
                    for r, (d, i, p) in sorted(pending.items(), key=lambda kv: kv[1][0]):
                        dense[r] = d
                        pos_of.append(i)
                        pred_of.append(p)
                # Commit the request.
                last_ts = ts
                ts_arr.append(ts)
                in_arr.append(x_in)
                out_arr.append(x_out)
                blocks.extend(out_ids)
                offsets.append(len(blocks))
                if fmt == "bailian":
                    chat_arr.append(_chat_int(chat, chat_map))
                    parent_arr.append(-1 if par == -1 else _chat_int(par, chat_map))
                elif fmt == "generic" and obj.get("session_id") is not None:
                    sid = obj["session_id"]
                    if isinstance(sid, (list, dict)):
                        sid = json.dumps(sid, sort_keys=True)
                    session_arr.append(session_map.setdefault(sid, len(session_map)))
                else:
                    session_arr.append(-1)
                n_req += 1
                counter[0] = n_req
            except _BadLine as exc:
                bad(lineno, exc)
    except stop_exc:
        pass

    if n_req == 0:
        skipped = sum(bad_counts.values())
        raise InputError("input", f"{skipped} bad lines skipped" if skipped else "",
                         "at least one valid request line",
                         "empty trace: no valid requests" + (f" ({_summary(first_bad)})" if first_bad else ""))

    n = n_req
    ts_np = np.frombuffer(ts_arr, dtype=np.float64).copy()
    t0 = ts_np[0]
    parent_index = np.full(n, -1, dtype=np.int64)
    if fmt == "bailian":
        sessions, parent_index, n_missing = _bailian_sessions(np.frombuffer(chat_arr, dtype=np.int64),
                                                              np.frombuffer(parent_arr, dtype=np.int64))
        detection["parents_outside_trace"] = n_missing
        session_source = "chat_id/parent_chat_id chain"
    else:
        sessions = np.frombuffer(session_arr, dtype=np.int64).copy()
        if fmt == "generic" and sessions.size and (sessions >= 0).any():
            session_source = "session_id field"
        else:
            session_source = None
    if rechain:
        raw_chained = raw_chained_violations == 0
    else:
        raw_chained = True
    detection.update({
        "ids_prefix_chained": raw_chained,
        "chaining": ("re-chained: chained_i = intern((chained_{i-1}, raw_i))" if rechain
                     else "verified prefix-chained (each id at one position after one predecessor)"),
        "session_source": session_source,
        "n_requests": n,
        "n_blocks_total": len(blocks),
        "n_blocks_unique": len(dense),
        "timestamp_unit": "ms" if fmt == "mooncake" else "s",
        "t0_s": float(t0),
        "bytes_read": int(reader.bytes_in),
        "truncated": truncated,
        "bad_lines_skipped": int(sum(bad_counts.values())),
        "bad_lines_by_reason": dict(sorted(bad_counts.items())),
        "bad_lines_first": dict(sorted(first_bad.items())),
    })
    return Trace(
        timestamps_s=ts_np - t0,
        input_tokens=np.frombuffer(in_arr, dtype=np.int64).copy(),
        output_tokens=np.frombuffer(out_arr, dtype=np.int64).copy(),
        block_offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
        block_ids=np.frombuffer(blocks, dtype=np.int64).copy() if len(blocks) else np.zeros(0, np.int64),
        block_size_tokens=int(bs),
        format=fmt,
        session_ids=sessions,
        parent_index=parent_index,
        info=detection,
    )


def _fast_build(reader: LineReader, bs: int, max_requests, detection: dict, counter: list) -> Trace | None:
    """The Trace of a canonical Mooncake input via :mod:`.fastload`, or None to fall back."""
    from .fastload import NotCanonical, densify_verified, scan_mooncake
    try:
        arr = scan_mooncake(reader, bs, max_requests=max_requests, counter=counter)
        dense, nu = densify_verified(arr.pop("raw_ids"), arr["counts"])    # frees the raw ids once read
    except NotCanonical:
        return None
    finally:
        reader.close()
    n = arr["counts"].shape[0]
    ts = arr["ts_ms"].astype(np.float64) * 1e-3
    t0 = ts[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(arr["counts"], out=offsets[1:])
    detection.update({
        "ids_prefix_chained": True,
        "chaining": "verified prefix-chained (each id at one position after one predecessor)",
        "session_source": None,
        "n_requests": n,
        "n_blocks_total": int(dense.shape[0]),
        "n_blocks_unique": int(nu),
        "timestamp_unit": "ms",
        "t0_s": float(t0),
        "bytes_read": int(reader.bytes_in),
        "truncated": bool(arr["truncated"]),
        "bad_lines_skipped": 0,
        "bad_lines_by_reason": {},
        "bad_lines_first": {},
        "bad_lines_first_detail": {},
        "stopped": None,
        "loader": "fast path (canonical Mooncake lines, parsed a chunk at a time)",
        "read": {"bytes_read": reader.bytes_in, "bytes_decompressed": reader.bytes_out, "gzip": reader.gzip,
                 "lines": arr["lines"], "blank_lines": 0, "limits": reader.limits.as_dict()},
    })
    return Trace(
        timestamps_s=ts - t0,
        input_tokens=arr["input_tokens"],
        output_tokens=arr["output_tokens"],
        block_offsets=offsets,
        block_ids=dense,
        block_size_tokens=int(bs),
        format="mooncake",
        session_ids=np.full(n, -1, dtype=np.int64),
        parent_index=np.full(n, -1, dtype=np.int64),
        info=detection,
    )


def _summary(first_bad: dict) -> str:
    return "; ".join(first_bad.values())[:300]


def _chat_int(v, chat_map: dict) -> int:
    """Chat ids as int64: ints pass through, strings are interned to negative ints < -1."""
    if isinstance(v, int):
        if v < -1 or v >= 1 << 62:
            return -2 - chat_map.setdefault(("int", v), len(chat_map))
        return v
    return -2 - chat_map.setdefault(v, len(chat_map))


def _bailian_sessions(chat: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Session index per request from the parent chain (pointer jumping, no per-row loop).

    The parent of a request is the latest earlier request with that chat_id; a
    parent missing from the trace (conversation started before the window)
    roots a session of its own, keyed by the missing parent's id.
    """
    n = chat.shape[0]
    order = np.lexsort((np.arange(n), chat))
    sc = chat[order]
    has_parent = parent != -1
    pos = np.searchsorted(sc, parent, side="right") - 1
    pos_c = np.clip(pos, 0, max(n - 1, 0))
    found = has_parent & (pos >= 0) & (sc[pos_c] == parent)
    cand = np.where(found, order[pos_c], -1)
    # Latest occurrence with that chat id may be the request itself or later: walk back.
    ok = found & (cand < np.arange(n))
    if (found & ~ok).any():  # repeated chat ids with later duplicates: resolve the slow way
        last: dict = {}
        cand = np.full(n, -1, dtype=np.int64)
        for i in range(n):
            p = int(parent[i])
            if p != -1 and p in last:
                cand[i] = last[p]
            last[int(chat[i])] = i
        ok = cand >= 0
    parent_index = np.where(ok, cand, -1).astype(np.int64)
    missing = has_parent & ~ok
    root_key = np.where(missing, parent, chat)
    # Flag keys of missing parents so they never collide with a real chat id.
    root_kind = missing.astype(np.int64)
    root = np.arange(n, dtype=np.int64)
    has = parent_index >= 0
    root[has] = parent_index[has]
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    keys = np.stack([root_kind[root], root_key[root]], axis=1)
    _, inv = np.unique(keys, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), parent_index, int(missing.sum())
