"""trace.api: the door's validation and the result it assembles, on a trace worked out by hand.

The trace (Mooncake lines, 4-token blocks, full blocks only):

    r0  t=0 s  8 tokens  ids [1, 2]         looks up 1, 2
    r1  t=1 s 14 tokens  ids [1, 2, 3, 5]   looks up 1, 2, 3 (5 is the partial last block)
    r2  t=2 s  8 tokens  ids [1, 4]         looks up 1, 4
    r3  t=3 s 12 tokens  ids [1, 2, 3]      looks up 1, 2, 3

LRU, a request's blocks inserted tail first (so its head is the most recent), hits = the
longest cached prefix. Replayed by hand at capacity C blocks, the hits per request are
C=1: 0,1,1,1 (3); C=2: 0,2,1,1 (4); C=3: 0,2,1,2 (5); C>=4: 0,2,1,3 (6, no eviction: 4 distinct
blocks, so saturation is 4 blocks). 10 blocks are looked up and 42 prompt tokens read; a hit
block is 4 tokens, so the token hit rate is 4 x hits / 42. FIFO (hits not refreshed) at C=3:
0,2,1,1 (4): r1's hits of 1 and 2 do not save them, 4 evicts 2.
"""

from __future__ import annotations

import gzip
import json

import pytest

from kvcalc.errors import InputError
from kvcalc.trace import api as tapi
from kvcalc.trace.api import trace_analyze
from kvcalc.trace.reader import BlobSource

ROWS = [(0, 8, [1, 2]), (1000, 14, [1, 2, 3, 5]), (2000, 8, [1, 4]), (3000, 12, [1, 2, 3])]
TEXT = "".join(json.dumps({"timestamp": t, "input_length": x, "output_length": 2, "hash_ids": ids}) + "\n"
               for t, x, ids in ROWS)
HITS = {0: 0, 1: 3, 2: 4, 3: 5, 4: 6, 5: 6}
GIB = 1 << 30


def _run(**kw):
    req = {"text": TEXT, "block_size_tokens": 4, **kw}
    return trace_analyze(req)


def test_curve_rows_and_units_by_hand():
    bpt = GIB / 4                     # 4 tokens per GiB: capacity_gib = tokens / 4
    res = _run(capacities_blocks=[3, 1, 4, 3, 9], kv_bytes_per_token=bpt, operating_capacity_tokens=9)
    c = res["curve"]
    assert c["capacities_blocks"] == [0, 1, 2, 3, 4, 9]
    assert c["block_hit_rate"] == pytest.approx([HITS[k] / 10 if k < 5 else 0.6 for k in (0, 1, 2, 3, 4, 5)])
    assert c["token_hit_rate"] == pytest.approx([4 * HITS[min(k, 5)] / 42 for k in (0, 1, 2, 3, 4, 5)])
    assert c["capacity_tokens"] == [0, 4, 8, 12, 16, 36]
    assert c["capacity_gib"] == pytest.approx([0, 1, 2, 3, 4, 9])
    assert c["saturation_capacity_blocks"] == 4 and c["saturation_capacity_tokens"] == 16
    assert c["saturation_capacity_gib"] == pytest.approx(4.0) and c["kv_bytes_per_token"] == bpt
    assert "at_capacities" not in c
    rows = res["capacities"]
    assert [r["capacity_blocks"] for r in rows] == [1, 3, 4, 9]          # sorted, once each
    assert [r["capacity_tokens"] for r in rows] == [4, 12, 16, 36]
    assert [r["capacity_gib"] for r in rows] == pytest.approx([1, 3, 4, 9])
    assert [r["block_hit_rate"] for r in rows] == pytest.approx([0.3, 0.5, 0.6, 0.6])
    assert [r["token_hit_rate"] for r in rows] == pytest.approx([12 / 42, 20 / 42, 24 / 42, 24 / 42])
    assert [r.get("beyond_trace", False) for r in rows] == [False, False, True, True]
    assert rows[2]["note_detail"]["code"] == "trace_capacity_beyond_trace"
    assert rows[2]["note_detail"]["params"] == {"capacity_blocks": 4, "saturation_capacity_blocks": 4}
    assert "note_detail" not in rows[1]
    op = res["operating_point"]                                           # 9 tokens: 2 whole blocks
    assert op["capacity_tokens"] == 9 and op["capacity_blocks"] == 2 and op["capacity_gib"] == pytest.approx(9 / 4)
    assert op["block_hit_rate"] == pytest.approx(0.4) and op["token_hit_rate"] == pytest.approx(16 / 42)
    assert "beyond_trace" not in op
    assert res["ideal_block_hit_rate"] == pytest.approx(0.6) and res["ideal_token_hit_rate"] == pytest.approx(24 / 42)
    s = res["sampling"]
    assert s["mode"] == "exact" and s["rate"] == 1.0 and s["error_bound_pp"] == 0.0
    assert s["why_detail"]["code"] == "trace_sampling_auto_exact" and s["why"] == s["why_detail"]["message"]
    assert res["detection"]["n_requests"] == 4 and res["stats"]["n_requests"] == 4
    assert res["fit"]["workload"]["output_tokens_per_turn"] == 2.0
    assert res["fit"]["page_inputs"]["workload.output_tokens_per_turn"] == 2.0
    assert res["counting_rule"] == res["curve"]["counting_rule"]
    assert res["counting_rule_detail"]["code"]
    assert res["curve_csv"].count("\n") >= 6


def test_without_kv_bytes_no_gib_and_op_beyond():
    res = _run(capacities_blocks=[2], operating_capacity_tokens=400)
    assert "capacity_gib" not in res["curve"] and "saturation_capacity_gib" not in res["curve"]
    assert "kv_bytes_per_token" not in res["curve"] and "capacity_gib" not in res["capacities"][0]
    op = res["operating_point"]
    assert op["capacity_blocks"] == 100 and op["capacity_gib"] is None and op["beyond_trace"] is True
    assert op["token_hit_rate"] == pytest.approx(24 / 42)
    assert "operating_point" not in _run() and "fifo" not in _run() and "targets" not in _run()


def test_fifo_targets_and_options():
    res = _run(capacities_blocks=[3, 2, 3], fifo=True, targets=[0.5, 0.3, 0.0, 0.9])
    f = res["fifo"]
    assert [x["capacity_blocks"] for x in f] == [2, 3]
    assert [x["block_hits"] for x in f] == [4, 4] and f[1]["policy"] == "fifo"
    t = res["targets"]
    assert [x["target"] for x in t] == [0.5, 0.3, 0.0, 0.9] and {x["metric"] for x in t} == {"token_hit_rate"}
    # 0.5 x 42 = 21 tokens: 5 hits give 20, 6 give 24 -> 4 blocks; 0.3 x 42 = 12.6: 4 hits (16) -> 2 blocks
    assert [x["capacity_blocks"] for x in t] == [4, 2, 0, None]
    # warm-up: the first floor(0.5 x 4) = 2 requests replayed, not counted: r2, r3 at C >= 4: 1 + 3 of 5
    res = _run(warmup_fraction=0.5, capacities_blocks=[4])
    assert res["capacities"][0]["block_hit_rate"] == pytest.approx(4 / 5)
    assert res["curve"]["warmup_fraction"] == 0.5
    # partial blocks too: r1 looks up 4 blocks (5 never repeats), 11 blocks in all
    res = _run(full_blocks_only=False, capacities_blocks=[10])
    assert res["capacities"][0]["block_hit_rate"] == pytest.approx(6 / 11)
    # max_points thins the curve's grid (0 and the requested capacities stay)
    assert len(_run(max_points=2)["curve"]["capacities_blocks"]) <= 3


def test_progress_fractions():
    seen = []
    trace_analyze({"text": TEXT, "block_size_tokens": 4}, progress=seen.append)
    assert seen == [0.0, 0.5, 0.8, 0.9, 1.0]
    seen.clear()
    trace_analyze({"text": TEXT, "block_size_tokens": 4, "sampling": 1.0}, progress=seen.append)
    assert seen == [0.0, 0.5, 0.8, 1.0]
    st = []
    trace_analyze({"text": TEXT, "block_size_tokens": 4}, status=st.append)
    assert st and st[-1]["bytes_read"] == len(TEXT)


def test_sampled_at_rate_one_equals_the_exact_rows():
    res = _run(sampling=1.0, capacities_blocks=[1, 2, 3, 4], kv_bytes_per_token=GIB / 4,
               operating_capacity_tokens=12, targets=[0.5])
    s = res["sampling"]
    assert s["mode"] == "sampled" and s["rate"] == 1.0 and s["seed"] == 0 and s["max_refs"] is None
    assert s["why_detail"]["code"] == "trace_sampling_rate_asked" and s["why_detail"]["params"]["rate_fraction"] == 1.0
    rows = res["capacities"]
    assert [r["block_hit_rate"] for r in rows] == pytest.approx([0.3, 0.4, 0.5, 0.6])
    assert [r["token_hit_rate"] for r in rows] == pytest.approx([12 / 42, 16 / 42, 20 / 42, 24 / 42])
    assert [r["capacity_tokens"] for r in rows] == [4, 8, 12, 16]
    assert [r["capacity_gib"] for r in rows] == pytest.approx([1, 2, 3, 4])
    assert [r.get("beyond_trace", False) for r in rows] == [False, False, False, True]
    op = res["operating_point"]
    assert op["capacity_blocks"] == 3 and op["token_hit_rate"] == pytest.approx(20 / 42)
    assert op["capacity_gib"] == pytest.approx(3.0)
    c = res["curve"]
    assert c["policy"] == "lru" and c["block_size_tokens"] == 4 and c["n_requests"] == 4
    assert c["capacity_tokens"] == [4 * b for b in c["capacities_blocks"]]
    assert c["counting_rule"].endswith("; estimated from a hashed sample of blocks")
    assert res["fit"]["available"] is False and res["targets"][0]["capacity_blocks"] == 4
    assert res["ideal_token_hit_rate"] == pytest.approx(24 / 42)


def test_sampling_modes():
    assert _run(sampling="exact")["sampling"]["why_detail"]["code"] == "trace_sampling_exact_asked"
    fleet = _run(cluster={"instances": 1, "routing": "pooled"}, capacities_blocks=[2])
    # auto samples a fleet above the same size as one cache (hx7): this small trace is replayed exactly
    assert fleet["sampling"]["why_detail"]["code"] == "trace_sampling_auto_exact"
    assert fleet["fleet"]["token_hit_rate"] == pytest.approx([4 * HITS[c] / 42 for c in fleet["curve"]["capacities_blocks"]])
    # a fleet with a sampling rate is sampled (fleet_sample.py), every request routed exactly
    sampled = _run(sampling=0.5, cluster={"instances": 2, "routing": "random"})
    assert sampled["sampling"]["mode"] == sampled["fleet"]["sampling"]["mode"] == "sampled"
    assert sampled["fleet"]["note_detail"]["code"] == "trace_fleet_note_sampled"
    assert sampled["fleet"]["sampling"]["rate"] == sampled["sampling"]["rate"]
    with pytest.raises(InputError) as ei:
        _run(sampling=0.5, tiers=[])
    assert ei.value.field == "tiers"


def test_auto_sampling_above_the_threshold():
    # 1 MiB threshold: a gzip text counts 6 x its size, so a 200 KiB gzip is "about 1.2 MiB"
    lines = [json.dumps({"timestamp": i, "input_length": 8, "output_length": 1,
                         "hash_ids": [3 * i + 1, 3 * i + 2]}) for i in range(30000)]
    blob = gzip.compress(("\n".join(lines) + "\n").encode(), 9)
    assert 6 * len(blob) > 1 << 20 and len(blob) < 1 << 20
    res = trace_analyze({"text": blob, "block_size_tokens": 4, "sampling_auto_above_mib": 1})
    s = res["sampling"]
    assert s["mode"] == "sampled" and s["max_refs"] == tapi.AUTO_MAX_SAMPLED_REFS == 2_000_000
    p = s["why_detail"]["params"]
    assert s["why_detail"]["code"] == "trace_sampling_auto_sampled"
    assert p == {"size_bytes": len(blob), "gzip": True, "text_mib": 6 * len(blob) >> 20, "above_mib": 1,
                 "max_refs": 2_000_000}
    res = trace_analyze({"text": blob, "block_size_tokens": 4, "sampling_auto_above_mib": 1, "sampling_max_refs": 5000})
    assert res["sampling"]["max_refs"] == 5000
    # the same text unzipped is larger: its own size counts (no x 6) and it is exact at 8 MiB
    plain = gzip.decompress(blob)
    assert trace_analyze({"text": plain, "block_size_tokens": 4, "sampling_auto_above_mib": 8}
                         )["sampling"]["mode"] == "exact"


def test_source_sizes(tmp_path):
    assert tapi._source_size({"text": "abc"}, "text") == (3, False)
    assert tapi._source_size({"text": b"\x1f\x8bxx"}, "text") == (4, True)
    assert tapi._source_size({"text": bytearray(b"\x1f\x8b")}, "text") == (2, True)
    assert tapi._source_size({"text": "\x1f\x8b"}, "text") == (2, False)        # a str is never gzip
    data = gzip.compress(b"x")
    assert tapi._source_size({"text": BlobSource(lambda o, n: data[o:o + n], len(data))}, "text") == (len(data), True)
    assert tapi._source_size({"text": BlobSource(lambda o, n: b"a"[o:o + n], 1)}, "text") == (1, False)
    p = tmp_path / "t.jsonl.gz"
    p.write_bytes(data)
    assert tapi._source_size({"path": str(p)}, "path") == (len(data), True)
    assert tapi._source_size({"path": str(tmp_path / "none")}, "path") == (None, False)
    size, gz = tapi._source_size({"sample": "synthetic"}, "sample")
    assert size == tapi.sample_path("synthetic").stat().st_size and gz is False


@pytest.mark.parametrize("req, field", [
    ({"nope": 1}, "nope"),
    ({}, "text"),
    ({"sample": "synthetic", "path": "x"}, "text"),
    ({"text": 5}, "text"),
    ({"path": 5}, "path"),
    ({"sample": "other"}, "sample"),
    ({"format": "x"}, "format"), ({"chain": "x"}, "chain"),
    ({"block_size_tokens": 0}, "block_size_tokens"), ({"block_size_tokens": (1 << 20) + 1}, "block_size_tokens"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"), ({"warmup_fraction": -0.1}, "warmup_fraction"),
    ({"full_blocks_only": 1}, "full_blocks_only"), ({"fifo": "yes"}, "fifo"), ({"model_curve": 0}, "model_curve"),
    ({"skip_bad_lines": None}, "skip_bad_lines"), ({"keep_partial": "no"}, "keep_partial"),
    ({"capacities_blocks": [1, -1]}, "capacities_blocks[1]"), ({"capacities_blocks": 5}, "capacities_blocks"),
    ({"capacities_blocks": [1] * 201}, "capacities_blocks"), ({"capacities_blocks": [10 ** 15 + 1]}, "capacities_blocks[0]"),
    ({"max_points": 1}, "max_points"), ({"max_points": 5001}, "max_points"),
    ({"targets": 0.5}, "targets"), ({"targets": [0.5] * 51}, "targets"), ({"targets": [0.2, 1.5]}, "targets[1]"),
    ({"max_requests": 0}, "max_requests"), ({"max_bytes": (1 << 50) + 1}, "max_bytes"),
    ({"max_lines": 0}, "max_lines"), ({"max_line_bytes": 63}, "max_line_bytes"),
    # the reader's ranges, named by the request's key (they were checked to 2^50 here, then
    # refused by the reader as "trace.max_line_bytes")
    ({"max_line_bytes": (1 << 30) + 1}, "max_line_bytes"), ({"max_bytes": (1 << 44) + 1}, "max_bytes"),
    ({"max_lines": 10 ** 12 + 1}, "max_lines"), ({"max_requests": (1 << 50) + 1}, "max_requests"),
    ({"service_time_s": -1}, "service_time_s"), ({"service_time_s": 1e5 + 1}, "service_time_s"),
    ({"kv_bytes_per_token": 0}, "kv_bytes_per_token"), ({"kv_bytes_per_token": 1e12 + 1}, "kv_bytes_per_token"),
    ({"operating_capacity_tokens": -1}, "operating_capacity_tokens"),
    ({"operating_capacity_tokens": 1e15 + 1}, "operating_capacity_tokens"),
    ({"sampling": "some"}, "sampling"), ({"sampling": 0}, "sampling"), ({"sampling": 1.5}, "sampling"),
    ({"sampling_max_refs": 999}, "sampling_max_refs"), ({"sampling_max_refs": (1 << 40) + 1}, "sampling_max_refs"),
    ({"sampling_seed": -1}, "sampling_seed"), ({"sampling_seed": (1 << 31) + 1}, "sampling_seed"),
    ({"sampling_auto_above_mib": 0}, "sampling_auto_above_mib"),
    ({"block_size_tokens": (1 << 62) + 1}, "block_size_tokens"),
    ({"capacities_blocks": [1, -(1 << 62) - 1]}, "capacities_blocks[1]"),
])
def test_bad_requests_name_the_field(req, field):
    full = dict(req)
    if not {"text", "path", "sample"} & set(req) and field != "text":
        full["text"] = TEXT
    with pytest.raises(InputError) as ei:
        trace_analyze(full)
    assert ei.value.field == field


def test_edges_of_the_ranges_are_accepted():
    with pytest.raises(InputError) as ei:          # 64 bytes is allowed: the lines are then too long
        _run(max_line_bytes=64)
    assert ei.value.field == "line 1"
    res = _run(max_points=5000, capacities_blocks=[0, 10 ** 15], targets=[0.0, 1.0], max_line_bytes=1 << 30, max_bytes=1 << 44, max_lines=10 ** 12,
               max_requests=1 << 50, service_time_s=1e5, operating_capacity_tokens=0, sampling_seed=1 << 31,
               kv_bytes_per_token=1e12)
    assert res["operating_point"]["capacity_blocks"] == 0 and res["operating_point"]["token_hit_rate"] == 0.0
    assert res["targets"][1]["capacity_blocks"] is None          # 100 % is above the 4/7 ceiling
    assert res["fit"]["workload"]["service_time_s"] == 1e5
    assert _run(targets=None, capacities_blocks=None)["capacities"] == []
    assert _run(text=memoryview(TEXT.encode()))["detection"]["n_requests"] == 4
    assert _run(text=bytearray(TEXT.encode()))["detection"]["n_requests"] == 4
    assert trace_analyze({"text": TEXT, "block_size_tokens": 4, "path": None})["detection"]["n_requests"] == 4
    with pytest.raises(InputError) as ei:
        trace_analyze([1])
    assert ei.value.field == "request"


def test_errors_become_input_errors(monkeypatch):
    def boom(exc):
        def f(*a, **k):
            raise exc
        return f

    monkeypatch.setattr(tapi, "_analyze", boom(MemoryError()))
    with pytest.raises(InputError) as ei:
        trace_analyze({"text": TEXT})
    assert ei.value.code == "trace_out_of_memory" and ei.value.field == "trace"
    monkeypatch.setattr(tapi, "_analyze", boom(RecursionError()))
    with pytest.raises(InputError) as ei:
        trace_analyze({"text": TEXT})
    assert ei.value.field == "trace" and ei.value.value == "nested"


def test_model_curve_and_fleet():
    res = _run(model_curve=True, operating_capacity_tokens=8)
    m = res["model_curve"]
    assert m["available"] is True and len(m["token_hit_rate"]) == len(res["curve"]["capacity_tokens"])
    assert m["model"] and 0.0 <= m["ideal_token_hit_rate"] <= 1.0
    assert res["operating_point"]["model_token_hit_rate"] == pytest.approx(
        tapi._model_curve(res["fit"], [8], 4)["token_hit_rate"][0])
    bad = tapi._model_curve({"workload": {"conversation_rate_per_s": -1}}, [4], 4)
    assert bad["available"] is False and bad["message_detail"]["code"] == "trace_model_unavailable"
    pooled = _run(cluster={"instances": 2, "routing": "pooled"}, capacities_blocks=[2])["fleet"]
    assert pooled["instances"] == 2 and pooled["instances_used"] == 2
    assert pooled["busiest_instance_request_share"] == 0.5
    assert pooled["routing_key_detail"]["code"] == "trace_routing_pool"
    assert pooled["note_detail"]["code"] == "trace_fleet_note_pooled"
    # pooled: one cache of 2 x C, so at C = 1 per instance the rate is the single cache's at 2
    caps = pooled["capacities_blocks_per_instance"]
    assert pooled["block_hit_rate"][caps.index(1)] == pytest.approx(0.4)
    assert pooled["capacity_tokens_per_instance"] == [4 * c for c in caps]
    one = _run(cluster={"instances": 1, "routing": "random"})["fleet"]
    assert one["routing_key_detail"]["code"] == "trace_routing_one_cache" and one["instances_used"] == 1
    assert one["busiest_instance_request_share"] == 1.0 and one["note_detail"]["code"] == "trace_fleet_note"
    rr = _run(cluster={"instances": 2, "routing": "round_robin"})["fleet"]
    assert rr["routing_key_detail"]["code"] == "trace_routing_index" and rr["busiest_instance_request_share"] == 0.5
    assert tapi._routing_detail("something else")["code"] == "trace_routing_one_cache"
    assert tapi._routing_detail("uniform random")["code"] == "trace_routing_uniform"


def test_huge_ints_refused_by_name():
    with pytest.raises(InputError) as ei:
        tapi._no_huge_ints({"a": 1 << 63})
    assert ei.value.field == "a"
    with pytest.raises(InputError) as ei:
        tapi._no_huge_ints({"a": [1, 2, -(1 << 63)]})
    assert ei.value.field == "a[2]"
    tapi._no_huge_ints({"a": 1 << 62, "b": [-(1 << 62)], "c": True, "d": (1, 2)})
    with pytest.raises(InputError):
        tapi._no_huge_ints({"d": (1, 1 << 63)})
