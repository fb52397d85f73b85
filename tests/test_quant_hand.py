"""Weight formats (kvcalc.quant) by hand: every name and alias, every quantization_config branch,
and the byte arithmetic of the 16-bit / quantized split (issue #10, mutation testing).

Expected bits per value come from the storage layouts cited in kvcalc.quant's docstring:
value bits + (scale bits + zero bits) / group size.
"""

import pytest

from kvcalc.errors import InputError
from kvcalc.quant import WEIGHT_FORMATS, effective_bits, weight_format, weight_format_from_config, \
    weights_bytes_quantized


@pytest.mark.parametrize("name,key,bits", [
    ("bfloat16", "bf16", 16), ("float16", "fp16", 16), ("half", "fp16", 16), ("float32", "fp32", 16),
    ("fp8_e4m3", "fp8", 8), ("fp4", "nvfp4", 4.5), ("BF16", "bf16", 16), ("Int4", "int4", 4 + 20 / 128),
    ("MXFP4", "mxfp4", 4 + 8 / 32), ("int8", "int8", 8),
])
def test_names_and_aliases(name, key, bits):
    fmt = weight_format(name)
    assert fmt["weight_dtype"] == key and fmt["method"] == key and fmt["derived"] == ""
    assert effective_bits(fmt) == bits
    # the table itself is not changed by a lookup
    assert WEIGHT_FORMATS[key]["group_size"] == {"int4": 128, "mxfp4": 32, "nvfp4": 16}.get(key)


def test_effective_bits_without_groups():
    assert effective_bits({"bits": 8}) == 8
    assert effective_bits({"bits": 8, "group_size": 0, "scale_bits": 16}) == 8   # 0 = no groups
    assert effective_bits({"bits": 4, "group_size": 64, "scale_bits": 16}) == 4 + 16 / 64  # no zero: 0 bits
    assert effective_bits({"bits": 4, "group_size": 64, "zero_bits": 4}) == 4 + 4 / 64    # no scale: 0 bits


def test_group_size_overrides():
    # fp8 with 128 x 128 = 16384 values per fp32 block scale: 8 + 32 / 16384
    fmt = weight_format("fp8", group_size=16384)
    assert (fmt["group_size"], fmt["scale_bits"]) == (16384, 32)
    # int4 keeps its fp16 scale and 4-bit zero: 4 + 20 / 8 at the smallest group, 4 + 20 / 65536 at the largest
    assert effective_bits(weight_format("int4", group_size=8)) == 4 + 20 / 8
    assert effective_bits(weight_format("int4", group_size=65536)) == 4 + 20 / 65536
    assert weight_format("int4", group_size=64)["scale_bits"] == 16


@pytest.mark.parametrize("name,group,field,problem", [
    ("int4", 7, "weight_dtype_group_size", "out of range"),
    ("int4", 65537, "weight_dtype_group_size", "out of range"),
    ("int4", 64.0, "weight_dtype_group_size", "out of range"),
    ("int4", True, "weight_dtype_group_size", "out of range"),
    ("bf16", 128, "weight_dtype_group_size", "not applicable"),
    ("nvfp4", 32, "weight_dtype_group_size", "not applicable"),
    ("int3", None, "weight_dtype", "unknown weight dtype"),
    (4, None, "weight_dtype", "unknown weight dtype"),
])
def test_weight_format_refusals(name, group, field, problem):
    with pytest.raises(InputError) as e:
        weight_format(name, group_size=group)
    assert e.value.field == field and e.value.problem == problem
    if problem == "out of range":
        assert e.value.allowed == "an integer in [8, 65536]"
    if problem == "not applicable":
        assert "int4" in e.value.allowed and "fp8" in e.value.allowed


def test_custom_field_name():
    with pytest.raises(InputError) as e:
        weight_format("int3", field="model.architecture.weight_dtype")
    assert e.value.field == "model.architecture.weight_dtype"
    assert e.value.allowed == "one of " + ", ".join(WEIGHT_FORMATS)


# --- formats read from a config.json -------------------------------------------------------------------

@pytest.mark.parametrize("cfg,dtype,derived", [
    ({"torch_dtype": "float16"}, "fp16", ""),
    ({"dtype": "float32"}, "fp32", ""),                       # newer transformers write "dtype"
    ({"text_config": {"torch_dtype": "float16"}}, "fp16", ""),
    ({"text_config": {"dtype": "float16"}}, "fp16", ""),
    ({"torch_dtype": "BFloat16"}, "bf16", ""),
    ({}, "bf16", "no torch_dtype and no quantization_config: bf16 assumed"),
    ({"torch_dtype": "int3"}, "bf16", "no torch_dtype and no quantization_config: bf16 assumed"),
    ({"torch_dtype": "float16", "quantization_config": {}}, "fp16", ""),   # an empty one is no quantization
])
def test_plain_dtypes_from_config(cfg, dtype, derived):
    fmt = weight_format_from_config(cfg)
    assert fmt["weight_dtype"] == dtype and fmt["derived"] == derived and fmt["scope"] == "none"


def test_fp8_blocks_from_config():
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "FP8", "weight_block_size": [128, 64]}})
    # one fp32 scale per 128 x 64 = 8192 values
    assert (fmt["group_size"], fmt["scale_bits"], fmt["method"]) == (8192, 32, "fp8")
    assert fmt["derived"] == "quantization_config: fp8, 128x64 blocks"
    assert effective_bits(fmt) == 8 + 32 / 8192
    # malformed block sizes are per-tensor scales (no group)
    for block in ([128], [128, 0], [128, 128.0], "128x128", [128, 128, 1]):
        fmt = weight_format_from_config({"quantization_config": {"quant_method": "fp8", "weight_block_size": block}})
        assert fmt["group_size"] is None and effective_bits(fmt) == 8
        assert fmt["derived"] == "quantization_config: fp8"


def test_awq_gptq_names_and_per_channel():
    # AutoAWQ's older names w_bit / q_group_size
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "awq", "w_bit": 4, "q_group_size": 32}})
    assert (fmt["bits"], fmt["group_size"], fmt["zero_bits"], fmt["scale_bits"]) == (4, 32, 4, 16)
    assert fmt["derived"] == "quantization_config: awq 4-bit, group 32"
    # defaults: 4 bits, group 128, zero points on
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "awq"}})
    assert effective_bits(fmt) == 4 + 20 / 128 and fmt["weight_dtype"] == "int4"
    # group -1 (GPTQ per-channel): no group scales counted, no zeros
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": -1}})
    assert (fmt["weight_dtype"], fmt["group_size"], fmt["scale_bits"], fmt["zero_bits"]) == ("int8", None, 0, 0)
    assert fmt["derived"] == "quantization_config: gptq 8-bit, group per-channel" and effective_bits(fmt) == 8
    # GPTQ keeps its zeros even with zero_point false (that key is AWQ's)
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 64,
                                                             "zero_point": False}})
    assert fmt["zero_bits"] == 4
    with pytest.raises(InputError) as e:
        weight_format_from_config({"quantization_config": {"quant_method": "awq", "bits": 3}})
    assert e.value.field == "model.hf_config.quantization_config.bits" and e.value.allowed == "4 or 8"


def test_mxfp4_scope():
    # no attention among the unconverted modules: every Linear is mxfp4
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "mxfp4",
                                                             "modules_to_not_convert": ["lm_head"]}})
    assert fmt["scope"] == "linear" and fmt["derived"] == "quantization_config: mxfp4"
    assert weight_format_from_config({"quantization_config": {"quant_method": "mxfp4"}})["scope"] == "linear"
    # a module list naming the attention block by its last component "attn"
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "mxfp4",
                                                             "modules_to_not_convert": ["model.layers.0.attn"]}})
    assert fmt["scope"] == "experts" and fmt["derived"] == "quantization_config: mxfp4 (MoE experts only)"
    assert fmt["method"] == "mxfp4"


def _ct(weights, targets=("Linear",), **q):
    return weight_format_from_config({"quantization_config": {
        "quant_method": "compressed-tensors", "config_groups": {"g": {"targets": list(targets), "weights": weights}},
        **q}})


def test_compressed_tensors_schemes():
    # int4 asymmetric groups of 64: a bf16 scale + an int8 zero per group: 4 + (16 + 8) / 64
    fmt = _ct({"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 64})
    assert effective_bits(fmt) == 4 + 24 / 64 and fmt["method"] == "compressed-tensors"
    assert fmt["derived"] == "quantization_config: compressed-tensors int4, group 64, asymmetric"
    # int8 per channel: no groups
    fmt = _ct({"num_bits": 8, "type": "int", "strategy": "channel"})
    assert (fmt["weight_dtype"], fmt["group_size"], fmt["scale_bits"], fmt["zero_bits"]) == ("int8", None, 0, 0)
    assert fmt["derived"] == "quantization_config: compressed-tensors int8, group per-channel"
    # no strategy means groups; asymmetric without groups has no zeros to count
    assert _ct({"num_bits": 4, "group_size": 32})["group_size"] == 32
    assert _ct({"num_bits": 8, "symmetric": False, "strategy": "channel"})["zero_bits"] == 0
    # float4 without a group size: NVFP4's 16
    fmt = _ct({"num_bits": 4, "type": "float"})
    assert fmt["weight_dtype"] == "nvfp4" and fmt["group_size"] == 16
    assert fmt["derived"] == "quantization_config: compressed-tensors nvfp4"
    assert _ct({"num_bits": 8, "type": "FLOAT"})["derived"] == "quantization_config: compressed-tensors fp8"
    # experts-only targets
    assert _ct({"num_bits": 4, "group_size": 128}, targets=["re:.*experts.*"])["scope"] == "experts"
    assert _ct({"num_bits": 4, "group_size": 128})["scope"] == "linear"
    # defaults: 8-bit int
    assert _ct({})["weight_dtype"] == "int8"
    with pytest.raises(InputError) as e:
        _ct({"num_bits": 2})
    assert e.value.field == "model.hf_config.quantization_config.config_groups.weights.num_bits"
    with pytest.raises(InputError) as e:
        weight_format_from_config({"quantization_config": {"quant_method": "compressed-tensors",
                                                           "config_groups": {"g": {"targets": ["Linear"]}}}})
    assert e.value.field == "model.hf_config.quantization_config.config_groups"
    assert e.value.problem == "cannot read the weight scheme"


def test_modelopt_algorithms():
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "modelopt", "quant_algo": "fp8"}})
    assert fmt["weight_dtype"] == "fp8" and fmt["method"] == "modelopt"
    assert fmt["derived"] == "quantization_config: FP8 (ModelOpt)"
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}})
    assert fmt["derived"] == "quantization_config: NVFP4 (ModelOpt)" and effective_bits(fmt) == 4.5
    # compressed-tensors with a quant_algo naming FP4 is read the same way
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "compressed-tensors",
                                                             "quant_algo": "w4a4_fp4"}})
    assert fmt["weight_dtype"] == "nvfp4" and fmt["method"] == "compressed-tensors"


# --- bytes --------------------------------------------------------------------------------------------------

def test_bytes_split_by_hand():
    int4 = weight_format("int4")   # 4 + 20 / 128 = 4.15625 bits
    r = weights_bytes_quantized(8e9, 1e9, int4)
    # 1e9 x 2 B + 7e9 x 4.15625 / 8 B; mean bits = bytes x 8 / 8e9
    total = 2e9 + 7e9 * 4.15625 / 8
    assert r == {"weights_bytes": total, "params_16bit": 1e9, "params_quantized": 7e9,
                 "effective_bits_quantized": 4.15625, "mean_bits_per_param": total * 8 / 8e9,
                 "weight_dtype": "int4", "method": "int4", "group_size": 128}
    # 16-bit parameters are clamped to [0, total]
    assert weights_bytes_quantized(8e9, -5, int4)["params_16bit"] == 0
    assert weights_bytes_quantized(8e9, None, int4)["params_quantized"] == 8e9
    r = weights_bytes_quantized(8e9, 9e9, int4)
    assert r["params_16bit"] == 8e9 and r["params_quantized"] == 0 and r["effective_bits_quantized"] == 16.0
    # bf16: every parameter 2 bytes, the quantized bits reported as 16
    r = weights_bytes_quantized(8e9, 1e9, weight_format("bf16"))
    assert (r["weights_bytes"], r["params_16bit"], r["effective_bits_quantized"]) == (16e9, 8e9, 16.0)


def test_experts_scope_by_hand():
    fmt = dict(weight_format("mxfp4"), scope="experts")
    # experts larger than what is left after the 16-bit embeddings: capped at total - embeddings
    r = weights_bytes_quantized(10e9, 1e9, fmt, params_experts=9.5e9)
    assert r["params_quantized"] == 9e9 and r["params_16bit"] == 1e9
    assert r["weights_bytes"] == 1e9 * 2 + 9e9 * 4.25 / 8
    # experts not known: everything but the 16-bit part
    r = weights_bytes_quantized(10e9, 1e9, fmt)
    assert r["params_quantized"] == 9e9
    r = weights_bytes_quantized(10e9, 1e9, fmt, params_experts=0.0)
    assert r["params_quantized"] == 9e9


@pytest.mark.parametrize("total", [0, -1.0, float("inf"), float("nan")])
def test_params_total_must_be_positive(total):
    with pytest.raises(InputError) as e:
        weights_bytes_quantized(total, 0, weight_format("bf16"))
    assert e.value.field == "model.params_total" and e.value.allowed == "a positive number"


def test_compressed_tensors_strategies_and_methods():
    # a channel strategy ignores a stray group_size; tensor_group keeps its own group (32 here, not NVFP4's 16)
    assert _ct({"num_bits": 8, "strategy": "channel", "group_size": 128})["group_size"] is None
    fmt = _ct({"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 32})
    assert fmt["group_size"] == 32 and effective_bits(fmt) == 4 + 8 / 32 and fmt["method"] == "compressed-tensors"
    assert _ct({"num_bits": 8, "type": "float"})["method"] == "compressed-tensors"
    # int8 in groups of 128: one bf16 scale per group -> 8 + 16 / 128
    assert effective_bits(_ct({"num_bits": 8, "strategy": "group", "group_size": 128})) == 8 + 16 / 128
    with pytest.raises(InputError) as e:
        _ct({"num_bits": 2})
    assert (e.value.value, e.value.allowed, e.value.problem) == (2, "4 or 8", "unsupported bits")
    with pytest.raises(InputError) as e:
        weight_format_from_config({"quantization_config": {"quant_method": "compressed-tensors",
                                                           "config_groups": {"g": "x"}}})
    assert e.value.value == {"g": "x"} and e.value.allowed == "a config group with a 'weights' scheme"


def test_config_refusal_words_and_aliases():
    # AutoAWQ's w_bit alone sets the width
    assert weight_format_from_config({"quantization_config": {"quant_method": "awq", "w_bit": 8}})["weight_dtype"] \
        == "int8"
    with pytest.raises(InputError) as e:
        weight_format_from_config({"quantization_config": {"quant_method": "gptq", "bits": 3}})
    assert (e.value.value, e.value.problem) == (3, "unsupported bits")
    with pytest.raises(InputError) as e:
        weight_format_from_config({"quantization_config": {"quant_method": "bitsandbytes"}})
    assert (e.value.value, e.value.allowed, e.value.problem) == (
        "bitsandbytes", "fp8, awq, gptq, compressed-tensors, modelopt or mxfp4", "unsupported quantization method")
    # a 128 x 1 block is still a block (one fp32 scale per 128 values)
    fmt = weight_format_from_config({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 1]}})
    assert fmt["group_size"] == 128
    with pytest.raises(InputError) as e:
        weight_format("int3")
    assert e.value.value == "int3"
    with pytest.raises(InputError) as e:
        weight_format("bf16", group_size=64)
    assert e.value.value == 64
    assert e.value.allowed == "only for int4 (AWQ/GPTQ group) or fp8 (values per fp32 block scale)"
    with pytest.raises(InputError) as e:
        weight_format("int4", group_size=7)
    assert e.value.value == 7


def test_fractional_parameter_totals():
    # half a parameter is a (tiny) positive total
    assert weights_bytes_quantized(0.5, 0, weight_format("bf16"))["weights_bytes"] == 1.0
    with pytest.raises(InputError) as e:
        weights_bytes_quantized(-1.0, 0, weight_format("bf16"))
    assert e.value.value == -1.0
