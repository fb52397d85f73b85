"""The one list of serving-engine flags kvcalc names, each with where it is documented.

Both users read it: the recommendations (recommend.py) and the engine command
builder (engine_cmd.py, whose tables are views of this list). Every flag either
prints must be in ``FLAGS`` (tests/test_engine_flags.py checks both). Values are
filled in by the caller; the source is the engine's own documentation page (or
its maintainers' deployment guide).
"""

from __future__ import annotations

__all__ = ["FLAGS", "flag", "setting", "meanings"]

_VLLM_ARGS = "https://docs.vllm.ai/en/latest/configuration/engine_args.html"
_VLLM_LMCACHE = "https://docs.vllm.ai/en/v0.25.0/examples/disaggregated/lmcache/"
_VLLM_ROUTER = "https://docs.vllm.ai/projects/production-stack/en/vllm-stack-0.1.5/dev_guide/dev_api/router-logic.html"
_SGL_ARGS = "https://docs.sglang.io/advanced_features/server_arguments.html"
_SGL_HICACHE = "https://docs.nvidia.com/dynamo/latest/backends/sglang/sgl-hicache-example.html"
_SGL_DP = "https://docs.sglang.io/advanced_features/dp_dpa_smg_guide.html"
_SGL_ROUTER = "https://pypi.org/project/sglang-router/0.1.5/"

#: (engine, flag) -> {"meaning", "source"}
FLAGS: dict[tuple[str, str], dict] = {
    ("vllm", "--gpu-memory-utilization"): {"meaning": "fraction of GPU memory vLLM may use (weights + KV + activations)", "source": _VLLM_ARGS},
    ("vllm", "--kv-cache-dtype"): {"meaning": "KV cache element type (auto, fp8, fp8_e4m3, fp8_e5m2)", "source": _VLLM_ARGS},
    ("vllm", "--tensor-parallel-size"): {"meaning": "GPUs per instance (tensor parallelism)", "source": _VLLM_ARGS},
    ("vllm", "--block-size"): {"meaning": "tokens per KV block (the prefix-cache granularity)", "source": _VLLM_ARGS},
    ("vllm", "--enable-prefix-caching"): {"meaning": "reuse cached KV blocks of a shared prefix", "source": _VLLM_ARGS},
    ("vllm", "--no-enable-prefix-caching"): {"meaning": "disable automatic prefix caching", "source": _VLLM_ARGS},
    ("vllm", "--quantization"): {"meaning": "method used to quantize the weights (e.g. fp8)", "source": _VLLM_ARGS},
    ("vllm", "--max-model-len"): {"meaning": "longest sequence (context) the instance accepts", "source": _VLLM_ARGS},
    ("vllm", "--kv-transfer-config"): {"meaning": "KV connector, e.g. LMCacheConnectorV1 for CPU/disk offload", "source": _VLLM_LMCACHE},
    ("vllm", "--kv-offloading-backend"): {"meaning": "built-in KV offload backend (lmcache)", "source": _VLLM_LMCACHE},
    ("vllm", "--kv-offloading-size"): {"meaning": "KV offload capacity in GiB", "source": _VLLM_LMCACHE},
    ("vllm-router", "--routing-logic"): {"meaning": "production-stack router policy: roundrobin or session (sticky)", "source": _VLLM_ROUTER},
    ("sglang", "--mem-fraction-static"): {"meaning": "fraction of GPU memory for weights and the KV pool", "source": _SGL_ARGS},
    ("sglang", "--kv-cache-dtype"): {"meaning": "KV cache element type (auto, fp8_e4m3, fp8_e5m2)", "source": _SGL_ARGS},
    ("sglang", "--tp-size"): {"meaning": "GPUs per instance (tensor parallelism)", "source": _SGL_ARGS},
    ("sglang", "--tp"): {"meaning": "tensor parallelism size (alias of --tp-size)", "source": _SGL_ARGS},
    ("sglang", "--model-path"): {"meaning": "path or Hugging Face repo id of the model weights", "source": _SGL_ARGS},
    ("sglang", "--disable-radix-cache"): {"meaning": "disable RadixAttention prefix caching", "source": _SGL_ARGS},
    ("sglang", "--context-length"): {"meaning": "model's maximum context length", "source": _SGL_ARGS},
    ("sglang", "--quantization"): {"meaning": "quantization method (e.g. fp8)", "source": _SGL_ARGS},
    ("sglang", "--page-size"): {"meaning": "tokens per KV page (the radix-cache granularity; default 1)", "source": _SGL_ARGS},
    ("sglang", "--dp-size"): {"meaning": "data-parallel replicas behind SGLang's router", "source": _SGL_DP},
    ("sglang", "--enable-hierarchical-cache"): {"meaning": "HiCache: host-memory KV tier below the GPU", "source": _SGL_HICACHE},
    ("sglang", "--hicache-ratio"): {"meaning": "host KV pool size as a multiple of the GPU KV pool", "source": _SGL_HICACHE},
    ("sglang-router", "--policy"): {"meaning": "router policy: cache_aware, round_robin, random, power_of_two", "source": _SGL_ROUTER},
}


def flag(engine: str, name: str) -> str:
    """The flag itself, after checking it is listed (KeyError otherwise)."""
    FLAGS[(engine, name)]
    return name


def setting(engine: str, name: str, value=None) -> dict:
    """{"engine", "flag", "value", "source"} for one recommended setting."""
    entry = FLAGS[(engine, name)]
    return {"engine": engine, "flag": name, "value": value, "source": entry["source"]}


def meanings(engine: str, names) -> dict:
    """{flag: meaning} for the named flags of one engine (KeyError if one is not listed)."""
    return {n: FLAGS[(engine, n)]["meaning"] for n in names}
