"""A model typed by hand: ``{"architecture": {...}}`` -> :class:`~kvcalc.presets.ModelSpec`.

For a model that is neither a preset nor at hand as a config.json. Keys::

    num_layers            decoder layers (required)
    hidden_size           model width (required)
    num_attention_heads   query heads (required)
    num_kv_heads          KV heads; omitted: MHA for "mha", 1 for "mqa", else required
    head_dim              per-head width; omitted: hidden_size / num_attention_heads
    attention             "mha" | "gqa" | "mqa" | "mla"; omitted: from the head counts
    kv_lora_rank, qk_rope_head_dim   MLA latent and decoupled-RoPE widths (required for "mla")
    window_tokens         sliding window (or chunk) of the local layers
    layer_pattern         list of "global" / "local" / "linear" repeated over the layers
                          from layer 0; omitted: every layer global (every layer local
                          when only window_tokens is given)
    linear_state_bytes_per_layer   fixed per-sequence state of a linear layer, bytes;
                          or the Gated DeltaNet sizes linear_num_key_heads,
                          linear_num_value_heads, linear_key_head_dim,
                          linear_value_head_dim, linear_conv_kernel_dim (Qwen3-Next names)
    params_total          parameters (required)
    params_active         active parameters per token (MoE); omitted: = params_total
    params_experts        routed-expert parameters (for formats that quantize experts only)
    vocab_size, tie_word_embeddings  embedding size (kept 16-bit by every quantization format)
    weight_dtype          "bf16" (omitted), "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4"
    weight_group_size     int4 group size (default 128), or fp8 values per block scale (128 x 128 = 16384)
    max_position_embeddings  context limit; omitted: none is checked
    name                  display name

The entry is validated as a whole (ranges: the ``model.architecture.*`` rows of
:mod:`kvcalc.limits`); every error names its field and says what is wrong in words ("KV heads (12) must divide attention heads (32)"). Every
value not typed is listed in the spec's ``derived`` with how it was obtained.
"""

from __future__ import annotations

import math

from .errors import InputError
from .limits import ARCH_MESSAGE, LIMITS

__all__ = ["ARCHITECTURE_KEYS", "spec_from_architecture", "check_head_geometry", "check_layer_kinds", "derivation"]

ARCHITECTURE_KEYS = (
    "name", "num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "attention",
    "kv_lora_rank", "qk_rope_head_dim", "window_tokens", "layer_pattern", "linear_state_bytes_per_layer",
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "linear_conv_kernel_dim", "params_total", "params_active", "params_experts", "vocab_size",
    "tie_word_embeddings", "weight_dtype", "weight_group_size", "max_position_embeddings",
)
_GDN_KEYS = ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim")

def derivation(field: str, how: str, code: str, **params) -> dict:
    """One value derived rather than given: the field, how (English), and its message code with
    parameters (the page renders msg.<code>). Params are kept as sorted pairs so a ModelSpec stays
    hashable; :func:`kvcalc.presets.derived_json` turns them back into a dict."""
    return {"field": field, "how": how, "code": code, "params": tuple(sorted(params.items()))}


def check_head_geometry(heads: int, kv: int, hidden: int, head_dim: int | None, kv_field: str,
                        head_dim_field: str, latent: bool = False) -> None:
    """Whole-model checks of the head counts, shared by hand entry and config.json (kvcalc.hfconfig).

    KV heads at most and a divisor of the attention heads (MHA, GQA and MQA all
    satisfy it); without a head_dim the hidden size must split evenly into the
    heads (models that give head_dim, e.g. Gemma or Qwen3, may have hidden !=
    heads x head_dim). ``latent``: MLA caches a latent, so head_dim is not needed.
    """
    if kv > heads:
        raise InputError(kv_field, kv, f"at most the attention heads ({heads})",
                         f"KV heads ({kv}) cannot exceed attention heads ({heads})", code="kv_heads_exceed_heads",
                         params={"kv_heads": kv, "attention_heads": heads})
    if heads % kv:
        raise InputError(kv_field, kv, f"a divisor of the attention heads ({heads})",
                         f"KV heads ({kv}) must divide attention heads ({heads})", code="kv_heads_not_divisor",
                         params={"kv_heads": kv, "attention_heads": heads})
    if head_dim is None and not latent and hidden % heads:
        raise InputError(head_dim_field, None if head_dim_field.endswith("head_dim") else heads,
                         "a head_dim, or attention heads that divide the hidden size",
                         f"hidden size ({hidden}) is not a multiple of the attention heads ({heads}) "
                         "and no head_dim is given", code="hidden_not_divisible",
                         params={"hidden_size": hidden, "attention_heads": heads})


def check_layer_kinds(kinds, layers: int, field: str, names, exact_length: bool) -> None:
    """A per-layer list of layer kinds: known names only; one per layer (exact_length) or a
    pattern of 1 to ``layers`` entries repeated from layer 0 (hand entry's layer_pattern)."""
    allowed = ", ".join(f"'{n}'" for n in names)
    if not isinstance(kinds, list) or not kinds:
        raise InputError(field, kinds, f"a list of layer kinds ({allowed})", "malformed layer pattern")
    if exact_length and len(kinds) != layers:
        raise InputError(field, f"{len(kinds)} entries", f"{layers} entries, one per layer",
                         f"{len(kinds)} layer kinds for {layers} layers", code="inconsistent")
    if len(kinds) > layers:
        raise InputError(field, f"{len(kinds)} entries", f"1 to {layers} entries, each {allowed}",
                         f"{len(kinds)} layer kinds for {layers} layers", code="inconsistent")
    bad = next((k for k in kinds if k not in names), None)
    if bad is not None:
        raise InputError(field, bad, "layer kinds " + allowed, f"malformed layer pattern: unknown layer kind {bad!r}")


def _count(a: dict, key: str, path: str, required: bool = False, allow_zero: bool = False):
    """A count field checked against its row of the table of limits (model.architecture.<key>)."""
    v = a.get(key)
    if v is None:
        if required:
            raise InputError(f"{path}.{key}", None, f"a whole number >= 1 (the model's {key.replace('_', ' ')})",
                             "missing")
        return None
    row = LIMITS["model.architecture." + key]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{path}.{key}", v, row.range_text(), "not a valid count")
    if v > row.hi:
        raise InputError(f"{path}.{key}", v, row.range_text(), ARCH_MESSAGE, code="too_large")
    if not row.contains(v):
        raise InputError(f"{path}.{key}", v, row.range_text(), "not a valid count")
    return v


def _number(a: dict, key: str, path: str):
    v = a.get(key)
    if v is None:
        return None
    row = LIMITS["model.architecture." + key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not row.contains(v):
        raise InputError(f"{path}.{key}", v, row.range_text(), "out of range")
    return float(v)


def spec_from_architecture(model: dict, field: str = "model"):
    """Validate a hand-typed architecture (module docstring) and build its ModelSpec."""
    from .hfconfig import linear_state_bytes_per_layer
    from .presets import spec_from_fields
    from .quant import weight_format

    path = f"{field}.architecture"
    extra = sorted(set(model) - {"architecture"})
    if extra:
        raise InputError(f"{field}.{extra[0]}", model[extra[0]], "only the key 'architecture' beside it",
                         "unknown key")
    a = model["architecture"]
    if not isinstance(a, dict):
        raise InputError(path, a, "an object of architecture fields", "not an object")
    unknown = sorted(set(a) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InputError(f"{path}.{unknown[0]}", a[unknown[0]], "one of " + ", ".join(ARCHITECTURE_KEYS),
                         "unknown key")
    derived: list = []
    layers = _count(a, "num_layers", path, required=True)
    hidden = _count(a, "hidden_size", path, required=True)
    heads = _count(a, "num_attention_heads", path, required=True)
    attention = a.get("attention")
    if attention is not None and attention not in ("mha", "gqa", "mqa", "mla"):
        raise InputError(f"{path}.attention", attention, "mha, gqa, mqa or mla", "unknown attention kind")
    kv = _count(a, "num_kv_heads", path)
    if kv is None:
        if attention in (None, "mha", "mla"):
            kv = heads
            derived.append(derivation("num_kv_heads", f"not given: equal to the attention heads ({heads})"
                            + (", i.e. MHA" if attention != "mla" else " (MLA caches one latent, not heads)"),
                            code="derived_kv_heads_mla" if attention == "mla" else "derived_kv_heads_mha",
                            attention_heads=heads))
        elif attention == "mqa":
            kv = 1
            derived.append(derivation("num_kv_heads", "1 (MQA)", code="derived_kv_heads_mqa"))
        else:
            raise InputError(f"{path}.num_kv_heads", None, "the number of KV heads (GQA needs it)", "missing")
    head_dim = _count(a, "head_dim", path)
    check_head_geometry(heads, kv, hidden, head_dim, f"{path}.num_kv_heads", f"{path}.head_dim")
    if attention == "mha" and kv != heads:
        raise InputError(f"{path}.num_kv_heads", kv, f"{heads} (MHA has one KV head per attention head)",
                         f"MHA needs KV heads equal to attention heads ({heads}), got {kv}", code="mha_kv_heads",
                         params={"kv_heads": kv, "attention_heads": heads})
    if attention == "mqa" and kv != 1:
        raise InputError(f"{path}.num_kv_heads", kv, "1 (MQA shares one KV head)", f"MQA needs 1 KV head, got {kv}", code="mqa_kv_heads",
                         params={"kv_heads": kv})
    if attention == "gqa" and not 1 < kv < heads:
        raise InputError(f"{path}.num_kv_heads", kv, f"between 2 and {heads - 1} (GQA groups query heads)",
                         f"GQA needs fewer KV heads than attention heads ({heads}) and more than 1, got {kv}",
                         code="gqa_kv_heads", params={"kv_heads": kv, "attention_heads": heads})
    if head_dim is None:
        head_dim = hidden // heads
        derived.append(derivation("head_dim", f"hidden_size / num_attention_heads = {hidden} / {heads}",
                                   code="derived_head_dim", hidden_size=hidden, attention_heads=heads,
                                   head_dim=hidden // heads))
    rank = _count(a, "kv_lora_rank", path)
    rope = _count(a, "qk_rope_head_dim", path, allow_zero=True)
    if attention == "mla" or rank is not None:
        if rank is None:
            raise InputError(f"{path}.kv_lora_rank", None, "the MLA latent width (DeepSeek-V3: 512)", "missing for MLA")
        if rope is None:
            raise InputError(f"{path}.qk_rope_head_dim", None, "the MLA decoupled RoPE width (DeepSeek-V3: 64)",
                             "missing for MLA")
        attention = "mla"
    elif rope is not None:
        raise InputError(f"{path}.qk_rope_head_dim", rope, "only with attention 'mla' and kv_lora_rank",
                         "MLA field without MLA")
    window = _count(a, "window_tokens", path)
    pattern = a.get("layer_pattern")
    if pattern is not None:
        check_layer_kinds(pattern, layers, f"{path}.layer_pattern", ("global", "local", "linear"),
                          exact_length=False)
        if "local" in pattern and window is None:
            raise InputError(f"{path}.window_tokens", None, "the window of the 'local' layers, in tokens",
                             "missing: the layer pattern has local layers")
        if window is not None and "local" not in pattern:
            raise InputError(f"{path}.window_tokens", window, "no window, or a layer pattern with 'local' layers",
                             "a window but no local layer")
    elif window is not None:
        pattern = ["local"]
        derived.append(derivation("layer_pattern", "not given: every layer local (window on all layers)",
                                   code="derived_all_local"))
    else:
        pattern = ["global"]
    kind = {"global": None, "local": window, "linear": 0}
    windows = tuple(kind[pattern[i % len(pattern)]] for i in range(layers))
    if all(w == 0 for w in windows):
        raise InputError(f"{path}.layer_pattern", pattern, "at least one 'global' or 'local' layer",
                         "no attention layer")
    state = _number(a, "linear_state_bytes_per_layer", path)
    gdn = {k: _count(a, k, path) for k in _GDN_KEYS + ("linear_conv_kernel_dim",)}
    if "linear" in pattern:
        if state is None:
            missing = [k for k in _GDN_KEYS if gdn[k] is None]
            if missing:
                raise InputError(f"{path}.linear_state_bytes_per_layer", None,
                                 "the per-sequence state of a linear layer in bytes, or the Gated DeltaNet sizes "
                                 + ", ".join(_GDN_KEYS), "missing: the layer pattern has linear layers")
            cfg = {k: v for k, v in gdn.items() if v is not None}
            state = linear_state_bytes_per_layer(cfg)
            derived.append(derivation("linear_state_bytes_per_layer",
                                       "Gated DeltaNet conv + recurrent state from the linear_* sizes, 2 bytes each",
                                       code="derived_linear_state", state_bytes_per_layer=state))
    elif state is not None or any(v is not None for v in gdn.values()):
        raise InputError(f"{path}.linear_state_bytes_per_layer", state, "only with 'linear' layers in layer_pattern",
                         "a linear-layer state but no linear layer")
    p_total = _number(a, "params_total", path)
    if p_total is None:
        raise InputError(f"{path}.params_total", None, "the parameter count (e.g. 8.03e9)", "missing")
    p_active = _number(a, "params_active", path)
    if p_active is None:
        p_active = p_total
        derived.append(derivation("params_active", "not given: equal to params_total (dense model)",
                                   code="derived_params_active_dense"))
    if p_active > p_total:
        raise InputError(f"{path}.params_active", p_active, f"at most params_total ({p_total:g})",
                         f"active parameters ({p_active:g}) cannot exceed the total ({p_total:g})",
                         code="active_exceeds_total", params={"params_active": p_active, "params_total": p_total})
    vocab = _count(a, "vocab_size", path)
    tied = a.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise InputError(f"{path}.tie_word_embeddings", tied, "true or false", "not a boolean")
    experts = _number(a, "params_experts", path)
    if experts is not None and experts > p_total:
        raise InputError(f"{path}.params_experts", experts, f"at most params_total ({p_total:g})", "too many")
    embedding = None if vocab is None else float(vocab * hidden * (1 if tied else 2))
    if embedding is not None and embedding >= p_total:
        raise InputError(f"{path}.vocab_size", vocab, "an embedding smaller than the whole model",
                         f"embeddings ({embedding:g} parameters) exceed params_total ({p_total:g})")
    wd = a.get("weight_dtype")
    if wd is None:
        derived.append(derivation("weight_dtype", "not given: bf16", code="derived_weight_bf16"))
        wd = "bf16"
    group = _count(a, "weight_group_size", path)
    wf = weight_format(wd, field=f"{path}.weight_dtype", group_size=group)
    if wf["scope"] != "none" and embedding is None:
        derived.append(derivation("vocab_size", "not given: the whole model counted at the quantized "
                                   "width (embeddings and lm_head really stay 16-bit)", code="derived_no_vocab"))
    max_pos = _count(a, "max_position_embeddings", path)
    if max_pos is None:
        derived.append(derivation("max_position_embeddings", "not given: no context-length limit is checked",
                                   code="derived_no_max_position"))
    name = a.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise InputError(f"{path}.name", name, "a text of at most 200 characters", "not a name")
    entry = {"num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
             "head_dim": head_dim, "hidden_size": hidden, "max_position_embeddings": max_pos,
             "kv_lora_rank": rank, "qk_rope_head_dim": rope, "name": name or "hand-entered model",
             "linear_state_bytes_per_layer": state or 0.0}
    groups = {"embedding": embedding or 0.0, "experts": experts}
    spec = spec_from_fields("architecture", entry, windows, p_total, p_active, estimated=False,
                            source="entered by hand", notes="", field=path, derived=tuple(derived),
                            weight_format=wf, param_groups=groups)
    if attention is not None and attention != spec.attention and not (attention == "gqa" and spec.attention == "gqa"):
        raise InputError(f"{path}.attention", attention, f"'{spec.attention}' for these head counts",
                         "attention kind disagrees with the head counts")
    return spec
