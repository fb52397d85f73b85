"""KV bytes per token, budget and capacity against hand-computed and published values."""

import json
import math

import pytest

from kvcalc.errors import InputError
from kvcalc.memory import (default_runtime_reserve_gib, kv_budget, kv_bytes_per_token,
                           kv_bytes_per_token_breakdown, kv_capacity, max_concurrency, memory_report,
                           weights_bytes)
from kvcalc.presets import get_gpu, get_model
from kvcalc.units import GIB_BYTES

L8 = get_model("meta-llama/Llama-3.1-8B")
L70 = get_model("meta-llama/Llama-3.1-70B")
DSV3 = get_model("deepseek-ai/DeepSeek-V3")
G3 = get_model("google/gemma-3-27b-it")
OSS = get_model("openai/gpt-oss-120b")


# --- reference values (MODEL.md "Memory side") -------------------------------------------

def test_llama31_8b_bf16():
    # 2 (K,V) * 32 layers * 8 KV heads * 128 head_dim * 2 bytes = 131072 (MODEL.md reference)
    assert kv_bytes_per_token(L8, 16) == 131072


def test_deepseek_v3_mla_bf16():
    # (kv_lora_rank 512 + qk_rope_head_dim 64) * 61 layers * 2 bytes = 70272 (MODEL.md reference)
    assert kv_bytes_per_token(DSV3, 16) == 70272
    assert kv_bytes_per_token(get_model("deepseek-ai/DeepSeek-R1"), 16) == 70272
    # Kimi K2 shares the layout: 576 * 61 * 2
    assert kv_bytes_per_token(get_model("moonshotai/Kimi-K2-Instruct"), 16) == 70272


def test_llama31_70b_bf16():
    # 2 * 80 layers * 8 heads * 128 * 2 bytes
    assert kv_bytes_per_token(L70, 16) == 327680


# --- tensor parallelism ---------------------------------------------------------------------

def test_tp_splits_kv_heads():
    # TP=8 on 8 KV heads: one head per GPU -> 327680 / 8
    assert kv_bytes_per_token(L70, 16, tensor_parallel=8) == 40960
    assert kv_bytes_per_token(L70, 16, tensor_parallel=2) == 163840


def test_tp_beyond_kv_heads_replicates():
    # TP=16 with 8 KV heads: each GPU still holds a whole head (replicated), 2*80*1*128*2
    assert kv_bytes_per_token(L70, 16, tensor_parallel=16) == 40960
    # MQA (falcon-7b, 1 KV head) never shrinks: 2*32*1*64*2
    falcon = get_model("tiiuae/falcon-7b")
    assert kv_bytes_per_token(falcon, 16, 4) == kv_bytes_per_token(falcon, 16, 1) == 8192


@pytest.mark.parametrize("tp", [3, 5, 12])
def test_tp_that_does_not_split_heads_is_refused(tp):
    with pytest.raises(InputError) as e:
        kv_bytes_per_token(L70, 16, tensor_parallel=tp)
    assert e.value.field == "tensor_parallel"


@pytest.mark.parametrize("tp", [1, 2, 8, 16])
def test_mla_unchanged_under_tp(tp):
    assert kv_bytes_per_token(DSV3, 16, tensor_parallel=tp) == 70272


# --- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [L8, L70, DSV3, G3])
def test_fp8_halves_fp4_quarters(model):
    bf16 = kv_bytes_per_token(model, 16, context_tokens=4096)
    assert kv_bytes_per_token(model, 8, context_tokens=4096) == bf16 / 2
    assert kv_bytes_per_token(model, 4, context_tokens=4096) == bf16 / 4
    assert kv_bytes_per_token(model, 32, context_tokens=4096) == bf16 * 2


# --- windowed layers ---------------------------------------------------------------------------

def test_gemma3_context_dependent_cost():
    # per layer: 2 * 16 KV heads * 128 * 2 bytes = 8192; 10 global + 52 local (window 1024)
    assert kv_bytes_per_token(G3, 16) == 62 * 8192 == 507904  # no context: all-global bound
    # ctx 512 < window: every layer holds every token
    assert kv_bytes_per_token(G3, 16, context_tokens=512) == 507904
    # ctx 32768: 10*8192 + 52*8192*1024/32768 = 81920 + 13312
    assert kv_bytes_per_token(G3, 16, context_tokens=32768) == 95232
    # ctx 131072: 81920 + 52*8192/128 = 81920 + 3328
    assert kv_bytes_per_token(G3, 16, context_tokens=131072) == 85248


def test_gpt_oss_context_dependent_cost():
    # per layer: 2 * 8 * 64 * 2 = 2048; 18 full + 18 sliding (window 128)
    assert kv_bytes_per_token(OSS, 16) == 36 * 2048 == 73728
    # ctx 4096: 18*2048 + 18*2048*128/4096 = 36864 + 1152
    assert kv_bytes_per_token(OSS, 16, context_tokens=4096) == 38016
    assert kv_bytes_per_token(OSS, 16, context_tokens=128) == 73728


def test_llama4_chunked_and_mistral_all_local():
    scout = get_model("meta-llama/Llama-4-Scout-17B-16E")
    # 12 global * 4096 + 36 chunked * 4096 * 8192/131072
    assert kv_bytes_per_token(scout, 16, context_tokens=131072) == 49152 + 9216
    mistral = get_model("mistralai/Mistral-7B-v0.1")
    # every layer windowed at 4096: 131072 * 4096/8192
    assert kv_bytes_per_token(mistral, 16, context_tokens=8192) == 65536


def test_breakdown_parts_add_up():
    br = kv_bytes_per_token_breakdown(G3, 16, 1, 32768)
    assert br["global_bytes_per_token"] == 81920 and br["local_bytes_per_token"] == 13312
    assert br["total_bytes_per_token"] == 95232
    assert br["total_bytes_per_token_all_global"] == 507904
    assert br["global_layers"] == 10 and br["local_layers"] == 52
    json.dumps(br)


def test_windowed_cost_is_monotone_in_context():
    costs = [kv_bytes_per_token(G3, 16, context_tokens=c) for c in (1, 1024, 2048, 8192, 65536)]
    assert costs == sorted(costs, reverse=True)
    assert all(c <= kv_bytes_per_token(G3, 16) for c in costs)


# --- weights, budget, capacity ------------------------------------------------------------------

def test_weights_bytes():
    assert weights_bytes(L8) == 8.03e9 * 2
    assert weights_bytes(L8, 8) == 8.03e9
    # native fp8: one byte per parameter, except the bf16 embeddings and lm_head
    # (129280 x 7168 each, config.json) at two; fp8 block scales: 4 bytes per 128x128
    # block of the quantized part (DeepSeek-V3 quantization_config.weight_block_size)
    emb = 2 * 129280 * 7168
    assert weights_bytes(DSV3) == pytest.approx(emb * 2 + (671e9 - emb) * (1 + 4 / (128 * 128)), rel=1e-12)


def test_kv_budget_arithmetic():
    a100 = get_gpu("a100-sxm-80gb")  # 80 GiB exactly
    b = kv_budget(a100, L8, 1, 0.9, None, 2.0)
    # 85899345920 * 0.9 - 8.03e9 * 2 - 2 GiB
    assert math.isclose(b["kv_budget_bytes_per_gpu"], 85899345920 * 0.9 - 16.06e9 - 2 * GIB_BYTES)
    assert math.isclose(b["kv_budget_gib_per_gpu"], b["kv_budget_bytes_per_gpu"] / GIB_BYTES)
    assert math.isclose(b["usable_gib_per_gpu"], 72.0)
    # TP divides the weights
    b4 = kv_budget(a100, L70, 4, 0.9, None, 2.0)
    assert math.isclose(b4["weights_gib_per_gpu"], 70.6e9 * 2 / 4 / GIB_BYTES)


def test_default_reserve_scales_with_hidden_size():
    assert default_runtime_reserve_gib(L8) == pytest.approx(1.75)
    assert default_runtime_reserve_gib(L70) == pytest.approx(2.5)
    assert default_runtime_reserve_gib(get_model("meta-llama/Llama-3.1-405B")) == pytest.approx(4.0)


def test_model_larger_than_gpu():
    with pytest.raises(InputError) as e:
        kv_budget(get_gpu("h100-sxm-80gb"), get_model("meta-llama/Llama-3.1-405B"), 1, 0.9)
    assert e.value.field == "model"
    assert "GiB per GPU exceed the usable" in e.value.problem
    assert "tensor_parallel" in e.value.problem
    # and through the report
    with pytest.raises(InputError):
        memory_report(L70, get_gpu("l4-24gb"))
    # the same model fits once split
    assert kv_budget(get_gpu("h100-sxm-80gb"), L70, 4, 0.9)["kv_budget_bytes_per_gpu"] > 0


def test_kv_capacity_floors_to_whole_blocks():
    bpt, block = 131072, 16
    exact = 10 * bpt * block
    assert kv_capacity(exact, bpt, block) == {"blocks": 10, "tokens": 160}
    assert kv_capacity(exact - 1, bpt, block) == {"blocks": 9, "tokens": 144}
    assert kv_capacity(exact + bpt * 15, bpt, block) == {"blocks": 10, "tokens": 160}
    assert kv_capacity(0, bpt, block) == {"blocks": 0, "tokens": 0}
    with pytest.raises(InputError):
        kv_capacity(exact, 0, block)


def test_max_concurrency():
    assert max_concurrency(450352, 8192) == pytest.approx(54.974609375)
    with pytest.raises(InputError):
        max_concurrency(1000, 0)


# --- the report -----------------------------------------------------------------------------------

REPORT_KEYS = {"kv_bytes_per_token", "kv_bytes_per_token_all_global", "kv_budget_gib", "kv_budget_bytes",
               "kv_capacity_tokens", "kv_capacity_blocks", "kv_capacity_gib", "weights_gib_per_gpu",
               "max_concurrency", "model_id", "attention", "notes"}


def test_memory_report_llama8b_h100():
    h100 = get_gpu("h100-sxm-80gb")
    r = memory_report(L8, h100, context_tokens=8192, runtime_reserve_gib=2.0)
    assert REPORT_KEYS <= set(r)
    json.dumps(r)
    assert r["model_id"] == "meta-llama/Llama-3.1-8B" and r["attention"] == "gqa"
    assert r["kv_bytes_per_token"] == 131072 and r["kv_cache_bits"] == 16
    budget = h100.memory_bytes * 0.9 - 8.03e9 * 2 - 2 * GIB_BYTES
    assert r["kv_budget_bytes"] == pytest.approx(budget)
    blocks = math.floor(budget / (131072 * 16))
    assert r["kv_capacity_blocks"] == blocks and r["kv_capacity_tokens"] == blocks * 16
    assert r["kv_capacity_gib"] == pytest.approx(blocks * 16 * 131072 / GIB_BYTES)
    assert r["kv_capacity_gib"] <= r["kv_budget_gib"]
    assert r["max_concurrency"] == pytest.approx(blocks * 16 / 8192)
    assert isinstance(r["notes"], list)


def test_memory_report_without_gpu_and_dtypes():
    r = memory_report(DSV3, None, tensor_parallel=8, kv_cache_dtype="fp8")
    assert r["attention"] == "mla" and r["kv_bytes_per_token"] == 70272 / 2
    assert r["kv_capacity_tokens"] is None and r["kv_budget_gib"] is None
    assert any("MLA" in n for n in r["notes"])
    json.dumps(r)
    with pytest.raises(InputError) as e:
        memory_report(L8, None, kv_cache_dtype="fp7")
    assert e.value.field == "kv_cache_dtype"


def test_memory_report_auto_dtype_is_bf16_for_fp8_checkpoints():
    # vLLM's kv_cache_dtype "auto" follows the activation dtype (bf16), not the fp8 weights
    assert memory_report(DSV3)["kv_cache_bits"] == 16


def test_memory_report_windowed_model_uses_context():
    r = memory_report(G3, get_gpu("h100-sxm-80gb"), context_tokens=32768)
    assert r["kv_bytes_per_token"] == 95232 and r["kv_bytes_per_token_all_global"] == 507904
    assert r["max_concurrency"] == pytest.approx(r["kv_capacity_tokens"] / 32768)
    # default context: the model's max_position_embeddings
    assert memory_report(G3)["context_tokens"] == 131072


def test_memory_report_tp_and_weight_dtype():
    h200 = get_gpu("h200-141gb")
    r = memory_report(DSV3, h200, tensor_parallel=8)
    emb = 2 * 129280 * 7168  # bf16 embeddings + lm_head; the rest fp8 with 128x128-block fp32 scales
    assert r["weights_gib_per_gpu"] == pytest.approx((emb * 2 + (671e9 - emb) * (1 + 4 / 128**2)) / 8 / GIB_BYTES)
    r4 = memory_report(L70, get_gpu("h100-sxm-80gb"), tensor_parallel=2, weight_dtype="fp8")
    emb70 = 2 * 128256 * 8192  # Llama 3.1 70B: untied embeddings stay bf16 under fp8 (per-tensor scales)
    assert r4["weights_gib_per_gpu"] == pytest.approx((emb70 * 2 + (70.6e9 - emb70)) / 2 / GIB_BYTES)
    assert r4["kv_bytes_per_token"] == 163840


def test_memory_report_accepts_ids():
    r = memory_report("meta-llama/Llama-3.1-8B", "a100-sxm-80gb", runtime_reserve_gib=2.0)
    assert r["kv_bytes_per_token"] == 131072 and r["gpu_id"] == "a100-sxm-80gb"
    with pytest.raises(InputError) as e:
        memory_report("meta-llama/Llama-3.1-8B", "no-such-gpu")
    assert e.value.field == "gpu"


# --- context length: vLLM's maximum concurrency and KV per sequence against length ------------

from kvcalc.memory import kv_memory_vs_context, max_concurrency_at_context, vllm_block_size_tokens  # noqa: E402

BUDGET_40_GIB = 40 * GIB_BYTES


def test_max_concurrency_at_context_uniform_model_by_hand():
    # Llama-3.1-8B: one block of 16 tokens over 32 layers = 16 x 131072 B = 2 MiB -> 40 GiB hold 20480 blocks;
    # a 32768-token request needs 32768 / 16 = 2048 blocks -> 10 requests (vLLM's num_blocks / cdiv(N, 16))
    r = max_concurrency_at_context(L8, BUDGET_40_GIB, 16, 32768)
    assert (r["num_blocks"], r["blocks_per_request"], r["max_concurrency"]) == (20480, 2048, 10.0)
    # not a whole block: cdiv rounds the request up (32769 tokens -> 2049 blocks)
    assert max_concurrency_at_context(L8, BUDGET_40_GIB, 16, 32769)["max_concurrency"] == 20480 / 2049
    # whole blocks only: one byte short of 20480 blocks leaves 20479
    assert max_concurrency_at_context(L8, BUDGET_40_GIB - 1, 16, 32768)["num_blocks"] == 20479


def test_max_concurrency_at_context_sliding_window_model_by_hand():
    # Mistral-7B-v0.1: window 4096 on every layer; vLLM's sliding-window spec holds
    # min(window - 1 + max_num_batched_tokens, N) tokens + 1 block: min(4095 + 8192, 32768) = 12287 tokens
    # -> cdiv(12287, 16) + 1 = 769 blocks; the page is the same 2 MiB as Llama-3.1-8B's (8 KV heads x 128)
    mistral = get_model("mistralai/Mistral-7B-v0.1")
    r = max_concurrency_at_context(mistral, BUDGET_40_GIB, 16, 32768)
    assert (r["num_blocks"], r["blocks_per_request"]) == (20480, 769)
    assert r["max_concurrency"] == pytest.approx(20480 / 769)
    # short requests stay under the window: 2048 tokens -> 128 + 1 blocks
    assert max_concurrency_at_context(mistral, BUDGET_40_GIB, 16, 2048)["blocks_per_request"] == 129


def test_max_concurrency_at_context_hybrid_groups_by_hand():
    # Gemma 3 27B: 10 full + 52 sliding (1024) layers; vLLM groups 10 layers (the smaller kind): 1 full group
    # and ceil(52 / 10) = 6 sliding groups; page 16 x 2 x 16 x 128 x 2 = 131072 B; 40 GiB / (131072 x 10)
    # = 32768 blocks; per request at 32768 tokens: 2048 + 6 x (cdiv(min(1023 + 8192, 32768), 16) + 1) = 5510
    r = max_concurrency_at_context(G3, BUDGET_40_GIB, 16, 32768)
    assert (r["group_size_layers"], r["num_blocks"], r["blocks_per_request"]) == (10, 32768, 2048 + 6 * 577)
    assert r["max_concurrency"] == pytest.approx(32768 / 5510)


def test_linear_layers_grow_the_block_and_take_one_page():
    # Qwen3-Next: attention page per token 2 x 2 x 256 x 2 = 2048 B; a Gated DeltaNet state is 1097728 B
    # -> block = 16 x cdiv(1097728, 16 x 2048) = 544 tokens; groups of 12 layers: 1 full + 3 linear groups;
    # page 544 x 2048 B; at 262144 tokens: cdiv(262144, 544) + 3 = 482 + 3 = 485 blocks per request
    qn = get_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert vllm_block_size_tokens(qn, 16) == 544
    r = max_concurrency_at_context(qn, BUDGET_40_GIB, 16, 262144)
    assert (r["group_size_layers"], r["blocks_per_request"]) == (12, 485)
    assert r["num_blocks"] == BUDGET_40_GIB // (544 * 2048 * 12)
    assert r["max_concurrency"] == pytest.approx(r["num_blocks"] / 485)


def test_memory_report_gives_concurrency_at_context_and_at_mean():
    h100 = get_gpu("h100-sxm-80gb")
    r = memory_report(L8, h100, context_tokens=3500, runtime_reserve_gib=2.0, max_model_len_tokens=32768)
    budget_blocks = int(r["kv_budget_bytes"] // (16 * 131072))
    assert r["max_model_len_tokens"] == 32768
    assert r["max_concurrency_at_context"] == budget_blocks / 2048
    assert r["max_concurrency"] == pytest.approx(r["kv_capacity_tokens"] / 3500)


def test_kv_memory_vs_context_series_by_hand():
    # Mistral-7B-v0.1 (window 4096 on all 32 layers; 4096 B per layer per token)
    mistral = get_model("mistralai/Mistral-7B-v0.1")
    s = kv_memory_vs_context(mistral, 16, context_tokens=[1000, 4096, 20000], gpu_resident_tokens=2048,
                             host_link_gb_per_s=64)
    per_layer = 2 * 8 * 128 * 2
    assert s["full_attention_bytes"] == [32 * per_layer * n for n in (1000, 4096, 20000)]
    assert s["sliding_window_bytes"] == [32 * per_layer * min(n, 4096) for n in (1000, 4096, 20000)]
    # paged: (cdiv(min(4095 + 8192, n), 16) + 1) blocks of 16 tokens per layer
    assert s["paged_bytes"] == [32 * per_layer * 16 * (-(-min(12287, n) // 16) + 1) for n in (1000, 4096, 20000)]
    # offload keeps the last 2048 tokens' blocks on the GPU: (128 + 1) blocks per layer
    gpu = 32 * per_layer * 16 * 129
    assert s["offload_gpu_bytes"] == [min(gpu, p) for p in s["paged_bytes"]]
    assert s["offload_cpu_bytes"][2] == s["paged_bytes"][2] - gpu
    assert s["offload_reload_s"][2] == pytest.approx((s["paged_bytes"][2] - gpu) / 64e9)
    # default grid: log-spaced from 256 to the model's max length, increasing
    g = kv_memory_vs_context(G3, 16)["context_tokens"]
    assert g[0] == 256 and g[-1] == 131072 and g == sorted(set(g))
