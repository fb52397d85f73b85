"""kvcalc.fleet.FleetConfig validation: the instance count is stored as a Python int (the
models index and multiply by it; 3.0 must give the same fleet as 3), and a refused
routing or tier list names its request key, the value and the allowed range (project rule:
InputError naming the field, the value and the range)."""

import pytest

from kvcalc.errors import InputError
from kvcalc.fleet import FleetConfig, TierConfig


@pytest.mark.parametrize("k", [3, 3.0])
def test_instances_stored_as_an_int(k):
    f = FleetConfig(k, "random")
    assert type(f.instances) is int and f.instances == 3
    assert f == FleetConfig(3, "random")


def test_refused_routing_and_tiers_name_field_value_and_range():
    with pytest.raises(InputError) as e:
        FleetConfig(2, "sticky")
    assert e.value.field == "cluster.routing" and e.value.value == "sticky"
    assert "affinity" in e.value.allowed and "random" in e.value.allowed
    with pytest.raises(InputError) as e:
        FleetConfig(2, tiers=[TierConfig()] * 5)
    assert e.value.field == "tiers" and e.value.value == 5
    assert e.value.allowed == "at most 4 tiers below GPU memory" and e.value.problem == "too many"


def test_refused_tier_entries_and_tier_fields():
    with pytest.raises(InputError) as e:
        FleetConfig(2, tiers=["x"])
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == \
        ("tiers", "x", "TierConfig entries", "wrong type")
    with pytest.raises(InputError) as e:
        TierConfig("")
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == \
        ("tiers.name", "", "a non-empty string", "not a name")
    with pytest.raises(InputError) as e:
        FleetConfig(2, tier_mode="mirror")
    assert e.value.field == "tier_mode" and e.value.value == "mirror" and "inclusive" in e.value.allowed
    # integers given for the tier's sizes are kept as floats (tokens and GB/s are real numbers)
    t = TierConfig("cpu", 5, 7)
    assert (type(t.capacity_tokens), type(t.read_gb_per_s)) == (float, float)
    assert (t.capacity_tokens, t.read_gb_per_s) == (5.0, 7.0)


def test_fleet_model_refusals_name_value_and_range():
    import numpy as np

    from kvcalc.fleet import fleet_hit_rates
    from kvcalc.workload import CacheConfig, Workload
    bad = {"instances": 2}
    with pytest.raises(InputError) as e:
        fleet_hit_rates(Workload(), CacheConfig(capacity_tokens=1e5), bad)
    assert (e.value.field, e.value.value, e.value.allowed, e.value.problem) == \
        ("fleet", bad, "a FleetConfig", "wrong type")
    rates = np.array([1.0, 2.0])
    with pytest.raises(InputError) as e:
        fleet_hit_rates(Workload(conversation_rate_per_s=rates), CacheConfig(capacity_tokens=1e5), FleetConfig(2))
    assert e.value.field == "workload.conversation_rate_per_s" and np.array_equal(e.value.value, rates)
    assert (e.value.allowed, e.value.problem) == ("a single number for a fleet", "an array")
    caps = np.array([1e5, 2e5])
    with pytest.raises(InputError) as e:
        fleet_hit_rates(Workload(), CacheConfig(capacity_tokens=caps), FleetConfig(2))
    assert e.value.field == "cache.capacity_tokens" and np.array_equal(e.value.value, caps)
    assert (e.value.allowed, e.value.problem) == ("a single number for a fleet", "an array")


def test_one_turn_conversations_keep_a_random_routing_ceiling_of_one():
    # a one-turn conversation has no own history to scatter: nothing to lose, ceiling 1 (and no
    # division by the zero own-history hit rate); its only hits are the shared prompt's whole
    # blocks: floor(1000 / 16) x 16 = 992 of its 1000 + 200 prompt tokens (default workload)
    from kvcalc.fleet import fleet_hit_rates
    from kvcalc.workload import CacheConfig, Workload
    w = Workload(turns_mean=1.0, turns_distribution="fixed")
    r = fleet_hit_rates(w, CacheConfig(capacity_tokens=1e5), FleetConfig(2, "random"))
    assert r["random_routing_ceiling"] == 1.0
    assert r["request_hit_rate"] == 0.0 and r["ideal_request_hit_rate"] == 0.0
    assert r["token_hit_rate"] == pytest.approx(992 / 1200, abs=1e-12)
