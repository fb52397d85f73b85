"""Engine command lines: every flag written is one the engines document (the
lists in kvcalc.engine_cmd, kept with their documentation URLs), and the
values are the configuration's."""

import pytest

from kvcalc.engine_cmd import SGLANG_DOCS, SGLANG_FLAGS, VLLM_DOCS, VLLM_FLAGS, engine_commands
from kvcalc.errors import InputError

# flags as printed in the documentation pages (VLLM_DOCS: vLLM engine arguments; SGLANG_DOCS: SGLang
# server arguments), typed here from those pages rather than imported
DOCUMENTED_VLLM = {"--tensor-parallel-size", "--gpu-memory-utilization", "--kv-cache-dtype", "--block-size",
                   "--enable-prefix-caching", "--no-enable-prefix-caching", "--max-model-len", "--quantization"}
DOCUMENTED_SGLANG = {"--model-path", "--tp", "--mem-fraction-static", "--kv-cache-dtype", "--page-size",
                     "--disable-radix-cache", "--context-length", "--quantization"}

CASES = [
    dict(model_id="meta-llama/Llama-3.1-8B", tensor_parallel=1, gpu_memory_utilization=0.9),
    dict(model_id="deepseek-ai/DeepSeek-V3", tensor_parallel=8, gpu_memory_utilization=0.95, kv_cache_dtype="fp8",
         block_size_tokens=64, prefix_caching=False, max_model_len_tokens=32768),
    dict(model_id="meta-llama/Llama-3.1-70B", tensor_parallel=2, kv_cache_dtype="fp8_e5m2", weight_dtype="fp8",
         checkpoint_weight_dtype="bf16", max_model_len_tokens=131072),
    dict(model_id="Qwen/Qwen3-32B", weight_dtype="int4", checkpoint_weight_dtype="bf16", block_size_tokens=48),
]


def _flags(argv):
    return {a for a in argv if a.startswith("--")}


def test_flag_tables_are_the_documented_ones_with_sources():
    assert set(VLLM_FLAGS) == DOCUMENTED_VLLM and set(SGLANG_FLAGS) == DOCUMENTED_SGLANG
    assert VLLM_DOCS.startswith("https://docs.vllm.ai/") and SGLANG_DOCS.startswith("https://docs.sglang.ai/")


@pytest.mark.parametrize("case", CASES)
def test_every_flag_written_is_documented(case):
    c = engine_commands(**case)
    assert _flags(c["vllm"]["argv"]) <= DOCUMENTED_VLLM
    assert _flags(c["sglang"]["argv"]) <= DOCUMENTED_SGLANG
    assert c["vllm"]["argv"][:3] == ["vllm", "serve", case["model_id"]]
    assert c["sglang"]["argv"][:3] == ["python", "-m", "sglang.launch_server"]


def _value(argv, flag):
    return argv[argv.index(flag) + 1]


def test_values_follow_the_configuration():
    c = engine_commands(**CASES[1])
    v, s = c["vllm"]["argv"], c["sglang"]["argv"]
    assert _value(v, "--tensor-parallel-size") == "8" and _value(s, "--tp") == "8"
    assert _value(v, "--gpu-memory-utilization") == "0.95" and _value(s, "--mem-fraction-static") == "0.95"
    assert _value(v, "--kv-cache-dtype") == "fp8" and _value(s, "--kv-cache-dtype") == "fp8_e4m3"
    assert _value(v, "--block-size") == "64" and _value(s, "--page-size") == "64"
    assert "--no-enable-prefix-caching" in v and "--disable-radix-cache" in s
    assert _value(v, "--max-model-len") == "32768" and _value(s, "--context-length") == "32768"
    assert c["vllm"]["command"] == ("vllm serve deepseek-ai/DeepSeek-V3 --tensor-parallel-size 8 "
                                    "--gpu-memory-utilization 0.95 --kv-cache-dtype fp8 --block-size 64 "
                                    "--no-enable-prefix-caching --max-model-len 32768")


def test_quantization_and_notes():
    c = engine_commands(**CASES[2])
    assert _value(c["vllm"]["argv"], "--quantization") == "fp8"
    c = engine_commands(**CASES[3])
    codes = {n["code"] for n in c["notes"]}
    assert {"needs_quantized_checkpoint", "vllm_block_size", "memory_fraction_semantics"} <= codes
    assert "--quantization" not in c["vllm"]["argv"]


def test_prefix_caching_on_by_default_and_bad_input():
    c = engine_commands("meta-llama/Llama-3.1-8B")
    assert "--enable-prefix-caching" in c["vllm"]["argv"] and "--disable-radix-cache" not in c["sglang"]["argv"]
    with pytest.raises(InputError) as e:
        engine_commands("a\nb")
    assert e.value.field == "model"
    with pytest.raises(InputError) as e:
        engine_commands("m", tensor_parallel=0)
    assert e.value.field == "tensor_parallel"
    # a model id with a space stays one shell word
    assert engine_commands("my models/x")["vllm"]["command"].startswith("vllm serve 'my models/x'")
