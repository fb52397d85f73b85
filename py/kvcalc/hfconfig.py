"""Hugging Face ``config.json`` parsing: from a raw config to a :class:`~kvcalc.presets.ModelSpec`.

Kept apart from the preset loader (issue #10). :func:`spec_from_hf_config`
derives what a preset carries (attention kind, per-layer windows, head
geometry, linear-attention state) and, when the caller gives no parameter
counts, estimates them from the architecture. Every value it had to derive or
leave out is listed in the spec's ``derived`` field (``{"field", "how"}``), so
nothing is defaulted silently: a minimal pasted config without
``max_position_embeddings`` has no context limit rather than an invented 2048.

Layer kinds, from the config's own layout keys:

* ``layer_types`` (``"full_attention"``, ``"sliding_attention"``,
  ``"chunked_attention"``, ``"linear_attention"``) - Gemma 3n/gpt-oss/Qwen3-Next;
* ``full_attention_interval`` (Qwen3-Next: every 4th layer full, others Gated
  DeltaNet linear attention);
* ``attn_type_list`` (MiniMax-M1: 1 = softmax attention, 0 = lightning linear attention);
* ``attn_layer_period`` / ``attn_layer_offset`` (Jamba: Mamba layers elsewhere);
* ``sliding_window`` with ``sliding_window_pattern`` (Gemma 3), the Gemma 2
  alternation, Qwen2's ``use_sliding_window``/``max_window_layers``, Llama 4's
  ``attention_chunk_size``/``no_rope_layers``.

A linear-attention or state-space layer keeps a fixed state per sequence
instead of per-token KV: :func:`linear_state_bytes_per_layer` gives its size
with the shapes vLLM allocates (``vllm/model_executor/layers/mamba/mamba_utils.py``,
``MambaStateShapeCalculator``): Gated DeltaNet conv state
``(conv_kernel - 1) x (2 * k_heads * k_dim + v_heads * v_dim)`` plus temporal
state ``v_heads x k_dim x v_dim``; lightning attention ``heads x head_dim x head_dim``;
Mamba-1 conv ``(d_conv - 1) x expand * hidden`` plus ssm ``expand * hidden x d_state``.
Elements are 2 bytes (vLLM's ``mamba_cache_dtype`` "auto" = the model's bf16).
"""

from __future__ import annotations

from .architecture import derivation
from .errors import InputError

__all__ = ["spec_from_hf_config", "estimate_params", "estimate_param_groups", "text_config",
           "linear_state_bytes_per_layer",
           "STATE_BYTES_PER_ELEMENT"]

#: bytes per element of a linear-attention / SSM state (bf16, vLLM's "auto")
STATE_BYTES_PER_ELEMENT = 2

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


def text_config(cfg: dict) -> dict:
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


def _first_key(cfg: dict, *keys) -> str:
    """The first of ``keys`` the config gives (the key an error about that value names)."""
    return next((k for k in keys if cfg.get(k) is not None), keys[0])


def key_path(raw: dict | None, key: str, field: str = "model") -> str:
    """The request path of a config key as the user sent it: inside text_config when it came from there."""
    text = raw.get("text_config") if isinstance(raw, dict) else None
    if isinstance(text, dict) and key in text:
        return f"{field}.hf_config.text_config.{key}"
    return f"{field}.hf_config.{key}"


_LAYER_TYPES = ("full_attention", "sliding_attention", "chunked_attention", "linear_attention", "attention",
                "global", "global_attention", "local", "local_attention", "mamba", "mamba2")


def _arch(cfg: dict, field: str, derived: list | None = None, raw: dict | None = None) -> dict:
    """Normalise the architecture fields of a (flattened) config, whatever its family's names,
    and check them as a whole (kvcalc.architecture.check_head_geometry, shared with hand entry).
    ``raw``: the config as sent, so errors name the key the user sent."""
    from .architecture import check_head_geometry
    derived = [] if derived is None else derived
    layers_key = _first_key(cfg, "num_hidden_layers", "num_layers", "n_layer")
    heads_key = _first_key(cfg, "num_attention_heads", "n_head", "num_heads")
    hidden_key = _first_key(cfg, "hidden_size", "d_model", "n_embd")
    layers, heads, hidden = cfg.get(layers_key), cfg.get(heads_key), cfg.get(hidden_key)
    for name, v in ((layers_key, layers), (heads_key, heads), (hidden_key, hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(key_path(raw, name, field), v, "a positive integer", "missing or invalid")
    kv_key = None
    if cfg.get("multi_query") is True and not cfg.get("new_decoder_architecture"):
        kv = 1  # Falcon-7B style MQA
        derived.append(derivation("num_key_value_heads", "1 (multi_query: true)", code="derived_kv_heads_multi_query"))
    elif cfg.get("multi_query_attention") is True or "multi_query_group_num" in cfg:
        kv = cfg.get("multi_query_group_num") or 1  # ChatGLM
        kv_key = "multi_query_group_num"
        derived.append(derivation("num_key_value_heads", "multi_query_group_num (ChatGLM)",
                                   code="derived_kv_heads_chatglm", kv_heads=kv))
    else:
        kv_key = _first_key(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
        kv = cfg.get(kv_key)
        if kv is None:
            kv = heads
            derived.append(derivation("num_key_value_heads", f"not given: equal to num_attention_heads ({heads}), i.e. MHA",
                                       code="derived_kv_heads_mha", attention_heads=heads))
    if isinstance(kv, bool) or not isinstance(kv, int) or kv < 1:
        raise InputError(key_path(raw, kv_key or "num_key_value_heads", field), kv, "a positive integer",
                         "missing or invalid")
    head_dim = _first(cfg, "head_dim", "kv_channels")
    check_head_geometry(heads, kv, hidden, head_dim, key_path(raw, kv_key or heads_key, field),
                        key_path(raw, heads_key, field), latent=bool(cfg.get("kv_lora_rank")))
    if head_dim is None:
        head_dim = hidden // heads
        derived.append(derivation("head_dim", f"hidden_size / num_attention_heads = {hidden} / {heads}",
                                   code="derived_head_dim", hidden_size=hidden, attention_heads=heads,
                                   head_dim=hidden // heads))
    max_pos = _first(cfg, "max_position_embeddings", "seq_length", "n_positions", "max_seq_len",
                     "max_sequence_length")
    if max_pos is None:
        derived.append(derivation("max_position_embeddings", "not given: no context-length limit is checked",
                                   code="derived_no_max_position"))
    return {"layers": layers, "heads": heads, "kv": kv, "head_dim": head_dim, "hidden": hidden, "max_pos": max_pos}


def _hf_windows(cfg: dict, layers: int) -> tuple:
    """Per-layer KV window: None = global, int = window/chunk tokens, 0 = linear/SSM layer (no KV)."""
    sw = cfg.get("sliding_window")
    chunk = cfg.get("attention_chunk_size")
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        out = []
        for t in types:
            t = str(t)
            if "linear" in t or "mamba" in t:
                out.append(0)
            elif "chunk" in t:
                out.append(chunk or sw)
            elif "sliding" in t or t == "local" or t == "local_attention":
                out.append(sw)
            else:
                out.append(None)
        return tuple(out)
    if isinstance(cfg.get("full_attention_interval"), int) and cfg.get("linear_num_value_heads"):
        k = cfg["full_attention_interval"]  # Qwen3-Next: layer i full when (i+1) % k == 0
        return tuple(None if (i + 1) % k == 0 else 0 for i in range(layers))
    atl = cfg.get("attn_type_list")
    if isinstance(atl, list) and len(atl) == layers:  # MiniMax-M1: 1 softmax, 0 lightning
        return tuple(None if int(a) == 1 else 0 for a in atl)
    if isinstance(cfg.get("attn_layer_period"), int) and "mamba_d_state" in cfg:  # Jamba
        period, offset = cfg["attn_layer_period"], cfg.get("attn_layer_offset", 0)
        return tuple(None if i % period == offset else 0 for i in range(layers))
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


def linear_state_bytes_per_layer(cfg: dict) -> float:
    """Bytes of fixed per-sequence state one linear-attention / SSM layer keeps (TP = 1).

    0 when the config has no such layers. Shapes as vLLM allocates them (module docstring).
    """
    c = text_config(cfg)
    if c.get("linear_num_value_heads"):  # Gated DeltaNet (Qwen3-Next)
        kh, kd = c["linear_num_key_heads"], c["linear_key_head_dim"]
        vh, vd = c["linear_num_value_heads"], c["linear_value_head_dim"]
        conv = (c.get("linear_conv_kernel_dim", 4) - 1) * (2 * kh * kd + vh * vd)
        return float((conv + vh * kd * vd) * STATE_BYTES_PER_ELEMENT)
    if isinstance(c.get("attn_type_list"), list):  # lightning attention (MiniMax-M1 / Text-01)
        h = c["num_attention_heads"]
        d = c.get("head_dim") or c["hidden_size"] // h
        return float(h * d * d * STATE_BYTES_PER_ELEMENT)
    if "mamba_d_state" in c:  # Mamba-1 (Jamba)
        inner = c.get("mamba_expand", 2) * c["hidden_size"]
        return float(((c.get("mamba_d_conv", 4) - 1) * inner + inner * c["mamba_d_state"]) * STATE_BYTES_PER_ELEMENT)
    return 0.0


def estimate_params(cfg: dict) -> tuple:
    """(total, active) parameter estimate from a config.json dict (see estimate_param_groups)."""
    g = estimate_param_groups(cfg)
    return g["total"], g["active"]


def estimate_param_groups(cfg: dict) -> dict:
    """Parameter estimate from a config.json dict, split for the quantization rules:
    {"total", "active", "embedding" (embeddings + untied lm_head), "experts" (routed experts)}.

    Counts embeddings (+ untied lm_head), attention projections (GQA or MLA)
    and gated MLPs or MoE experts (routed, shared and router). Norms and biases
    are ignored (well under 1%). Vision towers are not counted. Linear-attention
    layers are counted as attention layers of the same width (an approximation).
    """
    c = text_config(cfg)
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
    inter = _first(c, "intermediate_size", "ffn_hidden_size", "n_inner", "inner_hidden_size", default=4 * h)
    n_exp = _first(c, "n_routed_experts", "num_local_experts", "num_experts", default=0)
    top_k = _first(c, "num_experts_per_tok", "experts_per_token", "num_experts_per_token", default=0)
    dense_inter = _first(c, "intermediate_size_mlp", default=inter) if c.get("interleave_moe_layer_step") else inter
    total = active = embed
    experts = 0
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
            experts += n_exp * mult * h * e_inter
        total += attn + mlp_t
        active += attn + mlp_a
    return {"total": float(total), "active": float(active), "embedding": float(embed), "experts": float(experts)}


def _checked_hf_numbers(cfg: dict, path: str) -> dict:
    """Copy of cfg (and its text_config) with count fields checked against the table of
    limits (kvcalc.limits), integral floats made ints, and torch_dtype checked."""
    from .request import check_hf_config
    return check_hf_config(cfg, path)


def spec_from_hf_config(cfg: dict, model_id: str = "hf_config", name: str | None = None,
                        params_total=None, params_active=None, field: str = "model"):
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


def _check_experts(c: dict, raw: dict, field: str) -> None:
    """Experts per token at most the experts (a mixture of experts routes to some of them)."""
    n_key = _first_key(c, "n_routed_experts", "num_local_experts", "num_experts")
    k_key = _first_key(c, "num_experts_per_tok", "experts_per_token", "num_experts_per_token")
    n_exp, top_k = c.get(n_key), c.get(k_key)
    if isinstance(n_exp, int) and isinstance(top_k, int) and n_exp > 0 and top_k > n_exp:
        raise InputError(key_path(raw, k_key, field), top_k, f"at most the experts ({n_key}: {n_exp})",
                         f"experts per token ({top_k}) cannot exceed the experts ({n_exp})", code="inconsistent")


def _weight_derivation(wf: dict) -> dict:
    """How the weight format was read (kvcalc.quant's English ``derived``) with its message code."""
    how = wf["derived"]
    if not how.startswith("quantization_config"):
        return derivation("weight_dtype", how, code="derived_weight_assumed_bf16")
    if wf.get("scope") == "experts":
        return derivation("weight_dtype", how, code="derived_weight_quant_experts", method=wf["method"],
                          weight_dtype=wf["weight_dtype"])
    if wf.get("group_size"):
        return derivation("weight_dtype", how, code="derived_weight_quant_group", method=wf["method"],
                          weight_dtype=wf["weight_dtype"], group_size=wf["group_size"])
    return derivation("weight_dtype", how, code="derived_weight_quant", method=wf["method"],
                      weight_dtype=wf["weight_dtype"])


def _spec_from_checked_hf_config(cfg: dict, model_id: str, name, params_total, params_active, field: str):
    from .presets import spec_from_fields
    from .quant import weight_format_from_config

    derived: list = []
    c = text_config(cfg)
    a = _arch(c, field, derived, raw=cfg)
    if c.get("layer_types"):  # one known kind per layer
        from .architecture import check_layer_kinds
        check_layer_kinds(c["layer_types"], a["layers"], key_path(cfg, "layer_types", field), _LAYER_TYPES,
                          exact_length=True)
    _check_experts(c, cfg, field)
    windows = _hf_windows(c, a["layers"])
    estimated = False
    total_given = params_total is not None
    if params_total is None or params_active is None:
        est_t, est_a = estimate_params(cfg)
        if params_total is None:
            params_total = est_t
            estimated = True
            derived.append(derivation("params_total", "estimated from the architecture "
                                       "(embeddings, attention, MLP/experts)", code="derived_params_estimated",
                                       params_total=params_total))
        if params_active is None:
            params_active = est_a if params_total == est_t else min(est_a, params_total)
            estimated = True
            derived.append(derivation("params_active", "estimated from the architecture (experts per token)",
                                       code="derived_params_active_estimated", params_active=params_active))
    if params_active > params_total * (1 + 1e-9):  # named where the user sent it, beside hf_config
        total = (f"params_total ({params_total:g})" if total_given
                 else f"the total estimated from the config ({params_total:g})")
        raise InputError(f"{field}.params_active", params_active, f"at most {total}",
                         f"active parameters ({params_active:g}) cannot exceed {total}", code="inconsistent")
    wf = weight_format_from_config(cfg)
    if wf["derived"]:
        derived.append(_weight_derivation(wf))
    entry = dict(c)
    entry.update({"num_hidden_layers": a["layers"], "num_attention_heads": a["heads"],
                  "num_key_value_heads": a["kv"], "head_dim": a["head_dim"], "hidden_size": a["hidden"],
                  "max_position_embeddings": a["max_pos"], "weight_dtype": wf["weight_dtype"],
                  "name": name or str(c.get("_name_or_path") or model_id),
                  "linear_state_bytes_per_layer": linear_state_bytes_per_layer(cfg)})
    note = "parameter counts estimated from the architecture (embeddings, attention, MLP/experts)" if estimated else ""
    return spec_from_fields(model_id, entry, windows, params_total, params_active, estimated=estimated,
                            source="user-supplied config.json", notes=note, field=field,
                            derived=tuple(derived), weight_format=wf, param_groups=estimate_param_groups(cfg))
