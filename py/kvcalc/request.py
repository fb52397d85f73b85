"""One validation pass over a whole request, before any work.

:func:`check_request` walks the request once: its shape first (nesting depth,
size, key and value types, without recursion, so a request nested 100,000 deep
is refused in microseconds), then every key at every level against the table
of limits (:mod:`kvcalc.limits`) and the lists of choices, whether or not the
question uses that key. It returns a normalised copy (numbers as float or int,
``null`` optional fields dropped) or raises :class:`~kvcalc.errors.InputError`
naming the full key path, the value and the allowed range.
"""

from __future__ import annotations

import math

from .errors import InputError, require_choice, require_limit
from .limits import LIMITS, MAX_CAPACITY_POINTS, MAX_DEPTH, MAX_NODES, MAX_STRING_CHARS, limit

__all__ = ["check_request", "check_shape", "REQUEST_KEYS", "WORKLOAD_KEYS", "CACHE_KEYS", "SIMULATION_KEYS", "RECOMMENDER_KEYS",
           "MODEL_KEYS", "FIGURES", "HF_DTYPES"]

FIGURES = ("curve", "sweeps", "tornado", "heatmap", "kv_context", "fleet")
REQUEST_KEYS = ("model", "gpu", "tensor_parallel", "gpu_memory_utilization", "kv_cache_dtype",
                "weight_dtype", "runtime_reserve_gib", "context_tokens", "workload", "cache",
                "hit_model", "target_token_hit_rate", "figures", "tornado_change_fraction", "seed",
                "simulation", "mfu", "weight_group_size", "engine_log", "cluster", "tiers", "tier_mode",
                "price_per_gpu_hour", "mbu", "sizing", "scenario", "recommender", "export", "compare_with", "preview")
WORKLOAD_KEYS = ("conversation_rate_per_s", "turns_mean", "turns_distribution", "gap_mean_s",
                 "gap_distribution", "gap_lognormal_sigma", "user_tokens_per_turn", "output_tokens_per_turn",
                 "system_prompt_tokens", "service_time_s")
CACHE_KEYS = ("capacity_tokens", "block_size_tokens", "eviction", "ttl_s")
SIMULATION_KEYS = ("n_conversations", "capacities_tokens")
RECOMMENDER_KEYS = ("candidates", "user_tokens", "item_tokens")
MODEL_KEYS = ("hf_config", "name", "params_total", "params_active", "id")
#: torch dtypes a config.json may name (torch_dtype / dtype) -> our dtype name
HF_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
             "bf16": "bf16", "fp16": "fp16", "fp32": "fp32", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
#: request fields whose null means "not given"
_NULLABLE = {"model", "gpu", "runtime_reserve_gib", "context_tokens", "weight_dtype", "cache.capacity_tokens",
             "cache.ttl_s", "simulation.capacities_tokens", "figures"}


def _keys_text(keys) -> str:
    return "one of the keys " + ", ".join(keys)


def check_shape(obj, field: str = "request", max_string_chars: int | None = MAX_STRING_CHARS) -> None:
    """Depth, size and types of a JSON-like value, iteratively (no recursion)."""
    stack = [(obj, 1, field)]
    nodes = 0
    while stack:
        x, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise InputError(field, f"more than {MAX_NODES} values", f"at most {MAX_NODES} values", "too large",
                             params={"hi": MAX_NODES})
        if isinstance(x, dict):
            if depth > MAX_DEPTH:
                raise InputError(path, "<nested object>", f"at most {MAX_DEPTH} levels of nesting", "too deep",
                                 params={"hi": MAX_DEPTH})
            for k, v in x.items():
                if not isinstance(k, str):
                    raise InputError(f"{path}", k, "string keys (a JSON object)", "not a string")
                if len(k) > 200:
                    raise InputError(f"{path}.{k[:40]}...", k, "keys of at most 200 characters", "too large")
                stack.append((v, depth + 1, k if path == "request" else f"{path}.{k}"))
        elif isinstance(x, (list, tuple)):
            if depth > MAX_DEPTH:
                raise InputError(path, "<nested list>", f"at most {MAX_DEPTH} levels of nesting", "too deep",
                                 params={"hi": MAX_DEPTH})
            for i, v in enumerate(x):
                stack.append((v, depth + 1, f"{path}[{i}]"))
        elif isinstance(x, str):
            if max_string_chars is not None and len(x) > max_string_chars:
                raise InputError(path, x, f"a string of at most {max_string_chars} characters", "too large",
                                 params={"hi": max_string_chars})
        elif x is None or isinstance(x, (bool, int, float, bytes, bytearray, memoryview)):
            pass  # bytes: a trace's text from the page's buffers (fields that want numbers refuse them)
        else:
            raise InputError(path, x, "JSON values only (object, list, string, number, true/false, null)",
                             "not a JSON value")


def _object(field: str, value, keys) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(field, value, "an object with " + _keys_text(keys), "not an object")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise InputError(f"{field}.{unknown[0]}", value[unknown[0]], _keys_text(keys), "unknown key",
                         params={"choices": list(keys)})
    return value


def _number(key: str, value, field: str | None = None):
    """A numeric field checked against its row of the table (lists refused: scalars only)."""
    field = field or key
    if isinstance(value, (list, tuple, dict)):
        raise InputError(field, value, "a single number: " + limit(key).range_text(), "not a number")
    return require_limit(field, value, limit(key))


def _string(field: str, value, choices) -> str:
    return require_choice(field, value, choices)


def _dtype(field: str, value, extra=()) -> str:
    from .units import DTYPE_BITS
    choices = tuple(extra) + tuple(DTYPE_BITS)
    if not isinstance(value, str) or (value.lower() not in DTYPE_BITS and value not in extra):
        raise InputError(field, value, "one of " + ", ".join(choices), "unknown value",
                         params={"choices": list(choices)})
    return value


def check_hf_config(cfg, field: str = "model.hf_config", depth: int = 0) -> dict:
    """Architecture fields of a config.json (and its text_config): counts in range, dtype known.

    Unknown keys are allowed here (a config.json carries many the calculator does not read).
    """
    if not isinstance(cfg, dict):
        raise InputError(field, cfg, "a config.json object", "not an object")
    out = dict(cfg)
    for key, value in cfg.items():
        row = LIMITS.get("model.hf_config." + key)
        if row is None or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{field}.{key}", value, row.range_text(), "not a number",
                             params={"lo": row.lo, "hi": row.hi})
        out[key] = require_limit(f"{field}.{key}", value, row)
    for key in ("torch_dtype", "dtype"):
        value = cfg.get(key)
        if value is not None and (not isinstance(value, str) or value.lower() not in HF_DTYPES):
            raise InputError(f"{field}.{key}", value, "one of " + ", ".join(HF_DTYPES), "unknown value",
                             params={"choices": list(HF_DTYPES)})
    quant = cfg.get("quantization_config")
    if quant is not None and not isinstance(quant, dict):
        raise InputError(f"{field}.quantization_config", quant, "an object", "not an object")
    for key in ("layer_types", "no_rope_layers"):
        value = cfg.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise InputError(f"{field}.{key}", value, "a list (one entry per layer)", "not a list")
            want = (str,) if key == "layer_types" else (int, bool)
            if not all(isinstance(v, want) for v in value):  # [] is valid: Llama 4 ships no_rope_layers: []
                raise InputError(f"{field}.{key}", value,
                                 "a list of " + ("layer type names" if key == "layer_types" else
                                                           "0/1 flags") + ", one per layer", "not a list")
            if len(value) > LIMITS["model.hf_config.num_hidden_layers"].hi:
                raise InputError(f"{field}.{key}", f"{len(value)} entries",
                                 f"at most {LIMITS['model.hf_config.num_hidden_layers'].hi:g} entries",
                                 "larger than any real model", code="too_large")
    text = cfg.get("text_config")
    if text is not None:
        if depth > 0 or not isinstance(text, dict):
            raise InputError(f"{field}.text_config", text, "a config object (not nested again)", "not an object")
        out["text_config"] = check_hf_config(text, f"{field}.text_config", depth + 1)
    return out


def _model(value):
    if isinstance(value, str):
        if len(value) > 200:
            raise InputError("model", value, "a preset id", "unknown value")
        from .presets import get_model
        get_model(value, field="model")  # unknown ids are refused now, even when unused
        return value
    if isinstance(value, dict) and "architecture" in value:
        from .presets import get_model
        get_model(value, field="model")  # kvcalc.architecture checks every field against LIMITS
        return value
    if isinstance(value, dict):
        _object("model", value, MODEL_KEYS)
        if "hf_config" not in value:
            raise InputError("model.hf_config", None, "a config.json object beside name/params", "missing")
        out = dict(value)
        out["hf_config"] = check_hf_config(value["hf_config"])
        for key in ("params_total", "params_active"):
            if value.get(key) is not None:
                out[key] = _number(f"model.{key}", value[key])
        for key in ("name", "id"):
            if value.get(key) is not None and (not isinstance(value[key], str) or len(value[key]) > 200):
                raise InputError(f"model.{key}", value[key], "a string of at most 200 characters", "not a string")
        return out
    raise InputError("model", value, "a preset id, {\"hf_config\": {...}} or {\"architecture\": {...}}",
                     "unknown value")


def check_request(request, endpoint: str = "compute") -> dict:
    """The normalised request, or InputError naming the first bad field (see module docstring)."""
    if not isinstance(request, dict):
        raise InputError("request", request, "a JSON object", "not an object")
    check_shape(request)
    from .hitrate import HIT_MODELS
    from .workload import EVICTIONS, GAP_DISTRIBUTIONS, TURNS_DISTRIBUTIONS

    unknown = sorted(set(request) - set(REQUEST_KEYS))
    if unknown:  # named by their own path ("foo"), as the page expects
        raise InputError(unknown[0], request[unknown[0]], _keys_text(REQUEST_KEYS), "unknown key",
                         params={"choices": list(REQUEST_KEYS)})
    out: dict = {}
    for key, value in request.items():
        if value is None and key in _NULLABLE:
            continue
        if key == "model":
            out[key] = _model(value)
        elif key == "gpu":
            if not isinstance(value, str) or len(value) > 200:
                raise InputError("gpu", value, "a GPU preset id", "unknown value")
            from .presets import get_gpu
            get_gpu(value, field="gpu")
            out[key] = value
        elif key == "kv_cache_dtype":
            out[key] = _dtype(key, value, extra=("auto",))
        elif key == "weight_dtype":
            out[key] = _dtype(key, value)
        elif key == "engine_log":
            if not isinstance(value, str):
                raise InputError("engine_log", value, "the text of a vLLM or SGLang start-up log", "not a string")
            out[key] = value
        elif key == "hit_model":
            out[key] = _string(key, value, HIT_MODELS)
        elif key == "figures":
            if not isinstance(value, list) or len(value) > len(FIGURES):
                raise InputError("figures", value, "a list drawn from " + ", ".join(FIGURES), "not a list")
            for i, f in enumerate(value):
                _string(f"figures[{i}]", f, FIGURES)
            out[key] = list(value)
        elif key == "workload":
            wl = _object("workload", value, WORKLOAD_KEYS)
            clean = {}
            for k, v in wl.items():
                path = f"workload.{k}"
                if k == "turns_distribution":
                    clean[k] = _string(path, v, TURNS_DISTRIBUTIONS)
                elif k == "gap_distribution":
                    clean[k] = _string(path, v, GAP_DISTRIBUTIONS)
                else:
                    clean[k] = _number(path, v)
            out[key] = clean
        elif key == "cache":
            c = _object("cache", value, CACHE_KEYS)
            clean = {}
            for k, v in c.items():
                path = f"cache.{k}"
                if v is None and path in _NULLABLE:
                    continue
                clean[k] = _string(path, v, EVICTIONS) if k == "eviction" else _number(path, v)
            out[key] = clean
        elif key == "simulation":
            s = _object("simulation", value, SIMULATION_KEYS)
            clean = {}
            if s.get("n_conversations") is not None:
                clean["n_conversations"] = _number("simulation.n_conversations", s["n_conversations"])
            caps = s.get("capacities_tokens")
            if caps is not None:
                if not isinstance(caps, list) or not 1 <= len(caps) <= MAX_CAPACITY_POINTS:
                    raise InputError("simulation.capacities_tokens", caps,
                                     f"a list of 1 to {MAX_CAPACITY_POINTS} capacities in tokens", "not a list",
                                     params={"lo": 1, "hi": MAX_CAPACITY_POINTS})
                clean["capacities_tokens"] = [
                    _number("simulation.capacities_tokens[]", v, f"simulation.capacities_tokens[{i}]")
                    for i, v in enumerate(caps)]
            out[key] = clean
        elif key == "scenario":   # kvcalc.scenarios
            from .scenarios import SCENARIOS
            out[key] = _string(key, value, tuple(SCENARIOS))
        elif key == "recommender":
            r = _object("recommender", value, RECOMMENDER_KEYS)
            out[key] = {k: _number(f"recommender.{k}", v) for k, v in r.items()}
        elif key in ("export", "preview"):
            if not isinstance(value, bool):
                raise InputError(key, value, "true or false", "not a boolean", code="invalid")
            out[key] = value
        elif key == "compare_with":   # setup A of a comparison: a compute request of its own
            if endpoint != "compute" or not isinstance(value, dict):
                raise InputError("compare_with", value, "a compute request (setup A)", "not an object",
                                 code="not_an_object")
            nested = sorted(set(value) & {"compare_with", "export", "figures", "engine_log", "preview"})
            if nested:
                raise InputError(f"compare_with.{nested[0]}", value[nested[0]],
                                 "the inputs of setup A (no figures, export, log or nested comparison)",
                                 "unknown key", params={"choices": []})
            try:
                out[key] = check_request(value, endpoint)
            except InputError as exc:
                exc.field = f"compare_with.{exc.field}"
                exc.params["field"] = exc.field
                exc.args = (f"compare_with.{exc.args[0]}",)
                raise
        elif key in ("cluster", "tiers", "tier_mode", "sizing"):   # the fleet (issue 7)
            from .fleet_request import check_fleet_field
            out[key] = check_fleet_field(key, value)
        else:  # numeric top-level fields
            out[key] = _number(key, value)
    return out


def finite_json(x):
    """A copy of a result with numpy scalars as Python numbers and NaN/inf as None.

    Recursive over dicts and lists (results nest a few levels). Plain floats, the bulk of a
    figure's arrays, take the first test (this walk was a quarter of compute()'s time)."""
    t = type(x)
    if t is float:
        return x if _isfinite(x) else None
    if t is dict:
        return {k: finite_json(v) for k, v in x.items()}
    if t is list or t is tuple:
        return [finite_json(v) for v in x]
    if t is str or t is bool or x is None:
        return x
    if t is int:
        return x
    import numpy as np
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return finite_json(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


_isfinite = math.isfinite
