"""compute()'s ``preview`` request (the page's render while a slider moves, app.js requestPreview).

A preview must show exactly the numbers of the full compute of the same inputs (only a figure
may be coarser), so every key of a preview result except ``figures`` is compared with the full
result of the same request: the full compute is the second method. The figures are the same
functions on coarser grids: their points lie on the full figure's curve where the grids meet
(the curve's capacities are geometric over the same range: both ends are shared).
"""

from __future__ import annotations

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError

BASE = {
    "model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb", "tensor_parallel": 1,
    "gpu_memory_utilization": 0.9, "scenario": "chat",
    "workload": {"conversation_rate_per_s": 1, "turns_mean": 5, "gap_mean_s": 145,
                 "user_tokens_per_turn": 200, "output_tokens_per_turn": 300, "system_prompt_tokens": 1000,
                 "service_time_s": 2},
    "cache": {"block_size_tokens": 16, "eviction": "lru"},
}
EXTRAS = {"engine_commands", "explain", "summary_details", "fleet"}


@pytest.mark.parametrize("figure", ["curve", "sweeps", "tornado", "heatmap"])
@pytest.mark.parametrize("extra", [{}, {"hit_model": "che"}, {"cache": {"block_size_tokens": 16, "eviction": "fifo"}},
                                   {"workload": {**BASE["workload"], "conversation_rate_per_s": 400}},   # overload
                                   {"cluster": {"instances": 4, "routing": "random"}}])
def test_preview_numbers_equal_the_full_compute(figure, extra):
    full = compute({**BASE, **extra, "figures": ["curve", "kv_context", figure]})
    preview = compute({**BASE, **extra, "figures": [figure], "preview": True})
    assert set(preview) - {"figures"} <= set(full)
    assert set(full) - set(preview) <= EXTRAS | {"figures"}, set(full) - set(preview)
    for key, value in preview.items():
        if key != "figures":
            assert value == full[key], key
    # the numbers the page shows are all there
    for key in ("token_hit_rate", "request_hit_rate", "ideal_token_hit_rate", "cache_capacity_tokens",
                "kv_bytes_per_token", "inverse", "occupancy", "warning_details"):
        assert key in preview, key
    assert list(preview["figures"]) == [figure]


def test_preview_extras_are_left_out_and_a_fleet_keeps_its_numbers():
    preview = compute({**BASE, "figures": ["curve"], "preview": True})
    assert not EXTRAS & set(preview)
    fleet = {**BASE, "cluster": {"instances": 4, "routing": "random"}}
    full = compute({**fleet, "figures": ["curve"]})
    p = compute({**fleet, "figures": ["curve"], "preview": True})
    # 4 instances with random routing lose own-history hits: the fleet's number, not one cache's
    single = compute({**BASE, "figures": []})
    assert full["token_hit_rate"] < single["token_hit_rate"]
    assert p["token_hit_rate"] == full["token_hit_rate"]
    assert p["fleet"] == full["fleet"]


def test_preview_figures_are_coarser_on_the_same_curve():
    full = compute({**BASE, "figures": ["curve", "heatmap"]})["figures"]
    prev = compute({**BASE, "figures": ["curve", "heatmap"], "preview": True})["figures"]
    fc, pc = full["curve"], prev["curve"]
    assert len(pc["capacity_tokens"]) == 40 and len(fc["capacity_tokens"]) == 120
    # both grids span the same capacities: the ends are the same points of the same function
    for i in (0, -1):
        assert pc["capacity_tokens"][i] == pytest.approx(fc["capacity_tokens"][i], rel=1e-12)
        assert pc["token_hit_rate"][i] == pytest.approx(fc["token_hit_rate"][i], rel=1e-12, abs=1e-15)
    # the heatmap: 10 x 10 cells instead of 30 x 30 (figure_data.figures_result), on the same ends
    hp, hf = prev["heatmap"], full["heatmap"]
    assert len(hp["capacity_tokens"]) == 10 and len(hp["conversation_rate_per_s"]) == 10
    assert len(hf["capacity_tokens"]) == 30 and len(hf["conversation_rate_per_s"]) == 30
    for key in ("capacity_tokens", "conversation_rate_per_s"):
        assert hp[key][0] == pytest.approx(hf[key][0], rel=1e-12) and hp[key][-1] == pytest.approx(hf[key][-1], rel=1e-12)
    assert hp["token_hit_rate"][0][0] == pytest.approx(hf["token_hit_rate"][0][0], rel=1e-12, abs=1e-15)
    assert hp["token_hit_rate"][-1][-1] == pytest.approx(hf["token_hit_rate"][-1][-1], rel=1e-12, abs=1e-15)
    # the sweeps: 10 points a parameter instead of 40, over the same range
    sp = compute({**BASE, "figures": ["sweeps"], "preview": True})["figures"]["sweeps"]
    sf = compute({**BASE, "figures": ["sweeps"]})["figures"]["sweeps"]
    for name in ("gap_mean_s", "turns_mean"):
        assert len(sp[name]["values"]) == 10 and len(sf[name]["values"]) == 40
        assert sp[name]["values"][-1] == pytest.approx(sf[name]["values"][-1], rel=1e-12)
        assert sp[name]["token_hit_rate"][-1] == pytest.approx(sf[name]["token_hit_rate"][-1], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_preview_must_be_a_boolean(bad):
    with pytest.raises(InputError) as e:
        compute({**BASE, "preview": bad})
    assert e.value.field == "preview"


def test_preview_is_not_an_input_of_setup_a():
    with pytest.raises(InputError) as e:
        compute({**BASE, "compare_with": {**BASE, "preview": True}})
    assert e.value.field == "compare_with.preview"
