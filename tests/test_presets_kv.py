"""Every preset's KV bytes per token, re-derived in the test from its config.json numbers.

The formulas below are written from the config fields (as copied into
presets/models.json from each model's cited config.json), not imported from
kvcalc.memory: per decoder layer a full-attention layer stores K and V for
num_key_value_heads heads of head_dim values; an MLA layer stores one latent
of kv_lora_rank plus the decoupled RoPE key of qk_rope_head_dim; a local layer
holds at most window_tokens tokens; a linear-attention layer holds no
per-token KV. bf16 = 2 bytes.
"""

import json

import pytest

from kvcalc.memory import kv_bytes_per_token, linear_state_bytes_per_sequence
from kvcalc.presets import get_gpu, get_model, load_gpus, load_models, presets_dir

RAW = json.loads((presets_dir() / "models.json").read_text())["models"]
RAW_GPUS = json.loads((presets_dir() / "gpus.json").read_text())["gpus"]
BF16_BYTES = 2


def _layer_kinds(e: dict) -> list:
    """'global' / 'local' / 'linear' for each layer, expanded by hand from layer_pattern."""
    n = e["num_hidden_layers"]
    pattern = e.get("layer_pattern", ["global"])
    kinds = []
    while len(kinds) < n:
        kinds.extend(pattern)
    kinds = kinds[:n]
    window = e.get("window_tokens")
    if window is not None and window >= e["max_position_embeddings"]:
        kinds = ["global" if k == "local" else k for k in kinds]  # a window as long as the context
    return kinds


def _hand_bytes_per_token(e: dict, context_tokens: int) -> float:
    if e.get("kv_lora_rank"):
        per_layer = (e["kv_lora_rank"] + e["qk_rope_head_dim"]) * BF16_BYTES
    else:
        head_dim = e.get("head_dim") or e["hidden_size"] // e["num_attention_heads"]
        per_layer = 2 * e["num_key_value_heads"] * head_dim * BF16_BYTES
    total = 0.0
    for kind in _layer_kinds(e):
        if kind == "global":
            total += per_layer
        elif kind == "local":
            total += per_layer * min(e["window_tokens"], context_tokens) / context_tokens
    return total


@pytest.mark.parametrize("mid", sorted(RAW))
@pytest.mark.parametrize("ctx", [512, 8192, 131072])
def test_every_preset_kv_bytes_per_token_from_its_config(mid, ctx):
    e = RAW[mid]
    assert kv_bytes_per_token(get_model(mid), 16, 1, ctx) == pytest.approx(_hand_bytes_per_token(e, ctx), rel=1e-12)


# Published or hand-checked figures for a few, as literals (bf16, per token, all layers):
# Llama-3.1-8B 32 x 2 x 8 x 128 x 2 = 131072 (128 KiB/token, widely quoted);
# Llama-2-7B (MHA) 32 x 2 x 32 x 128 x 2 = 524288 (512 KiB/token);
# DeepSeek-V3 61 x (512 + 64) x 2 = 70272; ChatGLM3-6B 28 x 2 x 2 x 128 x 2 = 28672;
# ChatGLM-6B (MHA) 28 x 2 x 32 x 128 x 2 = 458752;
# Qwen3-Next 12 full layers x 2 x 2 x 256 x 2 = 24576 (36 linear layers hold none).
@pytest.mark.parametrize("mid,expected", [
    ("meta-llama/Llama-3.1-8B", 131072), ("meta-llama/Llama-2-7b-hf", 524288),
    ("meta-llama/Llama-2-70b-hf", 327680), ("deepseek-ai/DeepSeek-V3.1", 70272),
    ("THUDM/chatglm3-6b", 28672), ("THUDM/chatglm-6b", 458752), ("Qwen/Qwen3-0.6B", 114688),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", 24576), ("MiniMaxAI/MiniMax-M1-80k", 40960),
    ("zai-org/GLM-4.6", 376832), ("MiniMaxAI/MiniMax-M2", 253952),
])
def test_literal_kv_bytes_per_token(mid, expected):
    assert kv_bytes_per_token(get_model(mid), 16) == expected


def test_linear_state_of_hybrid_presets_by_hand():
    # Qwen3-Next (config.json): Gated DeltaNet with 16 key heads, 32 value heads of 128, conv kernel 4:
    # conv state (4 - 1) x (2 x 16 x 128 + 32 x 128) + recurrent state 32 x 128 x 128, 2 bytes each,
    # on 48 - 12 = 36 linear layers.
    per_layer = ((4 - 1) * (2 * 16 * 128 + 32 * 128) + 32 * 128 * 128) * 2
    qn = get_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert qn.linear_layers == 36 and qn.global_layers == 12
    assert linear_state_bytes_per_sequence(qn) == 36 * per_layer == 39518208
    assert linear_state_bytes_per_sequence(qn, 4) == 36 * per_layer / 4
    # MiniMax-M1: 70 lightning layers (attn_type_list 0) of 64 heads x 128 x 128 state
    m1 = get_model("MiniMaxAI/MiniMax-M1-80k")
    assert m1.linear_layers == 70 and m1.global_layers == 10
    assert linear_state_bytes_per_sequence(m1) == 70 * 64 * 128 * 128 * 2


REQUIRED_NEW_MODELS = [
    "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-70b-hf", "THUDM/chatglm-6b",
    "THUDM/chatglm3-6b", "THUDM/glm-4-9b-chat", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-Coder-480B-A35B-Instruct",
    "Qwen/Qwen3-Next-80B-A3B-Instruct", "deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-V3.2-Exp",
    "moonshotai/Kimi-K2-Instruct", "zai-org/GLM-4.5", "zai-org/GLM-4.6", "MiniMaxAI/MiniMax-M1-80k",
    "MiniMaxAI/MiniMax-M2", "mistralai/Mistral-Small-3.1-24B-Instruct-2503", "mistralai/Mistral-Large-Instruct-2407",
    "meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-4-Scout-17B-16E", "google/gemma-3-27b-it",
    "microsoft/phi-4", "openai/gpt-oss-120b",
]
REQUIRED_NEW_GPUS = ["h20-96gb", "h800-sxm-80gb", "a800-sxm-80gb", "l20-48gb", "b300-288gb", "gb200-186gb",
                     "mi325x-256gb", "mi355x-288gb", "rtx-pro-6000-96gb"]


def test_preset_counts_and_required_entries():
    models, gpus = load_models(), load_gpus()
    assert len(models) >= 55 and len(gpus) >= 24
    for mid in REQUIRED_NEW_MODELS:
        assert mid in models, mid
    for gid in REQUIRED_NEW_GPUS:
        assert gid in gpus, gid


@pytest.mark.parametrize("mid", sorted(RAW))
def test_model_source_is_its_config_json(mid):
    assert RAW[mid]["source"] == f"https://huggingface.co/{mid}/blob/main/config.json"


@pytest.mark.parametrize("gid", sorted(RAW_GPUS))
def test_gpu_entries_state_source_link_and_bandwidths(gid):
    e = RAW_GPUS[gid]
    assert e["source"] and e["host_link_bandwidth_gb_per_s"] > 0 and e["hbm_bandwidth_gb_per_s"] > 0
    g = get_gpu(gid)
    # fp8 throughput, where present, is twice bf16 on every listed accelerator except Gaudi 3 (equal)
    if g.dense_fp8_tflops is not None:
        ratio = g.dense_fp8_tflops / g.dense_bf16_tflops
        assert ratio == pytest.approx(1.0 if gid == "gaudi3-128gb" else 2.0, rel=0.03), gid  # L40S: 733 / 362.05


def test_gpu_memory_from_nvidia_smi_where_found():
    # nvidia-smi memory.total found in public logs (see each preset's source): MiB x 2^20
    assert get_gpu("h20-96gb").memory_bytes == 97871 * 2**20
    assert get_gpu("gh200-96gb").memory_bytes == 97871 * 2**20
    assert get_gpu("rtx-pro-6000-96gb").memory_bytes == 97887 * 2**20
    # assumed-equal variants say so
    for gid in ("h800-sxm-80gb", "a800-sxm-80gb", "l20-48gb", "gb200-186gb", "mi355x-288gb"):
        assert "UNCERTAIN" in RAW_GPUS[gid]["notes"], gid
