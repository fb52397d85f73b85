"""Model and accelerator presets, and Hugging Face config.json parsing.

Presets are JSON data in the repository's ``presets/`` directory (override the
directory with the ``KVCALC_PRESETS_DIR`` environment variable). Each file is
validated on first load; a broken preset fails loudly rather than producing a
wrong number later.

A model can also be given as ``{"hf_config": {...}}``: the raw config.json of a
Hugging Face checkpoint. :func:`spec_from_hf_config` derives the same fields a
preset carries (attention kind, per-layer windows, head geometry) and, when the
caller gives no parameter counts, estimates them from the architecture.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .limits import LIMITS
from .units import DTYPE_BITS, dtype_bits

__all__ = [
    "ModelSpec", "GpuSpec", "ATTENTION_KINDS", "presets_dir", "load_models", "load_gpus",
    "get_model", "get_gpu", "spec_from_hf_config", "estimate_params",
]

ATTENTION_KINDS = ("mha", "gqa", "mqa", "mla")

_UNKNOWN_MODEL_ALLOWED = "one of the preset ids (see presets/models.json), or {\"hf_config\": {...}}"
_UNKNOWN_GPU_ALLOWED = "one of the preset ids (see presets/gpus.json)"


@dataclass(frozen=True)
class ModelSpec:
    """What the memory model needs to know about an LLM.

    layer_window_tokens: one entry per decoder layer; None for a global (full
        attention) layer, an int for a local layer that keeps at most that many
        tokens of KV per sequence (sliding window, or Llama 4 chunked attention).
    num_kv_heads: KV heads of the config (for MLA this is informational: the
        cache holds one latent per token shared by all heads).
    kv_lora_rank, qk_rope_head_dim: MLA latent and decoupled-RoPE widths.
    params_total, params_active: parameter counts (active < total for MoE).
    params_estimated: True when the counts were estimated from the architecture.
    weight_dtype: native checkpoint dtype name (a key of units.DTYPE_BITS).
    """

    id: str
    name: str
    attention: str
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    max_position_embeddings: int
    layer_window_tokens: tuple
    params_total: float
    params_active: float
    weight_dtype: str = "bf16"
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    params_estimated: bool = False
    source: str = ""
    notes: str = ""

    def __post_init__(self):
        # a pasted config's problems belong to its field (the page shows them there)
        f = "model.hf_config" if self.source == "user-supplied config.json" else f"model[{self.id}]"
        if self.attention not in ATTENTION_KINDS:
            raise InputError(f + ".attention", self.attention, ", ".join(ATTENTION_KINDS), "unknown attention kind")
        for name in ("num_layers", "num_attention_heads", "num_kv_heads", "head_dim", "hidden_size", "max_position_embeddings"):
            _require_pos_int(f"{f}.{name}", getattr(self, name))
        if self.attention == "mla":
            _require_pos_int(f + ".kv_lora_rank", self.kv_lora_rank)
            _require_pos_int(f + ".qk_rope_head_dim", self.qk_rope_head_dim, allow_zero=True)
        windows = tuple(self.layer_window_tokens)
        if len(windows) != self.num_layers:
            raise InputError(f + ".layer_window_tokens", len(windows), f"{self.num_layers} entries (one per layer)", "wrong length")
        for w in windows:
            if w is not None:
                _require_pos_int(f + ".layer_window_tokens", w)
        object.__setattr__(self, "layer_window_tokens", windows)
        for name in ("params_total", "params_active"):
            x = getattr(self, name)
            lim = LIMITS[f"model.{name}"]
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not lim.contains(x):
                raise InputError(f"{f}.{name}", x, lim.range_text(), "out of range")
        if self.params_active > self.params_total * (1 + 1e-9):
            raise InputError(f + ".params_active", self.params_active, f"at most params_total ({self.params_total:g})")
        dtype_bits(f + ".weight_dtype", self.weight_dtype)

    @property
    def global_layers(self) -> int:
        return sum(1 for w in self.layer_window_tokens if w is None)

    @property
    def local_layers(self) -> int:
        return self.num_layers - self.global_layers

    @property
    def weight_bits(self) -> int:
        return DTYPE_BITS[self.weight_dtype.lower()]

    @property
    def is_moe(self) -> bool:
        return self.params_active < self.params_total

    def to_dict(self) -> dict:
        """JSON-simple summary (the page shows it beside the model picker)."""
        return {
            "id": self.id, "name": self.name, "attention": self.attention,
            "num_layers": self.num_layers, "global_layers": self.global_layers,
            "local_layers": self.local_layers,
            "num_attention_heads": self.num_attention_heads, "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "hidden_size": self.hidden_size,
            "kv_lora_rank": self.kv_lora_rank, "qk_rope_head_dim": self.qk_rope_head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "window_tokens": sorted({w for w in self.layer_window_tokens if w is not None}),
            "params_total": self.params_total, "params_active": self.params_active,
            "params_estimated": self.params_estimated, "weight_dtype": self.weight_dtype,
            "source": self.source, "notes": self.notes,
        }


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator. memory_bytes is what the device reports (see presets/README.md)."""

    id: str
    name: str
    vendor: str
    memory_bytes: int
    dense_bf16_tflops: float
    dense_fp8_tflops: float | None
    hbm_bandwidth_gb_per_s: float
    host_link_bandwidth_gb_per_s: float
    marketed_memory: str = ""
    source: str = ""
    notes: str = ""

    def __post_init__(self):
        f = f"gpu[{self.id}]"
        _require_pos_int(f + ".memory_bytes", self.memory_bytes)
        for name in ("dense_bf16_tflops", "hbm_bandwidth_gb_per_s", "host_link_bandwidth_gb_per_s"):
            _require_pos_number(f"{f}.{name}", getattr(self, name))
        if self.dense_fp8_tflops is not None:
            _require_pos_number(f + ".dense_fp8_tflops", self.dense_fp8_tflops)
        if not self.source:
            raise InputError(f + ".source", self.source, "a non-empty source (URL or document)", "missing source")

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / 1024 ** 3

    def to_dict(self) -> dict:
        return {
            "id": self.id, "name": self.name, "vendor": self.vendor,
            "memory_bytes": self.memory_bytes, "memory_gib": self.memory_gib,
            "marketed_memory": self.marketed_memory,
            "dense_bf16_tflops": self.dense_bf16_tflops, "dense_fp8_tflops": self.dense_fp8_tflops,
            "hbm_bandwidth_gb_per_s": self.hbm_bandwidth_gb_per_s,
            "host_link_bandwidth_gb_per_s": self.host_link_bandwidth_gb_per_s,
            "source": self.source, "notes": self.notes,
        }


# ---------------------------------------------------------------------------
# validation helpers

def _require_pos_int(field: str, value, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InputError(field, value, f"an integer >= {lo}", "not a positive integer")
    return value


def _require_pos_number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InputError(field, value, "a positive finite number", "not a positive number")
    return float(value)


# ---------------------------------------------------------------------------
# loading

def presets_dir() -> Path:
    env = os.environ.get("KVCALC_PRESETS_DIR")
    if env:
        return Path(env)
    return _default_presets_dir()


@functools.lru_cache(maxsize=1)
def _default_presets_dir() -> Path:
    # resolve() touches the file system: once is enough (it runs on every compute)
    return Path(__file__).resolve().parents[2] / "presets"


def _read_json(name: str) -> dict:
    path = presets_dir() / name
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=4)
def _load_models_cached(directory: str) -> dict:
    doc = _read_json("models.json")
    models = doc.get("models")
    if not isinstance(models, dict) or not models:
        raise InputError("presets/models.json", type(models).__name__, "an object under the key 'models'", "malformed preset file")
    return {mid: _spec_from_preset(mid, entry) for mid, entry in models.items()}


@functools.lru_cache(maxsize=4)
def _load_gpus_cached(directory: str) -> dict:
    doc = _read_json("gpus.json")
    gpus = doc.get("gpus")
    if not isinstance(gpus, dict) or not gpus:
        raise InputError("presets/gpus.json", type(gpus).__name__, "an object under the key 'gpus'", "malformed preset file")
    out = {}
    for gid, e in gpus.items():
        known = {"name", "vendor", "memory_bytes", "marketed_memory", "dense_bf16_tflops", "dense_fp8_tflops",
                 "hbm_bandwidth_gb_per_s", "host_link_bandwidth_gb_per_s", "source", "notes"}
        unknown = sorted(set(e) - known)
        if unknown:
            raise InputError(f"gpu[{gid}].{unknown[0]}", e[unknown[0]], "one of " + ", ".join(sorted(known)), "unknown key")
        out[gid] = GpuSpec(id=gid, **e)
    return out


def load_models() -> dict:
    """All model presets, {id: ModelSpec} (cached per presets directory)."""
    return _load_models_cached(str(presets_dir()))


def load_gpus() -> dict:
    """All accelerator presets, {id: GpuSpec} (cached per presets directory)."""
    return _load_gpus_cached(str(presets_dir()))


def _spec_from_preset(mid: str, e: dict) -> ModelSpec:
    f = f"model[{mid}]"
    for key in ("source", "params_total", "params_active", "weight_dtype"):
        if key not in e:
            raise InputError(f"{f}.{key}", None, "present in every model preset", "missing field")
    n_layers = e.get("num_hidden_layers")
    _require_pos_int(f + ".num_hidden_layers", n_layers)
    pattern = e.get("layer_pattern")
    window = e.get("window_tokens")
    if pattern is None:
        windows = (None,) * n_layers
    else:
        if not isinstance(pattern, list) or not pattern or any(p not in ("local", "global") for p in pattern):
            raise InputError(f + ".layer_pattern", pattern, "a non-empty list of 'local'/'global'", "malformed layer pattern")
        _require_pos_int(f + ".window_tokens", window)
        windows = tuple(window if pattern[i % len(pattern)] == "local" else None for i in range(n_layers))
    spec = _spec_from_fields(mid, e, windows, e["params_total"], e["params_active"], estimated=False)
    return spec


# ---------------------------------------------------------------------------
# Hugging Face config.json

#: Class defaults of transformers' config classes that published config.json
#: files rely on by omission (e.g. gemma-3-27b-it's text_config has no
#: sliding_window_pattern or max_position_embeddings).
_MODEL_TYPE_DEFAULTS: dict[str, dict] = {
    "gemma3_text": {"sliding_window_pattern": 6, "max_position_embeddings": 131072, "vocab_size": 262208,
                    "sliding_window": 4096, "tie_word_embeddings": True},
    "gemma2": {"max_position_embeddings": 8192, "vocab_size": 256000, "sliding_window": 4096,
               "tie_word_embeddings": True},
    "llama4_text": {"attention_chunk_size": 8192, "no_rope_layer_interval": 4},
    "gpt_oss": {"sliding_window": 128},
    "qwen2": {"use_sliding_window": False},
    "qwen3": {"use_sliding_window": False},
    "qwen3_moe": {"use_sliding_window": False},
    "mixtral": {"sliding_window": None},
}


def _text_config(cfg: dict) -> dict:
    """Flatten a config: text_config over the top level (text wins), then the
    model type's class defaults under both."""
    merged = dict(cfg)
    text = cfg.get("text_config")
    if isinstance(text, dict):
        merged = {k: v for k, v in cfg.items() if k != "text_config"}
        merged.update(text)
        if "model_type" not in text and isinstance(cfg.get("model_type"), str):
            merged["model_type"] = cfg["model_type"] + "_text"
    defaults = _MODEL_TYPE_DEFAULTS.get(str(merged.get("model_type", "")), {})
    for k, v in defaults.items():
        if k not in merged:
            merged[k] = v
    return merged


def _first(cfg: dict, *keys, default=None):
    for k in keys:
        v = cfg.get(k)
        if v is not None:
            return v
    return default


def _arch(cfg: dict, field: str) -> dict:
    """Normalise the architecture fields of a (flattened) config, whatever its family's names."""
    layers = _first(cfg, "num_hidden_layers", "num_layers", "n_layer")
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads")
    hidden = _first(cfg, "hidden_size", "d_model", "n_embd")
    for name, v in (("num_hidden_layers", layers), ("num_attention_heads", heads), ("hidden_size", hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{field}.hf_config.{name}", v, "a positive integer", "missing or invalid")
    if cfg.get("multi_query") is True and not cfg.get("new_decoder_architecture"):
        kv = 1  # Falcon-7B style MQA
    elif cfg.get("multi_query_attention") is True or "multi_query_group_num" in cfg:
        kv = cfg.get("multi_query_group_num") or 1  # ChatGLM
    else:
        kv = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads)
    head_dim = _first(cfg, "head_dim", "kv_channels")
    if head_dim is None:
        head_dim = hidden // heads
    max_pos = _first(cfg, "max_position_embeddings", "seq_length", "n_positions", "max_seq_len", default=2048)
    return {"layers": layers, "heads": heads, "kv": kv, "head_dim": head_dim, "hidden": hidden, "max_pos": max_pos}


def _hf_windows(cfg: dict, layers: int, max_pos: int) -> tuple:
    """Per-layer KV window (None = global) from the config's attention layout."""
    sw = cfg.get("sliding_window")
    chunk = cfg.get("attention_chunk_size")
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        out = []
        for t in types:
            t = str(t)
            if "chunk" in t:
                out.append(chunk or sw)
            elif "sliding" in t or t == "local" or t == "local_attention":
                out.append(sw)
            else:
                out.append(None)
        return tuple(out)
    if chunk:  # Llama 4: chunked local attention on the RoPE layers
        nope = cfg.get("no_rope_layers")
        if isinstance(nope, list) and len(nope) == layers:
            return tuple(chunk if use_rope else None for use_rope in nope)
        interval = cfg.get("no_rope_layer_interval") or 4
        return tuple(chunk if (i + 1) % interval != 0 else None for i in range(layers))
    if not sw:
        return (None,) * layers
    pattern = cfg.get("sliding_window_pattern")
    if isinstance(pattern, int) and pattern > 0:  # Gemma 3: every pattern-th layer is global
        return tuple(None if (i + 1) % pattern == 0 else sw for i in range(layers))
    model_type = str(cfg.get("model_type", ""))
    if model_type.startswith("gemma2") or (model_type.startswith("gemma") and cfg.get("cache_implementation") == "hybrid"):
        return tuple(sw if i % 2 == 0 else None for i in range(layers))
    if "use_sliding_window" in cfg:  # Qwen2: windows only when enabled, from max_window_layers up
        if not cfg.get("use_sliding_window"):
            return (None,) * layers
        first = cfg.get("max_window_layers") or 0
        return tuple(sw if i >= first else None for i in range(layers))
    return (sw,) * layers  # Mistral-7B-v0.1: every layer windowed


def estimate_params(cfg: dict) -> tuple:
    """(total, active) parameter estimate from a config.json dict.

    Counts embeddings (+ untied lm_head), attention projections (GQA or MLA)
    and gated MLPs or MoE experts (routed, shared and router). Norms and biases
    are ignored (well under 1%). Vision towers are not counted.
    """
    c = _text_config(cfg)
    a = _arch(c, "model")
    L, h, H, kv, hd = a["layers"], a["hidden"], a["heads"], a["kv"], a["head_dim"]
    vocab = _first(c, "vocab_size", "padded_vocab_size", default=32000)
    tied = c.get("tie_word_embeddings", c.get("tie_embeddings", False))
    embed = vocab * h * (1 if tied else 2)

    if c.get("kv_lora_rank"):
        rank, rope = c["kv_lora_rank"], c.get("qk_rope_head_dim", 64)
        nope, v = c.get("qk_nope_head_dim", 128), c.get("v_head_dim", 128)
        qr = c.get("q_lora_rank")
        q = (h * qr + qr * H * (nope + rope)) if qr else h * H * (nope + rope)
        attn = q + h * (rank + rope) + rank * H * (nope + v) + H * v * h
    else:
        attn = h * H * hd + 2 * h * kv * hd + H * hd * h

    gated = c.get("mlp") != "ungated" and str(c.get("model_type", "")) not in ("falcon", "gpt2", "gpt_neox", "bloom")
    mult = 3 if gated else 2
    inter = _first(c, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * h)
    n_exp = _first(c, "n_routed_experts", "num_local_experts", "num_experts", default=0)
    top_k = _first(c, "num_experts_per_tok", "experts_per_token", "num_experts_per_token", default=0)
    dense_inter = _first(c, "intermediate_size_mlp", default=inter) if c.get("interleave_moe_layer_step") else inter
    total = active = embed
    for i in range(L):
        moe_layer = bool(n_exp)
        if n_exp and c.get("first_k_dense_replace") is not None and i < c["first_k_dense_replace"]:
            moe_layer = False
        step = c.get("interleave_moe_layer_step")
        if n_exp and step and (i + 1) % step != 0:
            moe_layer = False
        if n_exp and c.get("decoder_sparse_step") and (i + 1) % c["decoder_sparse_step"] != 0:
            moe_layer = False
        if not moe_layer:
            mlp_t = mlp_a = mult * h * dense_inter
        else:
            e_inter = _first(c, "moe_intermediate_size", default=inter)
            shared = 0
            if c.get("n_shared_experts"):
                shared = c["n_shared_experts"] * mult * h * e_inter
            elif c.get("shared_expert_intermediate_size"):
                shared = mult * h * c["shared_expert_intermediate_size"]
            elif str(c.get("model_type", "")).startswith("llama4"):
                shared = mult * h * e_inter
            router = h * n_exp
            mlp_t = n_exp * mult * h * e_inter + shared + router
            mlp_a = (top_k or n_exp) * mult * h * e_inter + shared + router
        total += attn + mlp_t
        active += attn + mlp_a
    return float(total), float(active)


def spec_from_hf_config(cfg: dict, model_id: str = "hf_config", name: str | None = None,
                        params_total=None, params_active=None, field: str = "model") -> ModelSpec:
    """A ModelSpec from a raw Hugging Face config.json dict (see module docstring)."""
    if not isinstance(cfg, dict):
        raise InputError(f"{field}.hf_config", cfg, "a config.json object", "not an object")
    cfg = _checked_hf_numbers(cfg, f"{field}.hf_config")
    try:
        return _spec_from_checked_hf_config(cfg, model_id, name, params_total, params_active, field)
    except (TypeError, ValueError, KeyError, ZeroDivisionError, AttributeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{field}.hf_config", "config.json", "a Hugging Face config.json whose architecture "
                         "fields are numbers", f"cannot read the config ({type(exc).__name__}: {exc})") from None


def _checked_hf_numbers(cfg: dict, path: str) -> dict:
    """Copy of cfg (and its text_config) with count fields checked against the table of
    limits (kvcalc.limits: "larger than any real model" above it), integral floats made
    ints, and torch_dtype checked."""
    from .request import check_hf_config
    return check_hf_config(cfg, path)


def _spec_from_checked_hf_config(cfg: dict, model_id: str, name, params_total, params_active,
                                 field: str) -> ModelSpec:
    c = _text_config(cfg)
    a = _arch(c, field)
    windows = _hf_windows(c, a["layers"], a["max_pos"])
    estimated = False
    if params_total is None or params_active is None:
        est_t, est_a = estimate_params(cfg)
        if params_total is None:
            params_total = est_t
            estimated = True
        if params_active is None:
            params_active = est_a if params_total == est_t else min(est_a, params_total)
            estimated = True
    from .request import HF_DTYPES
    torch_dtype = str(_first(cfg, "torch_dtype", "dtype", default=c.get("torch_dtype") or c.get("dtype") or "bfloat16"))
    quant = cfg.get("quantization_config") or {}
    wdtype = HF_DTYPES[torch_dtype.lower()]  # checked by _checked_hf_numbers
    qm = str(quant.get("quant_method", "")).lower() if isinstance(quant, dict) else ""
    if qm in ("fp8", "mxfp4"):
        wdtype = qm
    entry = dict(c)
    entry.update({"num_hidden_layers": a["layers"], "num_attention_heads": a["heads"],
                  "num_key_value_heads": a["kv"], "head_dim": a["head_dim"], "hidden_size": a["hidden"],
                  "max_position_embeddings": a["max_pos"], "weight_dtype": wdtype,
                  "name": name or str(c.get("_name_or_path") or model_id)})
    note = "parameter counts estimated from the architecture (embeddings, attention, MLP/experts)" if estimated else ""
    spec = _spec_from_fields(model_id, entry, windows, params_total, params_active, estimated=estimated,
                             source="user-supplied config.json", notes=note, field=field)
    return spec


def _spec_from_fields(mid: str, e: dict, windows: tuple, params_total, params_active, estimated: bool,
                      source: str | None = None, notes: str | None = None, field: str | None = None) -> ModelSpec:
    layers = e["num_hidden_layers"]
    heads = e["num_attention_heads"]
    kv = e.get("num_key_value_heads") or heads
    hidden = e["hidden_size"]
    head_dim = e.get("head_dim") or (hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None)
    rank = e.get("kv_lora_rank")
    if rank and e.get("qk_nope_head_dim") is not None and e.get("qk_rope_head_dim") is not None:
        head_dim = e["qk_nope_head_dim"] + e["qk_rope_head_dim"]  # MLA query/key head width
    if rank:
        attention = "mla"
    elif kv == 1:
        attention = "mqa"
    elif kv == heads:
        attention = "mha"
    else:
        attention = "gqa"
    max_pos = e.get("max_position_embeddings")
    # A window as long as the whole context never evicts anything: the layer is global.
    if isinstance(max_pos, int):
        windows = tuple(None if (w is not None and w >= max_pos) else w for w in windows)
    return ModelSpec(
        id=mid, name=str(e.get("name") or mid), attention=attention, num_layers=layers,
        num_attention_heads=heads, num_kv_heads=kv, head_dim=head_dim, hidden_size=hidden,
        max_position_embeddings=max_pos, layer_window_tokens=windows,
        params_total=params_total, params_active=params_active,
        weight_dtype=e.get("weight_dtype", "bf16"),
        kv_lora_rank=rank if rank else None,
        qk_rope_head_dim=e.get("qk_rope_head_dim", 64) if rank else None,
        params_estimated=estimated,
        source=e.get("source", "") if source is None else source,
        notes=e.get("notes", "") if notes is None else notes,
    )


# ---------------------------------------------------------------------------
# look-ups

def get_model(id_or_dict, field: str = "model") -> ModelSpec:
    """A preset id, ``{"hf_config": {...}}`` (optional ``name``, ``params_total``,
    ``params_active`` beside it), or an already built ModelSpec."""
    if isinstance(id_or_dict, ModelSpec):
        return id_or_dict
    if isinstance(id_or_dict, str):
        models = load_models()
        if id_or_dict in models:
            return models[id_or_dict]
        raise InputError(field, id_or_dict, "one of the preset ids (see presets/models.json)", "unknown preset")
    if isinstance(id_or_dict, dict):
        if "hf_config" not in id_or_dict:
            raise InputError(field, id_or_dict, _UNKNOWN_MODEL_ALLOWED, "object without hf_config")
        allowed = {"hf_config", "name", "params_total", "params_active", "id"}
        unknown = sorted(set(id_or_dict) - allowed)
        if unknown:
            raise InputError(f"{field}.{unknown[0]}", id_or_dict[unknown[0]], "one of the keys " + ", ".join(sorted(allowed)), "unknown key")
        pt, pa = id_or_dict.get("params_total"), id_or_dict.get("params_active")
        for key, v in (("params_total", pt), ("params_active", pa)):
            if v is not None:
                _require_pos_number(f"{field}.{key}", v)
        return spec_from_hf_config(id_or_dict["hf_config"], model_id=str(id_or_dict.get("id", "hf_config")),
                                   name=id_or_dict.get("name"), params_total=pt, params_active=pa, field=field)
    raise InputError(field, id_or_dict, _UNKNOWN_MODEL_ALLOWED, "unknown preset")


def get_gpu(id_, field: str = "gpu") -> GpuSpec:
    if isinstance(id_, GpuSpec):
        return id_
    gpus = load_gpus()
    if isinstance(id_, str) and id_ in gpus:
        return gpus[id_]
    raise InputError(field, id_, _UNKNOWN_GPU_ALLOWED, "unknown preset")
