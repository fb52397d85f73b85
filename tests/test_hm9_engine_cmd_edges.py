"""kvcalc.engine_cmd: its documented defaults, the refusals of each argument (field, value and
range) and the notes it adds (issue #10, mutation testing: the first run left these unchecked).
Expected values are the module docstring's flags and ranges, written out here."""

import pytest

from kvcalc.engine_cmd import engine_commands
from kvcalc.errors import InputError


def test_defaults_are_one_gpu_90_percent_auto_kv_blocks_of_16():
    c = engine_commands("org/model")
    assert c["vllm"]["argv"] == ["vllm", "serve", "org/model", "--tensor-parallel-size", "1",
                                 "--gpu-memory-utilization", "0.9", "--kv-cache-dtype", "auto", "--block-size", "16",
                                 "--enable-prefix-caching"]
    assert c["sglang"]["argv"] == ["python", "-m", "sglang.launch_server", "--model-path", "org/model", "--tp", "1",
                                   "--mem-fraction-static", "0.9", "--kv-cache-dtype", "auto", "--page-size", "16"]
    assert [n["code"] for n in c["notes"]] == ["memory_fraction_semantics"]
    assert c["vllm"]["command"] == "vllm serve org/model --tensor-parallel-size 1 --gpu-memory-utilization 0.9 " \
                                   "--kv-cache-dtype auto --block-size 16 --enable-prefix-caching"


@pytest.mark.parametrize("kwargs,field,value", [
    ({"model_id": ""}, "model", ""),
    ({"model_id": "a" * 301}, "model", "a" * 301),
    ({"model_id": "a\nb"}, "model", "a\nb"),
    ({"model_id": "a\0b"}, "model", "a\0b"),
    ({"model_id": 7}, "model", 7),
    ({"prefix_caching": "yes"}, "prefix_caching", "yes"),
    ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization", 0.0),       # (0, 1]: open at 0
    ({"gpu_memory_utilization": 1.01}, "gpu_memory_utilization", 1.01),
    ({"block_size_tokens": 0}, "cache.block_size_tokens", 0),               # [1, 4096]
    ({"block_size_tokens": 4097}, "cache.block_size_tokens", 4097),
    ({"tensor_parallel": 1025}, "tensor_parallel", 1025),                   # [1, 1024]
    ({"max_model_len_tokens": 0}, "context_tokens", 0),                     # [1, 1e10]
    ({"max_model_len_tokens": 10 ** 10 + 1}, "context_tokens", 10 ** 10 + 1),
])
def test_refusals_name_the_field_and_value(kwargs, field, value):
    args = {"model_id": "org/model", **kwargs}
    with pytest.raises(InputError) as e:
        engine_commands(**args)
    assert (e.value.field, e.value.value) == (field, value)
    if field == "model":
        assert (e.value.allowed, e.value.problem) == ("a repo id or path on one line", "not usable in a command line")
    if field == "prefix_caching":
        assert (e.value.allowed, e.value.problem) == ("true or false", "not a boolean")


def test_the_ranges_ends_are_accepted():
    c = engine_commands("a" * 300, tensor_parallel=1024, gpu_memory_utilization=1.0, block_size_tokens=1,
                        max_model_len_tokens=1)
    assert c["vllm"]["argv"][2] == "a" * 300
    c = engine_commands("m", block_size_tokens=4096, max_model_len_tokens=10 ** 10)
    assert c["vllm"]["argv"][-2:] == ["--max-model-len", str(10 ** 10)]


def test_notes_for_a_kv_dtype_without_flag_and_an_odd_block_size():
    c = engine_commands("m", kv_cache_dtype="int4", block_size_tokens=48)
    v, s = c["vllm"]["argv"], c["sglang"]["argv"]
    assert v[v.index("--kv-cache-dtype") + 1] == "auto" and s[s.index("--kv-cache-dtype") + 1] == "auto"
    kv, blk, mem = c["notes"]
    assert kv == {"code": "kv_dtype_not_in_engines", "params": {"kv_cache_dtype": "int4"},
                  "message": "KV cache dtype int4 has no engine flag value; 'auto' written."}
    assert blk == {"code": "vllm_block_size", "params": {"block_size_tokens": 48, "allowed": [1, 8, 16, 32, 64, 128]},
                   "message": "vLLM accepts block sizes 1, 8, 16, 32, 64, 128; 48 may be refused."}
    assert mem["code"] == "memory_fraction_semantics" and mem["params"] == {"fraction": 0.9}


def test_weight_dtype_notes_need_both_dtypes():
    # only one of the two dtypes known: nothing to compare, no flag and no note
    for kw in ({"weight_dtype": "int4"}, {"checkpoint_weight_dtype": "bf16"}):
        c = engine_commands("m", **kw)
        assert "--quantization" not in c["vllm"]["argv"]
        assert [n["code"] for n in c["notes"]] == ["memory_fraction_semantics"]


def test_ids_with_capitals_and_the_sources():
    from kvcalc.engine_cmd import SGLANG_DOCS, VLLM_DOCS
    # only newlines, carriage returns and NUL make an id unusable on a command line
    c = engine_commands("Org/XL-Model_v2.5")
    assert c["vllm"]["argv"][2] == "Org/XL-Model_v2.5"
    assert c["sources"] == {"vllm": VLLM_DOCS, "sglang": SGLANG_DOCS}


def test_a_setting_carries_its_value_and_source():
    from kvcalc.engine_flags import FLAGS, setting
    s = setting("vllm", "--block-size", 16)
    assert s == {"engine": "vllm", "flag": "--block-size", "value": 16,
                 "source": FLAGS[("vllm", "--block-size")]["source"]}


@pytest.mark.parametrize("checkpoint", ["bf16", "fp16", "fp32"])
def test_fp8_weights_from_any_16_or_32_bit_checkpoint_quantize_at_load(checkpoint):
    c = engine_commands("m", weight_dtype="fp8", checkpoint_weight_dtype=checkpoint)
    v, s = c["vllm"]["argv"], c["sglang"]["argv"]
    assert v[-2:] == ["--quantization", "fp8"] and s[-2:] == ["--quantization", "fp8"]


def test_quantized_weights_need_their_checkpoint_and_the_fraction_note():
    c = engine_commands("m", weight_dtype="int4", checkpoint_weight_dtype="bf16", gpu_memory_utilization=0.8)
    need, frac = c["notes"]
    assert need == {"code": "needs_quantized_checkpoint", "params": {"weight_dtype": "int4", "checkpoint": "bf16"},
                    "message": "int4 weights need a checkpoint quantized to int4 (this one is bf16); "
                               "point the command at it."}
    assert frac == {"code": "memory_fraction_semantics", "params": {"fraction": 0.8},
                    "message": "vLLM's --gpu-memory-utilization covers weights, activations and KV cache; "
                               "SGLang's --mem-fraction-static covers weights and the KV pool only."}
