"""API keys added for issue #8: hand-entered architectures, weight formats, the context
length, engine logs, engine command lines and the KV-vs-context figure."""

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError
from kvcalc.memory import memory_report
from kvcalc.presets import get_model

WL = {"conversation_rate_per_s": 1.0, "turns_mean": 4, "gap_mean_s": 30, "user_tokens_per_turn": 300,
      "output_tokens_per_turn": 200, "system_prompt_tokens": 500, "service_time_s": 3}
L8_HAND = {"num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8, "head_dim": 128,
           "params_total": 8.03e9, "vocab_size": 128256, "max_position_embeddings": 131072}


def test_architecture_model_through_the_api_equals_the_preset():
    base = {"gpu": "h100-sxm-80gb", "context_tokens": 32768, "workload": WL}
    a = compute({**base, "model": {"architecture": L8_HAND}})
    b = compute({**base, "model": "meta-llama/Llama-3.1-8B"})
    for key in ("kv_bytes_per_token", "weights_gib_total", "kv_capacity_tokens", "max_concurrency_at_context",
                "token_hit_rate"):
        assert a[key] == b[key], key
    assert a["engine_commands"]["vllm"]["argv"][2] == "<model-path>"
    assert b["engine_commands"]["vllm"]["argv"][2] == "meta-llama/Llama-3.1-8B"


def test_architecture_errors_come_back_named():
    with pytest.raises(InputError) as e:
        compute({"model": {"architecture": {**L8_HAND, "num_kv_heads": 12}}})
    assert e.value.field == "model.architecture.num_kv_heads"
    assert "KV heads (12) must divide attention heads (32)" in str(e.value)


def test_context_tokens_gives_vllm_concurrency_and_the_mean_context_value():
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "context_tokens": 32768,
                 "runtime_reserve_gib": 2.0, "workload": WL})
    blocks = int(r["kv_budget_bytes"] // (16 * 131072))
    assert r["max_model_len_tokens"] == 32768
    assert r["max_concurrency_at_context"] == blocks / 2048
    assert r["max_concurrency_at_mean_context"] == pytest.approx(r["kv_capacity_tokens"] / r["mean_context_tokens"])


def test_weight_dtype_int4_with_group_size():
    r = compute({"model": "meta-llama/Llama-3.1-70B", "gpu": "h100-sxm-80gb", "weight_dtype": "int4",
                 "weight_group_size": 64})
    emb = 2 * 128256 * 8192
    assert r["weights_gib_total"] == pytest.approx((emb * 2 + (70.6e9 - emb) * (4 + 20 / 64) / 8) / 2**30)
    assert r["weight_group_size"] == 64
    # 70B fits on one H100 in int4 (it does not in bf16)
    assert r["kv_capacity_tokens"] > 0
    with pytest.raises(InputError) as e:
        compute({"model": "meta-llama/Llama-3.1-70B", "weight_dtype": "int3"})
    assert e.value.field == "weight_dtype"


LOG = """INFO 07-22 10:01:02 [gpu_worker.py:255] Available KV cache memory: 8.11 GiB
INFO 07-22 10:01:02 [kv_cache_utils.py:833] GPU KV cache size: 178,880 tokens"""


def test_engine_log_and_adopting_its_reserve():
    req = {"model": "Qwen/Qwen3-235B-A22B", "gpu": "h100-sxm-80gb", "tensor_parallel": 4, "weight_dtype": "fp8",
           "engine_log": LOG}
    r = compute(req)
    el = r["engine_log"]
    assert el["engine"] == "vllm" and el["adopt"]["capacity_tokens"] == 178880
    r2 = compute({**{k: v for k, v in req.items() if k != "engine_log"},
                  "runtime_reserve_gib": el["adopt"]["runtime_reserve_gib"]})
    assert r2["kv_budget_gib"] == pytest.approx(8.11, rel=1e-12)
    with pytest.raises(InputError) as e:
        compute({**req, "engine_log": "nothing here"})
    assert e.value.field == "engine_log"


def test_kv_context_figure():
    r = compute({"model": "google/gemma-3-27b-it", "gpu": "h100-sxm-80gb", "figures": ["kv_context"],
                 "workload": WL})
    f = r["figures"]["kv_context"]
    assert len(f["context_tokens"]) == len(f["paged_bytes"]) == len(f["full_attention_bytes"])
    assert f["host_link_gb_per_s"] == 64
    # memory-only question: the figure comes without a workload too
    r = compute({"model": "google/gemma-3-27b-it", "figures": ["kv_context"]})
    assert r["figures"]["kv_context"]["sliding_window_bytes"][-1] < r["figures"]["kv_context"]["full_attention_bytes"][-1]


def test_memory_report_messages_are_code_params_message():
    r = memory_report(get_model("openai/gpt-oss-120b"), "h100-sxm-80gb")
    for m in r["note_details"]:
        assert set(m) == {"code", "params", "message"} and isinstance(m["message"], str)
