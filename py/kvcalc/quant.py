"""Weight quantization: bytes of a model's weights in a given storage format.

A format stores most linear-layer weights at ``bits`` per value plus per-group
metadata, and keeps some tensors in 16-bit. Effective bits per quantized value,
with the source of each rule:

* ``bf16`` / ``fp16``: 16. ``fp32`` checkpoints are served in fp16 (vLLM's
  ``dtype="auto"``), so they count 16 as well.
* ``fp8`` (``quant_method: "fp8"``): 8 bits, plus one fp32 scale per
  128 x 128 block when ``weight_block_size`` is given (DeepSeek-V3 style:
  32 / 16384 bits per value) or one per tensor (negligible).
  https://docs.vllm.ai/en/latest/features/quantization/fp8.html
* ``int8`` (W8A8, compressed-tensors ``num_bits: 8``): 8 bits plus one
  16-bit scale per output channel (negligible, counted as 0).
* ``int4`` AWQ (``quant_method: "awq"``): 4-bit values packed in int32
  ``qweight``, plus per group of ``group_size`` input values one fp16 scale
  and one 4-bit zero point (``qzeros``, packed): 4 + (16 + 4) / group_size.
  https://github.com/casper-hansen/AutoAWQ (WQLinear_GEMM buffers qweight, qzeros, scales)
* ``int4`` GPTQ (``quant_method: "gptq"``): the same per-group fp16 scale and
  packed 4-bit zero (4 + 20 / group_size), plus ``g_idx`` (one int32 per
  input row; counted as 0 here, under 0.1 % for 4096-wide layers).
  https://github.com/AutoGPTQ/AutoGPTQ (QuantLinear buffers qweight, qzeros, scales, g_idx)
* ``int4`` compressed-tensors (``quant_method: "compressed-tensors"``,
  ``pack-quantized``, symmetric): 4 bits plus one bf16 scale per group, no
  zero point: 4 + 16 / group_size (asymmetric formats add an int8 zero per
  group: + 8 / group_size).
  https://github.com/neuralmagic/compressed-tensors
* ``mxfp4`` (OCP Microscaling): 4-bit E2M1 values plus one 8-bit E8M0 scale
  per block of 32: 4.25. https://www.opencompute.org/documents/ocp-microscaling-formats-mx-v1-0-spec-final-pdf
* ``nvfp4``: 4-bit E2M1 values plus one FP8 E4M3 scale per block of 16
  (plus one fp32 scale per tensor, negligible): 4.5.
  https://docs.nvidia.com/cuda/cublas/#d-block-quantization (NVFP4 16-element blocks)

Which tensors stay in 16-bit: every method above quantizes the linear layers
of the decoder blocks only; embeddings and ``lm_head`` stay bf16 (AWQ/GPTQ
skip them, compressed-tensors recipes list ``lm_head`` in ``ignore``, vLLM's
fp8 leaves embeddings unquantized). gpt-oss quantizes only the MoE experts to
MXFP4; attention, router, embeddings and ``lm_head`` are bf16 (its config's
``modules_to_not_convert``). Norms and biases are under 0.1 % and ignored.
"""

from __future__ import annotations

import math

from .errors import InputError

__all__ = ["WEIGHT_FORMATS", "effective_bits", "weight_format", "weight_format_from_config",
           "weights_bytes_quantized"]

#: weight_dtype names accepted by the API and their default format parameters
WEIGHT_FORMATS: dict[str, dict] = {
    "fp32": {"bits": 16, "group_size": None, "scale_bits": 0, "zero_bits": 0, "scope": "none"},
    "bf16": {"bits": 16, "group_size": None, "scale_bits": 0, "zero_bits": 0, "scope": "none"},
    "fp16": {"bits": 16, "group_size": None, "scale_bits": 0, "zero_bits": 0, "scope": "none"},
    "fp8": {"bits": 8, "group_size": None, "scale_bits": 0, "zero_bits": 0, "scope": "linear"},
    "int8": {"bits": 8, "group_size": None, "scale_bits": 0, "zero_bits": 0, "scope": "linear"},
    "int4": {"bits": 4, "group_size": 128, "scale_bits": 16, "zero_bits": 4, "scope": "linear"},
    "mxfp4": {"bits": 4, "group_size": 32, "scale_bits": 8, "zero_bits": 0, "scope": "linear"},
    "nvfp4": {"bits": 4, "group_size": 16, "scale_bits": 8, "zero_bits": 0, "scope": "linear"},
}
_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "fp8_e4m3": "fp8",
            "fp4": "nvfp4"}


def effective_bits(fmt: dict) -> float:
    """Bits per quantized value including its share of group scales and zeros."""
    g = fmt.get("group_size")
    extra = 0.0 if not g else (fmt.get("scale_bits", 0) + fmt.get("zero_bits", 0)) / g
    return fmt["bits"] + extra


def weight_format(name, field: str = "weight_dtype", group_size=None) -> dict:
    """The format dict of a weight_dtype name (see WEIGHT_FORMATS), optionally with another group size."""
    key = _ALIASES.get(str(name).lower(), str(name).lower()) if isinstance(name, str) else None
    if key not in WEIGHT_FORMATS:
        raise InputError(field, name, "one of " + ", ".join(WEIGHT_FORMATS), "unknown weight dtype")
    fmt = dict(WEIGHT_FORMATS[key], weight_dtype=key, method=key, derived="")
    if group_size is not None:
        if key not in ("int4", "fp8"):
            raise InputError(field + "_group_size", group_size,
                             "only for int4 (AWQ/GPTQ group) or fp8 (values per fp32 block scale)", "not applicable")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or not 8 <= group_size <= 65536:
            raise InputError(field + "_group_size", group_size, "an integer in [8, 65536]", "out of range")
        fmt["group_size"] = group_size
        if key == "fp8":
            fmt["scale_bits"] = 32
    return fmt


def weight_format_from_config(cfg: dict) -> dict:
    """Weight format of a Hugging Face config.json: its quantization_config, else its torch_dtype.

    Returns a format dict with ``weight_dtype``, ``method``, ``bits``,
    ``group_size``, ``scale_bits``, ``zero_bits``, ``scope`` ("linear" or
    "experts") and ``derived`` (how it was read, "" when nothing was read).
    """
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else {}
    torch_dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or text.get("torch_dtype") or text.get("dtype") or "")
    q = cfg.get("quantization_config")
    if not isinstance(q, dict) or not q:
        from .request import HF_DTYPES
        base = HF_DTYPES.get(torch_dtype.lower())
        if base is None:
            fmt = weight_format("bf16")
            fmt["derived"] = "no torch_dtype and no quantization_config: bf16 assumed"
            return fmt
        return weight_format(base)
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8":
        fmt = weight_format("fp8")
        block = q.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block):
            fmt.update(group_size=block[0] * block[1], scale_bits=32)
        fmt.update(method="fp8", derived="quantization_config: fp8" + (f", {block[0]}x{block[1]} blocks"
                                                                       if fmt["group_size"] else ""))
        return fmt
    if method in ("awq", "gptq"):
        bits = q.get("bits", q.get("w_bit", 4))
        group = q.get("group_size", q.get("q_group_size", 128))
        if bits not in (4, 8):
            raise InputError("model.hf_config.quantization_config.bits", bits, "4 or 8", "unsupported bits")
        if not isinstance(group, int) or group == -1:
            group = None  # per-channel
        fmt = weight_format("int4" if bits == 4 else "int8")
        # AWQ stores qzeros when zero_point is on; GPTQ always stores qzeros (AutoGPTQ QuantLinear), sym or not
        zero = bool(q.get("zero_point", True)) if method == "awq" else True
        fmt.update(method=method, bits=bits, group_size=group, scale_bits=16 if group else 0,
                   zero_bits=(bits if zero else 0) if group else 0,
                   derived=f"quantization_config: {method} {bits}-bit, group {group or 'per-channel'}")
        return fmt
    if method == "mxfp4":
        fmt = weight_format("mxfp4")
        fmt.update(method="mxfp4", scope="experts" if _experts_only(q) else "linear",
                   derived="quantization_config: mxfp4 (MoE experts only)" if _experts_only(q)
                   else "quantization_config: mxfp4")
        return fmt
    if method in ("compressed-tensors", "modelopt"):
        return _compressed_tensors_format(q, method)
    raise InputError("model.hf_config.quantization_config.quant_method", q.get("quant_method"),
                     "fp8, awq, gptq, compressed-tensors, modelopt or mxfp4", "unsupported quantization method")


def _experts_only(q: dict) -> bool:
    skip = q.get("modules_to_not_convert") or []
    return any("self_attn" in str(s) or "attn" == str(s).split(".")[-1] for s in skip)


def _compressed_tensors_format(q: dict, method: str) -> dict:
    algo = str(q.get("quant_algo", "")).upper()
    if method == "modelopt" or algo:
        if "FP4" in algo:
            fmt = weight_format("nvfp4")
            fmt.update(method=method, derived="quantization_config: NVFP4 (ModelOpt)")
            return fmt
        if "FP8" in algo:
            fmt = weight_format("fp8")
            fmt.update(method=method, derived="quantization_config: FP8 (ModelOpt)")
            return fmt
    groups = q.get("config_groups") or {}
    w = None
    for g in groups.values():
        if isinstance(g, dict) and isinstance(g.get("weights"), dict):
            w = g["weights"]
            break
    if w is None:
        raise InputError("model.hf_config.quantization_config.config_groups", groups,
                         "a config group with a 'weights' scheme", "cannot read the weight scheme")
    bits, typ = w.get("num_bits", 8), str(w.get("type", "int")).lower()
    group = w.get("group_size") if w.get("strategy") in ("group", "tensor_group", None) else None
    if typ == "float" and bits == 4:
        fmt = weight_format("nvfp4")
        fmt.update(method=method, group_size=group or 16, derived="quantization_config: compressed-tensors nvfp4")
        return fmt
    if typ == "float" and bits == 8:
        fmt = weight_format("fp8")
        fmt.update(method=method, derived="quantization_config: compressed-tensors fp8")
        return fmt
    if bits not in (4, 8):
        raise InputError("model.hf_config.quantization_config.config_groups.weights.num_bits", bits, "4 or 8",
                         "unsupported bits")
    fmt = weight_format("int4" if bits == 4 else "int8")
    sym = bool(w.get("symmetric", True))
    fmt.update(method=method, bits=bits, group_size=group, scale_bits=16 if group else 0,
               zero_bits=(0 if sym or not group else 8),
               derived=f"quantization_config: compressed-tensors int{bits}, group {group or 'per-channel'}"
                       + ("" if sym else ", asymmetric"))
    targets = " ".join(str(t) for g in groups.values() if isinstance(g, dict) for t in (g.get("targets") or []))
    if "expert" in targets.lower():
        fmt["scope"] = "experts"
    return fmt


def weights_bytes_quantized(params_total: float, params_16bit: float, fmt: dict,
                            params_experts: float | None = None) -> dict:
    """Bytes of all weights: quantized part at effective bits, the rest in 16-bit.

    params_16bit: parameters every format keeps in 16-bit (embeddings, lm_head).
    params_experts: routed-expert parameters, for formats whose scope is "experts"
    (everything else then stays 16-bit). Returns bytes and the split.
    """
    if not (math.isfinite(params_total) and params_total > 0):
        raise InputError("model.params_total", params_total, "a positive number")
    p16 = min(max(float(params_16bit or 0.0), 0.0), params_total)
    if fmt["scope"] == "none":
        quant = 0.0
        p16 = params_total
    elif fmt["scope"] == "experts":
        quant = min(float(params_experts or 0.0), params_total - p16) if params_experts else params_total - p16
        p16 = params_total - quant
    else:
        quant = params_total - p16
    bits = effective_bits(fmt)
    total = p16 * 2 + quant * bits / 8
    return {"weights_bytes": total, "params_16bit": p16, "params_quantized": quant,
            "effective_bits_quantized": bits if quant else 16.0,
            "mean_bits_per_param": total * 8 / params_total, "weight_dtype": fmt["weight_dtype"],
            "method": fmt["method"], "group_size": fmt.get("group_size")}
