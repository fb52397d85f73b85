"""config.json parsing (kvcalc.hfconfig) on the key names of real model families, with every expected
value worked out by hand next to it (issue #10, mutation testing: the survivors were the alias keys
GPT-2, Falcon and ChatGLM use, the error paths and the derivation records).

Configs are the architecture fields of the published config.json files named in each comment
(Hugging Face hub); where a case needs a variation (a key left out, a value changed) it says so.
"""

import pytest

from kvcalc.errors import InputError
from kvcalc.hfconfig import estimate_param_groups, linear_state_bytes_per_layer, spec_from_hf_config, text_config
from kvcalc.memory import kv_bytes_per_token
from kvcalc.presets import get_model

# openai-community/gpt2 config.json
GPT2 = {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "n_ctx": 1024,
        "n_inner": None, "vocab_size": 50257, "activation_function": "gelu_new"}
# tiiuae/falcon-7b config.json (no max_position_embeddings in it)
FALCON7 = {"model_type": "falcon", "hidden_size": 4544, "n_head": 71, "n_layer": 32, "multi_query": True,
           "parallel_attn": True, "vocab_size": 65024, "bias": False, "alibi": False}
# tiiuae/falcon-40b config.json: the new decoder architecture reads n_head_kv, not multi_query
FALCON40 = {"model_type": "falcon", "hidden_size": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60,
            "multi_query": True, "new_decoder_architecture": True, "parallel_attn": True, "vocab_size": 65024}
# THUDM/chatglm3-6b config.json
GLM = {"model_type": "chatglm", "num_layers": 28, "hidden_size": 4096, "num_attention_heads": 32,
       "multi_query_attention": True, "multi_query_group_num": 2, "kv_channels": 128, "seq_length": 8192,
       "ffn_hidden_size": 13696, "padded_vocab_size": 65024, "torch_dtype": "float16"}


def _derived(spec):
    return {d["field"]: d for d in spec.derived_fields()}


def _err(cfg, **kw):
    with pytest.raises(InputError) as e:
        get_model(dict({"hf_config": cfg}, **kw))
    return e.value


def test_gpt2_keys():
    """n_layer / n_head / n_embd / n_positions. MHA (no KV key): 12 KV heads, head_dim 768 / 12 = 64;
    KV per token at 16 bits 2 x 12 x 12 x 64 x 2 = 36864 B. Parameters (GPT-2: ungated MLP, width
    4 x 768 = 3072 as n_inner is null; no tie key, so counted untied): embeddings 50257 x 768 x 2 =
    77,194,752; per layer attention 4 x 768^2 = 2,359,296 + MLP 2 x 768 x 3072 = 4,718,592;
    total 77,194,752 + 12 x 7,077,888 = 162,129,408."""
    s = get_model({"hf_config": GPT2})
    assert (s.num_layers, s.num_attention_heads, s.num_kv_heads, s.head_dim, s.hidden_size) == (12, 12, 12, 64, 768)
    assert s.max_position_embeddings == 1024 and s.attention == "mha"
    assert kv_bytes_per_token(s, 16) == 36864
    assert s.params_total == 162_129_408 and s.params_active == 162_129_408
    assert s.params_embedding == 77_194_752 and s.params_estimated is True
    assert s.notes == "parameter counts estimated from the architecture (embeddings, attention, MLP/experts)"
    assert (s.id, s.name, s.source) == ("hf_config", "hf_config", "user-supplied config.json")
    d = _derived(s)
    assert d["num_key_value_heads"]["how"] == "not given: equal to num_attention_heads (12), i.e. MHA"
    assert (d["num_key_value_heads"]["code"], d["num_key_value_heads"]["params"]) == (
        "derived_kv_heads_mha", {"attention_heads": 12})
    assert d["head_dim"]["how"] == "hidden_size / num_attention_heads = 768 / 12"
    assert (d["head_dim"]["code"], d["head_dim"]["params"]) == (
        "derived_head_dim", {"hidden_size": 768, "attention_heads": 12, "head_dim": 64})
    assert type(d["head_dim"]["params"]["head_dim"]) is int
    assert d["params_total"] == {"field": "params_total", "code": "derived_params_estimated",
                                 "how": "estimated from the architecture (embeddings, attention, MLP/experts)",
                                 "params": {"params_total": 162_129_408.0}}
    assert d["params_active"] == {"field": "params_active", "code": "derived_params_active_estimated",
                                  "how": "estimated from the architecture (experts per token)",
                                  "params": {"params_active": 162_129_408.0}}
    # n_inner given wins over 4 x hidden: MLP 2 x 768 x 1000 per layer
    g = estimate_param_groups(dict(GPT2, n_inner=1000))
    assert g["total"] == 77_194_752 + 12 * (2_359_296 + 2 * 768 * 1000)


def test_counts_given_are_not_estimated():
    s = get_model({"hf_config": GPT2, "params_total": 1.5e8, "params_active": 1.5e8, "name": "gpt2"})
    assert s.params_estimated is False and s.notes == "" and s.name == "gpt2"
    assert "params_total" not in _derived(s) and "params_active" not in _derived(s)
    # the total given, the active estimated: min(estimate 162,129,408, 1e8) = 1e8
    s = get_model({"hf_config": GPT2, "params_total": 1e8})
    assert s.params_active == 1e8 and s.params_estimated is True
    assert get_model({"hf_config": dict(GPT2, _name_or_path="openai-community/gpt2")}).name == "openai-community/gpt2"


def test_falcon_multi_query_and_n_head_kv():
    """Falcon-7B: multi_query true -> 1 KV head; head_dim 4544 / 71 = 64; KV 2 x 32 x 1 x 64 x 2 = 8192 B
    per token; no max_position_embeddings: none is checked. Falcon-40B: the new decoder architecture
    has n_head_kv = 8 KV heads (not 1): 2 x 60 x 8 x 64 x 2 = 122880 B."""
    s = get_model({"hf_config": FALCON7})
    assert (s.num_kv_heads, s.head_dim, s.attention) == (1, 64, "mqa")
    assert kv_bytes_per_token(s, 16) == 8192 and s.max_position_embeddings is None
    d = _derived(s)
    assert (d["num_key_value_heads"]["how"], d["num_key_value_heads"]["code"]) == (
        "1 (multi_query: true)", "derived_kv_heads_multi_query")
    assert (d["max_position_embeddings"]["how"], d["max_position_embeddings"]["code"]) == (
        "not given: no context-length limit is checked", "derived_no_max_position")
    # Falcon's MLP is ungated: 2 x 4544 x (4 x 4544) per layer; attention 2 x 4544^2 + 2 x 4544 x 64
    attn = 4544 * 71 * 64 + 2 * 4544 * 1 * 64 + 71 * 64 * 4544
    assert estimate_param_groups(FALCON7)["total"] == 65024 * 4544 * 2 + 32 * (attn + 2 * 4544 * 4 * 4544)
    s = get_model({"hf_config": FALCON40})
    assert (s.num_kv_heads, s.head_dim) == (8, 64) and kv_bytes_per_token(s, 16) == 122880
    # a KV count under the third name (n_head_kv) that does not divide the heads is named as sent
    e = _err(dict(FALCON40, n_head_kv=48))
    assert (e.field, e.value, e.code) == ("model.hf_config.n_head_kv", 48, "kv_heads_not_divisor")


def test_chatglm_keys():
    """ChatGLM3-6B: multi_query_group_num 2 KV heads, kv_channels 128 per head, seq_length 8192 context;
    KV 2 x 28 x 2 x 128 x 2 = 28672 B per token. Parameters: padded_vocab 65024 x 4096 x 2 = 532,676,608
    (untied); attention 4096 x 32 x 128 x 2 + 2 x 4096 x 2 x 128 = 35,651,584; gated MLP 3 x 4096 x
    13696 = 168,296,448; total 532,676,608 + 28 x 203,948,032 = 6,243,221,504 (published: 6.2 B)."""
    s = get_model({"hf_config": GLM})
    assert (s.num_layers, s.num_kv_heads, s.head_dim, s.max_position_embeddings) == (28, 2, 128, 8192)
    assert kv_bytes_per_token(s, 16) == 28672
    assert s.params_total == 6_243_221_504 and s.params_embedding == 532_676_608
    d = _derived(s)
    assert d["num_key_value_heads"] == {"field": "num_key_value_heads", "how": "multi_query_group_num (ChatGLM)",
                                        "code": "derived_kv_heads_chatglm", "params": {"kv_heads": 2}}
    assert "head_dim" not in d
    # kv_channels is the head width even when hidden / heads differs (a variation: 64 per head)
    s = get_model({"hf_config": dict(GLM, kv_channels=64), "params_total": 6e9})
    assert s.head_dim == 64 and kv_bytes_per_token(s, 16) == 2 * 28 * 2 * 64 * 2
    # multi_query_attention alone (no group count): one KV head
    s = get_model({"hf_config": {k: v for k, v in GLM.items() if k != "multi_query_group_num"}})
    assert s.num_kv_heads == 1
    # the group count alone (no multi_query_attention flag) is read too
    s = get_model({"hf_config": {k: v for k, v in GLM.items() if k != "multi_query_attention"}})
    assert s.num_kv_heads == 2


@pytest.mark.parametrize("key", ["max_position_embeddings", "seq_length", "n_positions", "max_seq_len",
                                 "max_sequence_length"])
def test_every_context_key(key):
    cfg = {k: v for k, v in GPT2.items() if k not in ("n_positions", "n_ctx")}
    assert get_model({"hf_config": dict(cfg, **{key: 2048})}).max_position_embeddings == 2048
    if key != "max_position_embeddings":   # the first key wins
        both = dict(cfg, max_position_embeddings=4096, **{key: 2048})
        assert get_model({"hf_config": both}).max_position_embeddings == 4096


@pytest.mark.parametrize("names", [("num_hidden_layers", "num_attention_heads", "hidden_size"),
                                   ("num_layers", "num_heads", "d_model"), ("n_layer", "n_head", "n_embd")])
def test_every_name_of_the_three_counts(names):
    """3 layers, 4 heads, width 32 (head_dim 8) under each family's names: 2 x 3 x 4 x 8 x 2 = 384 B."""
    cfg = dict(zip(names, (3, 4, 32)), vocab_size=100)
    s = get_model({"hf_config": cfg, "params_total": 1e5})
    assert (s.num_layers, s.num_attention_heads, s.hidden_size, s.head_dim) == (3, 4, 32, 8)
    assert kv_bytes_per_token(s, 16) == 384
    for i, key in enumerate(names):   # missing: named by the first of its names
        first = ("num_hidden_layers", "num_attention_heads", "hidden_size")[i]
        e = _err({k: v for k, v in cfg.items() if k != key})
        assert (e.field, e.value, e.allowed, e.problem) == (f"model.hf_config.{first}", None, "a positive integer",
                                                          "missing or invalid")


@pytest.mark.parametrize("key", ["num_key_value_heads", "num_kv_heads", "n_head_kv"])
def test_every_kv_key(key):
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 8, "hidden_size": 64, key: 2}
    assert get_model({"hf_config": cfg, "params_total": 1e5}).num_kv_heads == 2
    # estimate_param_groups is public and checks the geometry itself: a bad count is named
    with pytest.raises(InputError) as e:
        estimate_param_groups(dict(cfg, **{key: 0}))
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == (
        f"model.hf_config.{key}", 0, "a positive integer", "missing or invalid")


def test_kv_default_path_of_an_invalid_value():
    with pytest.raises(InputError) as e:
        estimate_param_groups({"n_layer": 2, "n_head": 8, "n_embd": 64, "num_key_value_heads": True})
    assert (e.value.field, e.value.value) == ("model.hf_config.num_key_value_heads", True)
    with pytest.raises(InputError) as e:
        estimate_param_groups({"n_layer": 0, "n_head": 8, "n_embd": 64})
    assert (e.value.field, e.value.value, e.value.allowed) == ("model.hf_config.n_layer", 0, "a positive integer")


def test_head_geometry_errors_name_the_key_sent():
    # 12 heads do not split 770 (no head_dim): named at the heads key the config used, inside text_config
    e = _err({"text_config": dict(GPT2, n_embd=770)})
    assert (e.field, e.value, e.code) == ("model.hf_config.text_config.n_head", 12, "hidden_not_divisible")
    # MLA (kv_lora_rank) needs no head split
    s = get_model({"hf_config": {"num_hidden_layers": 2, "num_attention_heads": 3, "hidden_size": 100,
                                 "kv_lora_rank": 16, "qk_rope_head_dim": 8}, "params_total": 1e6})
    assert s.attention == "mla" and kv_bytes_per_token(s, 16) == 2 * (16 + 8) * 2


def test_mla_parameter_defaults():
    """kv_lora_rank without the other MLA widths: rope 64, nope 128, v 128 (DeepSeek-V2/V3's). Hidden 16,
    4 heads, rank 8, no q_lora_rank, 1 layer, vocab 10 untied, gated MLP 3 x 16 x 20:
    q 16 x 4 x 192 = 12288; kv_a 16 x (8 + 64) = 1152; kv_b 8 x 4 x (128 + 128) = 8192; o 4 x 128 x 16 = 8192."""
    cfg = {"num_hidden_layers": 1, "num_attention_heads": 4, "hidden_size": 16, "kv_lora_rank": 8,
           "vocab_size": 10, "intermediate_size": 20}
    assert estimate_param_groups(cfg)["total"] == 10 * 16 * 2 + 12288 + 1152 + 8192 + 8192 + 3 * 16 * 20


def test_tie_embeddings_alias_and_vocab_default():
    cfg = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10,
           "intermediate_size": 4}
    # 10 x 8 once (tie_embeddings, an older name) or twice
    assert estimate_param_groups(dict(cfg, tie_embeddings=True))["embedding"] == 80
    assert estimate_param_groups(cfg)["embedding"] == 160
    assert estimate_param_groups(dict(cfg, tie_word_embeddings=False, tie_embeddings=True))["embedding"] == 160
    # no vocabulary: 32000 assumed, so the spec still carries an embedding share
    no_vocab = {k: v for k, v in cfg.items() if k != "vocab_size"}
    assert get_model({"hf_config": no_vocab}).params_embedding == 32000 * 8 * 2


@pytest.mark.parametrize("model_type", ["falcon", "gpt2", "gpt_neox", "bloom"])
def test_ungated_families(model_type):
    cfg = {"model_type": model_type, "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8,
           "vocab_size": 10, "intermediate_size": 4}
    # attention 4 x 64 = 256; MLP 2 x 8 x 4 = 64 (gated would be 96)
    assert estimate_param_groups(cfg)["total"] == 160 + 256 + 64
    assert estimate_param_groups(dict(cfg, model_type="llama"))["total"] == 160 + 256 + 96


@pytest.mark.parametrize("key", ["intermediate_size", "ffn_hidden_size", "n_inner", "inner_hidden_size"])
def test_every_mlp_width_key(key):
    cfg = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10, key: 5}
    assert estimate_param_groups(cfg)["total"] == 160 + 256 + 3 * 8 * 5


@pytest.mark.parametrize("n_key", ["n_routed_experts", "num_local_experts", "num_experts"])
@pytest.mark.parametrize("k_key", ["num_experts_per_tok", "experts_per_token", "num_experts_per_token"])
def test_every_expert_key(n_key, k_key):
    """4 experts of width 6, top 1, one layer: experts 4 x 3 x 8 x 6 = 576, router 8 x 4 = 32;
    active 144 + 32. Top-k above the experts is refused at the key sent; equal is fine."""
    cfg = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10,
           "intermediate_size": 6, n_key: 4, k_key: 1}
    g = estimate_param_groups(cfg)
    assert (g["total"], g["active"], g["experts"]) == (160 + 256 + 576 + 32, 160 + 256 + 144 + 32, 576)
    assert get_model({"hf_config": dict(cfg, **{k_key: 4})}).params_active == 160 + 256 + 576 + 32
    e = _err(dict(cfg, **{k_key: 5}))
    assert (e.field, e.value, e.code) == (f"model.hf_config.{k_key}", 5, "inconsistent")
    assert e.allowed == f"at most the experts ({n_key}: 4)"
    assert e.problem == "experts per token (5) cannot exceed the experts (4)"


def test_expert_count_edges():
    base = {"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10}
    # one expert, two per token: refused
    e = _err(dict(base, num_local_experts=1, num_experts_per_tok=2))
    assert (e.field, e.code) == ("model.hf_config.num_experts_per_tok", "inconsistent")
    # with the caller's field
    with pytest.raises(InputError) as e:
        get_model({"hf_config": dict(base, num_local_experts=2, num_experts_per_tok=3)}, field="cluster.models[0]")
    assert e.value.field == "cluster.models[0].hf_config.num_experts_per_tok"
    # inside text_config the error names that path
    e = _err({"text_config": dict(base, num_local_experts=2, num_experts_per_tok=3)})
    assert e.field == "model.hf_config.text_config.num_experts_per_tok"


def test_moe_layer_selection():
    """2 layers, 4 experts of width 6 top 1; a dense layer costs 3 x 8 x 16 = 384 (intermediate 16),
    an MoE layer 4 x 144 + 32 = 608 total, 144 + 32 = 176 active. Step 2 makes only layer 2 (i = 1)
    MoE; first_k_dense_replace 1 makes layer 1 dense."""
    base = {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10,
            "intermediate_size": 16, "moe_intermediate_size": 6, "num_experts": 4, "num_experts_per_tok": 1}
    one_moe = 160 + 2 * 256 + 384 + 608
    assert estimate_param_groups(dict(base, decoder_sparse_step=2))["total"] == one_moe
    assert estimate_param_groups(dict(base, interleave_moe_layer_step=2))["total"] == one_moe
    assert estimate_param_groups(dict(base, first_k_dense_replace=1))["total"] == one_moe
    assert estimate_param_groups(base)["total"] == 160 + 2 * (256 + 608)
    # 3 layers, step 3: only layer 3 (i = 2) is MoE
    three = dict(base, num_hidden_layers=3)
    assert estimate_param_groups(dict(three, decoder_sparse_step=3))["total"] == 160 + 3 * 256 + 2 * 384 + 608
    assert estimate_param_groups(dict(three, interleave_moe_layer_step=3))["total"] == 160 + 3 * 256 + 2 * 384 + 608
    # interleaved dense layers use intermediate_size_mlp (Llama 4) when given, else intermediate_size
    g = estimate_param_groups(dict(base, interleave_moe_layer_step=2, intermediate_size_mlp=10))
    assert g["total"] == 160 + 2 * 256 + 3 * 8 * 10 + 608
    # without interleaving, intermediate_size_mlp is not read
    assert estimate_param_groups(dict(base, intermediate_size_mlp=10, first_k_dense_replace=1))["total"] == one_moe


def test_llama4_shared_expert():
    """A llama4 MoE layer adds one shared expert of the expert width: 3 x 8 x 6 = 144 (others: none)."""
    cfg = {"model_type": "llama4_text", "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8,
           "vocab_size": 10, "moe_intermediate_size": 6, "num_local_experts": 4, "num_experts_per_tok": 1,
           "intermediate_size": 6, "attention_chunk_size": 8192}
    assert estimate_param_groups(cfg)["total"] == 160 + 256 + 576 + 144 + 32
    assert estimate_param_groups(dict(cfg, model_type="mixtral"))["total"] == 160 + 256 + 576 + 32


def test_windows_of_each_layout():
    # Gemma 2: local on even layers (4 layers: local, global, local, global)
    g2 = {"model_type": "gemma2", "num_hidden_layers": 4, "num_attention_heads": 2, "hidden_size": 8,
          "sliding_window": 4096, "max_position_embeddings": 8192}
    assert get_model({"hf_config": g2, "params_total": 1e6}).layer_window_tokens == (4096, None, 4096, None)
    # Gemma 3 pattern 2: every 2nd layer global; pattern 1: every layer global
    g3 = dict(g2, model_type="gemma3_text", sliding_window_pattern=2)
    assert get_model({"hf_config": g3, "params_total": 1e6}).layer_window_tokens == (4096, None, 4096, None)
    g3 = dict(g2, model_type="gemma3_text", sliding_window_pattern=1, num_hidden_layers=3)
    assert get_model({"hf_config": g3, "params_total": 1e6}).layer_window_tokens == (None, None, None)
    g3 = dict(g2, model_type="gemma3_text", sliding_window_pattern=3, num_hidden_layers=6)
    assert get_model({"hf_config": g3, "params_total": 1e6}).layer_window_tokens == (4096, 4096, None) * 2
    # Jamba (ai21labs/Jamba-v0.1: period 8, offset 4): attention on layers 4 and 12 of 16, Mamba elsewhere
    jamba = {"num_hidden_layers": 16, "num_attention_heads": 4, "num_key_value_heads": 1, "hidden_size": 64,
             "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4,
             "mamba_expand": 2}
    w = get_model({"hf_config": jamba, "params_total": 1e6}).layer_window_tokens
    assert [i for i, x in enumerate(w) if x is None] == [4, 12] and w.count(0) == 14
    # a period without mamba_d_state is no Jamba layout; an interval without DeltaNet heads no Qwen3-Next one
    plain = dict(jamba)
    del plain["mamba_d_state"]
    assert get_model({"hf_config": plain, "params_total": 1e6}).layer_window_tokens == (None,) * 16
    q = {"num_hidden_layers": 4, "num_attention_heads": 4, "hidden_size": 64, "full_attention_interval": 2}
    assert get_model({"hf_config": q, "params_total": 1e6}).layer_window_tokens == (None,) * 4


def test_state_defaults():
    """Mamba-1 without expand / d_conv: expand 2, d_conv 4: inner 2 x 64 = 128; (3 x 128 + 128 x 16) x 2
    = 4864 B; expand 3: inner 192, (3 x 192 + 192 x 16) x 2 = 7296. Gated DeltaNet without a kernel size:
    4 -> (3 x (2 x 2 x 4 + 2 x 4) + 2 x 4 x 4) x 2 = (72 + 32) x 2 = 208."""
    assert linear_state_bytes_per_layer({"hidden_size": 64, "mamba_d_state": 16}) == 4864
    assert linear_state_bytes_per_layer({"hidden_size": 64, "mamba_d_state": 16, "mamba_expand": 3}) == 7296
    assert linear_state_bytes_per_layer({"hidden_size": 64, "mamba_d_state": 16, "mamba_d_conv": 2}) == (128 + 2048) * 2
    gdn = {"linear_num_key_heads": 2, "linear_key_head_dim": 4, "linear_num_value_heads": 2,
           "linear_value_head_dim": 4}
    assert linear_state_bytes_per_layer(gdn) == 208


def test_text_config_keeps_its_own_model_type():
    # mistralai/Mistral-Small-3.1-24B-Instruct-2503: top "mistral3", text_config "mistral"
    assert text_config({"model_type": "mistral3", "text_config": {"model_type": "mistral"}})["model_type"] == "mistral"
    assert text_config({"model_type": "gemma3", "text_config": {}})["model_type"] == "gemma3_text"


def test_spec_from_hf_config_defaults_and_refusals():
    s = spec_from_hf_config(GPT2)
    assert (s.id, s.name) == ("hf_config", "hf_config")
    assert spec_from_hf_config(GPT2, model_id="m1", name="My GPT").name == "My GPT"
    with pytest.raises(InputError) as e:
        spec_from_hf_config([1, 2])
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == (
        "model.hf_config", [1, 2], "a config.json object", "not an object")
    # a value the parser cannot use (a layer-type list entry that is a dict: str() of it is no kind)
    with pytest.raises(InputError) as e:
        spec_from_hf_config(dict(GPT2, n_layer=2, layer_types=[{"a": 1}, "full_attention"]), field="m")
    assert e.value.field == "m.hf_config.layer_types"


def test_weight_format_derivations():
    """The weight_dtype record names the rule kvcalc.quant applied and its parameters."""
    s = get_model({"hf_config": GPT2})
    d = _derived(s)["weight_dtype"]
    assert (d["code"], d["how"], d["params"]) == ("derived_weight_assumed_bf16",
                                                 "no torch_dtype and no quantization_config: bf16 assumed", {})
    awq = dict(GPT2, quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})
    d = _derived(get_model({"hf_config": awq}))["weight_dtype"]
    assert d["code"] == "derived_weight_quant_group" and d["field"] == "weight_dtype"
    assert d["params"] == {"method": "awq", "weight_dtype": "int4", "group_size": 128}
    assert d["how"].startswith("quantization_config")
    fp8 = dict(GPT2, quantization_config={"quant_method": "fp8"})
    d = _derived(get_model({"hf_config": fp8}))["weight_dtype"]
    assert d["code"] == "derived_weight_quant" and d["field"] == "weight_dtype"
    assert d["params"] == {"method": "fp8", "weight_dtype": "fp8"}
    assert d["how"].startswith("quantization_config")


def test_experts_only_weight_format_and_unreadable_configs():
    """openai/gpt-oss-120b (tests/fixtures): MXFP4 on the MoE experts only. A config whose layer list
    holds text where numbers belong cannot be read: the error names hf_config and quotes the cause."""
    import json
    from pathlib import Path
    cfg = json.loads((Path(__file__).parent / "fixtures" / "hf_configs" / "gpt-oss-120b.json").read_text())
    d = _derived(get_model({"hf_config": cfg}))["weight_dtype"]
    assert d == {"field": "weight_dtype", "code": "derived_weight_quant_experts",
                 "how": "quantization_config: mxfp4 (MoE experts only)",
                 "params": {"method": "mxfp4", "weight_dtype": "mxfp4"}}
    e = _err(dict(GPT2, n_layer=2, attn_type_list=["a", "b"]))
    assert (e.field, e.value) == ("model.hf_config", "config.json")
    assert e.allowed == "a Hugging Face config.json whose architecture fields are numbers"
    assert e.problem == "cannot read the config (ValueError: invalid literal for int() with base 10: 'a')"


def test_lightning_state_floors_the_head_width():
    """Lightning attention without head_dim: hidden // heads = 100 // 3 = 33: 3 x 33 x 33 x 2 = 6534 B."""
    assert linear_state_bytes_per_layer({"attn_type_list": [1], "num_attention_heads": 3, "hidden_size": 100}) == 6534


def test_the_caller_field_prefixes_every_check():
    """The fleet's model entries pass their own field: the range check of a count names it too."""
    with pytest.raises(InputError) as e:
        get_model({"hf_config": dict(GPT2, n_layer=0)}, field="cluster.models[1]")
    assert (e.value.field, e.value.value) == ("cluster.models[1].hf_config.n_layer", 0)


def test_error_paths_inside_text_config_and_under_a_caller_field():
    """Every key an error names is the one the user sent: inside text_config when it came from there,
    under the caller's field (the fleet's entries)."""
    def err(cfg, field="model"):
        with pytest.raises(InputError) as e:
            get_model({"hf_config": cfg}, field=field)
        return e.value
    no_layers = {k: v for k, v in GPT2.items() if k != "n_layer"}
    # a missing key is named at the top level (it is in neither place)
    assert err({"text_config": no_layers}).field == "model.hf_config.num_hidden_layers"
    assert err(no_layers, "cluster.models[1]").field == "cluster.models[1].hf_config.num_hidden_layers"
    # 48 KV heads do not divide 128
    assert err({"text_config": dict(FALCON40, n_head_kv=48)}).field == "model.hf_config.text_config.n_head_kv"
    assert err(dict(FALCON40, n_head_kv=48), "cluster.models[1]").field == "cluster.models[1].hf_config.n_head_kv"
    # hidden 770 over 12 heads, no head_dim: named at the heads key
    assert err(dict(GPT2, n_embd=770), "cluster.models[1]").field == "cluster.models[1].hf_config.n_head"
    # ChatGLM: 3 KV groups do not divide 32 heads: named at multi_query_group_num
    assert err(dict(GLM, multi_query_group_num=3)).field == "model.hf_config.multi_query_group_num"
    # a layer_types list of the wrong length (3 for 12 layers)
    bad = dict(GPT2, layer_types=["full_attention"] * 3)
    assert err({"text_config": bad}).field == "model.hf_config.text_config.layer_types"
    assert err(bad, "cluster.models[1]").field == "cluster.models[1].hf_config.layer_types"


def test_head_dim_given_needs_no_even_split():
    """Gemma-style: head_dim 256 given, hidden 3000 not a multiple of 16 heads: accepted."""
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 16, "num_key_value_heads": 8, "hidden_size": 3000,
           "head_dim": 256}
    s = get_model({"hf_config": cfg, "params_total": 1e9})
    assert s.head_dim == 256 and kv_bytes_per_token(s, 16) == 2 * 2 * 8 * 256 * 2


def test_active_above_total_is_refused_with_its_numbers():
    e = _err(GPT2, params_total=1e8, params_active=2e8)
    assert (e.field, e.value, e.code) == ("model.params_active", 2e8, "inconsistent")
    assert e.allowed == "at most params_total (1e+08)"
    assert e.problem == "active parameters (2e+08) cannot exceed params_total (1e+08)"
    # the total estimated (162,129,408), the active given above it
    e = _err(GPT2, params_active=2e8)
    assert e.allowed == "at most the total estimated from the config (1.62129e+08)"
    # the active given, the total estimated: the counts are marked estimated
    s = get_model({"hf_config": GPT2, "params_active": 1e8})
    assert s.params_estimated is True and s.params_total == 162_129_408


def test_moe_step_positions_count():
    """5 layers, step 3: MoE where (i + 1) % 3 == 0, i.e. layer i = 2 only (one MoE, four dense);
    counting from the other end or off by one would give two MoE layers."""
    base = {"num_hidden_layers": 5, "num_attention_heads": 2, "hidden_size": 8, "vocab_size": 10,
            "intermediate_size": 16, "moe_intermediate_size": 6, "num_experts": 4, "num_experts_per_tok": 1}
    one = 160 + 5 * 256 + 4 * 384 + 608
    assert estimate_param_groups(dict(base, decoder_sparse_step=3))["total"] == one
    assert estimate_param_groups(dict(base, interleave_moe_layer_step=3))["total"] == one
