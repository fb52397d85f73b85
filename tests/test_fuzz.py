"""Fuzzing the whole request: a result with finite numbers in range, or an InputError naming a real field.

Strategies (hypothesis) draw valid requests from the table of limits
(kvcalc.limits), then break them: huge integers (10**400), NaN/inf, booleans,
strings, lists and objects where scalars go, nesting 100,000 deep, unknown keys
at every level, and bad config.json fields. Each example must end, within the
hypothesis deadline (10 s, far above the ~0.1 s a request takes), in either

* a result whose numbers are all finite (null allowed), that json.dumps accepts
  with allow_nan=False, and whose hit rates lie in [0, 1]; or
* an InputError whose code is not "internal_error" and whose field is a key path
  of the request (its first part a request key, its parent present in the request).

Example counts are bounded so the file runs in well under a minute.
"""

import json
import math
import re

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kvcalc.api import compute, simulate
from kvcalc.errors import InputError
from kvcalc.limits import LIMITS
from kvcalc.request import REQUEST_KEYS

# deadline 15 s: a request takes ~0.1 s; the slowest valid case found (FIFO, 200 turns, the
# heatmap figure) takes 7.5 s on a busy 2-core machine. No shrinking: a failure prints the
# example as drawn (shrinking slow examples took minutes).
SETTINGS = dict(deadline=15_000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True, phases=(Phase.explicit, Phase.reuse, Phase.generate))

RATE_KEYS = ("token_hit_rate", "request_hit_rate", "ideal_token_hit_rate", "ideal_request_hit_rate",
             "seed_token_hit_rate", "che_token_hit_rate")
MODELS = ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-V3")
GPUS = ("h100-sxm-80gb", "h200-141gb")


# ---------------------------------------------------------------------------- strategies

def value_in(key: str):
    """A valid value of one numeric field: log-uniform over its range when log-scaled."""
    lim = LIMITS[key]
    lo = lim.lo if not lim.lo_open else (lim.lo + max(abs(lim.lo) * 1e-9, 1e-9))
    hi = min(lim.hi, 1e13)
    if lim.integer:
        if lim.scale == "log":
            return st.integers(0, 60).map(lambda i: int(min(max(round(2 ** (i / 60 * math.log2(max(hi, 2)))), lo), hi)))
        return st.integers(int(math.ceil(lo)), int(hi))
    if lim.scale == "log" and hi > 0:
        base = max(lo, hi * 1e-9, 1e-6)
        return st.floats(math.log(base), math.log(hi)).map(lambda x: min(max(math.exp(x), lo), hi)) | st.just(lo)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def workload():
    num = {k.split(".", 1)[1]: value_in(k) for k in LIMITS if k.startswith("workload.")}
    # keep long conversations rare: they are valid but slow
    num["turns_mean"] = st.floats(1.0, 40.0) | st.just(200.0)
    return st.fixed_dictionaries({}, optional={
        **num,
        "turns_distribution": st.sampled_from(["geometric", "fixed"]),
        "gap_distribution": st.sampled_from(["exponential", "deterministic", "lognormal"]),
    })


@st.composite
def valid_request(draw):
    req = {"workload": draw(workload())}
    cache = {}
    if draw(st.booleans()):
        cache["block_size_tokens"] = draw(st.sampled_from([1, 16, 256, 4096]))
    cache["eviction"] = draw(st.sampled_from(["lru", "fifo", "ttl", "lfu"]))
    if cache["eviction"] == "ttl":
        cache["ttl_s"] = draw(value_in("cache.ttl_s"))
    if draw(st.booleans()):
        req["model"] = draw(st.sampled_from(MODELS))
        req["gpu"] = draw(st.sampled_from(GPUS))
        req["tensor_parallel"] = draw(st.sampled_from([1, 2, 4, 8]))
        req["kv_cache_dtype"] = draw(st.sampled_from(["auto", "fp8", "bf16", "fp4"]))
        if draw(st.booleans()):
            req["mfu"] = draw(value_in("mfu"))
    else:
        cache["capacity_tokens"] = draw(value_in("cache.capacity_tokens"))
    req["cache"] = cache
    req["hit_model"] = draw(st.sampled_from(["refined", "che", "seed"]))
    req["target_token_hit_rate"] = draw(value_in("target_token_hit_rate"))
    if draw(st.integers(0, 4)) == 0:  # the page asks for the visible tab's figure only
        req["figures"] = [draw(st.sampled_from(["curve", "sweeps", "tornado", "heatmap"]))]
    return req


@st.composite
def valid_model_request(draw):
    """A valid request with a model and a GPU, under every hit model and every eviction."""
    req = draw(valid_request())
    req.pop("cache", None)
    cache = {"eviction": draw(st.sampled_from(["lru", "fifo", "ttl", "lfu"]))}
    if cache["eviction"] == "ttl":
        cache["ttl_s"] = draw(value_in("cache.ttl_s"))
    req["cache"] = cache
    req["model"] = draw(st.sampled_from(MODELS))
    req["gpu"] = draw(st.sampled_from(GPUS))
    req["tensor_parallel"] = draw(st.sampled_from([1, 2, 4, 8]))
    req["hit_model"] = draw(st.sampled_from(["refined", "che", "closed", "seed"]))
    if req["hit_model"] == "closed":  # the closed form's domain (elsewhere it refuses, naming hit_model)
        req["workload"].update(turns_distribution="geometric", gap_distribution="exponential")
    return req


def deep(n: int):
    d = {}
    x = d
    for _ in range(n):
        x["a"] = {}
        x = x["a"]
    return d


BAD_VALUES = st.sampled_from([
    10**400, -10**400, float("nan"), float("inf"), -float("inf"), True, False, "x", "", "1e3", [1000], [],
    {"a": 1}, None, -1, 0, 5e-324, -5e-324, 1e308, 2**63, 10**20, 1.5,
]) | st.just("deep")


def _paths(req, prefix=""):
    """Every key path of a request (dicts only)."""
    for k, v in req.items():
        p = f"{prefix}{k}"
        yield p, req, k
        if isinstance(v, dict):
            yield from _paths(v, p + ".")


@st.composite
def broken_request(draw):
    req = draw(valid_request())
    paths = list(_paths(req))
    kind = draw(st.integers(0, 3))
    if kind == 0:  # a bad value at an existing key
        _, parent, key = draw(st.sampled_from(paths))
        bad = draw(BAD_VALUES)
        parent[key] = deep(100_000) if bad == "deep" else bad
    elif kind == 1:  # an unknown key at some level
        holders = [req] + [parent[key] for _, parent, key in paths if isinstance(parent[key], dict)]
        holder = draw(st.sampled_from(holders))
        holder[draw(st.sampled_from(["foo", "turns", "capacity", "n_conversations", "Workload"]))] = 1
    elif kind == 2:  # a bad value at a key the request did not set (keys are checked even when unused)
        # compute()'s own keys: the limits table also holds the trace request's (trace.*)
        key = draw(st.sampled_from(sorted(k for k in LIMITS if "hf_config" not in k and "[]" not in k
                                          and not k.startswith("model.")
                                          and k.split(".")[0] in REQUEST_KEYS)))
        bad = draw(BAD_VALUES)
        bad = deep(100_000) if bad == "deep" else bad
        head, _, rest = key.partition(".")
        if rest:
            req.setdefault(head, {})
            if isinstance(req[head], dict):
                req[head][rest] = bad
        else:
            req[key] = bad
    else:  # a bad object where an object goes
        key = draw(st.sampled_from(["workload", "cache", "simulation", "model", "figures"]))
        req[key] = draw(BAD_VALUES)
    return req


HF_BASE = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "intermediate_size": 14336,
           "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
HF_KEYS = sorted(k.rsplit(".", 1)[1] for k in LIMITS if k.startswith("model.hf_config.")) + [
    "torch_dtype", "dtype", "text_config", "quantization_config", "layer_types", "sliding_window_pattern"]


@st.composite
def hf_request(draw):
    cfg = dict(HF_BASE)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(HF_KEYS))
        bad = draw(BAD_VALUES | st.integers(-5, 10**12) | st.floats(allow_nan=True, allow_infinity=True))
        cfg[key] = deep(100_000) if bad == "deep" else bad
    if draw(st.booleans()):
        cfg = {"text_config": cfg, "model_type": "gemma3"}
    req = {"model": {"hf_config": cfg}, "kv_cache_dtype": "auto"}
    if draw(st.booleans()):
        req["gpu"] = "h100-sxm-80gb"
        req["workload"] = {}
    return req


# ---------------------------------------------------------------------------- checks

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parent_exists(req, field: str) -> bool:
    parts = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PART.finditer(field)]
    x = req
    for p in parts[:-1]:
        if isinstance(p, int):
            if not isinstance(x, list) or p >= len(x):
                return False
        elif not isinstance(x, dict) or p not in x:
            return False
        x = x[p]
    return True


def _numbers(x, path="result"):
    stack = [(x, path)]
    while stack:
        v, p = stack.pop()
        if isinstance(v, dict):
            stack.extend((w, f"{p}.{k}") for k, w in v.items())
        elif isinstance(v, list):
            stack.extend((w, f"{p}[{i}]") for i, w in enumerate(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield p, v


def check_outcome(fn, req):
    try:
        r = fn(req)
    except InputError as exc:
        assert exc.code != "internal_error", str(exc)
        d = exc.to_dict()
        json.dumps(d, allow_nan=False)
        field = d["field"]
        head = field.split(".")[0].split("[")[0]
        assert field == "request" or head in REQUEST_KEYS or (exc.code == "unknown_key" and head in req), field
        assert field == "request" or _parent_exists(req, field), (field, str(exc)[:200])
        return "error"
    json.dumps(r, allow_nan=False)
    for path, v in _numbers(r):
        assert math.isfinite(v), path
    for key in RATE_KEYS:
        if r.get(key) is not None:
            assert 0.0 <= r[key] <= 1.0, (key, r[key])
    return "result"


# ---------------------------------------------------------------------------- tests

@settings(max_examples=80, **SETTINGS)
@given(valid_request())
def test_valid_requests_give_finite_results(req):
    try:
        r = compute(req)
    except InputError as exc:
        # the only refusals of an in-range request: the model/GPU/TP combination itself
        assert exc.field in ("model", "tensor_parallel") and exc.code in ("inconsistent", "heads_do_not_split", "weights_do_not_fit"), str(exc)
        return
    assert check_outcome(lambda _: r, req) == "result"
    inv = r.get("inverse") or {}
    assert inv.get("status") in ("ok", "unreachable", "beyond_range")


@settings(max_examples=60, **SETTINGS)
@given(valid_model_request())
def test_valid_model_requests_under_every_hit_model_and_eviction(req):
    """internal_error is a last resort: no valid request may reach it (audit: the closed form
    with a model and a GPU raised KeyError 'prompt_tokens_per_conversation')."""
    try:
        r = compute(req)
    except InputError as exc:
        assert exc.code != "internal_error", str(exc)
        assert exc.field in ("model", "tensor_parallel") and exc.code in ("inconsistent", "weights_do_not_fit"), str(exc)
        return
    assert check_outcome(lambda _: r, req) == "result"
    if "benefit" in r:
        assert r["benefit"]["mean_prompt_tokens"] > 0


def test_closed_form_with_a_model_and_a_gpu():
    """Defaults: P = 1000, u = 200, o = 300, geometric L = 5. The mean prompt of a request is
    P + u + (E[sum (k-1)] / E[N]) (u + o); for geometric turns E[N(N-1)/2] / E[N] = L - 1 = 4,
    so 1000 + 200 + 4 * 500 = 3200 tokens (hand derivation), the same under every hit model."""
    for hit_model in ("refined", "che", "closed", "seed"):
        r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": {},
                     "hit_model": hit_model})
        assert abs(r["benefit"]["mean_prompt_tokens"] - 3200.0) < 1e-3, hit_model
        assert abs(r["mean_turns"] - 5.0) < 1e-6, hit_model


@settings(max_examples=120, **SETTINGS)
@given(broken_request())
def test_broken_requests_give_input_errors_naming_the_field(req):
    check_outcome(compute, req)


@settings(max_examples=80, **SETTINGS)
@given(hf_request())
def test_config_json_fields(req):
    check_outcome(compute, req)


@settings(max_examples=10, **SETTINGS)
@given(broken_request() | valid_request())
def test_simulate_requests(req):
    req.setdefault("simulation", {"n_conversations": 100})
    if isinstance(req.get("workload"), dict) and isinstance(req["workload"].get("turns_mean"), (int, float)):
        req["workload"]["turns_mean"] = min(req["workload"]["turns_mean"], 10) if req["workload"]["turns_mean"] == req["workload"]["turns_mean"] else req["workload"]["turns_mean"]
    check_outcome(simulate, req)


def test_named_cases_from_the_audit():
    base = {"workload": {}, "cache": {"capacity_tokens": 100_000}}
    cases = {
        "workload.turns_mean": {**base, "workload": {"turns_mean": 10**400}},
        "cache.capacity_tokens": {"workload": {}, "cache": {"capacity_tokens": [1000]}},
        "tensor_parallel": {**base, "tensor_parallel": "garbage"},
        "simulation.foo": {**base, "simulation": {"foo": 1}},
        "model.hf_config.torch_dtype": {"model": {"hf_config": {**HF_BASE, "torch_dtype": "garbage"}}},
        "model.hf_config.num_hidden_layers": {"model": {"hf_config": {**HF_BASE, "num_hidden_layers": 100_000_000}}},
        "mfu": {**base, "mfu": True},
    }
    for field, req in cases.items():
        try:
            compute(req)
        except InputError as exc:
            assert exc.field == field, (field, str(exc))
        else:
            raise AssertionError(f"{field}: accepted")
    # larger than any real model, said so
    try:
        compute(cases["model.hf_config.num_hidden_layers"])
    except InputError as exc:
        assert "larger than any real model" in str(exc) and exc.code == "out_of_range"
    # deep nesting refused with code too_deep, not RecursionError
    try:
        compute({"workload": deep(100_000)})
    except InputError as exc:
        assert exc.code == "too_deep"
    # tiny positive values are valid: finite JSON, not "got nan" / Infinity
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "workload": {}, "mfu": 5e-324})
    json.dumps(r, allow_nan=False)
    r = compute({**base, "workload": {"conversation_rate_per_s": 5e-324}, "figures": ["sweeps", "heatmap"]})
    json.dumps(r, allow_nan=False)
