"""js/kvcalc_bridge.py under host CPython, with the stub api (no browser)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from browser_helpers import ROOT

pytestmark = pytest.mark.nobrowser


@pytest.fixture
def bridge(monkeypatch):
    sys.path.insert(0, str(ROOT / "py"))
    stub_spec = importlib.util.spec_from_file_location(
        "kvcalc.api", ROOT / "tests" / "browser" / "stub_api.py")
    stub = importlib.util.module_from_spec(stub_spec)
    stub_spec.loader.exec_module(stub)
    monkeypatch.setitem(sys.modules, "kvcalc.api", stub)
    spec = importlib.util.spec_from_file_location("kvcalc_bridge", ROOT / "js" / "kvcalc_bridge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    sys.path.remove(str(ROOT / "py"))


def call(bridge, fn, args, progress=None):
    return json.loads(bridge.call(fn, json.dumps(args), progress))


def test_ok_input_error_and_whitelist(bridge):
    assert call(bridge, "compute", [{"x": [1, 2]}])["result"]["sum"] == 3
    err = call(bridge, "compute", [{"bad": 1}])["error"]
    assert err["kind"] == "input" and err["field"] == "bad"
    assert call(bridge, "_private", [])["error"]["kind"] == "protocol"
    assert call(bridge, "json", [])["error"]["kind"] == "protocol"
    assert call(bridge, "echo", {"not": "a list"})["error"]["field"] == "args"
    assert bridge.endpoints() == ["boom", "compute", "echo", "not_json", "simulate"]


def test_progress_and_internal_errors(bridge):
    seen = []
    assert call(bridge, "simulate", [{"steps": 4}], seen.append)["ok"]
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert "ZeroDivisionError" in call(bridge, "boom", [])["error"]["message"]
    assert "not JSON" in call(bridge, "not_json", [])["error"]["message"]


def test_bridge_accepts_the_real_api_whitelist():
    """The real kvcalc.api (when present) exposes compute through the bridge's whitelist."""
    if not (ROOT / "py" / "kvcalc" / "api.py").is_file():
        pytest.skip("kvcalc.api does not exist yet")
    sys.path.insert(0, str(ROOT / "py"))
    try:
        spec = importlib.util.spec_from_file_location("kvcalc_bridge_real", ROOT / "js" / "kvcalc_bridge.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert "compute" in mod.endpoints()
        assert json.loads(mod.call("compute", "[{}]"))["error"]["kind"] == "input"
    finally:
        sys.path.remove(str(ROOT / "py"))


def test_args_nested_too_deep_is_a_protocol_error(bridge):
    # 100k levels overflow json.loads (RecursionError): answered in-band, never raised.
    deep = "[" * 100_000 + "]" * 100_000
    reply = json.loads(bridge.call("compute", deep, None))
    assert reply["ok"] is False and reply["error"]["kind"] == "protocol"
    assert reply["error"]["field"] == "args"
