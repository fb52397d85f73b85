"""What the page renders for a model typed by hand or a pasted config.json: every value derived
rather than given carries a message code with its parameters (the page shows msg.<code>, never
the English ``how``), and a whole-model error says what is wrong with the numbers in it."""

import json
from pathlib import Path

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError

CATALOGUE = json.loads((Path(__file__).resolve().parents[1] / "i18n" / "en.json").read_text())["messages"]
ARCH = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "params_total": 8.03e9}


def _derived(model, **extra):
    r = compute({"model": model, "gpu": "h100-sxm-80gb", **extra})
    return {d["field"]: d for d in r["derived_fields"]}


def test_hand_entry_derivations_have_codes_and_numbers():
    d = _derived({"architecture": ARCH})
    assert d["head_dim"]["code"] == "derived_head_dim"
    # 4096 / 32 = 128, the number the page shows
    assert d["head_dim"]["params"] == {"hidden_size": 4096, "attention_heads": 32, "head_dim": 128}
    assert d["num_kv_heads"]["code"] == "derived_kv_heads_mha" and d["num_kv_heads"]["params"] == {"attention_heads": 32}
    assert {x["code"] for x in d.values()} >= {"derived_params_active_dense", "derived_weight_bf16", "derived_no_max_position"}
    for x in d.values():
        assert f"msg.{x['code']}" in CATALOGUE and isinstance(x["how"], str) and x["how"]


def test_window_gdn_and_mqa_derivations():
    d = _derived({"architecture": {**ARCH, "window_tokens": 4096}})
    assert d["layer_pattern"]["code"] == "derived_all_local"
    gdn = {"layer_pattern": ["linear", "linear", "linear", "global"], "linear_num_key_heads": 16,
           "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
           "linear_conv_kernel_dim": 4}
    d = _derived({"architecture": {**ARCH, **gdn}})
    state = d["linear_state_bytes_per_layer"]
    # Qwen3-Next's Gated DeltaNet, hand-derived: conv (4 - 1) x (2 x 16 x 128 + 32 x 128) channels and
    # recurrent 32 heads x 128 x 128, 2 bytes each = 2 x (3 x 8192 + 524288) = 1,097,728 bytes
    assert state["code"] == "derived_linear_state" and state["params"]["state_bytes_per_layer"] == 1097728
    d = _derived({"architecture": {**ARCH, "attention": "mqa"}})
    assert d["num_kv_heads"]["code"] == "derived_kv_heads_mqa"


def test_config_json_weight_format_derivation_codes():
    awq = json.loads((Path(__file__).resolve().parent / "fixtures" / "hf_configs" / "llama-3.1-8b-awq.json").read_text())
    d = _derived({"hf_config": awq})
    assert d["weight_dtype"]["code"] == "derived_weight_quant_group"
    assert d["weight_dtype"]["params"] == {"method": "awq", "weight_dtype": "int4", "group_size": 128}
    oss = json.loads((Path(__file__).resolve().parent / "fixtures" / "hf_configs" / "gpt-oss-120b.json").read_text())
    assert _derived({"hf_config": oss})["weight_dtype"]["code"] == "derived_weight_quant_experts"
    minimal = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 32000,
               "intermediate_size": 11008}
    d = _derived({"hf_config": minimal})
    assert d["weight_dtype"]["code"] == "derived_weight_assumed_bf16"
    assert d["params_total"]["code"] == "derived_params_estimated" and d["params_total"]["params"]["params_total"] > 6e9


@pytest.mark.parametrize("arch, field, code, params", [
    ({"num_kv_heads": 12}, "num_kv_heads", "kv_heads_not_divisor", {"kv_heads": 12, "attention_heads": 32}),
    ({"num_kv_heads": 64}, "num_kv_heads", "kv_heads_exceed_heads", {"kv_heads": 64, "attention_heads": 32}),
    ({"num_attention_heads": 30}, "head_dim", "hidden_not_divisible", {"hidden_size": 4096, "attention_heads": 30}),
    ({"attention": "mha", "num_kv_heads": 8}, "num_kv_heads", "mha_kv_heads", {"kv_heads": 8, "attention_heads": 32}),
    ({"attention": "mqa", "num_kv_heads": 8}, "num_kv_heads", "mqa_kv_heads", {"kv_heads": 8}),
    ({"attention": "gqa", "num_kv_heads": 32}, "num_kv_heads", "gqa_kv_heads", {"kv_heads": 32, "attention_heads": 32}),
    ({"params_active": 9e9}, "params_active", "active_exceeds_total", {"params_active": 9e9, "params_total": 8.03e9}),
])
def test_whole_model_errors_name_the_field_and_the_numbers(arch, field, code, params):
    with pytest.raises(InputError) as e:
        compute({"model": {"architecture": {**ARCH, **arch}}, "gpu": "h100-sxm-80gb"})
    d = e.value.to_dict()
    assert d["field"] == f"model.architecture.{field}" and d["code"] == code
    assert {k: d["params"][k] for k in params} == params
    # the catalogue's English text, filled as js/i18n.js does, is a sentence with the numbers
    text = CATALOGUE[f"msg.{code}"].format(**{k: (f"{v:g}" if isinstance(v, float) else v) for k, v in d["params"].items()})
    assert all(f"{v:g}" in text if isinstance(v, float) else str(v) in text for v in params.values())


def test_engine_command_takes_the_repo_id_and_a_chosen_length_only():
    cfg = {"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "vocab_size": 128256, "intermediate_size": 14336, "max_position_embeddings": 131072}
    r = compute({"model": {"hf_config": cfg, "name": "org/model-x"}, "gpu": "h100-sxm-80gb"})
    assert r["engine_commands"]["vllm"]["argv"][2] == "org/model-x"
    assert "--max-model-len" not in r["engine_commands"]["vllm"]["argv"]
    r = compute({"model": {"hf_config": cfg, "name": "not an id"}, "gpu": "h100-sxm-80gb", "context_tokens": 8192})
    argv = r["engine_commands"]["vllm"]["argv"]
    assert argv[2] == "<model-path>" and argv[argv.index("--max-model-len") + 1] == "8192"
