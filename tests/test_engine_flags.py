"""The one flag list (engine_flags.FLAGS): the engine command builder and the
recommendations name only flags in it, each kept with an https documentation
source, and the builder's tables are views of it (not a second list)."""

import pytest

from kvcalc import engine_cmd
from kvcalc.engine_flags import FLAGS, meanings
from kvcalc.engine_cmd import engine_commands
from kvcalc.fleet import FleetConfig
from kvcalc.presets import get_gpu, get_model
from kvcalc.recommend import Setup, recommend
from kvcalc.workload import CacheConfig, Workload


def test_every_entry_has_a_meaning_and_an_https_source():
    assert FLAGS
    for (engine, name), entry in FLAGS.items():
        assert engine in ("vllm", "sglang", "vllm-router", "sglang-router")
        assert name.startswith("--") and " " not in name
        assert entry["meaning"] and entry["source"].startswith("https://")


def test_command_builder_tables_are_views_of_the_one_list():
    for engine, table in (("vllm", engine_cmd.VLLM_FLAGS), ("sglang", engine_cmd.SGLANG_FLAGS)):
        assert table
        for name, meaning in table.items():
            assert FLAGS[(engine, name)]["meaning"] == meaning
    with pytest.raises(KeyError):
        meanings("vllm", ("--not-a-vllm-flag",))


@pytest.mark.parametrize("case", [
    dict(model_id="m", prefix_caching=False, max_model_len_tokens=4096),
    dict(model_id="m", weight_dtype="fp8", checkpoint_weight_dtype="bf16", kv_cache_dtype="fp8"),
])
def test_every_flag_the_builder_writes_is_in_the_list(case):
    c = engine_commands(**case)
    for engine in ("vllm", "sglang"):
        written = [a for a in c[engine]["argv"] if a.startswith("--")]
        assert written and all((engine, a) in FLAGS for a in written)


def test_every_flag_a_recommendation_names_is_in_the_list():
    qwen, h100 = get_model("Qwen/Qwen3-32B"), get_gpu("h100-sxm-80gb")
    w = Workload(conversation_rate_per_s=3, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)
    named = set()
    for fleet in (FleetConfig(2, "random"), FleetConfig(1)):
        for lever in recommend(Setup(qwen, h100, 2, 0.9, "auto", w, CacheConfig(capacity_tokens=1.0), fleet)):
            named |= {(st["engine"], st["flag"]) for st in lever["settings"]}
    # the levers of issue 7 name at least these engines' settings
    assert {("vllm", "--kv-cache-dtype"), ("sglang", "--hicache-ratio"), ("sglang-router", "--policy")} <= named
    assert named <= set(FLAGS)
