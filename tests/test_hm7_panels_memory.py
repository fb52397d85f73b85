"""panels (recommender and compare wiring) and memory_answer (engine command inputs): each request
value must reach the number it sets. Expected values are re-derived from the request's own values
(the formula the module documents) or hand-written constants, never copied from a run."""

import pytest

from kvcalc.api import compute
from kvcalc.presets import get_gpu

LLAMA, H100 = "meta-llama/Llama-3.1-8B", "h100-sxm-80gb"
GIB = 2 ** 30
# Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B = 131072 B per token (MODEL.md)
BPT = 131072


def test_recommender_takes_the_requests_tensor_parallel_and_mfu():
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "tensor_parallel": 2, "mfu": 0.25,
                 "recommender": {"candidates": 20, "user_tokens": 2000, "item_tokens": 50}})
    rec = r["recommender"]
    assert rec["mfu"] == 0.25
    # prefill time = FLOPs / (dense bf16 TFLOPS x 1e12 x MFU x TP), TP = 2 GPUs working on it
    flops_per_s = get_gpu(H100).dense_bf16_tflops * 1e12 * 0.25 * 2
    assert rec["prefill_s_user_only"] == pytest.approx(rec["prefill_flops_user_only"] / flops_per_s, rel=1e-12)
    assert rec["prefill_s_with_sharing"] == pytest.approx(rec["prefill_flops_with_sharing"] / flops_per_s, rel=1e-12)
    # KV per GPU with TP 2: half of 131072 B per token; with sharing 2000 + 20 x 50 tokens
    assert rec["kv_gib_per_gpu_with_sharing"] == pytest.approx(3000 * BPT / 2 / GIB, rel=1e-12)
    assert rec["kv_gib_per_gpu_without_sharing"] == pytest.approx(20 * 2050 * BPT / 2 / GIB, rel=1e-12)


def test_recommender_without_a_gpu_has_memory_but_no_times():
    r = compute({"model": LLAMA, "workload": {}, "cache": {"capacity_tokens": 1e5},
                 "recommender": {"candidates": 5, "user_tokens": 100, "item_tokens": 10}})
    rec = r["recommender"]
    assert rec["kv_gib_per_gpu_with_sharing"] == pytest.approx(150 * BPT / GIB, rel=1e-12)
    assert "mfu" not in rec and "prefill_s_user_only" not in rec


def test_compare_keys_and_missing_rates():
    # A has no workload: its hit rates are None, so B - A is None too (in points as well)
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "compare_with": {"model": LLAMA, "gpu": H100}})
    cmp = r["compare"]
    assert cmp["keys"] == ["token_hit_rate", "ideal_token_hit_rate", "request_hit_rate", "cache_capacity_tokens",
                           "cache_capacity_gib", "inverse.kv_gib_per_gpu", "benefit.prefill_speedup",
                           "benefit.prefill_ttft_with_cache_s"]
    assert cmp["difference_pct_points"] == {"token_hit_rate": None, "ideal_token_hit_rate": None,
                                            "request_hit_rate": None}
    assert cmp["a_curve"] == {}
    assert all(v is None for v in cmp["a"].values())                 # a model and GPU alone answer nothing here
    assert all(v is None for v in cmp["difference"].values())


def test_compare_curve_of_a_carries_its_gib():
    a_req = {"model": LLAMA, "gpu": H100, "workload": {}, "tensor_parallel": 2}
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "compare_with": a_req})
    a = compute({**a_req, "figures": ["curve"]})["figures"]["curve"]
    ac = r["compare"]["a_curve"]
    assert set(ac) == {"capacity_tokens", "capacity_gib", "token_hit_rate"}
    # TP 2: 65536 B per token per GPU
    assert ac["capacity_gib"] == pytest.approx([c * BPT / 2 / GIB for c in a["capacity_tokens"]], rel=1e-12)
    d = r["compare"]["difference_pct_points"]["token_hit_rate"]
    assert d == pytest.approx(100 * (r["token_hit_rate"] - r["compare"]["a"]["token_hit_rate"]), rel=1e-12)


def test_engine_commands_carry_the_kv_dtype_and_a_hand_entered_model_path():
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "kv_cache_dtype": "fp8"})
    v = r["engine_commands"]["vllm"]["argv"]
    s = r["engine_commands"]["sglang"]["argv"]
    assert v[v.index("--kv-cache-dtype") + 1] == "fp8"            # vLLM's name
    assert s[s.index("--kv-cache-dtype") + 1] == "fp8_e4m3"       # SGLang's name for fp8
    hand = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8, "head_dim": 128,
            "params_total": 8.03e9, "vocab_size": 128256, "max_position_embeddings": 131072}
    h = compute({"model": {"architecture": hand}, "gpu": H100, "workload": {}})
    assert h["engine_commands"]["vllm"]["argv"][2] == "<model-path>"   # no repo id to serve by
