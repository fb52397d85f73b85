"""config.json parsing (kvcalc.hfconfig) on small hand-made configs whose layer layouts, state sizes and
parameter counts are worked out in the comments (issue #10, mutation testing)."""

import pytest

from kvcalc.errors import InputError
from kvcalc.hfconfig import estimate_param_groups, key_path, linear_state_bytes_per_layer, text_config
from kvcalc.presets import get_model

TINY = {"num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 4, "vocab_size": 10, "intermediate_size": 16}


def _spec(**kw):
    return get_model({"hf_config": dict(TINY, **kw), "params_total": 1e6})


def test_dense_parameter_estimate_by_hand():
    # embeddings untied: 10 x 8 x 2 = 160; attention per layer q 8x2x4 + k,v 2x8x1x4 + o 2x4x8 = 64+64+64 = 192;
    # gated MLP 3 x 8 x 16 = 384 per layer -> 160 + 2 x (192 + 384) = 1312
    g = estimate_param_groups(TINY)
    assert g == {"total": 1312.0, "active": 1312.0, "embedding": 160.0, "experts": 0.0}
    # tied embeddings once: 80; ungated (GPT-2 style) MLP 2 x 8 x 16 = 256
    assert estimate_param_groups(dict(TINY, tie_word_embeddings=True))["total"] == 1312 - 80
    assert estimate_param_groups(dict(TINY, model_type="gpt2"))["total"] == 160 + 2 * (192 + 256)
    assert estimate_param_groups(dict(TINY, mlp="ungated"))["total"] == 160 + 2 * (192 + 256)
    # no intermediate size: 4 x hidden = 32 -> 3 x 8 x 32 = 768; no vocab: 32000 x 8 x 2
    no_inter = {k: v for k, v in TINY.items() if k != "intermediate_size"}
    assert estimate_param_groups(no_inter)["total"] == 160 + 2 * (192 + 768)
    no_vocab = {k: v for k, v in TINY.items() if k != "vocab_size"}
    assert estimate_param_groups(no_vocab)["embedding"] == 32000 * 8 * 2


def test_moe_parameter_estimate_by_hand():
    # 4 routed experts of width 6, top 2, 1 shared expert, layer 0 dense (first_k_dense_replace 1):
    # layer 0: 192 + 384; layer 1: 192 + experts 4 x 3 x 8 x 6 = 576 + shared 3 x 8 x 6 = 144 + router 8 x 4 = 32
    # active layer 1: 2 x 144 + 144 + 32 = 464
    cfg = dict(TINY, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=6, n_shared_experts=1,
               first_k_dense_replace=1)
    g = estimate_param_groups(cfg)
    assert g["experts"] == 576
    assert g["total"] == 160 + 192 + 384 + 192 + 576 + 144 + 32
    assert g["active"] == 160 + 192 + 384 + 192 + 464
    # Qwen-MoE style shared expert width: shared = 3 x 8 x 5 = 120
    cfg = dict(TINY, num_experts=4, num_experts_per_tok=1, moe_intermediate_size=6, shared_expert_intermediate_size=5)
    g = estimate_param_groups(cfg)
    assert g["total"] == 160 + 2 * (192 + 576 + 120 + 32) and g["active"] == 160 + 2 * (192 + 144 + 120 + 32)
    # decoder_sparse_step 2: only layer 1 is MoE; interleave_moe_layer_step 2 likewise, dense layers use
    # intermediate_size_mlp (Llama 4: 3 x 8 x 7 = 168) and a Llama 4 MoE layer has one shared expert
    g = estimate_param_groups(dict(TINY, num_experts=4, num_experts_per_tok=1, moe_intermediate_size=6,
                                   decoder_sparse_step=2))
    assert g["total"] == 160 + 192 + 384 + 192 + 576 + 32
    g = estimate_param_groups(dict(TINY, num_local_experts=4, num_experts_per_tok=1, intermediate_size=6,
                                   intermediate_size_mlp=7, interleave_moe_layer_step=2, model_type="llama4_text"))
    assert g["total"] == 160 + 192 + 168 + 192 + 4 * 144 + 144 + 32
    # no experts per token given: every expert active
    g = estimate_param_groups(dict(TINY, num_experts=4, moe_intermediate_size=6))
    assert g["active"] == g["total"]


def test_mla_parameter_estimate_by_hand():
    # MLA attention: q_lora 3 -> q = 8x3 + 3 x 2 x (5 + 2) = 66; kv down 8 x (4 + 2) = 48;
    # kv up 4 x 2 x (5 + 6) = 88; o 2 x 6 x 8 = 96 -> 298 per layer (rank 4, rope 2, nope 5, v 6)
    cfg = dict(TINY, kv_lora_rank=4, qk_rope_head_dim=2, qk_nope_head_dim=5, v_head_dim=6, q_lora_rank=3)
    assert estimate_param_groups(cfg)["total"] == 160 + 2 * (298 + 384)
    # without q_lora: q = 8 x 2 x 7 = 112 -> 344
    cfg.pop("q_lora_rank")
    assert estimate_param_groups(cfg)["total"] == 160 + 2 * (344 + 384)


def test_linear_state_sizes_by_hand():
    # MiniMax lightning attention: 64 heads x 128 x 128 x 2 bytes
    assert linear_state_bytes_per_layer({"attn_type_list": [0, 1], "num_attention_heads": 64, "head_dim": 128,
                                         "hidden_size": 6144}) == 64 * 128 * 128 * 2
    # head_dim from hidden / heads: 6144 / 48 = 128
    assert linear_state_bytes_per_layer({"attn_type_list": [0, 1], "num_attention_heads": 48,
                                         "hidden_size": 6144}) == 48 * 128 * 128 * 2
    # Jamba Mamba-1: inner 2 x 4096 = 8192; conv (4 - 1) x 8192 + ssm 8192 x 16 -> x 2 bytes = 311296
    assert linear_state_bytes_per_layer({"mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
                                         "hidden_size": 4096}) == (3 * 8192 + 8192 * 16) * 2
    assert linear_state_bytes_per_layer({"mamba_d_state": 16, "hidden_size": 4096}) == (3 * 8192 + 8192 * 16) * 2
    # Gated DeltaNet with kernel 2: (1 x (2 x 1 x 2 + 3 x 4) + 3 x 2 x 4) x 2 = (16 + 24) x 2 = 80
    assert linear_state_bytes_per_layer({"linear_num_key_heads": 1, "linear_key_head_dim": 2,
                                         "linear_num_value_heads": 3, "linear_value_head_dim": 4,
                                         "linear_conv_kernel_dim": 2}) == 80
    assert linear_state_bytes_per_layer(TINY) == 0.0


@pytest.mark.parametrize("extra,windows", [
    ({"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 64}, (64, None)),
    ({"layer_types": ["chunked_attention", "full_attention"], "attention_chunk_size": 32}, (32, None)),
    ({"layer_types": ["chunked_attention", "full_attention"], "sliding_window": 16}, (16, None)),
    ({"layer_types": ["local", "global"], "sliding_window": 64}, (64, None)),
    ({"layer_types": ["local_attention", "attention"], "sliding_window": 64}, (64, None)),
    ({"layer_types": ["linear_attention", "full_attention"], "linear_num_value_heads": 1, "linear_num_key_heads": 1,
      "linear_key_head_dim": 2, "linear_value_head_dim": 2}, (0, None)),
    ({"layer_types": ["mamba", "attention"], "mamba_d_state": 4}, (0, None)),
    ({"attn_type_list": [0, 1]}, (0, None)),
    ({"attn_layer_period": 2, "attn_layer_offset": 1, "mamba_d_state": 4}, (0, None)),
    ({"attn_layer_period": 2, "mamba_d_state": 4}, (None, 0)),            # offset 0 by default
    ({"full_attention_interval": 2, "linear_num_value_heads": 1, "linear_num_key_heads": 1,
      "linear_key_head_dim": 2, "linear_value_head_dim": 2}, (0, None)),
    ({"attention_chunk_size": 32, "no_rope_layers": [1, 0]}, (32, None)),
    ({"attention_chunk_size": 32, "no_rope_layer_interval": 2}, (32, None)),
    ({"sliding_window": 64, "sliding_window_pattern": 2}, (64, None)),
    ({"sliding_window": 64, "model_type": "gemma2"}, (64, None)),
    ({"sliding_window": 64, "model_type": "gemma", "cache_implementation": "hybrid"}, (64, None)),
    ({"sliding_window": 64, "model_type": "gemma"}, (64, 64)),
    ({"sliding_window": 64, "use_sliding_window": False}, (None, None)),
    ({"sliding_window": 64, "use_sliding_window": True, "max_window_layers": 1}, (None, 64)),
    ({"sliding_window": 64, "use_sliding_window": True}, (64, 64)),
    ({"sliding_window": 64}, (64, 64)),
    ({"sliding_window": None}, (None, None)),
])
def test_layer_layouts(extra, windows):
    cfg = dict(TINY, **extra)
    if 0 in windows and "linear_num_value_heads" not in extra and "mamba_d_state" not in extra:
        cfg.update(num_attention_heads=2, head_dim=4)
    assert _spec(**{k: v for k, v in cfg.items() if k not in TINY or cfg[k] != TINY[k]}).layer_window_tokens == windows


def test_llama4_default_interval_is_4():
    spec = get_model({"hf_config": dict(TINY, num_hidden_layers=8, attention_chunk_size=32), "params_total": 1e6})
    assert spec.layer_window_tokens == (32, 32, 32, None, 32, 32, 32, None)


def test_text_config_merges_and_names_its_keys():
    cfg = {"model_type": "gemma3", "text_config": {"hidden_size": 8, "num_hidden_layers": 2}, "hidden_size": 99,
           "vocab_size": 5}
    merged = text_config(cfg)
    # text wins; the model type gains "_text" and brings Gemma 3's class defaults
    assert merged["hidden_size"] == 8 and merged["vocab_size"] == 5 and merged["model_type"] == "gemma3_text"
    assert merged["sliding_window_pattern"] == 6 and merged["max_position_embeddings"] == 131072
    assert "text_config" not in merged
    # a model type in text_config is kept; a given value is not overwritten by a default
    assert text_config({"text_config": {"model_type": "gemma2", "sliding_window": 128}})["sliding_window"] == 128
    assert text_config({"model_type": "gpt_oss"})["sliding_window"] == 128
    assert key_path(cfg, "hidden_size") == "model.hf_config.text_config.hidden_size"
    assert key_path(cfg, "vocab_size", "f") == "f.hf_config.vocab_size"
    assert key_path(None, "x") == "model.hf_config.x"


@pytest.mark.parametrize("cfg,field,problem", [
    (dict(TINY, num_hidden_layers=None), "model.hf_config.num_hidden_layers", "missing or invalid"),
    (dict(TINY, num_attention_heads=True), "model.hf_config.num_attention_heads", "not a number"),
    (dict(TINY, num_key_value_heads=None, num_kv_heads=None, multi_query_group_num=0), None, None),
    (dict(TINY, num_experts=4, num_experts_per_tok=5), "model.hf_config.num_experts_per_tok",
     "experts per token (5) cannot exceed the experts (4)"),
    (dict(TINY, layer_types=["full_attention"]), "model.hf_config.layer_types", "1 layer kinds for 2 layers"),
])
def test_config_refusals(cfg, field, problem):
    with pytest.raises(InputError) as e:
        get_model({"hf_config": cfg})
    if field is not None:
        assert e.value.field == field and e.value.problem == problem


def test_kv_head_conventions():
    # Falcon-7B: multi_query without the new decoder architecture -> 1 KV head
    s = _spec(num_key_value_heads=None, multi_query=True)
    assert s.num_kv_heads == 1 and s.attention == "mqa"
    assert _spec(num_key_value_heads=None, multi_query=True, new_decoder_architecture=True).num_kv_heads == 2
    # ChatGLM: multi_query_group_num
    s = get_model({"hf_config": dict(TINY, num_key_value_heads=None, multi_query_attention=True,
                                     multi_query_group_num=2), "params_total": 1e6})
    assert s.num_kv_heads == 2
    assert any(d["code"] == "derived_kv_heads_chatglm" and d["params"] == {"kv_heads": 2}
               for d in s.derived_fields())
    # no KV heads at all: MHA, said so
    s = _spec(num_key_value_heads=None)
    assert s.num_kv_heads == 2
    assert any(d["code"] == "derived_kv_heads_mha" for d in s.derived_fields())


def test_params_given_or_estimated():
    s = get_model({"hf_config": TINY})
    assert (s.params_total, s.params_active, s.params_estimated) == (1312.0, 1312.0, True)
    # a total given but not the active count: active estimated, capped at the total
    s = get_model({"hf_config": TINY, "params_total": 1000.0})
    assert s.params_active == 1000.0 and s.params_estimated
    with pytest.raises(InputError) as e:
        get_model({"hf_config": TINY, "params_total": 1000.0, "params_active": 2000.0})
    assert e.value.field == "model.params_active" and "params_total (1000)" in e.value.problem
    with pytest.raises(InputError) as e:
        get_model({"hf_config": TINY, "params_active": 2000.0})
    assert "the total estimated from the config (1312)" in e.value.problem
