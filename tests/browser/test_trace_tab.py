"""The trace tab (js/trace-tab.js) in headless Chromium, through tests/browser/trace_harness.html.

Numbers on the page must equal kvcalc.trace.api.trace_analyze in CPython; bad files give a
message naming the line; untrusted text never becomes HTML; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.trace.api import trace_analyze  # noqa: E402

HARNESS = "tests/browser/trace_harness.html"
TIMEOUT_MS = 90_000
SMALL = ROOT / "tests" / "data" / "trace_mooncake_small.jsonl"
CONVERSATION = ROOT / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
STATE = "document.getElementById('trace-root').dataset.state"


def open_tab(page, server, query: str = "") -> dict:
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    page.requests = requests
    page.goto(f"{server}{HARNESS}{query}")
    page.wait_for_function("window.__trace && (window.__trace.mounted || window.__trace.fatal)",
                           timeout=TIMEOUT_MS)
    fatal = page.evaluate("__trace.fatal")
    if fatal:
        pytest.fail(f"worker start-up failed: {fatal}\n" + "\n".join(page.console_lines[-30:]))
    return page.evaluate("__trace.memory")


def wait_done(page, timeout=TIMEOUT_MS) -> str:
    page.wait_for_function(f"['done', 'error', 'cancelled'].includes({STATE})", timeout=timeout)
    return page.evaluate(STATE)


def value(page, path: str):
    loc = page.locator(f'[data-result="trace.{path}"]')
    return float(loc.get_attribute("data-value")), loc.inner_text()


def no_request_left_localhost(page):
    assert page.blocked == [], page.blocked
    assert not [u for _, u in page.requests if not u.startswith("http://127.0.0.1:")
                and not u.startswith(("data:", "blob:"))]
    # the trace is read locally: nothing is ever posted anywhere
    assert not [m for m, _ in page.requests if m not in ("GET", "HEAD")]


@pytest.mark.browser
def test_conversation_sample_matches_cpython(page, server):
    memory = open_tab(page, server)
    assert memory and memory["kv_bytes_per_token"] > 0
    page.click("button[data-sample=conversation]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    ref = trace_analyze({"sample": "conversation", "model_curve": True,
                         "kv_bytes_per_token": memory["kv_bytes_per_token"],
                         "operating_capacity_tokens": memory["kv_capacity_tokens"]})
    for path, expected in (("ideal_token_hit_rate", ref["ideal_token_hit_rate"]),
                           ("ideal_block_hit_rate", ref["ideal_block_hit_rate"]),
                           ("operating_point.token_hit_rate", ref["operating_point"]["token_hit_rate"]),
                           ("operating_point.block_hit_rate", ref["operating_point"]["block_hit_rate"]),
                           ("stats.arrival_rate_per_s", ref["stats"]["arrival_rate_per_s"]),
                           ("stats.shared_prefix_token_share", ref["stats"]["shared_prefix_token_share"])):
        got, text = value(page, path)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), path
        if path.endswith("hit_rate"):
            assert text == f"{100 * expected:.1f} %"
    assert value(page, "detection.n_requests")[0] == ref["detection"]["n_requests"] == 12031
    assert value(page, "detection.block_size_tokens")[0] == 512
    fmt_cell = page.locator('[data-result="trace.detection.format"]')
    assert fmt_cell.inner_text() == "Mooncake" and fmt_cell.get_attribute("data-value") == "mooncake"

    # the chart: exact token and block curves, model, ceiling, operating point
    fig = "document.querySelector('[data-figure=trace-curve]')"
    names = page.evaluate(f"{fig}.data.map(t => t.name)")
    assert len(names) == 5 and any("model" in n for n in names) and any("ceiling" in n for n in names)
    curve = ref["curve"]
    for axis, key in (("blocks", "capacities_blocks"), ("tokens", "capacity_tokens"), ("gib", "capacity_gib")):
        page.select_option("select[name=capacity_axis]", axis)
        xs = page.evaluate(f"Array.from({fig}.data[0].x)")
        ys = page.evaluate(f"Array.from({fig}.data[0].y)")
        keep = [i for i, x in enumerate(curve[key]) if x > 0]           # log axis: no zero
        assert xs == pytest.approx([curve[key][i] for i in keep], rel=1e-12)
        assert ys == pytest.approx([curve["token_hit_rate"][i] for i in keep], rel=1e-12)
        op_x = page.evaluate(f"{fig}.data[4].x[0]")
        assert op_x == pytest.approx(ref["operating_point"][{"blocks": "capacity_blocks", "tokens":
                                     "capacity_tokens", "gib": "capacity_gib"}[axis]])
    # the model only where Python says it holds (in_domain: from the requests in flight up)
    model_x = page.evaluate(f"Array.from({fig}.data[2].x)")
    model_y = page.evaluate(f"Array.from({fig}.data[2].y)")
    in_model = [i for i in keep if ref["model_curve"]["in_domain"][i]]
    assert 0 < len(in_model) < len(keep)
    assert model_x == pytest.approx([curve["capacity_gib"][i] for i in in_model], rel=1e-12)
    assert model_y == pytest.approx([ref["model_curve"]["token_hit_rate"][i] for i in in_model], rel=1e-9)
    assert page.evaluate("document.querySelector('[data-figure=trace-reuse-gap]').data.length") == 2
    assert "Apache License 2.0" in page.inner_text("[data-role=sample-license]")
    t = page.evaluate("__trace.tab.timings")
    assert t["pythonMs"] > 0 and t["totalMs"] >= t["pythonMs"]
    no_request_left_localhost(page)


@pytest.mark.browser
def test_malformed_upload_names_the_line_then_skip(page, server):
    open_tab(page, server)
    lines = SMALL.read_text().splitlines()
    bad = "\n".join(lines[:2] + ['{"timestamp": 9, "input_length": 40, "hash_ids": [1, 2'] + lines[2:]) + "\n"
    page.set_input_files("input[type=file]", files=[{"name": "broken.jsonl", "mimeType": "application/x-ndjson",
                                                      "buffer": bad.encode()}])
    assert wait_done(page) == "error"
    msg = page.inner_text("[data-role=trace-error]")
    assert "line 3" in msg and "malformed JSON" in msg and "skip bad lines" in msg
    # ticking "skip bad lines" re-runs the analysis on the same file and counts the line
    page.check("input[name='trace.skip_bad_lines']")
    page.wait_for_function(f"{STATE} === 'done'", timeout=TIMEOUT_MS)
    assert value(page, "detection.bad_lines_skipped")[0] == 1
    ref = trace_analyze({"text": bad.encode(), "skip_bad_lines": True})
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"])
    no_request_left_localhost(page)


@pytest.mark.browser
def test_gzip_upload_without_memory_context(page, server):
    open_tab(page, server, "?memory=none")
    data = gzip.compress(SMALL.read_bytes())
    page.set_input_files("input[type=file]", files=[{"name": "small.jsonl.gz", "mimeType": "application/gzip",
                                                      "buffer": data}])
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    ref = trace_analyze({"text": data})
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"])
    assert value(page, "detection.n_requests")[0] == ref["detection"]["n_requests"]
    # no model/GPU: no GiB axis, no operating point
    assert page.locator("select[name=capacity_axis] option[value=gib]").is_disabled()
    assert page.locator('[data-result="trace.operating_point.token_hit_rate"]').count() == 0
    # the main page gets a model and GPU: refresh() re-analyses with the new memory context
    memory = {"kv_bytes_per_token": 131072, "kv_capacity_tokens": 2048}
    page.evaluate(f"(m) => {{ {STATE} = 'idle'; __trace.memory = m; __trace.tab.refresh(); }}", memory)
    assert wait_done(page) == "done"
    ref = trace_analyze({"text": data, "kv_bytes_per_token": 131072, "operating_capacity_tokens": 2048})
    got, text = value(page, "operating_point.token_hit_rate")
    assert got == pytest.approx(ref["operating_point"]["token_hit_rate"])
    assert not page.locator("select[name=capacity_axis] option[value=gib]").is_disabled()
    page.evaluate(f"{STATE} = 'idle'; __trace.tab.refresh()")        # same context: no re-run
    page.wait_for_timeout(200)
    assert page.evaluate(STATE) == "idle"
    no_request_left_localhost(page)


XSS_NAME = '<img src=x onerror="window.__xss=1">.jsonl'
XSS_VALUE = "<img src=x onerror=window.__xss=2><script>window.__xss=3</script>"


@pytest.mark.browser
def test_untrusted_text_never_becomes_html(page, server):
    open_tab(page, server)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    good = SMALL.read_text().splitlines()
    evil = json.dumps({"timestamp": 1, "input_length": XSS_VALUE, "hash_ids": [1]})
    extra = json.dumps({"timestamp": 2, "input_length": 600, "output_length": 3, "hash_ids": [0, 1],
                        "note": XSS_VALUE})
    text = "\n".join(good[:2] + [evil, extra] + good[2:]) + "\n"
    files = [{"name": XSS_NAME, "mimeType": "text/plain", "buffer": text.encode()}]
    page.set_input_files("input[type=file]", files=files)
    assert wait_done(page) == "error"
    assert "'<img" in page.inner_text("[data-role=trace-error]")         # shown as text
    page.check("input[name='trace.skip_bad_lines']")
    page.wait_for_function(f"{STATE} === 'done'", timeout=TIMEOUT_MS)
    detection = page.inner_text("[data-role=detection]")
    assert "'<img src=x onerror" in detection                          # first bad line, as text
    assert XSS_NAME in detection                                        # the file name, as text
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.locator("#trace-root img, #trace-root script").count() == 0
    no_request_left_localhost(page)


@pytest.mark.browser
def test_cancel_restarts_the_worker_and_it_works_again(page, server):
    open_tab(page, server)
    page.set_input_files("input[type=file]", files=[{"name": "conversation.jsonl", "mimeType": "text/plain",
                                                      "buffer": CONVERSATION.read_bytes()}])
    page.wait_for_function("document.querySelector('.kvt-status-text').textContent.includes('in Python')",
                           timeout=TIMEOUT_MS)
    page.click("button.kvt-cancel")
    assert wait_done(page) == "cancelled"
    page.wait_for_function("document.querySelector('.kvt-status-text').textContent === 'cancelled'",
                           timeout=TIMEOUT_MS)
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done"
    assert value(page, "detection.n_requests")[0] == 3993
    no_request_left_localhost(page)


@pytest.mark.browser
def test_streamed_upload_reports_reading_status_and_matches_cpython(page, server):
    """An upload is handed to the worker as a File and read by slices: the reading status says
    the bytes read and the requests per second; the result equals CPython's on the same bytes."""
    open_tab(page, server, "?memory=none")
    data = CONVERSATION.read_bytes()
    page.evaluate("""() => { window.__statusTexts = [];
        new MutationObserver(() => __statusTexts.push(document.querySelector('.kvt-status-text').textContent))
          .observe(document.querySelector('.kvt-status-text'), {childList: true, characterData: true, subtree: true}); }""")
    page.set_input_files("input[type=file]", files=[{"name": "conversation.jsonl", "mimeType": "text/plain",
                                                      "buffer": data}])
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    status = page.evaluate("__trace.tab.timings.status")
    assert status["bytes_read"] == status["bytes_total"] == len(data)
    assert status["requests"] > 0 and status["requests_per_s"] > 0
    texts = page.evaluate("__statusTexts")
    assert any("requests/s" in x and "MiB" in x for x in texts), texts
    ref = trace_analyze({"text": data})
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"], rel=1e-12)
    assert value(page, "detection.n_requests")[0] == 12031
    assert value(page, "sampling.rate")[0] == 1.0
    no_request_left_localhost(page)


@pytest.mark.browser
def test_scale_options_from_the_url_to_the_request_and_back(page, server):
    """?trace.sampling=0.1&trace.instances=4&trace.routing=round_robin (older names of
    trace.cluster.instances and trace.cluster.routing: old links keep working) fills the controls; a
    fleet with sampling is sampled (its note says so); exact sampling gives CPython's fleet; the URL
    follows, under the rows' keys."""
    open_tab(page, server, "?memory=none&trace.sampling=0.1&trace.instances=4&trace.routing=round_robin&trace.bogus=1")
    assert page.input_value("select[name='trace.sampling']") == "0.1"
    assert page.input_value("input[name='trace.cluster.instances']") == "4"
    assert page.input_value("select[name='trace.cluster.routing']") == "round_robin"
    assert "trace.bogus" in page.inner_text("[data-role=trace-url-notice]")
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")        # a fleet is sampled like one cache
    sref = trace_analyze({"sample": "synthetic", "sampling": 0.1,
                          "cluster": {"instances": 4, "routing": "round_robin"}, "model_curve": True})
    assert value(page, "fleet.instances_used")[0] == sref["fleet"]["instances_used"] == 4
    assert "hashed sample" in page.inner_text("[data-role=fleet]")          # msg.trace_fleet_note_sampled
    sampled_rate = repr(sref["sampling"]["rate"])
    page.select_option("select[name='trace.sampling']", "exact")
    page.wait_for_function(f"{STATE} === 'done' && document.querySelector('[data-result=\"trace.sampling.rate\"]')"
                           f".dataset.value !== '{sampled_rate}'", timeout=TIMEOUT_MS)
    assert "trace.sampling=exact" in page.evaluate("location.search")
    assert "trace.cluster.instances=4" in page.evaluate("location.search")
    assert "trace.instances=" not in page.evaluate("location.search")         # the older name is not written
    ref = trace_analyze({"sample": "synthetic", "sampling": "exact",
                         "cluster": {"instances": 4, "routing": "round_robin"}, "model_curve": True})
    assert value(page, "fleet.instances_used")[0] == ref["fleet"]["instances_used"] == 4
    assert value(page, "fleet.busiest_instance_request_share")[0] == pytest.approx(
        ref["fleet"]["busiest_instance_request_share"])
    fig = "document.querySelector('[data-figure=trace-curve]')"
    fleet_y = page.evaluate(f"{fig}.data.find(t => t.name.startsWith('4 instances')).y")
    xs = ref["fleet"]["capacities_blocks_per_instance"]
    assert fleet_y == pytest.approx([y for x, y in zip(xs, ref["fleet"]["token_hit_rate"]) if x > 0], rel=1e-12)
    # a bad value typed in a box is refused at the box, not sent
    page.fill("input[name='trace.cluster.instances']", "0")
    page.dispatch_event("input[name='trace.cluster.instances']", "change")
    assert page.get_attribute("input[name='trace.cluster.instances']", "aria-invalid") == "true"
    assert "trace.cluster.instances=4" in page.evaluate("location.search")
    # a sampled run: the sampling card states the rate and the error bound
    page.fill("input[name='trace.cluster.instances']", "1")
    page.dispatch_event("input[name='trace.cluster.instances']", "change")
    page.select_option("select[name='trace.sampling']", "0.1")
    ref = trace_analyze({"sample": "synthetic", "sampling": 0.1, "model_curve": True})
    page.wait_for_function(f"{STATE} === 'done' && document.querySelector('[data-result=\"trace.sampling.rate\"]')"
                           f".dataset.value === '{ref['sampling']['rate']!r}'", timeout=TIMEOUT_MS)
    assert value(page, "sampling.error_bound_pp")[0] == pytest.approx(ref["sampling"]["error_bound_pp"], rel=1e-9)
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"], rel=1e-12)
    assert "instances" not in page.evaluate("location.search")         # back at the default
    no_request_left_localhost(page)


@pytest.mark.browser
def test_truncated_gzip_says_where_then_keeps_what_was_read(page, server):
    open_tab(page, server, "?memory=none")
    data = gzip.compress((ROOT / "data" / "traces" / "mooncake" / "synthetic_trace.jsonl").read_bytes())
    cut = data[:len(data) // 2]
    ref = trace_analyze({"text": cut, "keep_partial": True})
    stopped = ref["detection"]["stopped"]
    page.set_input_files("input[type=file]", files=[{"name": "cut.jsonl.gz", "mimeType": "application/gzip",
                                                      "buffer": cut}])
    assert wait_done(page) == "error"
    msg = page.inner_text("[data-role=trace-error]")
    assert f"after line {stopped['line']:,}" in msg and "keep what was read" in msg    # msg.trace_truncated_gzip
    page.check("input[name='trace.keep_partial']")
    page.wait_for_function(f"{STATE} === 'done'", timeout=TIMEOUT_MS)
    assert value(page, "detection.n_requests")[0] == ref["detection"]["n_requests"] == stopped["line"]
    assert value(page, "detection.stopped.line")[0] == stopped["line"]
    assert value(page, "ideal_token_hit_rate")[0] == pytest.approx(ref["ideal_token_hit_rate"], rel=1e-12)
    assert "trace.keep_partial=true" in page.evaluate("location.search")
    no_request_left_localhost(page)


@pytest.mark.browser
def test_trace_tab_in_chinese(page, server):
    """zh-CN: the tab's texts and Python's (detection, counting rule, sessions, sampling) in Chinese."""
    open_tab(page, server, "?lang=zh-CN&memory=none")
    page.click("button[data-sample=synthetic]")
    assert wait_done(page) == "done", page.inner_text("#trace-root")
    text = page.inner_text("#trace-root")
    for zh in ("精确曲线", "计数规则", "按块 LRU", "自动识别", "该格式的默认值", "自动：精确", "统计"):
        assert zh in text, zh
    for en in ("verified", "detected", "format default", "sessions inferred", "Counting rule", "auto: exact"):
        assert en not in text, en
    no_request_left_localhost(page)


@pytest.mark.browser
def test_bad_line_detail_in_chinese(page, server):
    """zh-CN: a bad line's detail (what is wrong, the field, the value) comes from msg.trace_line_*,
    in the error and, once skipped, in the detection card's "first" note."""
    open_tab(page, server, "?lang=zh-CN&memory=none")
    lines = SMALL.read_text().splitlines()
    row = json.loads(lines[2])
    row["input_length"] = "abc"
    bad = "\n".join(lines[:2] + [json.dumps(row)] + lines[3:]) + "\n"
    page.set_input_files("input[type=file]", files=[{"name": "bad.jsonl", "mimeType": "application/x-ndjson",
                                                      "buffer": bad.encode()}])
    assert wait_done(page) == "error"
    msg = page.inner_text("[data-role=trace-error]")
    # msg.trace_bad_bad_value, then msg.trace_line_not_integer with field and value (zh-CN catalogue)
    assert "第 3 行：字段取值错误：字段 'input_length' 不是整数：'abc'" in msg, msg
    assert "is not an integer" not in msg and "line 3" not in msg, msg
    page.check("input[name='trace.skip_bad_lines']")
    page.wait_for_function(f"{STATE} === 'done'", timeout=TIMEOUT_MS)
    assert value(page, "detection.bad_lines_skipped")[0] == 1
    card = page.inner_text("[data-role=detection]")
    assert "（首次：第 3 行：字段 'input_length' 不是整数：'abc'）" in card, card
    assert "is not an integer" not in card, card
    no_request_left_localhost(page)


@pytest.mark.browser
def test_main_page_keeps_trace_options_in_its_links(context, server):
    """index.html: ?trace.<name>= is the trace tab's, not an unknown parameter; the page's own URL
    rewrite keeps it; the tab's controls start from it."""
    from browser_helpers import open_page, wait_js
    pg = open_page(context, f"{server}index.html?tab=trace&trace.sampling=0.01&trace.routing=random&trace.instances=3")
    assert pg.is_hidden("#url-notice")
    wait_js(pg, "document.querySelector('#trace-root select[name=\"trace.sampling\"]')", timeout=TIMEOUT_MS)
    assert pg.input_value("#trace-root select[name='trace.sampling']") == "0.01"
    assert pg.input_value("#trace-root input[name='trace.cluster.instances']") == "3"
    search = pg.evaluate("location.search")
    assert "trace.sampling=0.01" in search and "trace.cluster.routing=random" in search
    assert "trace.cluster.instances=3" in search
    pg.close()


@pytest.mark.nobrowser
def test_bridge_buffers_become_bytes():
    """js/kvcalc_bridge.py under CPython: {"$buffer": i} in the args -> bytes (gzip ok)."""
    spec = importlib.util.spec_from_file_location("kvcalc_bridge_trace", ROOT / "js" / "kvcalc_bridge.py")
    bridge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bridge)
    data = gzip.compress(SMALL.read_bytes())
    ref = trace_analyze({"text": data})
    fn, args = (("trace", [{"text": {"$buffer": 0}}]) if "trace" in bridge.endpoints()
                else ("call", ["trace", {"text": {"$buffer": 0}}]))
    out = json.loads(bridge.call(fn, json.dumps(args), None, [data]))
    assert out["ok"], out
    result = out["result"] if fn == "trace" else out["result"]["result"]
    assert result["ideal_token_hit_rate"] == ref["ideal_token_hit_rate"]
    bad = json.loads(bridge.call(fn, json.dumps(args).replace('"$buffer": 0', '"$buffer": 3'), None, [data]))
    assert bad["ok"] is False and bad["error"]["kind"] == "protocol" and bad["error"]["field"] == "buffers"
