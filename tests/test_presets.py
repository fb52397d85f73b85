"""Presets load and validate; Hugging Face config.json parsing matches the presets."""

import json
import math

import pytest

from kvcalc.errors import InputError
from kvcalc.memory import kv_bytes_per_token
from kvcalc.presets import (GpuSpec, ModelSpec, estimate_params, get_gpu, get_model, load_gpus,
                            load_models, presets_dir, spec_from_hf_config)
from kvcalc.units import DTYPE_BITS

REQUIRED_MODELS = [
    "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-405B",
    "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-4-Scout-17B-16E",
    "meta-llama/Llama-4-Maverick-17B-128E", "Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "Qwen/Qwen3-235B-A22B",
    "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V2-Lite", "moonshotai/Kimi-K2-Instruct",
    "google/gemma-2-9b", "google/gemma-2-27b", "google/gemma-3-27b-it", "google/gemma-3-12b-it",
    "openai/gpt-oss-120b", "openai/gpt-oss-20b", "mistralai/Mistral-7B-v0.1",
    "mistralai/Mixtral-8x7B-v0.1", "mistralai/Mistral-Large-Instruct-2407", "microsoft/phi-4",
    "tiiuae/falcon-7b", "THUDM/glm-4-9b",
]


# --- every preset file loads and validates --------------------------------------------------

def test_model_presets_load_and_validate():
    models = load_models()
    assert len(models) >= 28
    for mid in REQUIRED_MODELS:
        assert mid in models, mid
    for mid, m in models.items():
        assert isinstance(m, ModelSpec) and m.id == mid
        assert m.source.startswith("https://"), mid
        assert len(m.layer_window_tokens) == m.num_layers
        assert 0 < m.params_active <= m.params_total
        assert m.weight_dtype in DTYPE_BITS
        assert not m.params_estimated
        json.dumps(m.to_dict())


def test_model_preset_json_has_sources_and_known_keys():
    raw = json.loads((presets_dir() / "models.json").read_text())["models"]
    for mid, e in raw.items():
        for key in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size",
                    "max_position_embeddings", "params_total", "params_active", "weight_dtype", "source"):
            assert key in e, (mid, key)
        if e.get("kv_lora_rank"):
            assert "qk_rope_head_dim" in e


def test_gpu_presets_load_and_validate():
    gpus = load_gpus()
    assert len(gpus) >= 13
    for gid in ("h100-sxm-80gb", "h100-pcie-80gb", "h200-141gb", "b200-180gb", "a100-sxm-40gb",
                "a100-sxm-80gb", "l40s-48gb", "l4-24gb", "a10g-24gb", "rtx-4090-24gb",
                "mi300x-192gb", "mi325x-256gb"):
        assert gid in gpus, gid
    for g in gpus.values():
        assert isinstance(g, GpuSpec)
        assert isinstance(g.memory_bytes, int) and g.memory_bytes > 8 * 1024 ** 3
        assert g.source
        json.dumps(g.to_dict())
    # nvidia-smi totals (modal-labs/modal-client PR #2797): H100 81559 MiB, A100-80GB 81920 MiB
    assert gpus["h100-sxm-80gb"].memory_bytes == 81559 * 1024 ** 2
    assert gpus["a100-sxm-80gb"].memory_bytes == 80 * 1024 ** 3
    assert gpus["a100-sxm-80gb"].dense_fp8_tflops is None


def test_loaders_are_cached():
    assert load_models() is load_models()
    assert load_gpus() is load_gpus()


def test_presets_dir_override(tmp_path, monkeypatch):
    (tmp_path / "models.json").write_text(json.dumps({"models": {"tiny/one": {
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "hidden_size": 64, "max_position_embeddings": 1024, "params_total": 1e6, "params_active": 1e6,
        "weight_dtype": "bf16", "source": "https://example.org/config.json"}}}))
    (tmp_path / "gpus.json").write_text(json.dumps({"gpus": {}}))
    monkeypatch.setenv("KVCALC_PRESETS_DIR", str(tmp_path))
    assert list(load_models()) == ["tiny/one"]
    # 2 layers * 2 heads * 16 * 2 (K,V) * 2 bytes
    assert kv_bytes_per_token(get_model("tiny/one"), 16) == 256
    with pytest.raises(InputError):
        load_gpus()  # an empty preset file is refused


def test_preset_without_source_is_refused(tmp_path, monkeypatch):
    (tmp_path / "models.json").write_text(json.dumps({"models": {"bad/one": {
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "hidden_size": 64, "max_position_embeddings": 1024, "params_total": 1e6, "params_active": 1e6,
        "weight_dtype": "bf16"}}}))
    monkeypatch.setenv("KVCALC_PRESETS_DIR", str(tmp_path))
    with pytest.raises(InputError) as e:
        load_models()
    assert e.value.field == "model[bad/one].source"


# --- structure of the presets ----------------------------------------------------------------

def test_attention_kinds():
    assert get_model("meta-llama/Llama-3.1-8B").attention == "gqa"
    assert get_model("deepseek-ai/DeepSeek-V3").attention == "mla"
    assert get_model("moonshotai/Kimi-K2-Instruct").attention == "mla"
    assert get_model("tiiuae/falcon-7b").attention == "mqa"


def test_window_layer_patterns():
    # Gemma 3: layer i global when (i+1) % 6 == 0 -> 10 global of 62, window 1024
    g3 = get_model("google/gemma-3-27b-it")
    assert g3.global_layers == 10 and g3.local_layers == 52
    assert g3.layer_window_tokens[:6] == (1024,) * 5 + (None,)
    # Gemma 2 and gpt-oss alternate, starting with a local layer at index 0
    assert get_model("google/gemma-2-9b").layer_window_tokens[:2] == (4096, None)
    assert get_model("openai/gpt-oss-120b").layer_window_tokens[:2] == (128, None)
    # Llama 4: chunked (8192) on 3 of 4 layers, every 4th global
    scout = get_model("meta-llama/Llama-4-Scout-17B-16E")
    assert scout.layer_window_tokens[:4] == (8192, 8192, 8192, None) and scout.global_layers == 12
    # Mistral-7B-v0.1: sliding_window 4096 on every layer
    assert get_model("mistralai/Mistral-7B-v0.1").layer_window_tokens == (4096,) * 32
    assert get_model("mistralai/Mixtral-8x7B-v0.1").local_layers == 0


TEXT_ONLY_TOLERANCE = 0.05


@pytest.mark.parametrize("mid", sorted(json.loads((presets_dir() / "models.json").read_text())["models"]))
def test_architecture_estimate_agrees_with_published_params(mid):
    """The estimator and the published counts cross-check each preset's architecture fields."""
    raw = json.loads((presets_dir() / "models.json").read_text())["models"][mid]
    total, active = estimate_params(raw)
    if mid.startswith("google/gemma-3") and mid != "google/gemma-3-1b-it":
        # published counts include the ~0.4B SigLIP vision tower, which the estimate omits
        assert 0.85 < total / raw["params_total"] < 1.0
    else:
        assert abs(total / raw["params_total"] - 1) < TEXT_ONLY_TOLERANCE
    if raw["params_active"] == raw["params_total"]:
        assert active == total
    else:
        assert active < total


# --- look-ups ---------------------------------------------------------------------------------

def test_unknown_model_names_field():
    with pytest.raises(InputError) as e:
        get_model("nobody/NoModel-1B")
    assert e.value.field == "model"
    assert e.value.problem == "unknown preset"
    assert "presets/models.json" in e.value.allowed
    with pytest.raises(InputError) as e:
        get_model("nobody/NoModel-1B", field="models[2]")
    assert e.value.field == "models[2]"


def test_unknown_gpu_names_field():
    with pytest.raises(InputError) as e:
        get_gpu("tpu-v9")
    assert e.value.field == "gpu" and e.value.problem == "unknown preset"


def test_model_dict_needs_hf_config():
    with pytest.raises(InputError) as e:
        get_model({"num_hidden_layers": 2})
    assert e.value.field == "model"
    with pytest.raises(InputError) as e:
        get_model({"hf_config": {}, "colour": "red"})
    assert e.value.field == "model.colour"
    with pytest.raises(InputError) as e:
        get_model({"hf_config": {"num_hidden_layers": 2}})
    assert e.value.field.startswith("model.hf_config")


# --- hf_config parsing ------------------------------------------------------------------------

# google/gemma-3-27b-it config.json as published: the text part is nested and
# relies on Gemma3TextConfig defaults (sliding_window_pattern 6, 131072 positions).
GEMMA3_27B_HF = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
        "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16,
        "query_pre_attn_scalar": 168, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
    "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27, "model_type": "siglip_vision_model"},
    "torch_dtype": "bfloat16",
}

# deepseek-ai/DeepSeek-V3 config.json (architecture fields)
DEEPSEEK_V3_HF = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
    "v_head_dim": 128, "vocab_size": 129280, "max_position_embeddings": 163840,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
}


@pytest.mark.parametrize("ctx", [None, 512, 32768, 131072])
def test_hf_config_nested_text_config_matches_preset(ctx):
    spec = get_model({"hf_config": GEMMA3_27B_HF})
    preset = get_model("google/gemma-3-27b-it")
    assert spec.layer_window_tokens == preset.layer_window_tokens
    assert spec.max_position_embeddings == 131072
    assert kv_bytes_per_token(spec, 16, 1, ctx) == kv_bytes_per_token(preset, 16, 1, ctx)


def test_hf_config_mla_matches_preset():
    spec = get_model({"hf_config": DEEPSEEK_V3_HF})
    preset = get_model("deepseek-ai/DeepSeek-V3")
    assert spec.attention == "mla" and spec.kv_lora_rank == 512 and spec.qk_rope_head_dim == 64
    assert kv_bytes_per_token(spec, 16) == kv_bytes_per_token(preset, 16) == 70272
    assert spec.weight_dtype == "fp8"
    # without counts they are estimated, and flagged
    assert spec.params_estimated
    assert math.isclose(spec.params_total, 671e9, rel_tol=0.01)
    assert math.isclose(spec.params_active, 37e9, rel_tol=0.05)


def test_hf_config_overrides_params_and_name():
    spec = get_model({"hf_config": DEEPSEEK_V3_HF, "params_total": 671e9, "params_active": 37e9,
                      "name": "DSV3"})
    assert spec.params_total == 671e9 and spec.params_active == 37e9
    assert not spec.params_estimated and spec.name == "DSV3"


def test_hf_config_gpt_oss_layer_types():
    cfg = {"model_type": "gpt_oss", "num_hidden_layers": 24, "num_attention_heads": 64,
           "num_key_value_heads": 8, "head_dim": 64, "hidden_size": 2880, "intermediate_size": 2880,
           "num_local_experts": 32, "num_experts_per_tok": 4, "vocab_size": 201088,
           "max_position_embeddings": 131072, "sliding_window": 128,
           "layer_types": ["sliding_attention", "full_attention"] * 12}
    spec = spec_from_hf_config(cfg)
    assert spec.layer_window_tokens == get_model("openai/gpt-oss-20b").layer_window_tokens
    assert math.isclose(spec.params_total, 20.9e9, rel_tol=0.02)


def test_hf_config_llama4_no_rope_layers_and_interval():
    text = {"model_type": "llama4_text", "num_hidden_layers": 48, "num_attention_heads": 40,
            "num_key_value_heads": 8, "head_dim": 128, "hidden_size": 5120, "intermediate_size": 8192,
            "intermediate_size_mlp": 16384, "num_local_experts": 16, "num_experts_per_tok": 1,
            "interleave_moe_layer_step": 1, "vocab_size": 202048, "max_position_embeddings": 10485760,
            "attention_chunk_size": 8192}
    preset = get_model("meta-llama/Llama-4-Scout-17B-16E").layer_window_tokens
    explicit = dict(text, no_rope_layers=[1, 1, 1, 0] * 12)
    assert spec_from_hf_config({"model_type": "llama4", "text_config": explicit}).layer_window_tokens == preset
    # empty no_rope_layers -> derived from no_rope_layer_interval (default 4)
    derived = dict(text, no_rope_layers=[])
    assert spec_from_hf_config({"model_type": "llama4", "text_config": derived}).layer_window_tokens == preset


def test_hf_config_qwen2_sliding_window_flags():
    base = {"model_type": "qwen2", "num_hidden_layers": 28, "num_attention_heads": 28,
            "num_key_value_heads": 4, "hidden_size": 3584, "intermediate_size": 18944,
            "vocab_size": 152064, "max_position_embeddings": 32768, "sliding_window": 131072,
            "max_window_layers": 28, "use_sliding_window": False}
    assert spec_from_hf_config(base).local_layers == 0
    # enabled: layers from max_window_layers up are windowed
    on = dict(base, use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    assert spec_from_hf_config(on).layer_window_tokens == (None,) * 20 + (4096,) * 8


def test_hf_config_head_dim_fallback_and_mistral_window():
    cfg = {"model_type": "mistral", "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "hidden_size": 4096, "intermediate_size": 14336,
           "vocab_size": 32000, "max_position_embeddings": 32768, "sliding_window": 4096}
    spec = spec_from_hf_config(cfg)
    assert spec.head_dim == 128  # hidden_size / num_attention_heads
    assert spec.layer_window_tokens == (4096,) * 32


def test_hf_config_explicit_head_dim_wins():
    # Qwen3-32B: 64 heads * head_dim 128 = 8192 != hidden_size 5120
    cfg = {"model_type": "qwen3", "num_hidden_layers": 64, "num_attention_heads": 64,
           "num_key_value_heads": 8, "head_dim": 128, "hidden_size": 5120, "intermediate_size": 25600,
           "vocab_size": 151936, "max_position_embeddings": 40960}
    spec = spec_from_hf_config(cfg)
    assert spec.head_dim == 128
    assert kv_bytes_per_token(spec, 16) == kv_bytes_per_token(get_model("Qwen/Qwen3-32B"), 16) == 262144


def test_hf_config_falcon_and_chatglm_names():
    falcon = {"model_type": "falcon", "n_layer": 32, "n_head": 71, "hidden_size": 4544,
              "multi_query": True, "vocab_size": 65024}
    spec = spec_from_hf_config(falcon)
    assert spec.attention == "mqa" and spec.head_dim == 64
    assert kv_bytes_per_token(spec, 16) == kv_bytes_per_token(get_model("tiiuae/falcon-7b"), 16) == 8192
    glm = {"model_type": "chatglm", "num_layers": 40, "num_attention_heads": 32, "hidden_size": 4096,
           "multi_query_attention": True, "multi_query_group_num": 2, "kv_channels": 128,
           "seq_length": 8192, "ffn_hidden_size": 13696, "padded_vocab_size": 151552}
    spec = spec_from_hf_config(glm)
    assert spec.num_kv_heads == 2 and spec.max_position_embeddings == 8192
    assert kv_bytes_per_token(spec, 16) == kv_bytes_per_token(get_model("THUDM/glm-4-9b"), 16) == 40960
    assert math.isclose(spec.params_total, 9.4e9, rel_tol=0.02)
