"""What a hit buys: prefill FLOPs and TTFT, checked by hand."""

import pytest

from kvcalc.api import compute
from kvcalc.benefit import benefit_report, prefill_flops
from kvcalc.presets import get_gpu, get_model


def test_prefill_flops_by_hand():
    m = get_model("meta-llama/Llama-3.1-8B")
    # dense: 2 FLOPs per active parameter per token; attention: 4 * layers * (32 heads * 128) * sum of positions
    expected = 2 * m.params_active * 1000 + 4 * 32 * 4096 * (1000 * 999 / 2)
    assert prefill_flops(m, 1000) == pytest.approx(expected, rel=1e-12)
    # caching the first 600 tokens leaves positions 600..999: sum = (1000*999 - 600*599)/2
    expected_hit = 2 * m.params_active * 400 + 4 * 32 * 4096 * (1000 * 999 - 600 * 599) / 2
    assert prefill_flops(m, 1000, 600) == pytest.approx(expected_hit, rel=1e-12)


def test_no_hits_no_speedup_and_ttft_scales_with_tp():
    m, g = get_model("meta-llama/Llama-3.1-8B"), get_gpu("h100-sxm-80gb")
    r1 = benefit_report(m, g, 1, 2000, 0.0, 1.0)
    r2 = benefit_report(m, g, 2, 2000, 0.0, 1.0)
    assert r1["prefill_speedup"] == pytest.approx(1.0)
    assert r2["prefill_ttft_no_cache_s"] == pytest.approx(r1["prefill_ttft_no_cache_s"] / 2)
    # 8B-class, 2,000 tokens at 40 % of 989 TFLOPS: about 2*8e9*2000 / 3.96e14 = 0.08 s
    assert 0.06 < r1["prefill_ttft_no_cache_s"] < 0.1


def test_compute_reports_benefit_with_a_gpu():
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": {}})
    b = r["benefit"]
    assert b["mean_cached_tokens"] == pytest.approx(r["token_hit_rate"] * b["mean_prompt_tokens"])
    assert b["prefill_ttft_with_cache_s"] < b["prefill_ttft_no_cache_s"]
