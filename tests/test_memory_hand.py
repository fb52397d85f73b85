"""KV memory against hand arithmetic from published config.json values (issue #10, mutation testing).

Every expected number below is worked out in the comment beside it from the model's published
config (layers, KV heads, head_dim, MLA ranks, windows, linear-attention state sizes) or from
vLLM's allocation rules as cited in kvcalc.memory; none is copied from the code's output.
"""

import math

import pytest

from kvcalc.errors import InputError
from kvcalc.memory import (kv_budget, kv_bytes_per_token, kv_bytes_per_token_breakdown, kv_cache_bits, kv_capacity,
                           kv_heads_per_gpu, kv_memory_vs_context, linear_state_bytes_per_sequence,
                           max_concurrency, max_concurrency_at_context, memory_report, vllm_block_size_tokens,
                           weights_breakdown)
from kvcalc.presets import get_gpu, get_model
from kvcalc.units import GIB_BYTES

L8 = get_model("meta-llama/Llama-3.1-8B")
L70 = get_model("meta-llama/Llama-3.1-70B")
DSV3 = get_model("deepseek-ai/DeepSeek-V3")
G3 = get_model("google/gemma-3-27b-it")
OSS = get_model("openai/gpt-oss-120b")
QN = get_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
MINIMAX = get_model("MiniMaxAI/MiniMax-M1-80k")
MISTRAL = get_model("mistralai/Mistral-7B-v0.1")

# Qwen3-Next-80B-A3B config.json: 48 layers, full_attention_interval 4 (12 full, 36 Gated DeltaNet),
# 2 KV heads x head_dim 256; linear_num_key_heads 16, linear_num_value_heads 32, key/value head dim 128,
# conv kernel 4. One DeltaNet layer's state in bf16:
#   conv  (4 - 1) x (2 x 16 x 128 + 32 x 128) = 3 x 8192 = 24576 elements
#   recurrent 32 x 128 x 128                  = 524288 elements
#   (24576 + 524288) x 2 bytes                = 1097728 bytes
QN_STATE_PER_LAYER = (3 * (2 * 16 * 128 + 32 * 128) + 32 * 128 * 128) * 2


def _arch(**kw):
    return get_model({"architecture": kw})


# --- bytes per token --------------------------------------------------------------------------------

def test_hybrid_linear_state_by_hand():
    assert QN_STATE_PER_LAYER == 1097728
    assert QN.linear_state_bytes_per_layer == QN_STATE_PER_LAYER
    # 36 linear layers per sequence; TP splits the heads, so each GPU holds 1/TP of the state
    assert linear_state_bytes_per_sequence(QN) == 36 * 1097728
    assert linear_state_bytes_per_sequence(QN, 2) == 36 * 1097728 / 2
    # per-token KV only on the 12 full layers: 12 x 2 x 2 heads x 256 x 2 bytes = 24576
    assert kv_bytes_per_token(QN, 16) == 12 * 2 * 2 * 256 * 2 == 24576
    # MiniMax-M1 (80 layers, attn_type_list: every 8th softmax): 10 x 2 x 8 x 128 x 2 = 40960 B/token;
    # lightning state 64 heads x 128 x 128 x 2 bytes = 2 MiB per layer, 70 layers
    assert kv_bytes_per_token(MINIMAX, 16) == 10 * 2 * 8 * 128 * 2
    assert linear_state_bytes_per_sequence(MINIMAX) == 70 * 64 * 128 * 128 * 2


def test_breakdown_reports_heads_layers_and_context():
    # Llama-3.1-70B at TP 4: 8 KV heads / 4 = 2 per GPU; per layer 2 x 2 x 128 x 2 = 1024 B
    br = kv_bytes_per_token_breakdown(L70, 16, 4, 1000)
    assert br["kv_heads_per_gpu"] == 2 and br["bytes_per_layer_per_token"] == 1024
    assert (br["global_layers"], br["local_layers"]) == (80, 0)
    assert br["global_bytes_per_token"] == br["total_bytes_per_token"] == 80 * 1024
    assert br["local_bytes_per_token"] == 0 and br["context_tokens"] == 1000
    # MLA: one latent per token, one "head" on every GPU, (512 + 64) x 2 bytes per layer
    br = kv_bytes_per_token_breakdown(DSV3, 16, 8)
    assert br["kv_heads_per_gpu"] == 1 and br["bytes_per_layer_per_token"] == 576 * 2
    assert br["context_tokens"] is None


def test_gemma3_local_layers_at_and_around_the_window():
    # Gemma 3 27B: 52 local layers (window 1024), 8192 B per layer per token (2 x 16 x 128 x 2).
    # ctx = window: every local layer still holds every token -> 62 x 8192
    assert kv_bytes_per_token(G3, 16, context_tokens=1024) == 62 * 8192
    # ctx = 1025: local layers hold 1024 of 1025 tokens -> 10 x 8192 + 52 x 8192 x 1024 / 1025
    assert kv_bytes_per_token(G3, 16, context_tokens=1025) == pytest.approx(
        10 * 8192 + 52 * 8192 * 1024 / 1025, rel=1e-15)
    br = kv_bytes_per_token_breakdown(G3, 16, 1, 2048)
    assert br["local_bytes_per_token"] == 52 * 8192 / 2           # half of each sequence kept
    assert br["local_bytes_per_token_all_global"] == 52 * 8192


def test_mla_bits_and_tp_refusals():
    # DeepSeek-V2-Lite (MLA, rank 512 + rope 64, 27 layers): 27 x 576 x 1 byte in fp8
    assert kv_bytes_per_token(get_model("deepseek-ai/DeepSeek-V2-Lite"), 8) == 27 * 576
    # kv dtype width limits: 1 and 64 bits accepted, 0 and 65 refused naming the field
    assert kv_bytes_per_token(L8, 1) == 131072 / 16
    assert kv_bytes_per_token(L8, 64) == 131072 * 4
    for bad in (0.5, 65):
        with pytest.raises(InputError) as e:
            kv_bytes_per_token(L8, bad)
        assert e.value.field == "kv_cache_dtype"


@pytest.mark.parametrize("model,tp,heads", [
    (L70, 1, 8), (L70, 2, 4), (L70, 8, 1), (L70, 16, 1), (L70, 32, 1),
    (get_model("tiiuae/falcon-7b"), 8, 1),   # MQA: one head, replicated on every GPU
    (get_model("THUDM/glm-4-9b"), 2, 1),     # 2 KV heads over TP 2
    (get_model("THUDM/glm-4-9b"), 4, 1),     # TP 4 > 2 heads, 4 % 2 == 0: replicated
])
def test_kv_heads_per_gpu_by_hand(model, tp, heads):
    assert kv_heads_per_gpu(model, tp) == heads


@pytest.mark.parametrize("tp", [3, 6, 12, 20])
def test_uneven_head_split_names_the_field_and_the_heads(tp):
    # 8 KV heads: 3 and 6 do not divide 8; 12 and 20 are above 8 but not multiples of it
    with pytest.raises(InputError) as e:
        kv_heads_per_gpu(L70, tp)
    assert e.value.field == "tensor_parallel" and e.value.code == "heads_do_not_split"
    assert e.value.params == {"kv_heads": 8} and e.value.value == tp
    assert e.value.allowed == "a divisor of the model's 8 KV heads, or a multiple of it"
    assert e.value.problem == "heads do not split evenly"


# --- the chart: KV per sequence against length --------------------------------------------------------

def test_kv_memory_vs_context_hybrid_by_hand():
    # Qwen3-Next at TP 2: 1 KV head per GPU -> 2 x 1 x 256 x 2 = 1024 B per attention layer per token;
    # state per layer 1097728 / 2 = 548864 B -> vLLM block 16 x cdiv(548864, 16 x 1024) = 16 x 34 = 544 tokens.
    # 12 attention layers, 36 x 548864 B of state per sequence.
    s = kv_memory_vs_context(QN, 16, tensor_parallel=2, context_tokens=[1000, 262144])
    state = 36 * 548864
    assert s["block_size_tokens"] == 544 and s["linear_state_bytes"] == state
    assert s["gpu_resident_tokens"] == 8192 and s["host_link_gb_per_s"] is None
    assert s["full_attention_bytes"] == [12 * 1024 * 1000 + state, 12 * 1024 * 262144 + state]
    assert s["sliding_window_bytes"] == s["full_attention_bytes"]        # no windowed layer
    # paged: cdiv(1000, 544) = 2 and cdiv(262144, 544) = 482 blocks per attention layer
    assert s["paged_bytes"] == [12 * 2 * 544 * 1024 + state, 12 * 482 * 544 * 1024 + state]
    # offload keeps the last 8192 tokens (default): cdiv(8192, 544) = 16 blocks per layer on the GPU
    assert s["offload_gpu_bytes"] == [s["paged_bytes"][0], 12 * 16 * 544 * 1024 + state]
    assert s["offload_cpu_bytes"] == [0, 12 * (482 - 16) * 544 * 1024]
    assert s["offload_reload_s"] == [None, None]


def test_kv_memory_vs_context_default_grid():
    # 40 log-spaced lengths from 256 to the model's maximum; the ratio 512^(1/39) = 1.17 keeps them distinct
    g = kv_memory_vs_context(L8, 16)["context_tokens"]
    assert len(g) == 40 and g[0] == 256 and g[-1] == 131072
    assert g[1] == round(256 * 512 ** (1 / 39))
    assert len(kv_memory_vs_context(L8, 16, points=2)["context_tokens"]) == 2
    # no maximum given: up to 131072; a maximum under 512 is raised to 512 (the grid spans at least 2x)
    assert kv_memory_vs_context(_arch(num_layers=2, hidden_size=256, num_attention_heads=2,
                                      params_total=1e6), 16)["context_tokens"][-1] == 131072
    small = _arch(num_layers=2, hidden_size=256, num_attention_heads=2, params_total=1e6, max_position_embeddings=300)
    g = kv_memory_vs_context(small, 16)["context_tokens"]
    assert g[0] == 256 and g[-1] == 512 and len(g) == 40   # 2^(1/39) steps of >= 4.5 tokens stay distinct


def test_kv_memory_vs_context_sliding_window_bytes_for_a_mixed_model():
    # gpt-oss-120b: 18 full + 18 sliding (128) layers, 2 x 8 x 64 x 2 = 2048 B per layer per token, TP 1.
    # at 1000 tokens: full 36 x 2048 x 1000; sliding 18 x 2048 x 1000 + 18 x 2048 x 128
    s = kv_memory_vs_context(OSS, 16, context_tokens=[1000], gpu_resident_tokens=100, max_num_batched_tokens=64)
    assert s["full_attention_bytes"] == [36 * 2048 * 1000]
    assert s["sliding_window_bytes"] == [18 * 2048 * 1000 + 18 * 2048 * 128]
    # paged with B = 64: full cdiv(1000, 16) = 63 blocks; sliding cdiv(min(127 + 64, 1000), 16) + 1 = 12 + 1
    assert s["paged_bytes"] == [(18 * 63 + 18 * 13) * 16 * 2048]
    # resident 100 tokens: full cdiv(100, 16) = 7; sliding cdiv(min(191, 100), 16) + 1 = 8
    assert s["offload_gpu_bytes"] == [(18 * 7 + 18 * 8) * 16 * 2048]


@pytest.mark.parametrize("kwargs,field", [
    ({"gpu_resident_tokens": 0}, "gpu_resident_tokens"),
    ({"gpu_resident_tokens": 10**9 + 1}, "gpu_resident_tokens"),
    ({"max_num_batched_tokens": 0}, "max_num_batched_tokens"),
    ({"max_num_batched_tokens": 10**7 + 1}, "max_num_batched_tokens"),
    ({"points": 1}, "points"),
    ({"points": 1001}, "points"),
    ({"context_tokens": []}, "context_tokens"),
    ({"context_tokens": 4096}, "context_tokens"),
    ({"context_tokens": [1] * 1001}, "context_tokens"),
    ({"context_tokens": [4096, 0]}, "context_tokens[1]"),
])
def test_kv_memory_vs_context_refuses_bad_input(kwargs, field):
    with pytest.raises(InputError) as e:
        kv_memory_vs_context(L8, 16, **kwargs)
    assert e.value.field == field


def test_kv_memory_vs_context_accepts_the_range_ends():
    s = kv_memory_vs_context(L8, 16, context_tokens=[16] * 1000, gpu_resident_tokens=10**9,
                             max_num_batched_tokens=10**7, points=1000)
    assert len(s["context_tokens"]) == 1000 and s["gpu_resident_tokens"] == 10**9
    s = kv_memory_vs_context(L8, 16, context_tokens=[16.5], gpu_resident_tokens=1, max_num_batched_tokens=1)
    # 16.5 tokens round up to 17 -> 2 blocks of 16 over 32 layers; 1 resident token -> 1 block on the GPU
    assert s["context_tokens"] == [17] and s["paged_bytes"] == [32 * 2 * 16 * 4096]
    assert s["offload_gpu_bytes"] == [32 * 1 * 16 * 4096] and s["offload_cpu_bytes"] == [32 * 16 * 4096]
    assert len(kv_memory_vs_context(L8, 16, points=1000)["context_tokens"]) > 900


# --- capacity, concurrency: the arithmetic and the edges of every argument ---------------------------

def test_kv_capacity_default_block_and_fractional_inputs():
    # default block 16: a 1 GiB budget at 131072 B/token holds 2^30 / (131072 x 16) = 512 blocks
    assert kv_capacity(GIB_BYTES, 131072) == {"blocks": 512, "tokens": 8192}
    # sub-byte and sub-unit values are legal (fp4 KV on a tiny model; a budget under one byte)
    assert kv_capacity(1e6, 0.5, 16) == {"blocks": 125000, "tokens": 2000000}
    assert kv_capacity(0.5, 0.5, 1) == {"blocks": 1, "tokens": 1}
    assert kv_capacity(1e6, 1000, 4096) == {"blocks": 0, "tokens": 0}


@pytest.mark.parametrize("args,field", [
    ((-1, 131072, 16), "kv_budget_bytes"),
    ((1e9, 0, 16), "kv_bytes_per_token"),
    ((1e9, -1, 16), "kv_bytes_per_token"),
    ((1e9, 131072, 0), "cache.block_size_tokens"),
    ((1e9, 131072, 4097), "cache.block_size_tokens"),
])
def test_kv_capacity_refusals_name_the_field(args, field):
    with pytest.raises(InputError) as e:
        kv_capacity(*args)
    assert e.value.field == field


def test_max_concurrency_edges():
    assert max_concurrency(0.5, 0.25) == 2.0      # fractions are legal on both sides
    assert max_concurrency(0, 100) == 0.0
    with pytest.raises(InputError) as e:
        max_concurrency(-1, 100)
    assert e.value.field == "kv_capacity_tokens"
    with pytest.raises(InputError) as e:
        max_concurrency(100, 0)
    assert e.value.field == "context_tokens"


def test_max_concurrency_at_context_block_size_and_batched_tokens():
    # Llama-3.1-8B with 32-token blocks: a layer's page is 32 tokens x 4096 B = 128 KiB, one group of all
    # 32 layers = 4 MiB -> 40 GiB hold 10240 blocks; a request needs cdiv(32768, 32) = 1024 -> 10 requests
    r = max_concurrency_at_context(L8, 40 * GIB_BYTES, 16, 32768, block_size_tokens=32)
    assert r["block_size_tokens"] == 32 and r["group_size_layers"] == 32
    assert r["num_blocks"] == 10240
    assert r["blocks_per_request"] == 1024 and r["bytes_per_request"] == 1024 * 32 * 32 * 4096
    assert r["max_concurrency"] == r["num_blocks"] / 1024
    # Mistral-7B (window 4096 everywhere) with max_num_batched_tokens 1: cdiv(min(4095 + 1, 32768), 16) + 1
    # = 257 blocks per request; at the top of the range (1e7) the window term caps at the request length
    assert max_concurrency_at_context(MISTRAL, 40 * GIB_BYTES, 16, 32768,
                                      max_num_batched_tokens=1)["blocks_per_request"] == 257
    assert max_concurrency_at_context(MISTRAL, 40 * GIB_BYTES, 16, 32768,
                                      max_num_batched_tokens=10**7)["blocks_per_request"] == 2048 + 1
    # a budget under one page: no block at all, concurrency 0; a fractional budget is legal
    assert max_concurrency_at_context(L8, 0.5, 16, 100)["max_concurrency"] == 0


@pytest.mark.parametrize("kwargs,field", [
    ({"kv_budget_bytes": -1}, "kv_budget_bytes"),
    ({"context_tokens": 0}, "context_tokens"),
    ({"context_tokens": 1e8 + 1}, "context_tokens"),
    ({"max_num_batched_tokens": 0}, "max_num_batched_tokens"),
    ({"max_num_batched_tokens": 10**7 + 1}, "max_num_batched_tokens"),
    ({"block_size_tokens": 0}, "cache.block_size_tokens"),
    ({"tensor_parallel": 3}, "tensor_parallel"),
])
def test_max_concurrency_at_context_refusals_name_the_field(kwargs, field):
    args = {"model": L70, "kv_budget_bytes": 40 * GIB_BYTES, "kv_dtype_bits": 16, "context_tokens": 4096, **kwargs}
    with pytest.raises(InputError) as e:
        max_concurrency_at_context(**args)
    assert e.value.field == field


@pytest.mark.parametrize("pattern,full,local,group,per_request", [
    # 9 layers, 5 local + 4 global: 5 is not below 1.25 x 4, so groups of 4 (vLLM's min layers per kind):
    # local takes ceil(5/4) = 2 groups, global 1; at 32768 tokens (window 1024, B 8192):
    # 2 x (cdiv(1023 + 8192, 16) + 1) + 1 x 2048 = 2 x 577 + 2048
    (["local"] * 5 + ["global"] * 4, 4, 5, 4, 2 * 577 + 2048),
    # 15 layers, 8 local + 7 global: 8 < 1.25 x 7 = 8.75, so groups of 8 (the larger kind): 1 group each
    (["local"] * 8 + ["global"] * 7, 7, 8, 8, 577 + 2048),
])
def test_layer_groups_follow_vllms_rule_at_its_boundary(pattern, full, local, group, per_request):
    m = _arch(num_layers=len(pattern), hidden_size=1024, num_attention_heads=8, num_kv_heads=8, head_dim=128,
              window_tokens=1024, layer_pattern=pattern, params_total=1e9)
    assert (m.global_layers, m.local_layers) == (full, local)
    # page per layer: 16 tokens x 2 x 8 x 128 x 2 bytes = 65536 B; a group block = group x 65536 B
    budget = 100 * group * 65536
    r = max_concurrency_at_context(m, budget, 16, 32768)
    assert r["group_size_layers"] == group and r["num_blocks"] == 100
    assert r["blocks_per_request"] == per_request
    assert r["bytes_per_request"] == per_request * group * 65536


def test_hybrid_block_grows_only_when_needed():
    # Qwen3-Next at TP 1: attention page per token 2 x 2 x 256 x 2 = 2048 B; state 1097728 B
    # -> 16 x cdiv(1097728, 16 x 2048) = 16 x 34 = 544; a larger requested block is kept; fp8 KV halves the
    # attention page, so the block doubles: 16 x cdiv(1097728, 16 x 1024) = 16 x 67 = 1072
    assert vllm_block_size_tokens(QN, 16) == 544
    assert vllm_block_size_tokens(QN, 16, block_size_tokens=1024) == 1024
    assert vllm_block_size_tokens(QN, 8) == 1072
    # TP 2 halves both the page and the state: still 544
    assert vllm_block_size_tokens(QN, 16, tensor_parallel=2) == 544
    # models without linear layers keep the requested block
    assert vllm_block_size_tokens(L8, 16, block_size_tokens=64) == 64
    with pytest.raises(InputError) as e:
        vllm_block_size_tokens(L8, 16, block_size_tokens=0)
    assert e.value.field == "cache.block_size_tokens"


# --- weights and the budget ---------------------------------------------------------------------------

def test_weights_as_a_plain_bit_width():
    # a number of bits is the plain rule: every parameter at that width, nothing kept 16-bit
    w = weights_breakdown(L8, 4)
    assert w == {"weights_bytes": 8.03e9 * 4 / 8, "params_16bit": 0.0, "params_quantized": 8.03e9,
                 "effective_bits_quantized": 4.0, "mean_bits_per_param": 4.0, "weight_dtype": "4-bit",
                 "method": "plain", "group_size": None}
    assert weights_breakdown(L8, 1)["weights_bytes"] == 8.03e9 / 8
    assert weights_breakdown(L8, 64)["weights_bytes"] == 8.03e9 * 8
    for bad in (0.5, 65):
        with pytest.raises(InputError) as e:
            weights_breakdown(L8, bad)
        assert e.value.field == "weight_dtype"


def test_gpt_oss_requantized_to_its_own_dtype_keeps_experts_only():
    # gpt-oss-120b's checkpoint quantizes only the experts (36 x 128 x 3 x 2880 x 2880 values) to mxfp4;
    # asking for mxfp4 again must not quantize attention and embeddings too
    experts = 36 * 128 * 3 * 2880 * 2880
    w = weights_breakdown(OSS, "mxfp4")
    assert w["params_quantized"] == experts and w["params_16bit"] == 116.8e9 - experts
    assert w["weights_bytes"] == pytest.approx(experts * 4.25 / 8 + (116.8e9 - experts) * 2, rel=1e-12)
    # another dtype quantizes every Linear (all but the embeddings 2 x 201088 x 2880, untied)
    emb = 2 * 201088 * 2880
    w8 = weights_breakdown(OSS, "fp8")
    assert w8["params_16bit"] == emb and w8["params_quantized"] == 116.8e9 - emb


def test_kv_budget_default_reserve_and_limits():
    h100 = get_gpu("h100-sxm-80gb")
    # default reserve for Llama-3.1-8B: 1 GiB + 8192 tokens x 24 B x 4096 hidden = 1 + 0.75 GiB
    b = kv_budget(h100, L8)
    assert b["runtime_reserve_gib"] == 1.75
    assert b["kv_budget_bytes_per_gpu"] == pytest.approx(85520809984 * 0.9 - 8.03e9 * 2 - 1.75 * GIB_BYTES,
                                                         rel=1e-15)
    # utilization 1 and a zero reserve are inside the range
    b = kv_budget(h100, L8, 1, 1.0, None, 0.0)
    assert b["kv_budget_bytes_per_gpu"] == 85520809984 - 8.03e9 * 2
    assert b["usable_gib_per_gpu"] == 85520809984 / GIB_BYTES and b["runtime_reserve_gib"] == 0
    for kwargs, field in (({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
                          ({"gpu_memory_utilization": 1.01}, "gpu_memory_utilization"),
                          ({"runtime_reserve_gib": -0.1}, "runtime_reserve_gib"),
                          ({"runtime_reserve_gib": 1e4 + 1}, "runtime_reserve_gib"),
                          ({"tensor_parallel": 0}, "tensor_parallel")):
        with pytest.raises(InputError) as e:
            kv_budget(h100, L8, **kwargs)
        assert e.value.field == field


def test_weights_that_do_not_fit_say_by_how_much():
    # Llama-3.1-405B bf16 on one H100: weights 405.9e9 x 2 B = 756.05 GiB; usable 79.65 x 0.9 - 4 GiB reserve
    # (hidden 16384: 1 + 8192 x 24 x 16384 / 2^30 = 4 GiB)
    h100 = get_gpu("h100-sxm-80gb")
    with pytest.raises(InputError) as e:
        kv_budget(h100, get_model("meta-llama/Llama-3.1-405B"), 1, 0.9)
    err = e.value
    assert err.code == "weights_do_not_fit" and err.value == "meta-llama/Llama-3.1-405B"
    assert err.params["weights_gib_per_gpu"] == pytest.approx(405.9e9 * 2 / GIB_BYTES, rel=1e-12)
    assert err.params["usable_gib_per_gpu"] == pytest.approx(85520809984 * 0.9 / GIB_BYTES - 4.0, rel=1e-12)
    # usable: 85520809984 B = 79.6484375 GiB x 0.9 = 71.68 GiB, less the 4 GiB reserve = 67.68 GiB
    assert err.problem == (f"model weights 756.05 GiB per GPU exceed the usable 67.68 GiB (of 79.65 GiB x 0.9, "
                           f"less a 4.00 GiB runtime reserve) on {h100.name}: raise tensor_parallel or "
                           "gpu_memory_utilization, or use a smaller weight dtype")
    assert err.allowed == "a model whose weights per GPU fit in the usable memory"
    # a budget of exactly zero is refused too: weights + reserve = usable
    usable = 85520809984 * 0.9
    with pytest.raises(InputError):
        kv_budget(h100, L8, 1, 0.9, None, (usable - 8.03e9 * 2) / GIB_BYTES)


# --- the report ---------------------------------------------------------------------------------------

def _notes(r):
    return {n["code"]: n for n in r["note_details"]}


def test_report_fields_for_a_quantized_hybrid_model():
    # Qwen3-Next at TP 2 on an H200, int4 weights
    r = memory_report(QN, "h200-141gb", tensor_parallel=2, weight_dtype="int4", context_tokens=8192,
                      runtime_reserve_gib=3.0)
    assert r["kv_heads_per_gpu"] == 1 and r["kv_bytes_per_token"] == 12 * 1024
    assert r["vllm_block_size_tokens"] == 544 and r["linear_layers"] == 36
    assert r["linear_state_bytes_per_sequence"] == 36 * 548864
    assert r["weight_bits"] == 4 and r["weight_dtype"] == "int4" and r["weight_group_size"] == 128
    emb = 2 * 151936 * 2048       # untied embeddings stay 16-bit
    assert r["weights_params_16bit"] == emb
    assert r["weights_gib_total"] == pytest.approx((emb * 2 + (80e9 - emb) * (4 + 20 / 128) / 8) / GIB_BYTES,
                                                   rel=1e-12)
    assert r["weights_gib_per_gpu"] == pytest.approx(r["weights_gib_total"] / 2, rel=1e-15)
    assert r["gpu_memory_gib"] == 150754820096 / GIB_BYTES and r["runtime_reserve_gib"] == 3.0
    assert (r["params_total"], r["params_active"], r["params_estimated"]) == (80e9, 3e9, False)
    assert r["kv_capacity_gib"] == pytest.approx(r["kv_capacity_tokens"] * 12 * 1024 / GIB_BYTES, rel=1e-15)
    # vLLM's concurrency at 8192 tokens: cdiv(8192, 544) = 16 attention blocks + 3 linear groups of 12 layers
    assert r["max_model_len_tokens"] == 8192 and r["vllm_blocks_per_request"] == 16 + 3
    page_group = 544 * 1024 * 12
    assert r["vllm_num_blocks"] == int(r["kv_budget_bytes"] // page_group)
    assert r["max_concurrency_at_context"] == r["vllm_num_blocks"] / 19
    n = _notes(r)
    assert n["linear_layers"]["params"] == {"linear_layers": 36, "state_bytes_per_sequence": 36 * 548864}
    assert "36 of 48 layers" in n["linear_layers"]["message"] and "18.8 MiB" in n["linear_layers"]["message"]
    assert "reserve_estimated" not in n
    assert n["weights_mixed_precision"]["params"]["params_16bit"] == emb
    assert r["notes"] == [m["message"] for m in r["note_details"]]


def test_report_notes_by_hand():
    h100, a100 = get_gpu("h100-sxm-80gb"), get_gpu("a100-sxm-80gb")
    # TP 16 over 8 KV heads: replicated heads
    n = _notes(memory_report(L70, h100, tensor_parallel=16))
    assert n["kv_heads_replicated"]["params"] == {"tensor_parallel": 16, "kv_heads": 8}
    assert "TP=16 exceeds the 8 KV heads" in n["kv_heads_replicated"]["message"]
    # TP 8 on 8 heads is an even split: no note; the default reserve is estimated: 1 + 8192 x 24 x 8192 / 2^30
    n = _notes(memory_report(L70, h100, tensor_parallel=8))
    assert "kv_heads_replicated" not in n and n["reserve_estimated"]["params"] == {"runtime_reserve_gib": 2.5}
    # MLA at TP 8: the latent is not split
    n = _notes(memory_report(DSV3, None, tensor_parallel=8))
    assert n["mla_not_split"]["params"] == {"tensor_parallel": 8}
    assert "mla_not_split" not in _notes(memory_report(DSV3, None, tensor_parallel=1))
    # Gemma 3 at 32768 tokens: 52 of 62 layers windowed at 1024, all-global bound 62 x 8192 B
    n = _notes(memory_report(G3, None, context_tokens=32768))
    assert n["windowed_layers"]["params"] == {"local_layers": 52, "layers": 62, "windows_tokens": [1024],
                                              "context_tokens": 32768.0, "all_global_bytes_per_token": 507904}
    assert "52 of 62 layers" in n["windowed_layers"]["message"] and "507904 B/token" in n["windowed_layers"]["message"]
    # beyond the model's maximum (Llama-3.1-8B: 131072)
    n = _notes(memory_report(L8, None, context_tokens=131073))
    assert n["context_beyond_model"]["params"] == {"context_tokens": 131073.0, "max_position_embeddings": 131072}
    assert "context_beyond_model" not in _notes(memory_report(L8, None, context_tokens=131072))
    # fp8 KV on an A100 (no FP8 tensor cores) is dequantized; not on an H100, and not for MLA
    n = _notes(memory_report(L8, a100, kv_cache_dtype="fp8", runtime_reserve_gib=2.0))
    assert n["fp8_dequantized"]["params"] == {"gpu": a100.name}
    assert "fp8_dequantized" not in _notes(memory_report(L8, h100, kv_cache_dtype="fp8"))
    assert "fp8_dequantized" not in _notes(memory_report(L8, a100, kv_cache_dtype="bf16"))
    assert "fp8_dequantized" not in _notes(memory_report(DSV3, get_gpu("a100-sxm-80gb"), tensor_parallel=16,
                                                         kv_cache_dtype="fp8"))


def test_report_without_a_maximum_length():
    m = _arch(num_layers=32, hidden_size=4096, num_attention_heads=32, num_kv_heads=8, params_total=8e9)
    r = memory_report(m, "h100-sxm-80gb", runtime_reserve_gib=2.0)
    n = _notes(r)
    assert n["context_assumed"]["params"] == {"context_tokens": 131072} and r["context_tokens"] == 131072.0
    # no maximum and no context: vLLM's concurrency at a max model length cannot be computed
    assert r["max_model_len_tokens"] is None and r["max_concurrency_at_context"] is None
    # with a context it is not assumed, and the length given is vLLM's max model length
    r = memory_report(m, "h100-sxm-80gb", runtime_reserve_gib=2.0, context_tokens=1000.5)
    assert "context_assumed" not in _notes(r) and r["max_model_len_tokens"] == 1001


def test_report_max_model_len_defaults_and_refusal_to_start():
    h100 = get_gpu("h100-sxm-80gb")
    # no context: vLLM's max model length is the model's maximum, 131072 -> 8192 blocks of 16 per request
    r = memory_report(L8, h100, runtime_reserve_gib=2.0)
    assert r["max_model_len_tokens"] == 131072 and r["vllm_blocks_per_request"] == 8192
    blocks = int((85520809984 * 0.9 - 8.03e9 * 2 - 2 * GIB_BYTES) // (16 * 131072))
    assert r["vllm_num_blocks"] == blocks and r["max_concurrency_at_context"] == blocks / 8192
    # 1e6 tokens x 131072 B = 122 GiB: more than the cache, vLLM refuses to start
    r = memory_report(L8, h100, runtime_reserve_gib=2.0, max_model_len_tokens=10**6)
    n = _notes(r)
    assert n["context_does_not_fit"]["params"] == {"max_model_len_tokens": 10**6,
                                                   "max_concurrency": blocks / (10**6 // 16)}
    assert "One 1000000-token request" in n["context_does_not_fit"]["message"]
    # exactly one request fits: no note (blocks x 16 tokens)
    assert "context_does_not_fit" not in _notes(memory_report(L8, h100, runtime_reserve_gib=2.0,
                                                              max_model_len_tokens=blocks * 16))


def test_report_block_size_and_estimated_params():
    # 64-token blocks: vLLM's per-request blocks at 4096 tokens are 4096 / 64 = 64
    r = memory_report(L8, "h100-sxm-80gb", runtime_reserve_gib=2.0, context_tokens=4096, block_size_tokens=64)
    assert r["vllm_blocks_per_request"] == 64 and r["vllm_block_size_tokens"] == 64
    assert r["kv_capacity_tokens"] % 64 == 0
    # a pasted config without counts: parameters estimated and said so
    cfg = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096,
           "intermediate_size": 14336, "vocab_size": 128256}
    r = memory_report({"hf_config": cfg}, None)
    n = _notes(r)
    assert r["params_estimated"] is True and n["params_estimated"]["params"]["params_total"] == r["params_total"]
    assert f"{r['params_total'] / 1e9:.1f}B is an estimate" in n["params_estimated"]["message"]
    assert r["weight_bits"] == 16 and r["weights_mean_bits_per_param"] == 16
    with pytest.raises(InputError) as e:
        memory_report(L8, None, weight_group_size=64)
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == (
        "weight_group_size", 64, "only with weight_dtype int4", "not applicable")


def test_kv_cache_bits():
    assert kv_cache_bits(DSV3) == 16 and kv_cache_bits(L8, "auto") == 16
    assert kv_cache_bits(L8, "fp8") == 8 and kv_cache_bits(L8, "fp32") == 32


def test_kv_memory_vs_context_bad_list_says_what_is_allowed():
    with pytest.raises(InputError) as e:
        kv_memory_vs_context(L8, 16, context_tokens=[])
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == (
        "context_tokens", [], "a list of 1 to 1000 lengths", "bad list")


def test_offload_reload_time_is_bytes_over_gb_per_s():
    # Llama-3.1-8B at 20000 tokens, 4096 resident: the host holds cdiv(20000, 16) - cdiv(4096, 16) = 1250 - 256
    # blocks per layer, 994 x 16 x 131072 B; over a 25 GB/s link (1 GB = 1e9 B)
    s = kv_memory_vs_context(L8, 16, context_tokens=[20000], gpu_resident_tokens=4096, host_link_gb_per_s=25)
    assert s["offload_cpu_bytes"] == [994 * 16 * 131072]
    assert s["offload_reload_s"][0] == pytest.approx(994 * 16 * 131072 / 25e9, rel=1e-13)
    assert s["host_link_gb_per_s"] == 25


def test_kv_memory_vs_context_block_size_and_tp1():
    # Llama-3.1-8B with 32-token blocks: 1000 tokens take cdiv(1000, 32) = 32 blocks per layer (32 x 32 x 4096 B)
    s = kv_memory_vs_context(L8, 16, block_size_tokens=32, context_tokens=[1000])
    assert s["block_size_tokens"] == 32 and s["paged_bytes"] == [32 * 32 * 32 * 4096]
    # Qwen3-Next at TP 1, bf16: page per token 2 x 2 x 256 x 2 = 2048 B, state 1097728 B -> 16 x cdiv(1097728,
    # 16 x 2048) = 544 tokens per block
    s = kv_memory_vs_context(QN, 16, context_tokens=[1000])
    assert s["block_size_tokens"] == 544 and s["linear_state_bytes"] == 36 * 1097728
    assert s["paged_bytes"] == [12 * 2 * 544 * 2048 + 36 * 1097728]


def test_a_one_token_window_still_holds_one_token():
    # window 1 (the smallest the hand entry allows) on every layer, 2 layers of 2 x 1 x 64 x 2 = 256 B per token:
    # the sliding series holds min(1, n) tokens per layer; paged with B = 8: cdiv(min(0 + 8, 100), 16) + 1 = 2 blocks
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, num_kv_heads=1, window_tokens=1, params_total=1e6)
    s = kv_memory_vs_context(m, 16, context_tokens=[100], max_num_batched_tokens=8)
    assert s["sliding_window_bytes"] == [2 * 256 * 1] and s["full_attention_bytes"] == [2 * 256 * 100]
    assert s["paged_bytes"] == [2 * 2 * 16 * 256]


def test_report_names_and_weight_bits():
    r = memory_report(L70, None, tensor_parallel=4, weight_dtype="int8")
    assert (r["model_name"], r["tensor_parallel"], r["weight_method"], r["weight_bits"]) == (
        L70.name, 4, "int8", 8)
    # an fp32 checkpoint is served in 16-bit (vLLM dtype "auto"): nothing is quantized, 16 bits
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, params_total=1e6, weight_dtype="fp32")
    assert memory_report(m, None)["weight_bits"] == 16
    # memory_report takes weight dtype names only (a plain bit width is kv_budget's old rule)
    with pytest.raises(InputError) as e:
        memory_report(L8, None, weight_dtype=4)
    assert e.value.field == "weight_dtype"


def test_report_context_assumed_message():
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, params_total=1e6)
    n = _notes(memory_report(m, None))
    assert n["context_assumed"]["message"] == ("The model gives no maximum length: per-token costs of windowed "
                                               "layers are taken at 131072-token sequences; set context_tokens.")


GPU_KEYS = ("gpu_memory_gib", "usable_gib_per_gpu", "runtime_reserve_gib", "kv_budget_bytes", "kv_budget_gib",
            "kv_capacity_blocks", "kv_capacity_tokens", "kv_capacity_gib", "max_concurrency")


def test_report_without_gpu_has_every_key_empty_and_the_layer_split():
    # Gemma 3 27B at 32768 tokens: 10 global layers x 8192 B = 81920; 52 local x 8192 x 1024 / 32768 = 13312
    r = memory_report(G3, None, context_tokens=32768)
    assert all(k in r and r[k] is None for k in GPU_KEYS)
    assert (r["global_layers"], r["local_layers"]) == (10, 52)
    assert (r["kv_bytes_per_token_global_layers"], r["kv_bytes_per_token_local_layers"]) == (81920, 13312)
    h = memory_report(G3, "h100-sxm-80gb", context_tokens=32768)
    assert all(h[k] is not None for k in GPU_KEYS)


def test_report_estimated_params_note_by_hand():
    import dataclasses
    # 1.05e9 parameters print as "1.1B" (1.05 rounds up at one decimal)
    m = dataclasses.replace(L8, params_total=1.05e9, params_active=1.05e9, params_estimated=True, name="Est")
    n = _notes(memory_report(m, None))
    assert n["params_estimated"]["params"] == {"model": "Est", "params_total": 1.05e9}
    assert n["params_estimated"]["message"] == ("Est: parameter count 1.1B is an estimate from the architecture; "
                                                "weights memory follows from it.")


def test_mla_note_from_tp_2():
    assert _notes(memory_report(DSV3, None, tensor_parallel=2))["mla_not_split"]["params"] == {"tensor_parallel": 2}


def test_report_note_messages_by_hand():
    # gpt-oss-120b: experts 36 x 128 x 3 x 2880 x 2880 = 114661785600 in mxfp4 (4.25 bits), the other
    # 116.8e9 - 114661785600 = 2138214400 in bf16 -> 2.14B; mean (114661785600 x 4.25 + 2138214400 x 16)
    # / 116.8e9 = 4.4651 bits
    n = _notes(memory_report(OSS, None, context_tokens=4096))
    assert n["weights_mixed_precision"]["message"] == (
        "2.14B parameters (embeddings, lm_head, attention) stay 16-bit; the rest is mxfp4 "
        "(4.47 bits per parameter overall).")
    # 18 of 36 layers windowed at 128; all-global bound 36 x 2048 = 73728 B/token
    assert n["windowed_layers"]["message"] == (
        "18 of 36 layers keep only a window of 128 tokens; per-token KV is averaged over 4096-token sequences "
        "(all-global bound: 73728 B/token).")
    # Llama-3.1-8B int4: embeddings 2 x 128256 x 4096 = 1050673152 -> 1.05B; no ", attention" (all Linear)
    n = _notes(memory_report(L8, None, weight_dtype="int4"))
    assert n["weights_mixed_precision"]["message"].startswith(
        "1.05B parameters (embeddings, lm_head) stay 16-bit; the rest is int4 (")
    h100, a100 = get_gpu("h100-sxm-80gb"), get_gpu("a100-sxm-80gb")
    n = _notes(memory_report(L70, h100, tensor_parallel=16))
    assert n["kv_heads_replicated"]["message"] == "TP=16 exceeds the 8 KV heads: each GPU holds a replica of one head."
    assert n["reserve_estimated"]["message"] == ("Runtime reserve 2.50 GiB is a default estimate (CUDA context and "
                                                 "activations); vLLM measures it at start-up.")
    n = _notes(memory_report(DSV3, None, tensor_parallel=8))
    assert n["mla_not_split"]["message"] == ("MLA keeps one latent per token that every tensor-parallel GPU stores "
                                             "whole: KV bytes per token do not shrink with TP.")
    n = _notes(memory_report(L8, a100, kv_cache_dtype="fp8", context_tokens=200000, runtime_reserve_gib=2.0))
    assert n["fp8_dequantized"]["message"] == (f"{a100.name} has no FP8 tensor cores: an fp8 KV cache is stored "
                                               "in fp8 but dequantized for attention.")
    assert n["context_beyond_model"]["message"] == (
        "context_tokens 200000 exceeds the model's max_position_embeddings 131072.")
    n = _notes(memory_report(L8, h100, runtime_reserve_gib=2.0, max_model_len_tokens=10**6))
    assert n["context_does_not_fit"]["message"] == (
        "One 1000000-token request needs more KV than the cache holds: vLLM refuses to start at this max model "
        "length.")


def test_mixed_precision_note_params_and_rounding():
    # Llama-3.1-8B int4: embeddings 2 x 128256 x 4096 = 1050673152 stay bf16, the rest at 4 + 20/128 bits;
    # mean = (1050673152 x 16 + (8.03e9 - 1050673152) x 4.15625) / 8.03e9
    emb = 2 * 128256 * 4096
    n = _notes(memory_report(L8, None, weight_dtype="int4"))
    assert n["weights_mixed_precision"]["params"] == {
        "params_16bit": emb, "weight_dtype": "int4",
        "mean_bits_per_param": pytest.approx((emb * 16 + (8.03e9 - emb) * 4.15625) / 8.03e9, rel=1e-12)}
    # all 16-bit: no note
    assert "weights_mixed_precision" not in _notes(memory_report(L8, None))
    # 408750 x 2000 x 2 (untied) = 1.635e9 embedding parameters print as 1.64B
    m = _arch(num_layers=2, hidden_size=2000, num_attention_heads=10, num_kv_heads=2, vocab_size=408750,
              params_total=10e9, weight_dtype="int4")
    assert _notes(memory_report(m, None))["weights_mixed_precision"]["message"].startswith(
        "1.64B parameters (embeddings, lm_head) stay 16-bit; the rest is int4")


def test_windowed_note_lists_every_window():
    # a config with a sliding layer (64) and a chunked layer (128): both windows named, smallest first
    cfg = {"num_hidden_layers": 3, "hidden_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1,
           "layer_types": ["chunked_attention", "sliding_attention", "full_attention"], "sliding_window": 64,
           "attention_chunk_size": 128, "max_position_embeddings": 4096}
    n = _notes(memory_report({"hf_config": cfg, "params_total": 1e6}, None, context_tokens=1000))
    assert n["windowed_layers"]["params"]["windows_tokens"] == [64, 128]
    assert n["windowed_layers"]["message"].startswith("2 of 3 layers keep only a window of 64, 128 tokens;")


def test_budget_of_half_a_byte_is_still_a_budget():
    # weights of 42760404991.75 parameters x 2 B = 85520809983.5 B on an H100's 85520809984 B at utilization 1
    # and no reserve: half a byte is left, a (useless) positive budget rather than a refusal
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, params_total=42760404991.75)
    assert kv_budget(get_gpu("h100-sxm-80gb"), m, 1, 1.0, 16, 0.0)["kv_budget_bytes_per_gpu"] == 0.5


def test_budget_follows_the_int4_group_size():
    # Llama-3.1-8B int4 in groups of 32: 1050673152 embedding params x 2 B + the rest x (4 + 20/32) / 8 B
    emb = 2 * 128256 * 4096
    weights = emb * 2 + (8.03e9 - emb) * (4 + 20 / 32) / 8
    h100 = get_gpu("h100-sxm-80gb")
    b = kv_budget(h100, L8, 1, 0.9, "int4", 2.0, 32)
    assert b["kv_budget_bytes_per_gpu"] == pytest.approx(85520809984 * 0.9 - weights - 2 * GIB_BYTES, rel=1e-12)
    r = memory_report(L8, h100, weight_dtype="int4", weight_group_size=32, runtime_reserve_gib=2.0)
    assert r["kv_budget_bytes"] == pytest.approx(85520809984 * 0.9 - weights - 2 * GIB_BYTES, rel=1e-12)


def test_breakdown_defaults_and_context_refusal():
    # tensor_parallel defaults to 1: all 8 KV heads of Llama-3.1-70B on the one GPU
    br = kv_bytes_per_token_breakdown(L70, 16)
    assert br["kv_heads_per_gpu"] == 8 and br["bytes_per_layer_per_token"] == 2 * 8 * 128 * 2
    for bad in (0, 1e8 + 1):
        with pytest.raises(InputError) as e:
            kv_bytes_per_token_breakdown(G3, 16, 1, bad)
        assert e.value.field == "context_tokens"


def test_no_vocabulary_means_no_16_bit_part():
    # without a vocabulary nothing is known to stay 16-bit: 1e9 parameters all at int4's 4 + 20/128 bits
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, params_total=1e9, weight_dtype="int4")
    w = weights_breakdown(m)
    assert w["params_16bit"] == 0 and w["weights_bytes"] == 1e9 * (4 + 20 / 128) / 8


def test_defaults_of_the_small_helpers():
    # kv_heads_per_gpu at its default TP 1: all 8 heads, a whole number of heads
    assert kv_heads_per_gpu(L70) == 8 and type(kv_heads_per_gpu(L70, 2)) is int
    assert vllm_block_size_tokens(L8, 16) == 16
    # one KV head (replicated under TP) and a 1e6-byte linear state: at TP 1 the page per token is
    # 2 x 1 x 64 x 2 = 256 B -> block 16 x cdiv(1e6, 16 x 256) = 16 x 245 = 3920 tokens
    m = _arch(num_layers=2, hidden_size=128, num_attention_heads=2, num_kv_heads=1, layer_pattern=["linear", "global"],
              linear_state_bytes_per_layer=1e6, params_total=1e6)
    assert vllm_block_size_tokens(m, 16) == 3920


def test_sliding_blocks_at_a_block_boundary():
    # Mistral-7B (window 4096) with max_num_batched_tokens 2: the layer holds min(4095 + 2, 32768) = 4097 tokens
    # -> cdiv(4097, 16) + 1 = 258 blocks (one token past a block boundary)
    assert max_concurrency_at_context(MISTRAL, 40 * GIB_BYTES, 16, 32768,
                                      max_num_batched_tokens=2)["blocks_per_request"] == 258
