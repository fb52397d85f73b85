"""Tests written to kill mutants that survived scripts/mutate.py (benefit, units, special, sweeps).

Expected values are derived by hand or by a second method, as in
tests/test_derived_values.py. Relative tolerances of 1e-13 are float-rounding
bounds (a handful of operations, each within 1.1e-16), tight enough to see a
constant changed in its twelfth digit (abs=0: pytest.approx otherwise also
accepts any difference below 1e-12 in absolute terms).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from kvcalc.benefit import DEFAULT_MFU, benefit_report, prefill_flops
from kvcalc.presets import get_gpu, get_model
from kvcalc.special import erfc, lambertw0_of_log, norm_cdf, norm_pdf, norm_ppf

LLAMA_8B = "meta-llama/Llama-3.1-8B"
H100 = "h100-sxm-80gb"


# ----------------------------------------------------------------------------- benefit

def test_benefit_report_keys_and_peak_by_hand():
    m, g = get_model(LLAMA_8B), get_gpu(H100)
    r = benefit_report(m, g, 1, 2000.0, 0.25, 2.0, mfu=0.5)
    assert r["mfu"] == 0.5
    assert r["peak_tflops_per_gpu"] == g.dense_bf16_tflops
    assert r["mean_prompt_tokens"] == 2000.0
    assert r["mean_cached_tokens"] == 500.0                       # 0.25 x 2000
    # the note states the assumptions it was computed with
    assert "50% MFU" in r["note"] and f"{g.dense_bf16_tflops:g} dense TFLOPS" in r["note"]
    # TTFT without cache: FLOPs by hand / (peak x 1e12 x MFU x TP)
    miss = 2 * m.params_active * 2000 + 4 * 32 * 4096 * (2000 * 1999 / 2)
    assert r["prefill_ttft_no_cache_s"] == pytest.approx(miss / (g.dense_bf16_tflops * 1e12 * 0.5), rel=1e-13, abs=0)
    assert r["prefill_gpus_busy_no_cache"] == pytest.approx(2.0 * miss / (g.dense_bf16_tflops * 1e12 * 0.5),
                                                            rel=1e-13, abs=0)


def test_fp8_uses_the_fp8_peak_when_the_gpu_has_one():
    m, g = get_model(LLAMA_8B), get_gpu(H100)
    assert g.dense_fp8_tflops and g.dense_fp8_tflops > g.dense_bf16_tflops
    r8 = benefit_report(m, g, 1, 2000.0, 0.0, 1.0, use_fp8=True)
    r16 = benefit_report(m, g, 1, 2000.0, 0.0, 1.0)
    assert r8["peak_tflops_per_gpu"] == g.dense_fp8_tflops
    # same FLOPs at a higher peak: time scales by the ratio of the peaks
    assert r8["prefill_ttft_no_cache_s"] == pytest.approx(
        r16["prefill_ttft_no_cache_s"] * g.dense_bf16_tflops / g.dense_fp8_tflops, rel=1e-13, abs=0)


def test_everything_cached_has_no_speedup_figure():
    # hit rate 1: no prompt token is computed, prefill FLOPs are 0, the speedup is undefined
    m, g = get_model(LLAMA_8B), get_gpu(H100)
    r = benefit_report(m, g, 1, 3000.0, 1.0, 1.0)
    assert prefill_flops(m, 3000.0, 3000.0) == 0.0
    assert r["prefill_ttft_with_cache_s"] == 0.0 and r["prefill_speedup"] is None
    # a tiny but non-zero miss still gives a (large) finite speedup
    r2 = benefit_report(m, g, 1, 3000.0, 1.0 - 1 / 3000, 1.0)
    assert r2["prefill_speedup"] > 1000
    assert DEFAULT_MFU == 0.4 and r["mfu"] == 0.4


# ----------------------------------------------------------------------------- special functions
# Second methods: Python's math.erfc and statistics.NormalDist (independent implementations),
# the defining identity of Lambert W (w e^w = z) and its published values W(1) = Omega,
# W(e) = 1, W(0) = 0.

_X = np.concatenate([-np.logspace(-6, np.log10(6), 60)[::-1], [0.0], np.logspace(-6, np.log10(9), 60)])


def test_erfc_against_math_erfc():
    got = erfc(_X)
    want = np.array([math.erfc(x) for x in _X])
    assert np.all(np.abs(got / want - 1) <= 1.2e-7)          # the accuracy the docstring states
    assert float(erfc(0.0)) == pytest.approx(1.0, abs=1.2e-7)


def test_norm_cdf_and_pdf_against_the_standard_library():
    nd = NormalDist()
    x = _X[np.abs(_X) < 8]
    assert np.max(np.abs(norm_cdf(x) - np.array([nd.cdf(v) for v in x]))) <= 1e-7
    assert np.allclose(norm_pdf(x), [nd.pdf(v) for v in x], rtol=1e-14, atol=0)


def test_norm_ppf_against_the_standard_library_on_all_three_branches():
    nd = NormalDist()
    # lower tail (p < 0.02425), centre, upper tail (p > 1 - 0.02425), and the branch edges
    p = np.concatenate([np.logspace(-12, np.log10(0.0242), 25), np.linspace(0.0243, 0.9757, 40),
                        1 - np.logspace(np.log10(0.0242), -12, 25), [0.02425, 1 - 0.02425, 0.5]])
    want = np.array([nd.inv_cdf(v) for v in p])
    assert np.allclose(norm_ppf(p), want, rtol=1.2e-9, atol=1e-12)   # Acklam: relative error 1.15e-9


def test_lambert_w_identity_and_published_values():
    z = np.concatenate([[1e-12, 1e-3, 0.1, 0.5, 1.0, math.e, 10.0], np.logspace(2, 300, 20)])
    w = lambertw0_of_log(np.log(z))
    assert np.allclose(w * np.exp(w), z, rtol=1e-11)          # w e^w = z
    assert float(lambertw0_of_log(0.0)) == pytest.approx(0.5671432904097838, rel=1e-12)   # W(1): the omega constant
    assert float(lambertw0_of_log(1.0)) == pytest.approx(1.0, rel=1e-12)                  # W(e) = 1
    # beyond the float range: w + ln w = log z
    for log_z in (800.0, 1e4, 1e8):
        wl = float(lambertw0_of_log(log_z))
        assert wl + math.log(wl) == pytest.approx(log_z, rel=1e-12)
    for log_z in (-30.0, -2.0, 0.0, 0.5, 1.0, 3.0):   # small z: W(z) ~ z - z^2, checked by the identity
        wl = float(lambertw0_of_log(log_z))
        assert wl * math.exp(wl) == pytest.approx(math.exp(log_z), rel=1e-11)


# ----------------------------------------------------------------------------- units

def test_byte_multiples_and_dtype_widths():
    from kvcalc.errors import InputError
    from kvcalc.units import DTYPE_BITS, GB_BYTES, GIB_BYTES, MIB_BYTES, dtype_bits
    assert (GIB_BYTES, MIB_BYTES, GB_BYTES) == (2 ** 30, 2 ** 20, 10 ** 9)
    # IEEE / OCP widths: fp32 32 bits, bf16 and fp16 16, fp8 (e4m3, e5m2) 8, fp6 6, fp4 (nv, mx) 4
    widths = {"fp32": 32, "float32": 32, "bf16": 16, "bfloat16": 16, "fp16": 16, "float16": 16, "half": 16,
              "fp8": 8, "fp8_e4m3": 8, "fp8_e5m2": 8, "int8": 8, "fp6": 6, "fp4": 4, "nvfp4": 4, "mxfp4": 4,
              "int4": 4}
    assert DTYPE_BITS == widths
    for name, bits in widths.items():
        assert dtype_bits("kv_cache_dtype", name.upper()) == bits       # names are case-insensitive
    for bad in ("fp7", "", None, 8):
        with pytest.raises(InputError) as e:
            dtype_bits("kv_cache_dtype", bad)
        # the error names the field, echoes the value, lists every accepted name, says what is wrong
        assert e.value.field == "kv_cache_dtype" and e.value.value == bad
        assert e.value.allowed == "one of " + ", ".join(widths) and e.value.problem == "unknown dtype"


def test_kv_bytes_per_token_follow_the_dtype_width():
    from kvcalc.api import compute
    # Llama-3.1-8B: 2 x 32 layers x 8 KV heads x 128 dims = 65536 elements per token
    for dtype, bits in (("auto", 16), ("fp8", 8), ("fp4", 4), ("fp32", 32)):
        r = compute({"model": LLAMA_8B, "kv_cache_dtype": dtype})
        assert r["kv_bytes_per_token"] == 65536 * bits / 8, dtype
