"""The validated specs (kvcalc.presets.ModelSpec / GpuSpec) and the look-ups, on hand-made values
(issue #10, mutation testing): each refusal names its field, each derived property is counted by hand."""

import dataclasses

import pytest

from kvcalc.errors import InputError
from kvcalc.presets import GpuSpec, ModelSpec, get_gpu, get_model, spec_from_fields

SPEC = dict(id="m", name="M", attention="gqa", num_layers=4, num_attention_heads=8, num_kv_heads=2, head_dim=16,
            hidden_size=128, max_position_embeddings=1024, layer_window_tokens=(None, 64, 0, None),
            params_total=1e9, params_active=1e9, linear_state_bytes_per_layer=100.0)
GPU = dict(id="g", name="G", vendor="V", memory_bytes=2**30, dense_bf16_tflops=100.0, dense_fp8_tflops=None,
           hbm_bandwidth_gb_per_s=1000.0, host_link_bandwidth_gb_per_s=64.0, source="datasheet")


def test_layer_counts_and_summary():
    m = ModelSpec(**SPEC)
    assert (m.global_layers, m.local_layers, m.linear_layers, m.attention_layers) == (2, 1, 1, 3)
    d = m.to_dict()
    assert d["window_tokens"] == [64] and (d["global_layers"], d["local_layers"], d["linear_layers"]) == (2, 1, 1)
    assert d["weight_format"]["weight_dtype"] == "bf16" and "derived" not in d["weight_format"]
    assert d["linear_state_bytes_per_layer"] == 100.0 and d["derived_fields"] == []
    # the window list becomes a tuple
    assert ModelSpec(**dict(SPEC, layer_window_tokens=[None, 64, 0, None])).layer_window_tokens == (None, 64, 0, None)
    # active may exceed total by rounding only (1e-9)
    ModelSpec(**dict(SPEC, params_active=1e9 * (1 + 1e-10)))


@pytest.mark.parametrize("change,field", [
    ({"attention": "sparse"}, "model[m].attention"),
    ({"num_layers": 0}, "model[m].num_layers"),
    ({"num_kv_heads": True}, "model[m].num_kv_heads"),
    ({"head_dim": 16.0}, "model[m].head_dim"),
    ({"max_position_embeddings": 0}, "model[m].max_position_embeddings"),
    ({"attention": "mla", "kv_lora_rank": None, "qk_rope_head_dim": 64}, "model[m].kv_lora_rank"),
    ({"attention": "mla", "kv_lora_rank": 512, "qk_rope_head_dim": -1}, "model[m].qk_rope_head_dim"),
    ({"layer_window_tokens": (None,) * 3}, "model[m].layer_window_tokens"),
    ({"layer_window_tokens": (None, -1, 0, None)}, "model[m].layer_window_tokens"),
    ({"layer_window_tokens": (0, 0, 0, 0)}, "model[m].layer_window_tokens"),
    ({"linear_state_bytes_per_layer": 0.0}, "model[m].linear_state_bytes_per_layer"),
    ({"linear_state_bytes_per_layer": 1e12}, "model[m].linear_state_bytes_per_layer"),
    ({"linear_state_bytes_per_layer": True}, "model[m].linear_state_bytes_per_layer"),
    ({"params_total": 0}, "model[m].params_total"),
    ({"params_active": True}, "model[m].params_active"),
    ({"params_active": 1.1e9}, "model[m].params_active"),
    ({"weight_dtype": "int3"}, "model[m].weight_dtype"),
    ({"source": "entered by hand", "num_layers": 0}, "model.architecture.num_layers"),
    ({"source": "user-supplied config.json", "num_layers": 0}, "model.hf_config.num_layers"),
])
def test_model_spec_refusals(change, field):
    with pytest.raises(InputError) as e:
        ModelSpec(**dict(SPEC, **change))
    assert e.value.field == field


def test_model_spec_refusal_words():
    with pytest.raises(InputError) as e:
        ModelSpec(**dict(SPEC, num_layers=0))
    assert (e.value.allowed, e.value.problem) == ("an integer >= 1", "not a positive integer")
    with pytest.raises(InputError) as e:
        ModelSpec(**dict(SPEC, layer_window_tokens=(None,) * 3))
    assert (e.value.value, e.value.allowed, e.value.problem) == (3, "4 entries (one per layer)", "wrong length")
    with pytest.raises(InputError) as e:
        ModelSpec(**dict(SPEC, layer_window_tokens=(0, 0, 0, 0)))
    assert (e.value.value, e.value.problem) == ("all linear", "no attention layer")
    with pytest.raises(InputError) as e:
        ModelSpec(**dict(SPEC, linear_state_bytes_per_layer=0.0))
    assert e.value.problem == "linear layers without a state size"
    # rope width 0 is allowed for MLA, a window of 0 means a linear layer
    ModelSpec(**dict(SPEC, attention="mla", kv_lora_rank=512, qk_rope_head_dim=0))


def test_gpu_spec():
    g = GpuSpec(**GPU)
    assert g.memory_gib == 1.0
    d = g.to_dict()
    assert d["memory_gib"] == 1.0 and d["memory_bytes"] == 2**30 and d["dense_fp8_tflops"] is None
    for change, field in (({"memory_bytes": 0}, "gpu[g].memory_bytes"),
                          ({"memory_bytes": 1.5}, "gpu[g].memory_bytes"),
                          ({"dense_bf16_tflops": 0}, "gpu[g].dense_bf16_tflops"),
                          ({"hbm_bandwidth_gb_per_s": float("inf")}, "gpu[g].hbm_bandwidth_gb_per_s"),
                          ({"host_link_bandwidth_gb_per_s": True}, "gpu[g].host_link_bandwidth_gb_per_s"),
                          ({"dense_fp8_tflops": -1.0}, "gpu[g].dense_fp8_tflops"),
                          ({"source": ""}, "gpu[g].source")):
        with pytest.raises(InputError) as e:
            GpuSpec(**dict(GPU, **change))
        assert e.value.field == field
    with pytest.raises(InputError) as e:
        GpuSpec(**dict(GPU, dense_bf16_tflops=0))
    assert (e.value.allowed, e.value.problem) == ("a positive finite number", "not a positive number")
    assert GpuSpec(**dict(GPU, dense_fp8_tflops=200)).dense_fp8_tflops == 200
    assert get_gpu(g) is g


def test_spec_from_fields_attention_and_windows():
    e = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64, "max_position_embeddings": 100}
    s = spec_from_fields("x", dict(e, num_key_value_heads=1), (None, None), 1e6, 1e6, estimated=False)
    assert s.attention == "mqa" and s.head_dim == 16            # 64 / 4
    assert spec_from_fields("x", e, (None, None), 1e6, 1e6, estimated=False).attention == "mha"
    assert spec_from_fields("x", dict(e, num_key_value_heads=2), (None, None), 1e6, 1e6, False).attention == "gqa"
    # a window as long as the context never evicts: global; shorter stays local
    s = spec_from_fields("x", e, (100, 99), 1e6, 1e6, estimated=False)
    assert s.layer_window_tokens == (None, 99)
    # MLA: the query/key head width is nope + rope; rope defaults to 64
    s = spec_from_fields("x", dict(e, kv_lora_rank=32, qk_nope_head_dim=8, qk_rope_head_dim=4), (None, None),
                         1e6, 1e6, estimated=True, source="s", notes="n")
    assert (s.attention, s.head_dim, s.qk_rope_head_dim, s.kv_lora_rank) == ("mla", 12, 4, 32)
    assert (s.params_estimated, s.source, s.notes) == (True, "s", "n")
    s = spec_from_fields("x", dict(e, kv_lora_rank=32), (None, None), 1e6, 1e6, estimated=False)
    assert s.qk_rope_head_dim == 64 and s.head_dim == 16
    s = spec_from_fields("x", dict(e, name="Named", source="src", notes="nt"), (None, None), 1e6, 1e6, False)
    assert (s.name, s.source, s.notes) == ("Named", "src", "nt")
    assert spec_from_fields("x", e, (None, None), 1e6, 1e6, False).name == "x"
    # with a vocabulary the embedding is estimated: 10 x 64 x 2 (untied)
    assert spec_from_fields("x", dict(e, vocab_size=10), (None, None), 1e6, 1e6, False).params_embedding == 1280
    assert spec_from_fields("x", e, (None, None), 1e6, 1e6, False).params_embedding is None


def test_get_model_dict_forms():
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64}
    s = get_model({"hf_config": cfg, "id": "mine", "name": "Mine", "params_total": 2e6, "params_active": 1e6})
    assert (s.id, s.name, s.params_total, s.params_active) == ("mine", "Mine", 2e6, 1e6)
    assert get_model(s) is s
    for bad, field in (({"hf_config": cfg, "params_total": -1}, "model.params_total"),
                       ({"hf_config": cfg, "params_active": 0}, "model.params_active"),
                       ({"hf_config": cfg, "colour": 1}, "model.colour"),
                       ({"name": "x"}, "model"), (42, "model"), ("no/such", "model")):
        with pytest.raises(InputError) as e:
            get_model(bad)
        assert e.value.field == field
    with pytest.raises(InputError) as e:
        get_model({"name": "x"}, field="cluster.models[0]")
    assert e.value.field == "cluster.models[0]" and e.value.problem == "object without hf_config"
    with pytest.raises(InputError) as e:
        get_model(42)
    assert e.value.problem == "unknown preset" and "architecture" in e.value.allowed
    with pytest.raises(InputError) as e:
        get_gpu(42, field="tiers[0].gpu")
    assert e.value.field == "tiers[0].gpu" and e.value.problem == "unknown preset"


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelSpec(**SPEC).num_layers = 5
