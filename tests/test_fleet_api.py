"""The fleet through kvcalc.api.compute(): request keys cluster.*, tiers, tier_mode,
price_per_gpu_hour, sizing; result keys tier_token_hit_rates, fleet, fleet_options."""

import pytest

from kvcalc.api import compute
from kvcalc.errors import InputError

BASE = {"model": "Qwen/Qwen3-32B", "gpu": "h100-sxm-80gb", "tensor_parallel": 2,
        "workload": {"conversation_rate_per_s": 3, "turns_mean": 6, "gap_mean_s": 45, "system_prompt_tokens": 800}}


def test_every_fleet_option_reproduces_through_compute():
    r = compute({**BASE, "price_per_gpu_hour": 2.5, "target_token_hit_rate": 0.8,
                 "sizing": {"cpu_tier_gib": 256, "tensor_parallel_sizes": [1, 2, 4]}})
    options = r["fleet_options"]
    assert any(o["fits"] for o in options)
    for o in options:
        assert set(o) >= {"tensor_parallel", "instances", "gpus", "tier_gib_per_instance", "token_hit_rate",
                          "fits", "reason"}
        if o["instances"] is None:
            assert not o["fits"] and o["reason"]
            continue
        again = compute({**BASE, **o["request_patch"]})
        assert again["token_hit_rate"] == pytest.approx(o["token_hit_rate"], abs=1e-12)
        if o["sized_for"] == "hit_rate":
            assert again["token_hit_rate"] >= 0.8
        if o["fits"]:
            assert o["cost_per_hour"] == pytest.approx(2.5 * o["gpus"])
    assert r["recommendations"] and all({"code", "params", "message"} <= set(x) for x in r["recommendations"])


@pytest.mark.parametrize("routing", ["affinity", "random", "round_robin", "pooled"])
def test_one_instance_is_the_single_cache_and_says_so(routing):
    single = compute(BASE)
    r = compute({**BASE, "cluster": {"instances": 1, "routing": routing}})
    assert r["token_hit_rate"] == single["token_hit_rate"]
    assert r["tier_token_hit_rates"] == [single["token_hit_rate"]]
    codes = [n["code"] for n in r["warning_details"]]
    assert ("routing_irrelevant_with_one_instance" in codes) == (routing != "affinity")


def test_tiers_split_the_total_and_report_load_against_recompute():
    r = compute({**BASE, "cluster": {"instances": 4, "routing": "random"},
                 "tiers": [{"name": "cpu", "capacity_gib": 64}, {"name": "ssd", "capacity_tokens": 2e6}]})
    tiers = r["tier_token_hit_rates"]
    assert len(tiers) == 3 and sum(tiers) == pytest.approx(r["token_hit_rate"], abs=1e-12)
    assert r["fleet"]["tiers"][0]["read_gb_per_s"] == 64.0      # the H100 SXM preset's host link
    assert r["fleet"]["tiers"][1]["read_gb_per_s"] == 7.0       # the stated NVMe figure
    # 64 GiB of KV at 131072 B/token per GPU x TP 2 = 262144 tokens, whole blocks
    assert r["fleet"]["tiers"][0]["capacity_tokens"] == 64 * 2**30 // (131072 * 2)
    assert [t["name"] for t in r["tiers_report"]] == ["cpu", "ssd"]
    assert r["fleet"]["affinity_gain_pp"] > 0
    assert 0 < r["fleet"]["random_routing_ceiling"] < 1


def test_overload_is_explained_with_the_memory_that_ends_it():
    r = compute({**BASE, "cache": {"capacity_tokens": 20000}})
    assert r["overload"] and r["token_hit_rate"] > 0.2          # the shared prompt (simulator: ~23 %)
    assert r["overload_ends_at_capacity_tokens"] > 20000
    assert "ends above" in r["overload_message"]
    # 131072 B/token per GPU (Qwen3-32B, bf16, TP = 2)
    assert r["overload_ends_at_kv_gib_per_gpu"] == pytest.approx(
        r["overload_ends_at_capacity_tokens"] * 131072 / 2**30)


@pytest.mark.parametrize("patch,field", [
    ({"cluster": {"instances": 0}}, "cluster.instances"),
    ({"cluster": {"instances": 2, "routing": "sticky"}}, "cluster.routing"),
    ({"cluster": {"replicas": 2}}, "cluster.replicas"),
    ({"tiers": [{"name": "cpu", "capacity_tokens": 8}]}, "tiers[0].capacity_tokens"),
    ({"tiers": [{"name": "cpu", "capacity_gib": 10, "read_gb_per_s": 0}]}, "tiers[0].read_gb_per_s"),
    ({"tiers": [{"name": "cpu", "capacity_gib": 10, "capacity_tokens": 1e5}]}, "tiers[0].capacity_tokens"),
    ({"tiers": [{"name": "cpu", "size": 10}]}, "tiers[0].size"),
    ({"tiers": {"name": "cpu"}}, "tiers"),
    ({"tier_mode": "write_back"}, "tier_mode"),
    ({"price_per_gpu_hour": -1}, "price_per_gpu_hour"),
    ({"mbu": 1.5, "sizing": {}}, "mbu"),
])
def test_bad_fleet_inputs_name_the_field(patch, field):
    with pytest.raises(InputError) as e:
        compute({**BASE, **patch})
    assert e.value.field == field


def test_capacity_gib_needs_a_model():
    with pytest.raises(InputError) as e:
        compute({"workload": {}, "cache": {"capacity_tokens": 1e5}, "tiers": [{"name": "cpu", "capacity_gib": 4}]})
    assert e.value.field == "tiers[0].capacity_gib"


def test_simulate_endpoint_runs_the_fleet():
    from kvcalc.api import simulate
    req = {"workload": {}, "cache": {"capacity_tokens": 1e5}, "cluster": {"instances": 4, "routing": "random"},
           "tiers": [{"name": "cpu", "capacity_tokens": 1e5}], "simulation": {"n_conversations": 20000}}
    out = simulate(req)
    p = out["points"][0]
    assert p["routing"] == "random" and len(p["tier_token_hit_rates"]) == 2
    # the model's headline and the simulated point agree (fleet grid tolerance: 3 pp)
    assert abs(p["token_hit_rate"] - out["model_token_hit_rate"]) <= 0.03


@pytest.mark.parametrize("hit_model", ["refined", "che", "closed", "seed"])
def test_every_hit_model_answers_for_a_fleet(hit_model):
    for routing in ("affinity", "random"):
        r = compute({"workload": {}, "cache": {"capacity_tokens": 2e5}, "hit_model": hit_model,
                     "cluster": {"instances": 2, "routing": routing}})
        assert 0 < r["token_hit_rate"] < 1 and r["overload_ends_at_capacity_tokens"] > 0


def test_fifo_with_scattered_routing_is_refused_by_name():
    with pytest.raises(InputError) as e:
        compute({"workload": {}, "cache": {"capacity_tokens": 2e5, "eviction": "fifo"},
                 "cluster": {"instances": 2, "routing": "random"}})
    assert e.value.field == "cache.eviction"


# ---------------------------------------------------------------- sensitivity of a fleet (kvcalc.fleet_sweeps)

@pytest.mark.parametrize("routing", ["affinity", "random"])
def test_fleet_sensitivity_panels_pass_through_the_headline(routing):
    """With a fleet set, the sweeps and the tornado are the fleet's: each panel at its current
    value, and the tornado's base, is the headline itself (che model: the same model as the
    figures), and the instances and CPU-tier panels are added."""
    req = {**BASE, "hit_model": "che", "cluster": {"instances": 4, "routing": routing},
           "tiers": [{"name": "cpu", "capacity_gib": 64}], "figures": ["sweeps", "tornado"]}
    r = compute(req)
    head = r["token_hit_rate"]
    sw = r["figures"]["sweeps"]
    k = sw["cluster.instances"]
    assert k["current"] == 4 and 1.0 in k["values"]
    assert k["token_hit_rate"][k["values"].index(4.0)] == pytest.approx(head, abs=1e-12)
    # K = 1 is the single cache at this capacity with the tier (every routing equal there)
    one = compute({**req, "cluster": {"instances": 1}, "figures": []})["token_hit_rate"]
    assert k["token_hit_rate"][0] == pytest.approx(one, abs=1e-9)
    tier = sw["tiers[0].capacity_gib"]
    assert tier["current"] == pytest.approx(64.0, rel=1e-3)          # GiB per instance, block-rounded
    # exclusive tiers: one LRU stack of the summed capacity, so more CPU tier never lowers the hit rate
    assert all(b >= a - 1e-12 for a, b in zip(tier["token_hit_rate"], tier["token_hit_rate"][1:]))
    for name in ("conversation_rate_per_s", "gap_mean_s", "turns_mean"):
        assert len(sw[name]["values"]) == len(sw[name]["token_hit_rate"]) >= 8
    tor = r["figures"]["tornado"]
    assert tor["base_token_hit_rate"] == pytest.approx(head, abs=1e-12)
    params = [row["parameter"] for row in tor["rows"]]
    assert {"cluster.instances", "tiers[0].capacity_gib", "capacity_tokens", "gap_mean_s"} <= set(params)
    swings = [row["swing"] for row in tor["rows"]]
    assert swings == sorted(swings, reverse=True)
    inst = next(row for row in tor["rows"] if row["parameter"] == "cluster.instances")
    assert (inst["low_value"], inst["high_value"]) == (3.0, 5.0)      # 4 x (1 -+ 0.2), whole instances
    # a longer think time ages the history more: the fleet's hit rate falls (a real direction)
    gap = next(row for row in tor["rows"] if row["parameter"] == "gap_mean_s")
    assert gap["high_token_hit_rate"] < gap["low_token_hit_rate"]


def test_no_fleet_keeps_the_single_cache_sensitivity():
    r = compute({**BASE, "figures": ["sweeps", "tornado"]})
    assert "cluster.instances" not in r["figures"]["sweeps"]
    assert "cluster.instances" not in [row["parameter"] for row in r["figures"]["tornado"]["rows"]]


def test_one_turn_conversations_under_random_routing():
    """No own history to lose: the random-routing ceiling is 1 (was a division by zero), and
    the hit rate is the shared system prompt's share of each prompt, in whole blocks:
    floor(1000 / 16) * 16 = 992 of 1000 + 200 tokens (hand derivation)."""
    r = compute({"cache": {"capacity_tokens": 1e5}, "workload": {"turns_mean": 1},
                 "cluster": {"instances": 4, "routing": "random"}})
    assert r["fleet"]["random_routing_ceiling"] == 1.0
    assert r["token_hit_rate"] == pytest.approx(992 / 1200, abs=1e-9)
