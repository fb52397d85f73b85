"""The Python core under Pyodide (numpy 2.0.2, wasm32) gives the same numbers as CPython.

RUNTIME.md: host numpy and Pyodide's numpy differ (version, 32-bit intp), so every
model path, the simulator and the figures run through the worker here and are
compared with kvcalc.api in this process: equal to 1e-9 relative (libm differences
only), and the seeded simulator exactly (same seed, same integer counts).
"""

from __future__ import annotations

import math

import pytest

from browser_helpers import open_harness
from kvcalc.api import compute, simulate

pytestmark = pytest.mark.browser

WL = {"conversation_rate_per_s": 1.5, "turns_mean": 6, "gap_mean_s": 45, "user_tokens_per_turn": 300,
      "output_tokens_per_turn": 250, "system_prompt_tokens": 900, "service_time_s": 3}

REQUESTS = [
    {"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": WL,
     "figures": ["curve", "sweeps", "tornado", "heatmap"]},
    {"model": "deepseek-ai/DeepSeek-V3", "gpu": "h200-141gb", "tensor_parallel": 8, "kv_cache_dtype": "fp8",
     "workload": {**WL, "gap_distribution": "lognormal", "gap_lognormal_sigma": 1.4}},
    {"model": "google/gemma-3-27b-it", "gpu": "a100-sxm-80gb", "tensor_parallel": 2,
     "workload": {**WL, "turns_distribution": "fixed", "gap_distribution": "deterministic"}},
    {"workload": WL, "cache": {"capacity_tokens": 3e5, "eviction": "fifo"}},
    {"workload": WL, "cache": {"capacity_tokens": 3e5, "eviction": "ttl", "ttl_s": 30}, "hit_model": "che"},
    {"workload": {**WL, "system_prompt_tokens": 0}, "cache": {"capacity_tokens": 3e5, "block_size_tokens": 1},
     "hit_model": "closed"},
]


def _close(a, b, path="result"):
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.fixture(scope="module")
def harness(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
               else route.abort())
    open_harness(page, server)
    yield page
    context.close()


@pytest.mark.parametrize("i", range(len(REQUESTS)))
def test_compute_in_pyodide_equals_cpython(harness, i):
    req = REQUESTS[i]
    r = harness.evaluate("(req) => __harness.client.compute(req)", req)
    assert r["status"] == "ok", r
    _close(r["result"], compute(req))


def test_simulator_in_pyodide_equals_cpython(harness):
    req = {"workload": WL, "cache": {"capacity_tokens": 3e5}, "seed": 5,
           "simulation": {"n_conversations": 3000, "capacities_tokens": [1e5, 3e5]}}
    r = harness.evaluate("(req) => __harness.client.simulate(req)", req)
    assert r["status"] == "ok", r
    _close(r["result"], simulate(req))
