"""A model typed by hand (kvcalc.architecture): what each field becomes and every refusal, with the
field, the value, the allowed range and the problem it names (issue #10, mutation testing).

Expected geometry is the published config.json of the model named in each comment; ranges are the
``model.architecture.*`` rows of kvcalc.limits."""

import pytest

from kvcalc.architecture import check_head_geometry, check_layer_kinds, derivation
from kvcalc.errors import InputError
from kvcalc.memory import kv_bytes_per_token, linear_state_bytes_per_sequence, weights_breakdown
from kvcalc.presets import get_model

BASE = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "params_total": 8e9}
P = "model.architecture."


def _spec(**kw):
    return get_model({"architecture": dict(BASE, **kw)})


def _err(arch):
    with pytest.raises(InputError) as e:
        get_model({"architecture": arch})
    return e.value


def _derived(spec):
    return {d["field"]: d for d in spec.derived_fields()}


def test_derivation_record():
    d = derivation("head_dim", "4096 / 32", code="derived_head_dim", b=2, a=1)
    assert d == {"field": "head_dim", "how": "4096 / 32", "code": "derived_head_dim", "params": (("a", 1), ("b", 2))}


def test_mha_defaults_and_what_was_derived():
    s = _spec()
    assert (s.attention, s.num_kv_heads, s.head_dim) == ("mha", 32, 128)
    d = _derived(s)
    assert d["num_kv_heads"]["code"] == "derived_kv_heads_mha" and d["num_kv_heads"]["params"] == {"attention_heads": 32}
    assert d["num_kv_heads"]["how"] == "not given: equal to the attention heads (32), i.e. MHA"
    assert d["head_dim"]["params"] == {"hidden_size": 4096, "attention_heads": 32, "head_dim": 128}
    assert d["head_dim"]["how"] == "hidden_size / num_attention_heads = 4096 / 32"
    assert d["params_active"]["code"] == "derived_params_active_dense" and s.params_active == 8e9
    assert d["weight_dtype"]["code"] == "derived_weight_bf16" and s.weight_dtype == "bf16"
    assert d["max_position_embeddings"]["code"] == "derived_no_max_position"
    assert s.name == "hand-entered model" and s.source == "entered by hand"
    # Llama-2-7B geometry (MHA, 32 x 32 x 128): 2 x 32 x 32 x 128 x 2 = 524288 B per token
    assert kv_bytes_per_token(s, 16) == 524288


def test_mqa_and_mla_kv_heads():
    s = _spec(attention="mqa")
    assert s.num_kv_heads == 1 and s.attention == "mqa"
    assert _derived(s)["num_kv_heads"]["code"] == "derived_kv_heads_mqa"
    assert _derived(s)["num_kv_heads"]["how"] == "1 (MQA)"
    # MLA (DeepSeek-V2-Lite: rank 512, rope 64, 27 layers): KV heads default to the heads, the latent is cached
    m = get_model({"architecture": {"num_layers": 27, "hidden_size": 2048, "num_attention_heads": 16,
                                    "attention": "mla", "kv_lora_rank": 512, "qk_rope_head_dim": 64,
                                    "params_total": 15.7e9, "params_active": 2.4e9}})
    assert m.attention == "mla" and m.num_kv_heads == 16
    assert _derived(m)["num_kv_heads"]["code"] == "derived_kv_heads_mla"
    assert "MLA caches one latent" in _derived(m)["num_kv_heads"]["how"]
    assert kv_bytes_per_token(m, 16) == 27 * (512 + 64) * 2
    # kv_lora_rank alone makes it MLA; rope 0 is allowed (its range starts at 0)
    m = _spec(kv_lora_rank=256, qk_rope_head_dim=0)
    assert m.attention == "mla" and kv_bytes_per_token(m, 16) == 32 * 256 * 2


def test_gqa_given_and_head_dim_given():
    # Gemma-style: head_dim given, hidden not a multiple of heads x head_dim
    s = _spec(num_kv_heads=8, head_dim=256, hidden_size=3000, num_attention_heads=16)
    assert (s.attention, s.head_dim) == ("gqa", 256) and "head_dim" not in _derived(s)
    assert _spec(num_kv_heads=8, attention="gqa").attention == "gqa"
    # float counts with whole values are accepted as integers
    assert _spec(num_layers=32.0).num_layers == 32


def test_windows_patterns_and_linear_layers():
    # pattern repeated from layer 0: 3 layers of ["local", "global"] -> local, global, local
    s = get_model({"architecture": dict(BASE, num_layers=3, num_kv_heads=8, window_tokens=512,
                                        layer_pattern=["local", "global"])})
    assert s.layer_window_tokens == (512, None, 512)
    # a pattern as long as the model is accepted
    s = get_model({"architecture": dict(BASE, num_layers=2, num_kv_heads=8, layer_pattern=["global", "global"])})
    assert s.layer_window_tokens == (None, None)
    # Qwen3-Next DeltaNet sizes (16 key heads, 32 value heads, dims 128, kernel 4), bf16 state:
    # (3 x (2 x 16 x 128 + 32 x 128) + 32 x 128 x 128) x 2 = 1097728 B per layer
    s = get_model({"architecture": dict(BASE, num_layers=8, num_kv_heads=8, layer_pattern=["linear", "global"],
                                        linear_num_key_heads=16, linear_num_value_heads=32, linear_key_head_dim=128,
                                        linear_value_head_dim=128, linear_conv_kernel_dim=4)})
    assert s.linear_state_bytes_per_layer == 1097728
    assert linear_state_bytes_per_sequence(s) == 4 * 1097728
    d = _derived(s)["linear_state_bytes_per_layer"]
    assert d["code"] == "derived_linear_state" and d["params"] == {"state_bytes_per_layer": 1097728}
    # without the kernel size the DeltaNet default kernel 4 is used
    s2 = get_model({"architecture": dict(BASE, num_layers=8, num_kv_heads=8, layer_pattern=["linear", "global"],
                                         linear_num_key_heads=16, linear_num_value_heads=32, linear_key_head_dim=128,
                                         linear_value_head_dim=128)})
    assert s2.linear_state_bytes_per_layer == 1097728
    # or the state in bytes directly
    s = get_model({"architecture": dict(BASE, num_layers=4, num_kv_heads=8, layer_pattern=["linear", "global"],
                                        linear_state_bytes_per_layer=1e6)})
    assert s.linear_state_bytes_per_layer == 1e6 and "linear_state_bytes_per_layer" not in _derived(s)


def test_weights_embeddings_and_names():
    # Llama-3.1-8B: untied 128256 x 4096 embeddings counted twice, kept 16-bit under int4
    s = _spec(num_kv_heads=8, vocab_size=128256, weight_dtype="int4", params_total=8.03e9, name="my llama")
    emb = 2 * 128256 * 4096
    assert s.params_embedding == emb and s.name == "my llama"
    assert weights_breakdown(s)["params_16bit"] == emb
    assert "vocab_size" not in _derived(s)
    # tied: once
    assert _spec(vocab_size=1000, tie_word_embeddings=True).params_embedding == 1000 * 4096
    # quantized without a vocabulary: said to be counted at the quantized width
    d = _derived(_spec(weight_dtype="fp8"))
    assert d["vocab_size"]["code"] == "derived_no_vocab" and "weight_dtype" not in d
    assert "vocab_size" not in _derived(_spec(weight_dtype="bf16"))
    # experts: the count is kept for experts-only formats
    assert _spec(params_experts=6e9, params_active=2e9).params_experts == 6e9
    assert _spec(params_experts=8e9).params_experts == 8e9    # at most params_total
    # fp8 block scales via weight_group_size
    assert _spec(weight_dtype="fp8", weight_group_size=16384).weight_format_dict["group_size"] == 16384
    assert _spec(name="x" * 200).name == "x" * 200
    assert _spec(max_position_embeddings=8192).max_position_embeddings == 8192
    assert "max_position_embeddings" not in _derived(_spec(max_position_embeddings=8192))


@pytest.mark.parametrize("extra,field,value,allowed,problem", [
    ({"attention": "sparse"}, "attention", "sparse", "mha, gqa, mqa or mla", "unknown attention kind"),
    ({"num_kv_heads": 8, "attention": "mqa"}, "num_kv_heads", 8, "1 (MQA shares one KV head)",
     "MQA needs 1 KV head, got 8"),
    ({"num_kv_heads": 1, "attention": "gqa"}, "num_kv_heads", 1, "between 2 and 31 (GQA groups query heads)",
     "GQA needs fewer KV heads than attention heads (32) and more than 1, got 1"),
    ({"num_kv_heads": 32, "attention": "gqa"}, "num_kv_heads", 32, "between 2 and 31 (GQA groups query heads)",
     "GQA needs fewer KV heads than attention heads (32) and more than 1, got 32"),
    ({"num_kv_heads": 8, "attention": "mha"}, "num_kv_heads", 8, "32 (MHA has one KV head per attention head)",
     "MHA needs KV heads equal to attention heads (32), got 8"),
    ({"attention": "gqa"}, "num_kv_heads", None, "the number of KV heads (GQA needs it)", "missing"),
    ({"attention": "mla", "kv_lora_rank": 512}, "qk_rope_head_dim", None,
     "the MLA decoupled RoPE width (DeepSeek-V3: 64)", "missing for MLA"),
    ({"attention": "mla"}, "kv_lora_rank", None, "the MLA latent width (DeepSeek-V3: 512)", "missing for MLA"),
    ({"qk_rope_head_dim": 64}, "qk_rope_head_dim", 64, "only with attention 'mla' and kv_lora_rank",
     "MLA field without MLA"),
    ({"layer_pattern": ["local"]}, "window_tokens", None, "the window of the 'local' layers, in tokens",
     "missing: the layer pattern has local layers"),
    ({"window_tokens": 64, "layer_pattern": ["global"]}, "window_tokens", 64,
     "no window, or a layer pattern with 'local' layers", "a window but no local layer"),
    ({"layer_pattern": ["linear"], "linear_state_bytes_per_layer": 5.0}, "layer_pattern", ["linear"],
     "at least one 'global' or 'local' layer", "no attention layer"),
    ({"linear_state_bytes_per_layer": 5.0}, "linear_state_bytes_per_layer", 5.0,
     "only with 'linear' layers in layer_pattern", "a linear-layer state but no linear layer"),
    ({"linear_num_key_heads": 4}, "linear_state_bytes_per_layer", None,
     "only with 'linear' layers in layer_pattern", "a linear-layer state but no linear layer"),
    ({"params_active": 9e9}, "params_active", 9e9, "at most params_total (8e+09)",
     "active parameters (9e+09) cannot exceed the total (8e+09)"),
    ({"params_experts": 9e9}, "params_experts", 9e9, "at most params_total (8e+09)", "too many"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings", "yes", "true or false", "not a boolean"),
    # 1e6 x 4096 x 2 (untied) = 8.192e9 embedding parameters >= the 8e9 total
    ({"vocab_size": 10**6, "tie_word_embeddings": False}, "vocab_size", 10**6,
     "an embedding smaller than the whole model", "embeddings (8.192e+09 parameters) exceed params_total (8e+09)"),
    # tied 1953125 x 4096 = 8e9 exactly: an embedding equal to the total is refused too
    ({"vocab_size": 1953125, "tie_word_embeddings": True}, "vocab_size", 1953125,
     "an embedding smaller than the whole model", "embeddings (8e+09 parameters) exceed params_total (8e+09)"),
    ({"name": "x" * 201}, "name", "x" * 201, "a text of at most 200 characters", "not a name"),
    ({"name": 7}, "name", 7, "a text of at most 200 characters", "not a name"),
    ({"num_layers": 0}, "num_layers", 0, "an integer in [1, 1024]", "not a valid count"),
    ({"num_layers": 1025}, "num_layers", 1025, "an integer in [1, 1024]", "larger than any real model"),
    ({"num_layers": True}, "num_layers", True, "an integer in [1, 1024]", "not a valid count"),
    ({"num_layers": "32"}, "num_layers", "32", "an integer in [1, 1024]", "not a valid count"),
    ({"params_total": 0}, "params_total", 0, "a number in (0, 1e+14)", "out of range"),
    ({"params_total": float("nan")}, "params_total", None, "a number in (0, 1e+14)", "out of range"),
    ({"params_total": True}, "params_total", True, "a number in (0, 1e+14)", "out of range"),
    ({"params_total": "8e9"}, "params_total", "8e9", "a number in (0, 1e+14)", "out of range"),
    ({"params_total": None}, "params_total", None, "the parameter count (e.g. 8.03e9)", "missing"),
])
def test_refusals(extra, field, value, allowed, problem):
    e = _err(dict(BASE, **extra))
    assert e.field == P + field and e.allowed == allowed and e.problem == problem
    if value is not None or extra.get(field, 0) is None:
        assert e.value == value


def test_refusals_carry_codes_and_params():
    e = _err(dict(BASE, num_kv_heads=8, attention="mha"))
    assert e.code == "mha_kv_heads" and e.params == {"kv_heads": 8, "attention_heads": 32}
    e = _err(dict(BASE, num_kv_heads=4, attention="mqa"))
    assert e.code == "mqa_kv_heads" and e.params == {"kv_heads": 4}
    e = _err(dict(BASE, num_kv_heads=1, attention="gqa"))
    assert e.code == "gqa_kv_heads" and e.params == {"kv_heads": 1, "attention_heads": 32}
    e = _err(dict(BASE, params_active=9e9))
    assert e.code == "active_exceeds_total" and e.params == {"params_active": 9e9, "params_total": 8e9}
    e = _err(dict(BASE, num_layers=2000))
    assert e.code == "too_large"


def test_the_entry_object_itself():
    with pytest.raises(InputError) as e:
        get_model({"architecture": dict(BASE), "hf_config": {}})
    assert e.value.field == "model.hf_config" and e.value.problem == "unknown key"
    assert e.value.allowed == "only the key 'architecture' beside it"
    with pytest.raises(InputError) as e:
        get_model({"architecture": [1, 2]})
    assert (e.value.field, e.value.allowed, e.value.problem) == ("model.architecture", "an object of architecture "
                                                                 "fields", "not an object")
    with pytest.raises(InputError) as e:
        get_model({"architecture": dict(BASE, colour="red")})
    assert e.value.value == "red" and e.value.allowed.startswith("one of name, num_layers, hidden_size")
    # a field name of the caller's choosing (the fleet's per-model entries)
    with pytest.raises(InputError) as e:
        get_model({"architecture": dict(BASE, num_layers=0)}, field="cluster.models[1]")
    assert e.value.field == "cluster.models[1].architecture.num_layers"


def test_attention_kind_must_agree_with_the_heads():
    # "mha" with kv = heads is fine; "mqa" given with 1 head of 1 is MQA... but 1 head of 1 is also MHA:
    # the spec's kind follows the counts (kv == 1 -> mqa), so "mha" for a 1-head model disagrees
    e = _err({"num_layers": 2, "hidden_size": 64, "num_attention_heads": 1, "attention": "mha", "params_total": 1e6})
    assert e.field == P + "attention" and e.value == "mha" and e.problem == "attention kind disagrees with the head counts"
    assert e.allowed == "'mqa' for these head counts"


def test_check_head_geometry_directly():
    check_head_geometry(32, 8, 4096, None, "kv", "hd")
    check_head_geometry(32, 32, 100, 64, "kv", "hd")                 # head_dim given: hidden need not split
    check_head_geometry(3, 3, 100, None, "kv", "hd", latent=True)    # MLA: no head_dim needed
    with pytest.raises(InputError) as e:
        check_head_geometry(32, 64, 4096, None, "kv", "hd")
    assert (e.value.field, e.value.value, e.value.code) == ("kv", 64, "kv_heads_exceed_heads")
    assert e.value.params == {"kv_heads": 64, "attention_heads": 32} and e.value.allowed == "at most the attention heads (32)"
    with pytest.raises(InputError) as e:
        check_head_geometry(32, 12, 4096, None, "kv", "hd")
    assert (e.value.code, e.value.allowed) == ("kv_heads_not_divisor", "a divisor of the attention heads (32)")
    assert e.value.params == {"kv_heads": 12, "attention_heads": 32}
    with pytest.raises(InputError) as e:
        check_head_geometry(3, 3, 100, None, "kv", "x.head_dim")
    assert (e.value.field, e.value.value, e.value.code) == ("x.head_dim", None, "hidden_not_divisible")
    assert e.value.params == {"hidden_size": 100, "attention_heads": 3}
    assert e.value.allowed == "a head_dim, or attention heads that divide the hidden size"
    # a field that is not head_dim (config.json's heads key) carries the head count as the value
    with pytest.raises(InputError) as e:
        check_head_geometry(3, 3, 100, None, "kv", "x.num_attention_heads")
    assert e.value.value == 3


def test_check_layer_kinds_directly():
    names = ("global", "local")
    check_layer_kinds(["global", "local"], 2, "f", names, exact_length=True)
    check_layer_kinds(["local"], 5, "f", names, exact_length=False)
    for bad in ([], "global", None):
        with pytest.raises(InputError) as e:
            check_layer_kinds(bad, 2, "f", names, exact_length=False)
        assert e.value.problem == "malformed layer pattern" and e.value.allowed == "a list of layer kinds ('global', 'local')"
    with pytest.raises(InputError) as e:
        check_layer_kinds(["global"], 2, "f", names, exact_length=True)
    assert (e.value.value, e.value.allowed, e.value.code) == ("1 entries", "2 entries, one per layer", "inconsistent")
    assert e.value.problem == "1 layer kinds for 2 layers"
    with pytest.raises(InputError) as e:
        check_layer_kinds(["global"] * 3, 2, "f", names, exact_length=False)
    assert (e.value.value, e.value.code) == ("3 entries", "inconsistent")
    assert e.value.allowed == "1 to 2 entries, each 'global', 'local'"
    with pytest.raises(InputError) as e:
        check_layer_kinds(["global", "sliding"], 2, "f", names, exact_length=False)
    assert e.value.value == "sliding" and e.value.allowed == "layer kinds 'global', 'local'"
    assert e.value.problem == "malformed layer pattern: unknown layer kind 'sliding'"
