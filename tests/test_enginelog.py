"""Engine start-up logs: real vLLM and SGLang lines (each cited) parsed, and
compared with the calculator's estimate for the same configuration."""

import pytest

from kvcalc.enginelog import EXPECTED_LINES, compare_with_estimate, parse_engine_log
from kvcalc.errors import InputError
from kvcalc.memory import kv_bytes_per_token, max_concurrency, max_concurrency_at_context, memory_report
from kvcalc.presets import get_model

# https://github.com/vllm-project/vllm/issues/21348 (Qwen3-235B-A22B-FP8, TP 4 on H100)
VLLM_QWEN3_235B = """INFO 07-22 10:01:02 [gpu_worker.py:255] Available KV cache memory: 8.11 GiB
INFO 07-22 10:01:02 [kv_cache_utils.py:833] GPU KV cache size: 178,880 tokens"""
SGLANG_QWEN3_235B = "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB"
# https://github.com/vllm-project/vllm/pull/13596 (the v1 log format, as shown in the PR)
VLLM_PR_13596 = """INFO 02-19 23:56:55 kv_cache_utils.py:524] GPU KV cache size: 2,042,016 tokens
INFO 02-19 23:56:55 kv_cache_utils.py:527] Maximum concurrency for 2,048 tokens per request: 997.08x"""
# https://github.com/vllm-project/vllm/issues/10517 (v0, meta-llama/Llama-3.1-8B-Instruct on an RTX 3090)
VLLM_V0_LLAMA8B = """Loading model weights took 14.9888 GB
Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB peak_torch_memory=17.06GiB memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB kv_cache_size=3.81GiB gpu_memory_utilization=0.90
GPU blocks: 1952, # CPU blocks: 2048
Maximum concurrency for 20000 tokens per request: 1.56x"""
# https://github.com/kyuz0/amd-strix-halo-vllm-toolboxes/pull/5 (Qwen3-4B)
VLLM_KYUZ0 = """(EngineCore_0 pid=3856547) INFO 10-26 21:47:46 [gpu_model_runner.py:1975] Model loading took 7.6785 GiB and 2.195456 seconds
(EngineCore_0 pid=3856547) INFO 10-26 21:48:00 [gpu_worker.py:276] Available KV cache memory: 18.38 GiB"""
# https://github.com/vllm-project/vllm/pull/12569 (Llama-3.1-70B w8a8, max-model-len 2048)
VLLM_PR_12569 = """INFO 01-30 03:18:12 gpu_model_runner.py:848] Loading model weights took 67.7229 GB
INFO 01-30 03:19:14 kv_cache_utils.py:395] # GPU blocks: 1381
INFO 01-30 03:19:14 kv_cache_utils.py:398] Maximum concurrency for 2048 tokens per request: 10.79x"""


def test_vllm_v1_lines():
    p = parse_engine_log(VLLM_QWEN3_235B)
    assert p["engine"] == "vllm" and p["available_kv_cache_gib"] == 8.11 and p["kv_cache_tokens"] == 178880
    assert p["kv_cache_bytes_per_token"] == pytest.approx(8.11 * 2**30 / 178880)
    assert len(p["lines"]) == 2


def test_vllm_tokens_and_concurrency_agree_with_the_uniform_formula():
    p = parse_engine_log(VLLM_PR_13596)
    assert p["kv_cache_tokens"] == 2042016 and p["max_concurrency_context_tokens"] == 2048
    assert p["max_concurrency"] == 997.08
    # vLLM prints tokens / max_model_len with two decimals
    assert max_concurrency(p["kv_cache_tokens"], 2048) == pytest.approx(p["max_concurrency"], abs=0.005)


def test_vllm_v0_lines_and_our_concurrency_formula():
    p = parse_engine_log(VLLM_V0_LLAMA8B)
    assert p["gpu_blocks"] == 1952 and p["weights_gib"] == 14.9888 and p["available_kv_cache_gib"] == 3.81
    assert (p["max_concurrency_context_tokens"], p["max_concurrency"]) == (20000, 1.56)
    # Llama-3.1-8B: a block of 16 tokens over 32 layers is 16 x 131072 B = 2 MiB; a budget of exactly
    # 1952 blocks gives vLLM's 1952 / cdiv(20000, 16) = 1.5616
    l8 = get_model("meta-llama/Llama-3.1-8B")
    r = max_concurrency_at_context(l8, 1952 * 16 * 131072, 16, 20000)
    assert r["num_blocks"] == 1952 and r["max_concurrency"] == pytest.approx(1.56, abs=0.005)
    # and the engine's 3.81 GiB holds 1950.7 such blocks: the same figure to the printed precision
    assert 3.81 * 2**30 / (16 * 131072) == pytest.approx(1952, rel=0.002)


def test_model_loading_line_and_blocks():
    assert parse_engine_log(VLLM_KYUZ0)["weights_gib"] == 7.6785
    p = parse_engine_log(VLLM_PR_12569)
    assert p["gpu_blocks"] == 1381 and p["weights_gib"] == 67.7229
    assert p["gpu_blocks"] * 16 / 2048 == pytest.approx(p["max_concurrency"], abs=0.005)


def test_sglang_line_matches_our_bytes_per_token():
    p = parse_engine_log(SGLANG_QWEN3_235B)
    assert p["engine"] == "sglang" and p["kv_cache_tokens"] == 367404
    assert p["available_kv_cache_gib"] == pytest.approx(16.46)
    # Qwen3-235B-A22B: 94 layers x K,V x (4 KV heads / TP 4) x 128 x 2 bytes = 48128 B per token per GPU;
    # SGLang's sizes are printed to 0.01 GB (+-0.06 %)
    ours = kv_bytes_per_token(get_model("Qwen/Qwen3-235B-A22B"), 16, 4)
    assert ours == 94 * 2 * 1 * 128 * 2
    assert p["kv_cache_bytes_per_token"] == pytest.approx(ours, rel=0.001)


def test_vllm_line_of_the_same_run_within_its_block_rounding():
    # vLLM's 8.11 GiB / 178,880 tokens is 1.1 % above 48128 B/token: its printed memory is rounded and
    # the pool is cut into whole blocks of every layer; 2 % covers both
    ours = kv_bytes_per_token(get_model("Qwen/Qwen3-235B-A22B"), 16, 4)
    assert parse_engine_log(VLLM_QWEN3_235B)["kv_cache_bytes_per_token"] == pytest.approx(ours, rel=0.02)


def test_compare_and_adopt():
    model = get_model("Qwen/Qwen3-235B-A22B")
    rep = memory_report(model, "h100-sxm-80gb", tensor_parallel=4, weight_dtype="fp8", context_tokens=4096)
    c = compare_with_estimate(parse_engine_log(VLLM_QWEN3_235B), rep)
    assert c["adopt"]["capacity_tokens"] == 178880
    # reserve implied = usable - weights - engine KV (all GiB per GPU)
    assert c["adopt"]["runtime_reserve_gib"] == pytest.approx(rep["usable_gib_per_gpu"] - rep["weights_gib_per_gpu"] - 8.11)
    row = c["rows"]["kv_cache_tokens"]
    assert row["relative_difference"] == pytest.approx((rep["kv_capacity_tokens"] - 178880) / 178880)
    # adopting the implied reserve reproduces the engine's KV memory exactly
    rep2 = memory_report(model, "h100-sxm-80gb", tensor_parallel=4, weight_dtype="fp8", context_tokens=4096,
                         runtime_reserve_gib=c["adopt"]["runtime_reserve_gib"])
    assert rep2["kv_budget_gib"] == pytest.approx(8.11, rel=1e-12)


def test_unparseable_text_says_what_it_expected():
    with pytest.raises(InputError) as e:
        parse_engine_log("INFO starting server on port 8000\nall good")
    assert e.value.field == "engine_log" and e.value.allowed == EXPECTED_LINES
    assert "Available KV cache memory" in str(e.value) and "KV Cache is allocated" in str(e.value)
    with pytest.raises(InputError) as e:
        parse_engine_log(VLLM_PR_13596 + "\n" + SGLANG_QWEN3_235B)
    assert e.value.problem == "mixed engine logs"
    with pytest.raises(InputError):
        parse_engine_log(None)
