"""Engine command lines for a configuration: ``vllm serve`` and SGLang's ``launch_server``.

Every flag written comes from the tables below, views of the one flag list
(engine_flags.FLAGS, each flag kept with the documentation page it was checked
against; tests/test_engine_cmd.py checks that no other flag is emitted). Values are the calculator's own: tensor
parallel size, memory fraction, KV cache dtype, block/page size, prefix
caching and maximum model length.

Semantics that differ between the engines (said in ``notes``):

* vLLM's ``--gpu-memory-utilization`` is the share of the GPU's memory the
  engine may use (weights, activations and KV cache); SGLang's
  ``--mem-fraction-static`` is the share for weights and the KV pool, with
  activations outside it. The same number therefore leaves SGLang a little
  more KV memory.
* vLLM's KV dtype ``fp8`` means e4m3 on CUDA; SGLang needs the variant named.
* A weight dtype other than the checkpoint's needs a checkpoint in that
  format, except fp8, which vLLM and SGLang can apply to a 16-bit checkpoint
  at load time (``--quantization fp8``).
"""

from __future__ import annotations

import shlex

from .engine_flags import meanings
from .errors import InputError, require_int, require_number

__all__ = ["VLLM_FLAGS", "SGLANG_FLAGS", "VLLM_DOCS", "SGLANG_DOCS", "engine_commands"]

VLLM_DOCS = ("https://docs.vllm.ai/en/v0.8.5/serving/engine_args.html ; "
             "https://docs.vllm.ai/en/latest/configuration/engine_args.html")
SGLANG_DOCS = "https://docs.sglang.ai/advanced_features/server_arguments.html"

#: vLLM engine arguments this module may write, with their documented meaning (from engine_flags.FLAGS)
VLLM_FLAGS = meanings("vllm", ("--tensor-parallel-size", "--gpu-memory-utilization", "--kv-cache-dtype",
                               "--block-size", "--enable-prefix-caching", "--no-enable-prefix-caching",
                               "--max-model-len", "--quantization"))
#: SGLang server arguments this module may write (from engine_flags.FLAGS)
SGLANG_FLAGS = meanings("sglang", ("--model-path", "--tp", "--mem-fraction-static", "--kv-cache-dtype",
                                   "--page-size", "--disable-radix-cache", "--context-length", "--quantization"))

_VLLM_BLOCK_SIZES = (1, 8, 16, 32, 64, 128)
_VLLM_KV = {"auto": "auto", "bf16": "auto", "bfloat16": "auto", "fp16": "auto", "float16": "auto",
            "fp8": "fp8", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}
_SGLANG_KV = {"auto": "auto", "bf16": "auto", "bfloat16": "auto", "fp16": "auto", "float16": "auto",
              "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2"}


def engine_commands(model_id: str, tensor_parallel: int = 1, gpu_memory_utilization: float = 0.9,
                    kv_cache_dtype: str = "auto", block_size_tokens: int = 16, prefix_caching: bool = True,
                    max_model_len_tokens=None, weight_dtype: str | None = None,
                    checkpoint_weight_dtype: str | None = None) -> dict:
    """{"vllm": {"argv", "command"}, "sglang": {"argv", "command"}, "notes": [...], "sources": {...}}.

    model_id: the Hugging Face repo id (or a path); weight_dtype: the dtype asked
    for, checkpoint_weight_dtype: the checkpoint's own (both kvcalc names).
    """
    if not isinstance(model_id, str) or not model_id or len(model_id) > 300 or any(c in model_id for c in "\n\r\0"):
        raise InputError("model", model_id, "a repo id or path on one line", "not usable in a command line")
    tp = require_int("tensor_parallel", tensor_parallel, 1, 1024)
    util = require_number("gpu_memory_utilization", gpu_memory_utilization, 0.0, 1.0, lo_open=True)
    block = require_int("cache.block_size_tokens", block_size_tokens, 1, 4096)
    if not isinstance(prefix_caching, bool):
        raise InputError("prefix_caching", prefix_caching, "true or false", "not a boolean")
    notes: list[dict] = []
    kv = str(kv_cache_dtype).lower()
    vllm_kv, sglang_kv = _VLLM_KV.get(kv), _SGLANG_KV.get(kv)
    if vllm_kv is None:
        notes.append({"code": "kv_dtype_not_in_engines", "params": {"kv_cache_dtype": kv_cache_dtype},
                      "message": f"KV cache dtype {kv_cache_dtype} has no engine flag value; 'auto' written."})
        vllm_kv = sglang_kv = "auto"
    v = ["vllm", "serve", model_id, "--tensor-parallel-size", str(tp), "--gpu-memory-utilization", f"{util:g}",
         "--kv-cache-dtype", vllm_kv, "--block-size", str(block),
         "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching"]
    s = ["python", "-m", "sglang.launch_server", "--model-path", model_id, "--tp", str(tp),
         "--mem-fraction-static", f"{util:g}", "--kv-cache-dtype", sglang_kv, "--page-size", str(block)]
    if not prefix_caching:
        s.append("--disable-radix-cache")
    if block not in _VLLM_BLOCK_SIZES:
        notes.append({"code": "vllm_block_size", "params": {"block_size_tokens": block,
                                                            "allowed": list(_VLLM_BLOCK_SIZES)},
                      "message": f"vLLM accepts block sizes {', '.join(map(str, _VLLM_BLOCK_SIZES))}; "
                                 f"{block} may be refused."})
    if max_model_len_tokens is not None:
        n = require_int("context_tokens", max_model_len_tokens, 1, 10**10)
        v += ["--max-model-len", str(n)]
        s += ["--context-length", str(n)]
    if weight_dtype is not None and checkpoint_weight_dtype is not None and weight_dtype != checkpoint_weight_dtype:
        if weight_dtype == "fp8" and checkpoint_weight_dtype in ("bf16", "fp16", "fp32"):
            v += ["--quantization", "fp8"]
            s += ["--quantization", "fp8"]
        else:
            notes.append({"code": "needs_quantized_checkpoint",
                          "params": {"weight_dtype": weight_dtype, "checkpoint": checkpoint_weight_dtype},
                          "message": f"{weight_dtype} weights need a checkpoint quantized to {weight_dtype} "
                                     f"(this one is {checkpoint_weight_dtype}); point the command at it."})
    notes.append({"code": "memory_fraction_semantics", "params": {"fraction": util},
                  "message": "vLLM's --gpu-memory-utilization covers weights, activations and KV cache; "
                             "SGLang's --mem-fraction-static covers weights and the KV pool only."})
    return {"vllm": {"argv": v, "command": shlex.join(v)}, "sglang": {"argv": s, "command": shlex.join(s)},
            "notes": notes, "sources": {"vllm": VLLM_DOCS, "sglang": SGLANG_DOCS}}
