"""Units: byte multiples and KV/weight dtype widths (in bits).

GiB (2**30 bytes) and GB (10**9 bytes) are never mixed: every name says which.
Accelerator vendors quote HBM in GB or GiB inconsistently; presets store bytes.
"""

from __future__ import annotations

from .errors import InputError

__all__ = ["GIB_BYTES", "GB_BYTES", "MIB_BYTES", "DTYPE_BITS", "dtype_bits", "tokens_to_gib"]

GIB_BYTES = 1024 ** 3
MIB_BYTES = 1024 ** 2
GB_BYTES = 1000 ** 3

#: Width in bits of every dtype name we accept for KV cache and weights.
DTYPE_BITS: dict[str, int] = {
    "fp32": 32, "float32": 32,
    "bf16": 16, "bfloat16": 16, "fp16": 16, "float16": 16, "half": 16,
    "fp8": 8, "fp8_e4m3": 8, "fp8_e5m2": 8, "int8": 8,
    "fp6": 6,
    "fp4": 4, "nvfp4": 4, "mxfp4": 4, "int4": 4,
}


def dtype_bits(field: str, name: object) -> int:
    """Bits per element for a dtype name, or InputError naming the field."""
    if isinstance(name, str) and name.lower() in DTYPE_BITS:
        return DTYPE_BITS[name.lower()]
    raise InputError(field, name, "one of " + ", ".join(DTYPE_BITS), "unknown dtype")


def tokens_to_gib(tokens, bytes_per_token):
    """GiB (2**30 bytes) that ``tokens`` of KV take at ``bytes_per_token``."""
    return tokens * bytes_per_token / GIB_BYTES
