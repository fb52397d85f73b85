"""Preset loading and the spec dataclasses (kvcalc.presets), with the preset cache cleared first
(issue #10, mutation testing).

Why the clearing: the presets are parsed once per process (functools.lru_cache), and mutmut runs
its tests in processes forked after a first run filled that cache, so a mistake in the preset
parser went unseen by every test that only reads load_models(). Expected values are the published
config.json figures each preset cites, worked out in the comments.
"""

import pytest

from kvcalc import presets
from kvcalc.errors import InputError
from kvcalc.presets import GpuSpec, ModelSpec


@pytest.fixture
def fresh():
    presets._load_models_cached.cache_clear()
    presets._load_gpus_cached.cache_clear()
    presets._default_presets_dir.cache_clear()
    yield presets
    presets._load_models_cached.cache_clear()
    presets._load_gpus_cached.cache_clear()


def test_layer_patterns_windows_and_state_from_the_files(fresh):
    m = fresh.load_models()
    # google/gemma-2-9b: 42 layers, local (4096) / global alternating from layer 0
    g = m["google/gemma-2-9b"]
    assert g.layer_window_tokens == (4096, None) * 21 and g.id == "google/gemma-2-9b"
    # gemma-3-27b-it: 5 local (1024) then 1 global, 62 layers: 10 full periods + 2 local
    g3 = m["google/gemma-3-27b-it"]
    assert g3.layer_window_tokens == ((1024,) * 5 + (None,)) * 10 + (1024, 1024)
    # Qwen3-Next-80B-A3B: 3 Gated DeltaNet layers then 1 full, 48 layers; state per layer (bf16)
    # ((4 - 1) x (2 x 16 x 128 + 32 x 128) + 32 x 128 x 128) x 2 = 1097728 B
    q = m["Qwen/Qwen3-Next-80B-A3B-Instruct"]
    assert q.layer_window_tokens == (0, 0, 0, None) * 12
    assert q.linear_state_bytes_per_layer == 1097728
    # Llama-3.1-8B: no pattern, 32 global layers; untied 128256 x 4096 embeddings counted twice
    ll = m["meta-llama/Llama-3.1-8B"]
    assert ll.layer_window_tokens == (None,) * 32 and ll.params_embedding == 2 * 128256 * 4096
    assert ll.params_estimated is False and ll.linear_state_bytes_per_layer == 0.0
    # DeepSeek-V3: fp8 weights with 128 x 128 block scales, from its quantization_config
    wf = m["deepseek-ai/DeepSeek-V3"].weight_format_dict
    assert wf["weight_dtype"] == "fp8" and wf["method"] == "fp8"
    # gpt-oss-120b: MXFP4 on the experts only
    assert m["openai/gpt-oss-120b"].weight_format_dict["scope"] == "experts"


def test_gpu_presets_from_the_files(fresh):
    h = fresh.load_gpus()["h100-sxm-80gb"]
    # 81559 MiB reported by nvidia-smi = 81559 x 2^20 B = 85,520,809,984 B = 79.647 GiB
    assert h.memory_bytes == 81559 * 2 ** 20 and h.memory_gib == pytest.approx(81559 / 1024)
    assert h.to_dict()["memory_gib"] == pytest.approx(79.6474609375)


def _entry(**kw):
    e = {"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
         "hidden_size": 32, "params_total": 1e6, "params_active": 1e6, "weight_dtype": "bf16",
         "source": "hand"}
    e.update(kw)
    return {k: v for k, v in e.items() if v is not None}


@pytest.mark.parametrize("kw,field,value,allowed,problem", [
    ({"source": None}, "model[x].source", None, "present in every model preset", "missing field"),
    ({"num_hidden_layers": 0}, "model[x].num_hidden_layers", 0, "an integer >= 1", "not a positive integer"),
    ({"layer_pattern": ["local", "sliding"], "window_tokens": 8}, "model[x].layer_pattern", ["local", "sliding"],
     "a non-empty list of 'local'/'global'/'linear'", "malformed layer pattern"),
    ({"layer_pattern": []}, "model[x].layer_pattern", [], "a non-empty list of 'local'/'global'/'linear'",
     "malformed layer pattern"),
    ({"layer_pattern": "local"}, "model[x].layer_pattern", "local", "a non-empty list of 'local'/'global'/'linear'",
     "malformed layer pattern"),
    ({"layer_pattern": ["local", "global"]}, "model[x].window_tokens", None, "an integer >= 1",
     "not a positive integer"),
    ({"weight_dtype": "fp7"}, "model[x].weight_dtype", "fp7", None, None),
])
def test_preset_entry_refusals(kw, field, value, allowed, problem):
    with pytest.raises(InputError) as e:
        presets._spec_from_preset("x", _entry(**kw))
    assert (e.value.field, e.value.value) == (field, value)
    if allowed is not None:
        assert (e.value.allowed, e.value.problem) == (allowed, problem)


def test_preset_linear_layers_need_a_state():
    """local, global, linear, local (repeated from layer 0): the linear layer needs a state size, and an
    entry without the DeltaNet sizes has none (0 bytes): refused under the preset's own name."""
    with pytest.raises(InputError) as e:
        presets._spec_from_preset("x", _entry(layer_pattern=["local", "global", "linear"], window_tokens=16))
    assert (e.value.field, e.value.value) == ("model[x].linear_state_bytes_per_layer", 0.0)


def test_preset_entry_patterns_with_state():
    gdn = {"linear_num_key_heads": 2, "linear_key_head_dim": 4, "linear_num_value_heads": 2,
           "linear_value_head_dim": 4}
    # state (3 x (2 x 2 x 4 + 2 x 4) + 2 x 4 x 4) x 2 = 208 B (kernel 4 by default)
    s = presets._spec_from_preset("x", _entry(layer_pattern=["local", "global", "linear"], window_tokens=16, **gdn))
    assert s.layer_window_tokens == (16, None, 0, 16) and s.linear_state_bytes_per_layer == 208
    assert (s.id, s.params_estimated) == ("x", False)
    s = presets._spec_from_preset("x", _entry(layer_pattern=["global"]))
    assert s.layer_window_tokens == (None,) * 4
    # quantization_config decides the format (AWQ int4, group 128) over weight_dtype
    s = presets._spec_from_preset("x", _entry(quantization_config={"quant_method": "awq", "bits": 4,
                                                                   "group_size": 128}))
    assert s.weight_format_dict["weight_dtype"] == "int4" and s.weight_format_dict["group_size"] == 128
    # vocabulary 100 untied: 100 x 32 x 2 = 6400 embedding parameters
    assert presets._spec_from_preset("x", _entry(vocab_size=100)).params_embedding == 6400


def _spec(**kw):
    base = dict(id="m", name="M", attention="gqa", num_layers=2, num_attention_heads=4, num_kv_heads=2,
                head_dim=8, hidden_size=32, max_position_embeddings=4096, layer_window_tokens=(512, None),
                params_total=1e6, params_active=5e5, source="s", notes="n")
    base.update(kw)
    return ModelSpec(**base)


def test_model_spec_to_dict_by_hand():
    s = _spec(derived=(tuple(sorted({"field": "head_dim", "how": "h", "code": "c", "params": (("a", 1),)}.items())),))
    d = s.to_dict()
    assert d == {
        "id": "m", "name": "M", "attention": "gqa", "num_layers": 2, "global_layers": 1, "local_layers": 1,
        "linear_layers": 0, "linear_state_bytes_per_layer": 0.0, "num_attention_heads": 4, "num_kv_heads": 2,
        "head_dim": 8, "hidden_size": 32, "kv_lora_rank": None, "qk_rope_head_dim": None,
        "max_position_embeddings": 4096, "window_tokens": [512], "params_total": 1e6, "params_active": 5e5,
        "params_estimated": False, "weight_dtype": "bf16", "weight_format": d["weight_format"],
        "derived_fields": [{"field": "head_dim", "how": "h", "code": "c", "params": {"a": 1}}],
        "source": "s", "notes": "n"}
    assert d["weight_format"]["weight_dtype"] == "bf16" and "derived" not in d["weight_format"]
    # a record without params gives an empty dict
    s = _spec(derived=(tuple(sorted({"field": "f", "how": "h", "code": "c"}.items())),))
    assert s.derived_fields() == [{"field": "f", "how": "h", "code": "c", "params": {}}]


def test_gpu_spec_to_dict_and_source():
    g = GpuSpec(id="g", name="G", vendor="v", memory_bytes=2 ** 31, dense_bf16_tflops=100.0, dense_fp8_tflops=None,
                hbm_bandwidth_gb_per_s=1000.0, host_link_bandwidth_gb_per_s=64.0, marketed_memory="2 GB",
                source="src", notes="n")
    assert g.to_dict() == {"id": "g", "name": "G", "vendor": "v", "memory_bytes": 2 ** 31, "memory_gib": 2.0,
                           "marketed_memory": "2 GB", "dense_bf16_tflops": 100.0, "dense_fp8_tflops": None,
                           "hbm_bandwidth_gb_per_s": 1000.0, "host_link_bandwidth_gb_per_s": 64.0,
                           "source": "src", "notes": "n"}
    with pytest.raises(InputError) as e:
        GpuSpec(id="g", name="G", vendor="v", memory_bytes=2 ** 31, dense_bf16_tflops=100.0, dense_fp8_tflops=None,
                hbm_bandwidth_gb_per_s=1000.0, host_link_bandwidth_gb_per_s=64.0)
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == (
        "gpu[g].source", "", "a non-empty source (URL or document)", "missing source")
    with pytest.raises(InputError) as e:
        GpuSpec(id="g", name="G", vendor="v", memory_bytes=2 ** 31, dense_bf16_tflops=0.5, dense_fp8_tflops=-1.0,
                hbm_bandwidth_gb_per_s=1000.0, host_link_bandwidth_gb_per_s=64.0, source="s")
    # 0.5 TFLOPS is a positive number (no "> 1" rule); the fp8 figure is refused
    assert (e.value.field, e.value.value, e.value.allowed) == ("gpu[g].dense_fp8_tflops", -1.0,
                                                              "a positive finite number")
    with pytest.raises(InputError) as e:
        GpuSpec(id="g", name="G", vendor="v", memory_bytes=0, dense_bf16_tflops=1.0, dense_fp8_tflops=None,
                hbm_bandwidth_gb_per_s=1000.0, host_link_bandwidth_gb_per_s=64.0, source="s")
    assert (e.value.field, e.value.value) == ("gpu[g].memory_bytes", 0)


@pytest.mark.parametrize("kw,field,value,allowed,problem", [
    ({"attention": "dense"}, "model[m].attention", "dense", "mha, gqa, mqa, mla", "unknown attention kind"),
    ({"layer_window_tokens": (0, 0), "linear_state_bytes_per_layer": 8.0}, "model[m].layer_window_tokens",
     "all linear", "at least one attention layer", "no attention layer"),
    ({"linear_state_bytes_per_layer": -1.0}, "model[m].linear_state_bytes_per_layer", -1.0,
     "a number of bytes in [0, 1e12)", "out of range"),
    ({"layer_window_tokens": (0, None), "linear_state_bytes_per_layer": 0.0}, "model[m].linear_state_bytes_per_layer",
     0.0, "a positive state size for linear layers", "linear layers without a state size"),
    ({"params_total": 0.0}, "model[m].params_total", 0.0, None, "out of range"),
    ({"params_active": 2e6}, "model[m].params_active", 2e6, "at most params_total (1e+06)", "out of range"),
    ({"source": "user-supplied config.json", "attention": "x"}, "model.hf_config.attention", "x", None, None),
    ({"source": "entered by hand", "attention": "x"}, "model.architecture.attention", "x", None, None),
])
def test_model_spec_refusals(kw, field, value, allowed, problem):
    with pytest.raises(InputError) as e:
        _spec(**kw)
    assert (e.value.field, e.value.value) == (field, value)
    if allowed is not None:
        assert e.value.allowed == allowed
    if problem is not None:
        assert e.value.problem == problem


def test_model_spec_accepts_the_edges():
    # half a byte of state per layer is a positive state size (no "> 1" rule)
    assert _spec(layer_window_tokens=(0, None), linear_state_bytes_per_layer=0.5).linear_layers == 1
    # params_active equal to params_total is allowed
    assert _spec(params_active=1e6).params_active == 1e6
