"""The trace tab on a stream that breaks, on capacities beyond the trace and on tiers from the URL (#11).

Issue #11, "Bad input": a stream that breaks mid-file (a line cut in half, a wrong format after
the first thousand lines) reports where and what, and keeps the analysis of what was read when
the user asks for it; "capacities beyond the trace are explained". Issue #11 item 5: the trace
tab's options (here the CPU tier and the instances) in the URL reach the request. Every number
checked is CPython's kvcalc.trace.api.trace_analyze on the same bytes and request.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvcalc.trace.api import trace_analyze  # noqa: E402
from test_trace_tab import STATE, TIMEOUT_MS, no_request_left_localhost, open_tab, value, wait_done  # noqa: E402

CONVERSATION = ROOT / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
SMALL = ROOT / "tests" / "data" / "trace_mooncake_small.jsonl"


def _upload(page, name: str, data: bytes):
    page.set_input_files("input[type=file]", files=[{"name": name, "mimeType": "application/x-ndjson", "buffer": data}])


@pytest.mark.browser
@pytest.mark.parametrize("case", ["wrong_format_after_1500_lines", "line_cut_in_half"])
def test_broken_stream_says_where_and_what_then_keeps_what_was_read(page, server, case):
    lines = CONVERSATION.read_bytes().splitlines()
    if case == "wrong_format_after_1500_lines":
        # another format from line 1501 on (no "timestamp": the first line that is not Mooncake)
        other = [json.dumps({"time": 4e9 + i, "prompt_tokens": 600, "completion_tokens": 3}).encode()
                 for i in range(300)]
        data = b"\n".join(lines[:1500] + other) + b"\n"
        line, words = 1501, "missing field 'timestamp'"
    else:
        data = b"\n".join(lines[:2000]) + b"\n" + lines[2000][:40]      # the file ends inside line 2001
        line, words = 2001, "file cut in half?"
    ref = trace_analyze({"text": data, "keep_partial": True})
    assert ref["detection"]["stopped"]["line"] == line                    # CPython says where too
    open_tab(page, server, "?memory=none")
    _upload(page, f"{case}.jsonl", data)
    assert wait_done(page) == "error"
    msg = page.inner_text("[data-role=trace-error]")
    assert f"line {line:,}" in msg and words in msg, msg                  # where and what
    assert "keep what was read" in msg and "skip bad lines" in msg, msg    # and what to do about it
    page.check("input[name='trace.keep_partial']")
    page.wait_for_function(f"{STATE} === 'done'", timeout=TIMEOUT_MS)
    assert value(page, "detection.n_requests")[0] == ref["detection"]["n_requests"] == line - 1
    assert value(page, "detection.stopped.line")[0] == line
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"], rel=1e-12)
    assert words in page.inner_text("[data-role=detection]")
    no_request_left_localhost(page)


@pytest.mark.browser
@pytest.mark.parametrize("lang,words", [("en", "the hit rate is the trace's ceiling"), ("zh-CN", "命中率即该轨迹的上限")])
def test_operating_point_beyond_the_trace_is_explained(page, server, lang, words):
    """The calculator's memory (Llama-3.1-8B on one H100: ~10^5 blocks) against a 5-request trace
    whose every reuse hits from 3 blocks on: the operating point says it is the trace's ceiling."""
    memory = open_tab(page, server, f"?lang={lang}")
    data = SMALL.read_bytes()
    ref = trace_analyze({"text": data, "kv_bytes_per_token": memory["kv_bytes_per_token"],
                         "operating_capacity_tokens": memory["kv_capacity_tokens"], "model_curve": True})
    op = ref["operating_point"]
    assert op["beyond_trace"] and op["capacity_blocks"] >= ref["curve"]["saturation_capacity_blocks"]
    assert op["token_hit_rate"] == pytest.approx(ref["ideal_token_hit_rate"], abs=1e-12)
    _upload(page, "small.jsonl", data)
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    note = page.locator('[data-result="trace.operating_point.beyond_trace"]')
    assert note.count() == 1
    text = note.inner_text()
    bare = re.sub(r"(?<=\d)[,\u00a0\u202f ](?=\d)", "", text)          # without digit separators
    assert words in text and str(op["capacity_blocks"]) in bare, text
    # a trace larger than the memory: no note
    page.click("button[data-sample=conversation]")
    page.wait_for_function(f"{STATE} === 'done' && document.querySelector('[data-result=\"trace.detection.n_requests\"]')"
                           ".dataset.value === '12031'", timeout=TIMEOUT_MS)
    assert page.locator('[data-result="trace.operating_point.beyond_trace"]').count() == 0
    no_request_left_localhost(page)


@pytest.mark.browser
def test_cpu_tier_and_instances_from_the_url_reach_the_request(page, server):
    """?trace.cpu_tier_gib=40&trace.instances=2&trace.routing=round_robin&trace.sampling=exact: a GPU tier
    at the calculator's KV capacity and a 40 GiB CPU tier per instance, across 2 instances: the tier
    table equals CPython's for the request the tab builds (js/trace-options.js requestFrom)."""
    memory = open_tab(page, server, "?trace.cpu_tier_gib=40&trace.instances=2&trace.routing=round_robin"
                                    "&trace.sampling=exact")
    assert page.input_value("input[name='trace.tiers[1].capacity_gib']") == "40"
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    ref = trace_analyze({"sample": "synthetic", "sampling": "exact", "model_curve": True,
                         "kv_bytes_per_token": memory["kv_bytes_per_token"],
                         "operating_capacity_tokens": memory["kv_capacity_tokens"],
                         "cluster": {"instances": 2, "routing": "round_robin"},
                         "tiers": [{"name": "gpu", "capacity_tokens": memory["kv_capacity_tokens"]},
                                   {"name": "cpu", "capacity_gib": 40}]})
    tiers = ref["fleet"]["tiers"]
    assert [t["name"] for t in tiers] == ["gpu", "cpu"]
    for i, t in enumerate(tiers):
        assert value(page, f"fleet.tiers.{i}.token_hit_rate")[0] == pytest.approx(t["token_hit_rate"], rel=1e-12)
    assert value(page, "fleet.instances_used")[0] == 2
    assert page.locator("table.kvt-tiers tbody tr").count() == 2
    no_request_left_localhost(page)
