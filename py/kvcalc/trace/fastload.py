"""Fast path for Mooncake traces written in their canonical form, a chunk at a time.

Every line must be exactly ``{"timestamp": T, "input_length": X,
"output_length": Y, "hash_ids": [i, j, ...]}`` with decimal integers, as the
published traces and ``bench/gen_trace.py`` write them. A chunk of whole lines
is parsed by numpy passes over its bytes (:func:`_parse_chunk_bytes`: the
chunk's skeleton, each number collapsed to one ``D``, must equal the canonical
skeletons of its lines, so every non-digit byte is pinned; then one
``np.fromstring`` reads all its numbers); a chunk it does not pin (CR line
ends, leading zeros) goes through one regular expression per chunk, which
accepts exactly the canonical lines. The checks of the general loader are done
on whole arrays (block count consistent with the input length, timestamps
non-decreasing, ids prefix-chained: each id at one position after one
predecessor); the dense ids are numbered in order of first appearance as the
general loader does, so the result is the same :class:`~.loaders.Trace`. Any
line or check that does not pass raises :class:`NotCanonical` and the caller
falls back to the general loader (which then reports the bad line exactly as
usual).

With ``sample_threshold`` (SHARDS), only references whose id hash falls under
the threshold are kept, so memory grows with the sample, not the trace.
"""

from __future__ import annotations

import re

import numpy as np

from .reader import LineReader, StreamError
from .sample import HLL_BITS, HotRuns, _sample_bits, hash_ids, hll_add

__all__ = ["NotCanonical", "scan_mooncake"]

_LINE = re.compile(
    rb'^\{"timestamp": (\d{1,15}), "input_length": (\d{1,12}), "output_length": (\d{1,12}), '
    rb'"hash_ids": \[((?:\d{1,18}(?:, \d{1,18})*)?)\]\}\r?$', re.M)


class NotCanonical(Exception):
    """The input is not (entirely) in canonical Mooncake form: use the general loader."""


def _whole_line_chunks(reader: LineReader):
    """Decompressed data cut at the last newline, with the reader's byte and line limits."""
    lim = reader.limits
    carry = b""
    for chunk in reader._plain():
        reader.bytes_out += len(chunk)
        if reader.bytes_out > lim.max_bytes:
            raise NotCanonical("max_bytes")
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            if len(carry) > lim.max_line_bytes:
                raise NotCanonical("long line")
            continue
        carry = data[cut:]
        yield data[:cut]
    if carry.strip():
        yield carry + b"\n"
    elif carry:
        raise NotCanonical("trailing blank")


def scan_mooncake(reader: LineReader, block_size_tokens: int, *, max_requests: int | None = None,
                  sample_threshold: int | None = None, sample_seed: int = 0, max_sampled_refs: int | None = None,
                  counter: list | None = None, heavy_detect: bool = False,
                  sketch_full_blocks: bool | None = None, keep_first_ids: bool = False) -> dict:
    """Arrays of a canonical Mooncake trace (raises :class:`NotCanonical` otherwise).

    Returns ``ts_ms``, ``input_tokens``, ``output_tokens``, ``counts`` (ids per
    request) and either ``raw_ids`` (all) or, when sampling, ``ids``, ``hashes``,
    ``req``, ``pos`` of the kept references and the final ``threshold``, with
    ``sketch_full_blocks`` (True: full blocks only, False: all) a HyperLogLog
    ``sketch`` of the stream's distinct blocks (see :func:`.sample.hll_add`);
    ``max_sampled_refs`` bounds the hashed references (the rate is halved to fit). With
    ``heavy_detect`` every chunk's hot blocks (:func:`.sample.promote_hot`: in
    many of its requests, a shared system prompt) join the heavy stratum: from
    that chunk on, each request's leading run of them (:class:`.sample.HotRuns`)
    is kept whole, not per reference but as the run's deepest block (2 bytes a
    request) and a subsample; the rest of the stream is sampled by hash
    (earlier references of a promoted block stay in the hashed stratum: the
    strata are set by the stream's order, never by the hash). ``hot`` holds
    them (:meth:`.sample.HotRuns.finish`; no budget: 2 bytes a request). With
    ``keep_first_ids`` (sampling), ``first_ids``: each request's first raw block id (-1: none),
    which a fleet's affinity routing reads (8 bytes a request).
    """
    bs = block_size_tokens
    ts_parts, in_parts, out_parts, cnt_parts = [], [], [], []
    id_parts, h_parts, req_parts, pos_parts, first_parts = [], [], [], [], []
    sketch = None if sketch_full_blocks is None else np.zeros(1 << HLL_BITS, dtype=np.uint8)
    hot = HotRuns() if heavy_detect and sample_threshold is not None else None
    n_req = 0
    last_ts = -1
    kept_refs = 0
    threshold = sample_threshold
    truncated = False
    lines = 0
    try:
        for data in _whole_line_chunks(reader):
            parsed = _parse_chunk(data)
            nl = parsed[0].shape[0]
            lines += nl
            if lines > reader.limits.max_lines:
                raise NotCanonical("max_lines")
            if max_requests is not None and n_req + nl > max_requests:
                parsed = _head(parsed, max_requests - n_req)
                truncated = True
            ts, x, y, cnt, ids = parsed
            if ts.shape[0] == 0:
                break
            if not np.array_equal(cnt, -(-x // bs)):
                raise NotCanonical("block count inconsistent")
            if ts[0] < last_ts or (ts.size > 1 and (np.diff(ts) < 0).any()):
                raise NotCanonical("timestamps not monotone")
            last_ts = int(ts[-1])
            ts_parts.append(ts)
            in_parts.append(_narrow(x))
            out_parts.append(_narrow(y))
            cnt_parts.append(_narrow(cnt))
            if threshold is None:
                id_parts.append(ids)
            else:
                starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
                if keep_first_ids:
                    first_parts.append(np.where(cnt > 0, ids[np.minimum(starts, max(ids.size - 1, 0))]
                                                if ids.size else -1, -1).astype(np.int64))
                it = np.int32 if n_req + cnt.size < (1 << 31) - 1 else np.int64
                req = np.repeat(np.arange(n_req, n_req + cnt.size, dtype=it), cnt.astype(np.intp))
                pos = (np.arange(ids.size, dtype=np.int64) - np.repeat(starts, cnt.astype(np.intp))).astype(it)
                h = hash_ids(ids, sample_seed)
                if sketch is not None:
                    hll_add(sketch, h[pos < np.repeat(x // bs, cnt.astype(np.intp))] if sketch_full_blocks else h)
                keep = _sample_bits(h) < threshold
                if heavy_detect:
                    # The heavy stratum: each request's leading run of hot blocks (see HotRuns);
                    # those references are not stored, only the run's deepest block per request.
                    looked = (pos < np.repeat(x // bs, cnt.astype(np.intp))) if sketch_full_blocks \
                        else np.ones(ids.shape[0], dtype=bool)
                    run = hot.add_chunk(ids, h, req, pos, cnt, looked, n_req)
                    del looked
                    keep &= ~run
                id_parts.append(ids[keep])
                h_parts.append(h[keep])
                req_parts.append(req[keep])
                pos_parts.append(pos[keep])
                kept_refs += int(keep.sum())
                if max_sampled_refs is not None and kept_refs > max_sampled_refs:
                    # Fixed size: halve the rate until the hashed sample fits again (the heavy
                    # stratum is not stored per reference).
                    while kept_refs > max_sampled_refs and threshold > 1:
                        threshold //= 2
                        kept_refs = 0
                        for i in range(len(h_parts)):
                            k = _sample_bits(h_parts[i]) < threshold
                            id_parts[i], h_parts[i] = id_parts[i][k], h_parts[i][k]
                            req_parts[i], pos_parts[i] = req_parts[i][k], pos_parts[i][k]
                            kept_refs += int(k.sum())
            n_req += cnt.size
            if counter is not None:
                counter[0] = n_req
            if truncated:
                break
    except StreamError:
        raise NotCanonical("stream error")
    if n_req == 0:
        raise NotCanonical("empty")

    def cat(parts, dtype=np.int64):
        out = np.concatenate(parts) if parts else np.zeros(0, dtype)
        parts.clear()            # free the chunks as soon as they are joined
        return out

    out = {"ts_ms": cat(ts_parts), "input_tokens": cat(in_parts), "output_tokens": cat(out_parts),
           "counts": cat(cnt_parts), "truncated": truncated, "lines": lines}
    if threshold is None:       # a Trace holds int64 (sampling keeps the narrow arrays)
        for k in ("input_tokens", "output_tokens", "counts"):
            out[k] = out[k].astype(np.int64, copy=False)
    if threshold is None:
        out["raw_ids"] = cat(id_parts)
    else:
        out.update({"ids": cat(id_parts), "hashes": cat(h_parts, np.uint64), "req": cat(req_parts),
                    "pos": cat(pos_parts), "threshold": threshold, "sketch": sketch,
                    "hot": None if hot is None else hot.finish(n_req)})
        if keep_first_ids:
            out["first_ids"] = cat(first_parts)
    return out


# The canonical line with every number replaced by one "D": the head, then the
# ids as "D, D, ..., D", then the tail. A chunk is canonical when its skeleton
# (digits runs collapsed) is the concatenation of these, line by line.
_HEAD = b'{"timestamp": D, "input_length": D, "output_length": D, "hash_ids": ['
_TAIL = b"]}\n"
_SKELETONS: list[bytes] = []
_IS_DIGIT = np.zeros(256, dtype=bool)
_IS_DIGIT[48:58] = True
_TO_D = np.arange(256, dtype=np.uint8)          # digits -> "D", other bytes unchanged
_TO_D[48:58] = ord("D")
_TO_COMMA = np.full(256, ord(","), dtype=np.uint8)   # digits unchanged, other bytes -> ","
_TO_COMMA[48:58] = np.arange(48, 58, dtype=np.uint8)
_MAX_DIGITS = (15, 12, 12)                      # timestamp, input_length, output_length (ids: 18)


def _skeleton(k: int) -> bytes:
    while len(_SKELETONS) <= k:
        j = len(_SKELETONS)
        _SKELETONS.append(_HEAD + (b"D" + b", D" * (j - 1) if j else b"") + _TAIL)
    return _SKELETONS[k]


def _parse_chunk(data: bytes):
    """(ts, input, output, ids per line, ids) of a chunk of whole lines, all int64.

    Numpy over the raw bytes (:func:`_parse_chunk_bytes`); a chunk it does not
    accept (a CR, a leading zero, an odd line) goes through the regular expression,
    which accepts exactly the canonical lines or raises :class:`NotCanonical`.
    """
    out = _parse_chunk_bytes(data)
    return out if out is not None else _parse_chunk_regex(data)


def _parse_chunk_bytes(data: bytes):
    """:func:`_parse_chunk` by whole-array passes, or None (then the regex decides).

    Accepts a subset of what ``_LINE`` accepts (no CR, no leading zeros), with
    the same numbers: the skeleton check pins every non-digit byte, and the
    digit runs are then the numbers in line order, each of at most 18 digits.
    """
    b = np.frombuffer(data, dtype=np.uint8)
    n = b.shape[0]
    if n == 0 or b[-1] != 10 or data.count(b"\n") * (len(_HEAD) + len(_TAIL)) > n:
        return None                             # not whole lines, or lines too short (blank)
    dig = _IS_DIGIT[b]
    st = np.empty(n, dtype=bool)                # first digit of a run
    st[0] = dig[0]
    np.greater(dig[1:], dig[:-1], out=st[1:])
    keep = ~dig
    keep |= st
    sk = _TO_D[b[keep]]                         # the skeleton: each number one "D"
    del keep
    ends = np.flatnonzero(sk == 10)
    line_len = np.diff(ends, prepend=-1)
    rest = line_len - (len(_HEAD) + len(_TAIL))
    k = np.where(rest > 0, (rest + 2) // 3, 0)  # ids per line, if the line is canonical
    if rest.min() < 0:
        return None
    top = int(k.max())
    if top >= len(_SKELETONS):
        _skeleton(top)
    if b"".join(map(_SKELETONS.__getitem__, k.tolist())) != sk.tobytes():
        return None
    del sk
    zero = st[:-1] & (b[:-1] == 48)             # a leading zero (of a number with more digits)
    zero &= dig[1:]
    if zero.any():
        return None
    del zero
    after = np.empty(n, dtype=bool)             # the byte after each number
    after[0] = False
    np.less(dig[1:], dig[:-1], out=after[1:])
    after |= dig
    s = _TO_COMMA[b[after]]                     # "123,4,56,...," the numbers in order
    del after, dig, st
    commas = np.flatnonzero(s == 44)
    digits = np.diff(commas, prepend=-1) - 1
    per_line = k + 3
    if commas.shape[0] != int(per_line.sum()):  # a literal "D" in the input
        return None
    first = np.cumsum(per_line) - per_line      # index of each line's timestamp
    if int(digits.max()) > 18 or any(int(digits[first + j].max()) > lim for j, lim in enumerate(_MAX_DIGITS)):
        return None
    nums = np.fromstring(s[:-1].tobytes(), dtype=np.int64, sep=",")  # noqa: NPY201
    if nums.shape[0] != commas.shape[0]:  # pragma: no cover - the skeleton check makes it so
        return None
    ts, x, y = nums[first], nums[first + 1], nums[first + 2]
    is_id = np.ones(nums.shape[0], dtype=bool)
    for j in range(3):
        is_id[first + j] = False
    return ts, x, y, k.astype(np.int64), nums[is_id]


def _parse_chunk_regex(data: bytes):
    """:func:`_parse_chunk` by the regular expression (raises :class:`NotCanonical`)."""
    m = _LINE.findall(data)
    if len(m) != data.count(b"\n"):
        raise NotCanonical("line not in canonical form")
    if not m:
        z = np.zeros(0, np.int64)
        return z, z, z, z, z
    t_b, x_b, y_b, ids_b = zip(*m)
    ts = np.array(t_b).astype(np.int64)
    x = np.array(x_b).astype(np.int64)
    y = np.array(y_b).astype(np.int64)
    cnt = np.fromiter((s.count(b",") + 1 if s else 0 for s in ids_b), dtype=np.int64, count=len(ids_b))
    joined = b",".join(s for s in ids_b if s)
    ids = np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, np.int64)  # noqa: NPY201
    if ids.size != int(cnt.sum()):
        raise NotCanonical("id count")
    return ts, x, y, cnt, ids


def _head(parsed, n_lines: int):
    """The first ``n_lines`` lines of a parsed chunk."""
    ts, x, y, cnt, ids = parsed
    return ts[:n_lines], x[:n_lines], y[:n_lines], cnt[:n_lines], ids[:int(cnt[:n_lines].sum())]


def _narrow(a: np.ndarray) -> np.ndarray:
    """int32 when every value fits (half the memory per request), else unchanged."""
    return a.astype(np.int32) if a.size and int(a.max()) < (1 << 31) - 1 and int(a.min()) >= 0 else a


def densify_verified(raw: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids numbered by first appearance, after checking the ids are prefix-chained.

    Raises :class:`NotCanonical` when an id appears at two positions or after two
    different predecessors (the general loader then names the line). ``raw`` is
    let go of as soon as it is read (pass it without keeping a reference to
    save its memory). The numbering is ``np.unique``'s: ids sorted by a stable
    argsort, numbered by their first position; int32 arrays while ids and
    positions fit (half the memory of ``np.unique`` on int64).
    """
    total = raw.shape[0]
    if total == 0:
        return raw.copy(), 0
    it = np.int32 if total < (1 << 31) - 2 else np.int64
    if it is np.int32 and int(raw.min()) >= 0 and int(raw.max()) < (1 << 31) - 1:
        keys = raw.astype(np.int32)
    else:
        keys = raw
    del raw
    perm = np.argsort(keys, kind="stable").astype(it, copy=False)   # np.unique's order
    new = np.empty(total, dtype=bool)           # the first (lowest position) of each distinct id
    new[0] = True
    sk = keys[perm]
    del keys
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    del sk
    first = perm[new]                           # first position of each id, ids ascending
    nu = first.shape[0]
    inv = np.empty(total, dtype=it)             # index of each reference's id among the ids
    g = np.cumsum(new, dtype=it)
    g -= 1
    inv[perm] = g
    del perm, g, new
    is_first = np.zeros(total, dtype=bool)
    is_first[first] = True
    rank = np.cumsum(is_first, dtype=it)        # ids numbered in order of first appearance
    del is_first
    rank -= 1
    rank = rank[first]
    dense = rank[inv]
    del rank
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    pos = np.arange(total, dtype=it) - np.repeat(starts[:-1].astype(it), counts.astype(np.intp))
    if not np.array_equal(pos[first][inv], pos):
        raise NotCanonical("id at two positions")
    pred = np.empty(total, dtype=it)
    pred[0] = -1
    pred[1:] = dense[:-1]
    pred[pos == 0] = -1
    del pos
    if not np.array_equal(pred[first][inv], pred):
        raise NotCanonical("id after two predecessors")
    del pred, inv, first
    return dense.astype(np.int64), nu
