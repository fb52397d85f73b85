"""A model typed by hand ({"architecture": {...}}): validated as a whole, and a
preset's own numbers typed by hand reproduce that preset exactly."""

import json

import pytest

from kvcalc.errors import InputError
from kvcalc.memory import kv_bytes_per_token, memory_report
from kvcalc.presets import get_model, presets_dir

RAW = json.loads((presets_dir() / "models.json").read_text())["models"]

# Each preset's numbers as a person would type them from the model card / config.json.
HAND = {
    "meta-llama/Llama-3.1-8B": {
        "num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8, "head_dim": 128,
        "params_total": 8.03e9, "vocab_size": 128256, "tie_word_embeddings": False,
        "max_position_embeddings": 131072},
    "deepseek-ai/DeepSeek-V3": {
        "num_layers": 61, "hidden_size": 7168, "num_attention_heads": 128, "attention": "mla",
        "kv_lora_rank": 512, "qk_rope_head_dim": 64, "params_total": 671e9, "params_active": 37e9,
        "vocab_size": 129280, "weight_dtype": "fp8", "weight_group_size": 128 * 128,
        "max_position_embeddings": 163840},
    "google/gemma-3-27b-it": {
        "num_layers": 62, "hidden_size": 5376, "num_attention_heads": 32, "num_kv_heads": 16, "head_dim": 128,
        "window_tokens": 1024, "layer_pattern": ["local"] * 5 + ["global"], "params_total": 27.4e9,
        "vocab_size": 262208, "tie_word_embeddings": True, "max_position_embeddings": 131072},
    "Qwen/Qwen3-Next-80B-A3B-Instruct": {
        "num_layers": 48, "hidden_size": 2048, "num_attention_heads": 16, "num_kv_heads": 2, "head_dim": 256,
        "layer_pattern": ["linear", "linear", "linear", "global"], "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4, "params_total": 80e9, "params_active": 3e9, "vocab_size": 151936,
        "max_position_embeddings": 262144},
    "meta-llama/Llama-2-70b-hf": {
        "num_layers": 80, "hidden_size": 8192, "num_attention_heads": 64, "num_kv_heads": 8,
        "params_total": 69.0e9, "vocab_size": 32000, "weight_dtype": "fp16", "max_position_embeddings": 4096},
}
SAME_KEYS = ("kv_bytes_per_token", "kv_bytes_per_token_all_global", "weights_gib_total", "weights_gib_per_gpu",
             "runtime_reserve_gib", "kv_budget_bytes", "kv_capacity_blocks", "kv_capacity_tokens",
             "max_concurrency", "max_concurrency_at_context", "linear_state_bytes_per_sequence")


@pytest.mark.parametrize("mid", sorted(HAND))
def test_hand_entry_reproduces_the_preset_exactly(mid):
    hand = get_model({"architecture": HAND[mid]})
    preset = get_model(mid)
    setups = ((8, "h200-141gb"), (4, "b200-180gb")) if mid == "deepseek-ai/DeepSeek-V3" else \
        ((2, "h200-141gb"), (8, "h100-sxm-80gb"))
    for tp, gpu in setups:
        a = memory_report(hand, gpu, tensor_parallel=tp, context_tokens=8192)
        b = memory_report(preset, gpu, tensor_parallel=tp, context_tokens=8192)
        for key in SAME_KEYS:
            assert a[key] == b[key], (mid, tp, key)
    for ctx in (100, 4096, 100000):
        assert kv_bytes_per_token(hand, 16, 1, ctx) == kv_bytes_per_token(preset, 16, 1, ctx)


def test_hand_entry_says_what_it_derived():
    spec = get_model({"architecture": {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
                                       "params_total": 7e9}})
    derived = {d["field"]: d["how"] for d in spec.to_dict()["derived_fields"]}
    assert set(derived) == {"num_kv_heads", "head_dim", "params_active", "weight_dtype", "max_position_embeddings"}
    assert "4096 / 32" in derived["head_dim"] and "MHA" in derived["num_kv_heads"]
    assert spec.attention == "mha" and spec.max_position_embeddings is None
    # no limit was given, so none is invented and none is warned about
    r = memory_report(spec, "h100-sxm-80gb", context_tokens=1_000_000)
    assert not any("max_position_embeddings" in n for n in r["notes"])


def test_minimal_hf_config_does_not_invent_max_position_embeddings():
    cfg = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}
    spec = get_model({"hf_config": cfg})
    assert spec.max_position_embeddings is None
    derived = {d["field"] for d in spec.to_dict()["derived_fields"]}
    assert {"head_dim", "max_position_embeddings", "params_total", "params_active", "weight_dtype"} <= derived
    r = memory_report(spec, "h100-sxm-80gb", context_tokens=4096)
    text = " ".join(r["notes"]) + " ".join(m["message"] for m in r["note_details"])
    assert "2048" not in text and "max_position_embeddings" not in text


def _err(arch: dict) -> InputError:
    with pytest.raises(InputError) as e:
        get_model({"architecture": arch})
    return e.value


BASE = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "params_total": 8e9}


@pytest.mark.parametrize("extra,field,words", [
    ({"num_kv_heads": 12}, "num_kv_heads", "KV heads (12) must divide attention heads (32)"),
    ({"num_kv_heads": 64}, "num_kv_heads", "KV heads (64) cannot exceed attention heads (32)"),
    ({"num_kv_heads": 8, "attention": "mha"}, "num_kv_heads", "MHA needs KV heads equal to attention heads (32)"),
    ({"num_kv_heads": 4, "attention": "mqa"}, "num_kv_heads", "MQA needs 1 KV head, got 4"),
    ({"attention": "gqa"}, "num_kv_heads", "missing"),
    ({"attention": "mla"}, "kv_lora_rank", "missing for MLA"),
    ({"params_active": 9e9}, "params_active", "active parameters (9e+09) cannot exceed the total (8e+09)"),
    ({"layer_pattern": ["local", "global"]}, "window_tokens", "the layer pattern has local layers"),
    ({"layer_pattern": ["linear", "global"]}, "linear_state_bytes_per_layer", "the layer pattern has linear layers"),
    ({"layer_pattern": ["linear"], "linear_state_bytes_per_layer": 1e6}, "layer_pattern", "no attention layer"),
    ({"layer_pattern": ["global", "sliding"]}, "layer_pattern", "malformed layer pattern"),
    ({"window_tokens": 4096, "layer_pattern": ["global"]}, "window_tokens", "a window but no local layer"),
    ({"num_kv_heads": 8, "qk_rope_head_dim": 64}, "qk_rope_head_dim", "MLA field without MLA"),
    ({"num_kv_heads": 2.5}, "num_kv_heads", "not a valid count"),
    ({"weight_dtype": "int3"}, "weight_dtype", "unknown weight dtype"),
    ({"vocab_size": 10**6}, "vocab_size", "exceed params_total"),
    ({"vocab_size": 10**7}, "vocab_size", "larger than any real model"),
    ({"num_layers": 5000}, "num_layers", "larger than any real model"),
    ({"colour": "red"}, "colour", "unknown key"),
])
def test_hand_entry_errors_name_the_field_in_words(extra, field, words):
    e = _err(dict(BASE, **extra))
    assert e.field == f"model.architecture.{field}"
    assert words in str(e)


@pytest.mark.parametrize("missing", ["num_layers", "hidden_size", "num_attention_heads", "params_total"])
def test_hand_entry_required_fields(missing):
    arch = {k: v for k, v in BASE.items() if k != missing}
    e = _err(arch)
    assert e.field == f"model.architecture.{missing}" and e.problem == "missing"


def test_hand_entry_head_dim_needs_divisible_hidden():
    e = _err({"num_layers": 2, "hidden_size": 100, "num_attention_heads": 3, "params_total": 1e6})
    assert e.field == "model.architecture.head_dim" and "not a multiple" in str(e)


def test_hand_entry_window_alone_means_every_layer_local():
    spec = get_model({"architecture": dict(BASE, num_kv_heads=8, window_tokens=4096)})
    assert spec.layer_window_tokens == (4096,) * 32
    assert any(d["field"] == "layer_pattern" for d in spec.to_dict()["derived_fields"])
    # Mistral-7B-v0.1's own numbers give the preset's bytes per token
    assert kv_bytes_per_token(spec, 16, 1, 8192) == kv_bytes_per_token(get_model("mistralai/Mistral-7B-v0.1"), 16, 1, 8192)
