"""kvcalc.presets: what the preset loader and spec_from_fields fill in when a field is absent,
how they refuse a malformed entry, and that preset files are read as UTF-8 (issue #10,
mutation testing: each test below fails on a surviving mutant of the first runs).

Expected values come from the documented defaults (weight dtype bf16, a vocabulary of 32000 when
a config gives none, empty source and notes, no MLA fields on a non-MLA model) worked out in the
comments, never from a run of the code under test.
"""

import json

import pytest

from kvcalc import presets
from kvcalc.errors import InputError
from kvcalc.limits import LIMITS
from kvcalc.presets import ModelSpec, spec_from_fields


@pytest.fixture
def fresh():
    presets._load_models_cached.cache_clear()
    presets._load_gpus_cached.cache_clear()
    yield presets
    presets._load_models_cached.cache_clear()
    presets._load_gpus_cached.cache_clear()


# 4 layers, 4 heads of 8 (hidden 32), 2 KV heads: a GQA model small enough to check by hand
_E = {"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
      "hidden_size": 32}


def _fields(**kw):
    e = dict(_E, **kw)
    return {k: v for k, v in e.items() if v is not None}


def _write_models(tmp_path, models: dict):
    (tmp_path / "models.json").write_text(json.dumps({"models": models}, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def test_spec_from_fields_defaults_of_absent_fields():
    s = spec_from_fields("m", _fields(), (None,) * 4, 1e6, 1e6, estimated=True)
    # no source / notes in the entry and none given: empty strings (to_dict shows them as "")
    assert s.source == "" and s.notes == ""
    assert s.to_dict()["source"] == "" and s.to_dict()["notes"] == ""
    # no weight_dtype: bf16, the documented default
    assert s.weight_dtype == "bf16"
    # GQA (2 of 4 heads): no MLA latent, no decoupled-RoPE width
    assert s.attention == "gqa" and s.kv_lora_rank is None and s.qk_rope_head_dim is None
    # a rank of 0 is no rank: still GQA, and no latent recorded
    z = spec_from_fields("m", _fields(kv_lora_rank=0), (None,) * 4, 1e6, 1e6, estimated=True)
    assert z.attention == "gqa" and z.kv_lora_rank is None and z.qk_rope_head_dim is None


def test_spec_from_fields_reads_the_entrys_weight_dtype():
    # the entry's own dtype when no format is passed: fp8 is 8 bits, int4 4 bits
    assert spec_from_fields("m", _fields(weight_dtype="fp8"), (None,) * 4, 1e6, 1e6, estimated=True).weight_dtype == "fp8"
    assert spec_from_fields("m", _fields(weight_dtype="int4"), (None,) * 4, 1e6, 1e6,
                            estimated=True).weight_format_dict["bits"] == 4


@pytest.mark.parametrize("field,want", [(None, "model[m].weight_dtype"),
                                        ("model.architecture", "model.architecture.weight_dtype")])
def test_spec_from_fields_bad_weight_dtype_names_its_field(field, want):
    with pytest.raises(InputError) as e:
        spec_from_fields("m", _fields(weight_dtype="fp7"), (None,) * 4, 1e6, 1e6, estimated=True, field=field)
    assert (e.value.field, e.value.value) == (want, "fp7")


def test_zero_heads_are_refused_as_an_input_error():
    # no head_dim and a zero head count: no head_dim can be derived (hidden // 0 is never tried);
    # the spec refuses the head count by name rather than raising ZeroDivisionError
    e = _fields(head_dim=None, num_attention_heads=0)
    with pytest.raises(InputError) as err:
        spec_from_fields("m", e, (None,) * 4, 1e6, 1e6, estimated=True)
    assert err.value.field == "model[m].num_attention_heads"


@pytest.mark.parametrize("hidden", ["32", 32.0])
def test_head_dim_is_not_derived_from_a_non_integer_width(hidden):
    # hidden // heads only for integers: a text or float hidden size leaves head_dim underived,
    # and the spec refuses it as a missing head_dim (the first size field checked after the heads)
    e = _fields(head_dim=None, vocab_size=None)
    e["hidden_size"] = hidden
    with pytest.raises(InputError) as err:
        spec_from_fields("m", e, (None,) * 4, 1e6, 1e6, estimated=True)
    assert (err.value.field, err.value.value) == ("model[m].head_dim", None)


def test_parameter_split_failure_leaves_the_split_unknown():
    # intermediate_size as text: estimate_param_groups fails (str x int products), so the split is
    # None, while the spec itself is valid
    s = spec_from_fields("m", _fields(vocab_size=100, intermediate_size="x" * 3, num_local_experts="y"),
                         (None,) * 4, 1e6, 1e6, estimated=True)
    assert s.params_embedding is None and s.params_experts is None


def test_preset_without_vocabulary_gets_the_default_vocabulary_split(tmp_path, monkeypatch, fresh):
    # no vocab_size: the parameter estimate takes 32000 (hfconfig's documented default), untied:
    # embedding + lm_head = 2 x 32000 x 32 = 2,048,000 parameters; no experts
    entry = dict(_E, params_total=3e6, params_active=3e6, weight_dtype="bf16", source="hand")
    monkeypatch.setenv("KVCALC_PRESETS_DIR", str(_write_models(tmp_path, {"tiny": entry})))
    s = fresh.load_models()["tiny"]
    assert s.params_embedding == 2 * 32000 * 32 and s.params_experts == 0


def test_preset_files_are_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch, fresh):
    # a name and notes with non-ASCII text, written as UTF-8; the loader is run with open()
    # defaulting to Latin-1 (what a Windows or C locale would give) when no encoding is named
    entry = dict(_E, params_total=1e6, params_active=1e6, weight_dtype="bf16", source="hand",
                 name="Modèle 模型", notes="déjà")
    monkeypatch.setenv("KVCALC_PRESETS_DIR", str(_write_models(tmp_path, {"m": entry})))
    real_open = open

    def latin1_default_open(path, mode="r", *args, **kwargs):
        if "b" not in mode and kwargs.get("encoding") is None and not args:
            kwargs["encoding"] = "latin-1"
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(presets, "open", latin1_default_open, raising=False)
    s = fresh.load_models()["m"]
    assert s.name == "Modèle 模型" and s.notes == "déjà"


def test_spec_from_hf_config_passes_its_keywords():
    # the old place's wrapper must pass the keywords too: id, name and counts as given
    cfg = {"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32,
           "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 1024}
    s = presets.spec_from_hf_config(cfg, model_id="mine", name="Mine", params_total=2e6, params_active=2e6)
    assert (s.id, s.name, s.params_total, s.params_active) == ("mine", "Mine", 2e6, 2e6)


def _spec(**kw):
    base = dict(id="m", name="M", attention="gqa", num_layers=2, num_attention_heads=4, num_kv_heads=2,
                head_dim=8, hidden_size=32, max_position_embeddings=4096, layer_window_tokens=(None, None),
                params_total=1e6, params_active=1e6, source="s")
    base.update(kw)
    return ModelSpec(**base)


@pytest.mark.parametrize("name", ["params_total", "params_active"])
def test_parameter_count_refusal_gives_the_tables_range(name):
    with pytest.raises(InputError) as e:
        _spec(**{name: 1e15})
    # limits table: (0, 1e14) open at both ends
    assert e.value.allowed == LIMITS[f"model.{name}"].range_text() == "a number in (0, 1e+14)"
    assert e.value.problem == "out of range" and e.value.field == f"model[m].{name}"


def test_active_parameters_within_the_rounding_allowance_are_accepted():
    # active may exceed total by a relative 1e-9 (rounding in a config's sums): exactly at that
    # edge it is still accepted; 1e-8 over is refused
    total = 1e6
    assert _spec(params_total=total, params_active=total * (1 + 1e-9)).params_active == total * (1 + 1e-9)
    with pytest.raises(InputError):
        _spec(params_total=total, params_active=total * (1 + 1e-8))


def test_unknown_gpu_error_names_the_value_and_the_choices():
    with pytest.raises(InputError) as e:
        presets.get_gpu("no-such-gpu", field="gpu")
    assert (e.value.field, e.value.value) == ("gpu", "no-such-gpu")
    assert e.value.allowed == "one of the preset ids (see presets/gpus.json)"
    assert e.value.problem == "unknown preset"


# ----------------------------------------------------------------------------- get_model's doors

_CFG = {"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32,
        "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 1024}
_MODEL_ALLOWED = ("one of the preset ids (see presets/models.json), {\"hf_config\": {...}} "
                  "or {\"architecture\": {...}}")


def test_unknown_preset_id_lists_where_the_ids_are():
    with pytest.raises(InputError) as e:
        presets.get_model("no/such-model", field="model")
    assert (e.value.field, e.value.value, e.value.problem) == ("model", "no/such-model", "unknown preset")
    assert e.value.allowed == "one of the preset ids (see presets/models.json)"


@pytest.mark.parametrize("given,problem", [({"name": "x"}, "object without hf_config"), (42, "unknown preset")])
def test_model_that_is_neither_id_config_nor_architecture(given, problem):
    with pytest.raises(InputError) as e:
        presets.get_model(given, field="model")
    assert (e.value.field, e.value.value, e.value.problem) == ("model", given, problem)
    assert e.value.allowed == _MODEL_ALLOWED


def test_unknown_key_beside_hf_config():
    with pytest.raises(InputError) as e:
        presets.get_model({"hf_config": _CFG, "colour": "red"}, field="model")
    assert (e.value.field, e.value.value, e.value.problem) == ("model.colour", "red", "unknown key")
    # the five keys allowed beside it, sorted
    assert e.value.allowed == "one of the keys hf_config, id, name, params_active, params_total"


def test_config_and_architecture_errors_are_named_under_the_callers_field():
    # setup A's model (compare_with) reports its errors under its own path
    with pytest.raises(InputError) as e:
        presets.get_model({"hf_config": dict(_CFG, num_hidden_layers=0)}, field="compare_with.model")
    assert e.value.field.startswith("compare_with.model.hf_config")
    with pytest.raises(InputError) as e:
        presets.get_model({"architecture": {"num_layers": 0}}, field="compare_with.model")
    assert e.value.field.startswith("compare_with.model.architecture")


def test_pasted_config_without_an_id_is_called_hf_config():
    assert presets.get_model({"hf_config": _CFG}).id == "hf_config"
    assert presets.get_model({"hf_config": _CFG, "id": "mine"}).id == "mine"
