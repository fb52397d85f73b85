"""A model typed by hand (kvcalc.architecture): every refusal names ITS field (the request key path)
and value, and every derived value says how it was obtained, word for word (issue #10, mutation
testing: the survivors of tests/test_architecture_hand.py were field names, values and texts).

Ranges are the ``model.architecture.*`` rows of kvcalc.limits; geometry is hand arithmetic
written next to each case."""

import pytest

from kvcalc.architecture import check_head_geometry, check_layer_kinds, spec_from_architecture
from kvcalc.errors import InputError
from kvcalc.presets import get_model

BASE = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "params_total": 8e9}
P = "model.architecture."
# Qwen3-Next's Gated DeltaNet sizes (16 key heads, 32 value heads, head dims 128)
GDN = {"linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_key_head_dim": 128,
       "linear_value_head_dim": 128}


def _err(arch, field="model"):
    with pytest.raises(InputError) as e:
        get_model({"architecture": arch}, field=field)
    return e.value


def _derived(spec):
    return {d["field"]: d for d in spec.derived_fields()}


@pytest.mark.parametrize("key,bad", [
    ("head_dim", 0), ("kv_lora_rank", 0), ("qk_rope_head_dim", -1), ("window_tokens", 0),
    ("linear_state_bytes_per_layer", -5.0), ("linear_num_key_heads", 0), ("linear_num_value_heads", 0),
    ("linear_key_head_dim", 0), ("linear_value_head_dim", 0), ("linear_conv_kernel_dim", 0),
    ("params_active", -1.0), ("params_experts", 0.0), ("weight_group_size", 4), ("max_position_embeddings", 0),
    ("vocab_size", 0),
])
def test_each_out_of_range_field_is_named_with_its_path(key, bad):
    """Every optional field's own range check names model.architecture.<key> (and the caller's
    prefix: the fleet's entries pass their own)."""
    e = _err(dict(BASE, **{key: bad}))
    assert (e.field, e.value) == (P + key, bad)
    e = _err(dict(BASE, **{key: bad}), field="cluster.models[2]")
    assert e.field == "cluster.models[2].architecture." + key


def test_the_default_field_is_model():
    with pytest.raises(InputError) as e:
        spec_from_architecture({"architecture": dict(BASE, num_layers=0)})
    assert e.value.field == P + "num_layers"
    with pytest.raises(InputError) as e:
        spec_from_architecture({"architecture": dict(BASE), "x": {}})
    assert (e.value.field, e.value.value) == ("model.x", {})


def test_missing_required_counts_say_which():
    for key, words in (("num_layers", "num layers"), ("hidden_size", "hidden size"),
                       ("num_attention_heads", "num attention heads")):
        arch = dict(BASE)
        del arch[key]
        e = _err(arch)
        assert (e.field, e.value, e.problem) == (P + key, None, "missing")
        assert e.allowed == f"a whole number >= 1 (the model's {words})"


def test_range_ends_are_accepted():
    """[1, 1024] layers: 1024 itself is a valid count (one more is refused, test_architecture_hand);
    GQA's KV heads run from 2 to heads - 1: 2 of 32 is GQA."""
    assert get_model({"architecture": dict(BASE, num_layers=1024)}).num_layers == 1024
    s = get_model({"architecture": dict(BASE, num_kv_heads=2, attention="gqa")})
    assert (s.attention, s.num_kv_heads) == ("gqa", 2)
    s = get_model({"architecture": dict(BASE, num_kv_heads=16, attention="gqa")})
    assert (s.attention, s.num_kv_heads) == ("gqa", 16)


def test_refusal_values_and_texts():
    e = _err([1, 2])
    assert (e.field, e.value) == ("model.architecture", [1, 2])
    e = _err(dict(BASE, colour="red"))
    assert (e.field, e.problem) == (P + "colour", "unknown key")
    # 32 heads, 12 KV heads: 32 % 12 = 8, not a divisor
    e = _err(dict(BASE, num_kv_heads=12))
    assert (e.field, e.value, e.code) == (P + "num_kv_heads", 12, "kv_heads_not_divisor")
    # hidden 100 over 3 heads (100 = 3 x 33 + 1) and no head_dim
    e = _err(dict(BASE, hidden_size=100, num_attention_heads=3))
    assert e.problem == ("hidden size (100) is not a multiple of the attention heads (3) and no head_dim is given")
    # a linear layer with neither a state size nor the DeltaNet sizes
    e = _err(dict(BASE, num_kv_heads=8, layer_pattern=["linear", "global"]))
    assert (e.field, e.value) == (P + "linear_state_bytes_per_layer", None)
    assert e.allowed == ("the per-sequence state of a linear layer in bytes, or the Gated DeltaNet sizes "
                         "linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, linear_value_head_dim")
    assert e.problem == "missing: the layer pattern has linear layers"
    # the conv kernel size alone, without linear layers, is a DeltaNet field without DeltaNet
    e = _err(dict(BASE, linear_conv_kernel_dim=4))
    assert (e.field, e.problem) == (P + "linear_state_bytes_per_layer", "a linear-layer state but no linear layer")


def test_the_conv_kernel_size_is_read():
    """Gated DeltaNet state per layer, bf16: ((kernel - 1) x (2 x 16 x 128 + 32 x 128) + 32 x 128 x 128) x 2
    bytes: kernel 3 gives (2 x 8192 + 524288) x 2 = 1081344 (kernel 4, the default, 1097728)."""
    arch = dict(BASE, num_layers=8, num_kv_heads=8, layer_pattern=["linear", "global"], **GDN)
    assert get_model({"architecture": dict(arch, linear_conv_kernel_dim=3)}).linear_state_bytes_per_layer == 1081344
    assert get_model({"architecture": arch}).linear_state_bytes_per_layer == 1097728


def test_every_derivation_word_for_word():
    s = get_model({"architecture": dict(BASE, window_tokens=4096, weight_dtype="fp8")})
    d = _derived(s)
    assert s.layer_window_tokens == (4096,) * 32
    assert (d["layer_pattern"]["how"], d["layer_pattern"]["code"]) == (
        "not given: every layer local (window on all layers)", "derived_all_local")
    assert (d["params_active"]["how"], d["params_active"]["code"]) == (
        "not given: equal to params_total (dense model)", "derived_params_active_dense")
    assert d["vocab_size"]["how"] == ("not given: the whole model counted at the quantized width "
                                      "(embeddings and lm_head really stay 16-bit)")
    # 4096 / 32 = 128, an integer in the message parameters
    hd = d["head_dim"]
    assert (hd["code"], hd["params"]["head_dim"]) == ("derived_head_dim", 128)
    assert type(hd["params"]["head_dim"]) is int
    d = _derived(get_model({"architecture": dict(BASE)}))
    assert d["max_position_embeddings"]["how"] == "not given: no context-length limit is checked"
    assert (d["weight_dtype"]["how"], d["weight_dtype"]["code"]) == ("not given: bf16", "derived_weight_bf16")
    m = get_model({"architecture": {"num_layers": 27, "hidden_size": 2048, "num_attention_heads": 16,
                                    "attention": "mla", "kv_lora_rank": 512, "qk_rope_head_dim": 64,
                                    "params_total": 15.7e9, "params_active": 2.4e9}})
    assert _derived(m)["num_kv_heads"]["how"] == ("not given: equal to the attention heads (16) "
                                                  "(MLA caches one latent, not heads)")
    g = get_model({"architecture": dict(BASE, num_layers=8, num_kv_heads=8, layer_pattern=["linear", "global"],
                                        **GDN)})
    assert _derived(g)["linear_state_bytes_per_layer"]["how"] == (
        "Gated DeltaNet conv + recurrent state from the linear_* sizes, 2 bytes each")


def test_check_helpers_name_the_field_and_value():
    names = ("global", "local")
    with pytest.raises(InputError) as e:
        check_layer_kinds("global", 2, "f.layer_kinds", names, exact_length=False)
    assert (e.value.field, e.value.value) == ("f.layer_kinds", "global")
    with pytest.raises(InputError) as e:
        check_layer_kinds(["global"], 2, "f.layer_kinds", names, exact_length=True)
    assert e.value.field == "f.layer_kinds"
    with pytest.raises(InputError) as e:
        check_layer_kinds(["global"] * 3, 2, "f.layer_kinds", names, exact_length=False)
    assert (e.value.field, e.value.problem) == ("f.layer_kinds", "3 layer kinds for 2 layers")
    with pytest.raises(InputError) as e:
        check_head_geometry(32, 12, 4096, None, "kv", "hd")
    assert e.value.value == 12


def test_what_the_spec_carries():
    """No linear layer: no linear state (0 bytes); no vocabulary: no embedding parameters (0, so the
    16-bit share of the weights is empty); the counts were typed, not estimated; id "architecture"."""
    s = get_model({"architecture": dict(BASE)})
    assert s.linear_state_bytes_per_layer == 0.0
    assert s.params_embedding == 0.0 and s.params_experts is None
    assert s.params_estimated is False
    assert (s.id, s.source, s.notes) == ("architecture", "entered by hand", "")
