"""Whole-model checks of a pasted config.json, and errors naming the key the user sent (issue 12, D3/D4).

Cases from the audit of main: a Llama-3.1-8B-shaped config with one field changed was
accepted with a KV size no model has, and two errors named model.hf_config.params_active
whatever the user had sent. The head checks are shared with hand entry
(kvcalc.architecture.check_head_geometry), so both give the same words.
"""

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError

BASE = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256}


def _err(req) -> InputError:
    with pytest.raises(InputError) as e:
        compute(req)
    return e.value


@pytest.mark.parametrize("change, field, words", [
    # hidden 4096 = 3 x 1365.33: no whole head_dim (the audit saw kv_bytes_per_token 524160)
    ({"num_attention_heads": 3, "num_key_value_heads": 1}, "num_attention_heads",
     "hidden size (4096) is not a multiple of the attention heads (3)"),
    ({"num_attention_heads": 3}, "num_key_value_heads", "KV heads (8) cannot exceed attention heads (3)"),
    ({"num_key_value_heads": 7}, "num_key_value_heads", "KV heads (7) must divide attention heads (32)"),
    ({"num_key_value_heads": 64}, "num_key_value_heads", "KV heads (64) cannot exceed attention heads (32)"),
    ({"layer_types": ["bogus"] * 32}, "layer_types", "unknown layer kind 'bogus'"),
    ({"layer_types": ["full_attention"] * 5}, "layer_types", "5 layer kinds for 32 layers"),
    ({"num_local_experts": 8, "num_experts_per_tok": 16}, "num_experts_per_tok",
     "experts per token (16) cannot exceed the experts (8)"),
])
def test_inconsistent_config_refused_naming_the_field(change, field, words):
    e = _err({"model": {"hf_config": {**BASE, **change}}})
    assert e.field == f"model.hf_config.{field}", str(e)
    assert words in str(e)
    assert e.code != "internal_error"


def test_inside_text_config_the_error_names_the_text_config_key():
    e = _err({"model": {"hf_config": {"model_type": "gemma3", "text_config": {**BASE, "num_key_value_heads": 7}}}})
    assert e.field == "model.hf_config.text_config.num_key_value_heads", str(e)


@pytest.mark.parametrize("extra, words", [
    ({"params_active": 1e13}, "cannot exceed the total estimated from the config"),
    ({"params_active": 1e9, "params_total": 1e8}, "active parameters (1e+09) cannot exceed params_total (1e+08)"),
])
def test_params_beside_hf_config_named_where_sent(extra, words):
    e = _err({"model": {"hf_config": BASE, **extra}})
    assert e.field == "model.params_active", str(e)
    assert words in str(e)


def test_same_words_for_hand_entry():
    arch = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 7,
            "params_total": 8e9}
    e = _err({"model": {"architecture": arch}})
    assert e.field == "model.architecture.num_kv_heads"
    assert "KV heads (7) must divide attention heads (32)" in str(e)


def test_real_shapes_still_accepted():
    # explicit head_dim with hidden != heads x head_dim (Gemma 3 27B: 5376 hidden, 32 x 128 heads;
    # hand derivation of KV bytes per token: 62 layers... here a plain 32-layer case):
    # 2 (K and V) x 16 KV heads x 128 x 2 bytes x 32 layers = 262144
    r = compute({"model": {"hf_config": {**BASE, "hidden_size": 5376, "num_key_value_heads": 16,
                                         "head_dim": 128}}})
    assert r["kv_bytes_per_token"] == 2 * 16 * 128 * 2 * 32
    # MQA: 1 KV head divides 32: 2 x 1 x 128 x 2 x 32 = 16384
    r = compute({"model": {"hf_config": {**BASE, "num_key_value_heads": 1}}})
    assert r["kv_bytes_per_token"] == 2 * 1 * 128 * 2 * 32
    # one kind per layer, all known
    r = compute({"model": {"hf_config": {**BASE, "sliding_window": 4096,
                                         "layer_types": ["sliding_attention", "full_attention"] * 16}}})
    assert r["kv_bytes_per_token"] > 0
