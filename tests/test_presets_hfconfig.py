"""Hugging Face config.json fixtures (tests/fixtures/hf_configs) parsed into the same
numbers as the presets: linear-attention layouts, quantization_config, minimal configs."""

import json
from pathlib import Path

import pytest

from kvcalc.memory import kv_bytes_per_token, linear_state_bytes_per_sequence, memory_report, weights_breakdown
from kvcalc.presets import get_model

FIX = Path(__file__).parent / "fixtures" / "hf_configs"


def _cfg(name):
    return {k: v for k, v in json.loads((FIX / name).read_text()).items() if not k.startswith("_")}


@pytest.mark.parametrize("fixture,preset", [
    ("qwen3-next-80b-a3b-instruct.json", "Qwen/Qwen3-Next-80B-A3B-Instruct"),
    ("minimax-m1-80k.json", "MiniMaxAI/MiniMax-M1-80k"),
    ("gpt-oss-120b.json", "openai/gpt-oss-120b"),
])
def test_config_parses_to_the_preset(fixture, preset):
    p = get_model(preset)
    spec = get_model({"hf_config": _cfg(fixture), "params_total": p.params_total, "params_active": p.params_active})
    assert spec.layer_window_tokens == p.layer_window_tokens
    assert spec.linear_state_bytes_per_layer == p.linear_state_bytes_per_layer
    for ctx in (1000, 100000):
        assert kv_bytes_per_token(spec, 16, 1, ctx) == kv_bytes_per_token(p, 16, 1, ctx)
    assert linear_state_bytes_per_sequence(spec, 2) == linear_state_bytes_per_sequence(p, 2)
    assert weights_breakdown(spec)["weights_bytes"] == weights_breakdown(p)["weights_bytes"]


def test_qwen3_next_layout_from_full_attention_interval():
    spec = get_model({"hf_config": _cfg("qwen3-next-80b-a3b-instruct.json")})
    # layer i is full attention when (i + 1) % 4 == 0
    assert spec.layer_window_tokens[:8] == (0, 0, 0, None, 0, 0, 0, None)
    assert (spec.linear_layers, spec.global_layers) == (36, 12)


def test_awq_config_counts_groups_and_keeps_embeddings():
    spec = get_model({"hf_config": _cfg("llama-3.1-8b-awq.json"), "params_total": 8.03e9})
    assert spec.weight_dtype == "int4"
    w = weights_breakdown(spec)
    emb = 2 * 128256 * 4096
    assert w["params_16bit"] == emb
    assert w["weights_bytes"] == pytest.approx(emb * 2 + (8.03e9 - emb) * (4 + 20 / 128) / 8, rel=1e-12)
    derived = {d["field"]: d["how"] for d in spec.to_dict()["derived_fields"]}
    assert derived["weight_dtype"] == "quantization_config: awq 4-bit, group 128"


def test_minimal_config_is_usable_and_says_what_it_derived():
    spec = get_model({"hf_config": _cfg("minimal.json")})
    derived = {d["field"] for d in spec.to_dict()["derived_fields"]}
    assert {"head_dim", "max_position_embeddings", "weight_dtype", "params_total", "params_active"} <= derived
    assert spec.max_position_embeddings is None and spec.head_dim == 128
    r = memory_report(spec, "h100-sxm-80gb", context_tokens=8192)
    assert r["kv_bytes_per_token"] == 131072
    assert r["max_concurrency_at_context"] is not None and r["max_model_len_tokens"] == 8192
