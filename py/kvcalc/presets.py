"""Model and accelerator presets: the validated specs and the preset loader.

Presets are JSON data in the repository's ``presets/`` directory (the page loads
them from there). An installed package carries a copy as package data,
``kvcalc/preset_data/*.json`` (setup.py copies it into the wheel), read through
:mod:`importlib.resources`; a source checkout (``PYTHONPATH=py``, ``pip install -e``,
Pyodide's copy of the repository layout) has no copy and reads ``presets/`` itself.
``KVCALC_PRESETS_DIR`` overrides both. Each file is
validated on first load; a broken preset fails loudly rather than producing a
wrong number later.

A model can also be given as ``{"hf_config": {...}}`` (a raw Hugging Face
config.json, parsed by :mod:`kvcalc.hfconfig`) or as ``{"architecture": {...}}``
(fields typed by hand, validated by :mod:`kvcalc.architecture`).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .limits import LIMITS
from .units import dtype_bits

__all__ = [
    "ModelSpec", "GpuSpec", "ATTENTION_KINDS", "presets_dir", "load_models", "load_gpus",
    "get_model", "get_gpu", "spec_from_hf_config", "estimate_params", "spec_from_fields",
]

ATTENTION_KINDS = ("mha", "gqa", "mqa", "mla")

_UNKNOWN_MODEL_ALLOWED = ("one of the preset ids (see presets/models.json), {\"hf_config\": {...}} "
                          "or {\"architecture\": {...}}")
_UNKNOWN_GPU_ALLOWED = "one of the preset ids (see presets/gpus.json)"


@dataclass(frozen=True)
class ModelSpec:
    """What the memory model needs to know about an LLM.

    layer_window_tokens: one entry per decoder layer; None for a global (full
        attention) layer, an int for a local layer that keeps at most that many
        tokens of KV per sequence (sliding window, or Llama 4 chunked attention),
        0 for a linear-attention / state-space layer (no per-token KV).
    linear_state_bytes_per_layer: fixed state each linear layer keeps per
        sequence (bytes, TP = 1; see kvcalc.hfconfig).
    max_position_embeddings: None when the source did not give it.
    params_embedding: embedding + untied lm_head parameters (kept 16-bit by
        every quantization format); params_experts: routed-expert parameters.
    weight_format: the weights' storage format (kvcalc.quant) as sorted items.
    derived: ({"field", "how", "code", "params"}, ...) for every value derived rather than given
        (as sorted pairs; :meth:`derived_fields` gives them as JSON-simple dicts).
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
    max_position_embeddings: int | None
    layer_window_tokens: tuple
    params_total: float
    params_active: float
    weight_dtype: str = "bf16"
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    params_estimated: bool = False
    source: str = ""
    notes: str = ""
    linear_state_bytes_per_layer: float = 0.0
    params_embedding: float | None = None
    params_experts: float | None = None
    weight_format: tuple = ()
    derived: tuple = ()

    def __post_init__(self):
        # a pasted config's problems belong to its field (the page shows them there)
        f = {"user-supplied config.json": "model.hf_config",
             "entered by hand": "model.architecture"}.get(self.source, f"model[{self.id}]")
        if self.attention not in ATTENTION_KINDS:
            raise InputError(f + ".attention", self.attention, ", ".join(ATTENTION_KINDS), "unknown attention kind")
        for name in ("num_layers", "num_attention_heads", "num_kv_heads", "head_dim", "hidden_size"):
            _require_pos_int(f"{f}.{name}", getattr(self, name))
        if self.max_position_embeddings is not None:
            _require_pos_int(f + ".max_position_embeddings", self.max_position_embeddings)
        if self.attention == "mla":
            _require_pos_int(f + ".kv_lora_rank", self.kv_lora_rank)
            _require_pos_int(f + ".qk_rope_head_dim", self.qk_rope_head_dim, allow_zero=True)
        windows = tuple(self.layer_window_tokens)
        if len(windows) != self.num_layers:
            raise InputError(f + ".layer_window_tokens", len(windows), f"{self.num_layers} entries (one per layer)", "wrong length")
        for w in windows:
            if w is not None:
                _require_pos_int(f + ".layer_window_tokens", w, allow_zero=True)
        if all(w == 0 for w in windows):
            raise InputError(f + ".layer_window_tokens", "all linear", "at least one attention layer",
                             "no attention layer")
        x = self.linear_state_bytes_per_layer
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0 <= x < 1e12):
            raise InputError(f + ".linear_state_bytes_per_layer", x, "a number of bytes in [0, 1e12)")
        if any(w == 0 for w in windows) and x <= 0:
            raise InputError(f + ".linear_state_bytes_per_layer", x, "a positive state size for linear layers",
                             "linear layers without a state size")
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
        return sum(1 for w in self.layer_window_tokens if w)

    @property
    def linear_layers(self) -> int:
        return sum(1 for w in self.layer_window_tokens if w == 0)

    @property
    def attention_layers(self) -> int:
        return self.num_layers - self.linear_layers

    @property
    def weight_format_dict(self) -> dict:
        if self.weight_format:
            return dict(self.weight_format)
        from .quant import weight_format
        return weight_format(self.weight_dtype)

    def derived_fields(self) -> list[dict]:
        """The derived values as {"field", "how", "code", "params"} (params a dict; the page renders
        msg.<code>)."""
        out = []
        for d in self.derived:
            d = dict(d)
            d["params"] = dict(d.get("params") or ())
            out.append(d)
        return out

    def to_dict(self) -> dict:
        """JSON-simple summary (the page shows it beside the model picker)."""
        return {
            "id": self.id, "name": self.name, "attention": self.attention,
            "num_layers": self.num_layers, "global_layers": self.global_layers,
            "local_layers": self.local_layers, "linear_layers": self.linear_layers,
            "linear_state_bytes_per_layer": self.linear_state_bytes_per_layer,
            "num_attention_heads": self.num_attention_heads, "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "hidden_size": self.hidden_size,
            "kv_lora_rank": self.kv_lora_rank, "qk_rope_head_dim": self.qk_rope_head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "window_tokens": sorted({w for w in self.layer_window_tokens if w}),
            "params_total": self.params_total, "params_active": self.params_active,
            "params_estimated": self.params_estimated, "weight_dtype": self.weight_dtype,
            "weight_format": {k: v for k, v in self.weight_format_dict.items() if k != "derived"},
            "derived_fields": self.derived_fields(),
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


#: the package-data directory the wheel carries (setup.py copies presets/*.json there)
PACKAGE_DATA_DIR = "preset_data"


@functools.lru_cache(maxsize=1)
def _default_presets_dir() -> Path:
    """The installed package's data, else the source checkout's presets/ (resolved once)."""
    data = importlib.resources.files("kvcalc").joinpath(PACKAGE_DATA_DIR)
    if data.is_dir():
        return Path(str(data))
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
    from .hfconfig import estimate_param_groups, linear_state_bytes_per_layer
    from .quant import weight_format, weight_format_from_config

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
        if not isinstance(pattern, list) or not pattern or any(p not in ("local", "global", "linear") for p in pattern):
            raise InputError(f + ".layer_pattern", pattern, "a non-empty list of 'local'/'global'/'linear'",
                             "malformed layer pattern")
        if "local" in pattern:
            _require_pos_int(f + ".window_tokens", window)
        kind = {"local": window, "global": None, "linear": 0}
        windows = tuple(kind[pattern[i % len(pattern)]] for i in range(n_layers))
    if isinstance(e.get("quantization_config"), dict):
        wf = weight_format_from_config({"quantization_config": e["quantization_config"]})
    else:
        wf = weight_format(e["weight_dtype"], field=f + ".weight_dtype")
    groups = estimate_param_groups(e)
    entry = dict(e, linear_state_bytes_per_layer=linear_state_bytes_per_layer(e))
    return spec_from_fields(mid, entry, windows, e["params_total"], e["params_active"], estimated=False,
                            weight_format=wf, param_groups=groups)


def spec_from_hf_config(*args, **kwargs) -> ModelSpec:
    """See :func:`kvcalc.hfconfig.spec_from_hf_config` (kept here for callers of the old place)."""
    from .hfconfig import spec_from_hf_config as parse
    return parse(*args, **kwargs)


def estimate_params(cfg: dict) -> tuple:
    """See :func:`kvcalc.hfconfig.estimate_params`."""
    from .hfconfig import estimate_params as estimate
    return estimate(cfg)


def spec_from_fields(mid: str, e: dict, windows: tuple, params_total, params_active, estimated: bool,
                     source: str | None = None, notes: str | None = None, field: str | None = None,
                     derived: tuple = (), weight_format: dict | None = None,
                     param_groups: dict | None = None) -> ModelSpec:
    """A ModelSpec from normalised config-named fields (presets, pasted configs, hand entry)."""
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
        windows = tuple(None if (w and w >= max_pos) else w for w in windows)
    if param_groups is None and isinstance(e.get("vocab_size") or e.get("padded_vocab_size"), int):
        from .hfconfig import estimate_param_groups
        try:
            param_groups = estimate_param_groups(e)
        except (InputError, TypeError, ValueError, KeyError, ZeroDivisionError):
            param_groups = None
    wf = weight_format
    if wf is None:
        from .quant import weight_format as fmt_of
        wf = fmt_of(e.get("weight_dtype", "bf16"), field=(field or f"model[{mid}]") + ".weight_dtype")
    return ModelSpec(
        id=mid, name=str(e.get("name") or mid), attention=attention, num_layers=layers,
        num_attention_heads=heads, num_kv_heads=kv, head_dim=head_dim, hidden_size=hidden,
        max_position_embeddings=max_pos, layer_window_tokens=windows,
        params_total=params_total, params_active=params_active,
        weight_dtype=wf["weight_dtype"],
        kv_lora_rank=rank if rank else None,
        qk_rope_head_dim=e.get("qk_rope_head_dim", 64) if rank else None,
        params_estimated=estimated,
        source=e.get("source", "") if source is None else source,
        notes=e.get("notes", "") if notes is None else notes,
        linear_state_bytes_per_layer=float(e.get("linear_state_bytes_per_layer") or 0.0),
        params_embedding=None if param_groups is None else param_groups["embedding"],
        params_experts=None if param_groups is None else param_groups["experts"],
        weight_format=tuple(sorted(wf.items())),
        derived=tuple(tuple(sorted(d.items())) for d in derived),
    )


# ---------------------------------------------------------------------------
# look-ups

def get_model(id_or_dict, field: str = "model") -> ModelSpec:
    """A preset id, ``{"hf_config": {...}}`` (optional ``name``, ``params_total``,
    ``params_active`` beside it), ``{"architecture": {...}}`` (kvcalc.architecture),
    or an already built ModelSpec."""
    if isinstance(id_or_dict, ModelSpec):
        return id_or_dict
    if isinstance(id_or_dict, str):
        models = load_models()
        if id_or_dict in models:
            return models[id_or_dict]
        raise InputError(field, id_or_dict, "one of the preset ids (see presets/models.json)", "unknown preset")
    if isinstance(id_or_dict, dict) and "architecture" in id_or_dict:
        from .architecture import spec_from_architecture
        return spec_from_architecture(id_or_dict, field=field)
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
        from .hfconfig import spec_from_hf_config as parse
        return parse(id_or_dict["hf_config"], model_id=str(id_or_dict.get("id", "hf_config")),
                                   name=id_or_dict.get("name"), params_total=pt, params_active=pa, field=field)
    raise InputError(field, id_or_dict, _UNKNOWN_MODEL_ALLOWED, "unknown preset")


def get_gpu(id_, field: str = "gpu") -> GpuSpec:
    if isinstance(id_, GpuSpec):
        return id_
    gpus = load_gpus()
    if isinstance(id_, str) and id_ in gpus:
        return gpus[id_]
    raise InputError(field, id_, _UNKNOWN_GPU_ALLOWED, "unknown preset")
