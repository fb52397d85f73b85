"""Which requests raise, exactly (issue #10: no test may return early on any InputError).

The property test draws requests whose every field is either inside its documented
range or a value that is out of range / of the wrong type, and knows which: compute()
must answer iff no field is bad, and when it raises, the InputError must name one of
the bad fields by its request key path.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.api import compute
from kvcalc.errors import InputError

# Values no numeric field accepts (NaN, infinities, negatives, text, bools, a list, 1e30
# above every upper limit); None is "missing" for the workload fields, which have no default
# once given explicitly as null. TTL accepts +inf and None (no TTL) and huge values.
_BAD_NUMBER = [math.nan, -math.inf, math.inf, -5.0, "abc", True, None, [1.0], 1e30]
_BAD_TTL = [math.nan, -math.inf, -5.0, 0.0, "abc", True, [1.0]]
_BAD_CAPACITY = [math.nan, math.inf, -5.0, "abc", True, None, [1.0], 1e30]

_VALID = {
    "workload.conversation_rate_per_s": st.floats(1e-3, 1e4),
    "workload.turns_mean": st.floats(1, 50),
    "workload.gap_mean_s": st.floats(1e-3, 1e4),
    "workload.gap_lognormal_sigma": st.floats(0.05, 3.0),
    "workload.user_tokens_per_turn": st.floats(1, 5000),
    "workload.output_tokens_per_turn": st.floats(0, 5000),
    "workload.system_prompt_tokens": st.floats(0, 20000),
    "workload.service_time_s": st.floats(0, 100),
    "cache.capacity_tokens": st.floats(0, 1e9),
    "cache.ttl_s": st.floats(1, 1e4),
}
_BAD = {k: (_BAD_TTL if k == "cache.ttl_s" else _BAD_CAPACITY if k == "cache.capacity_tokens" else _BAD_NUMBER)
        for k in _VALID}


@st.composite
def marked_requests(draw):
    req = {"workload": {"gap_distribution": draw(st.sampled_from(["exponential", "deterministic", "lognormal"])),
                        "turns_distribution": draw(st.sampled_from(["geometric", "fixed"]))},
           "cache": {"block_size_tokens": draw(st.sampled_from([1, 16, 64, 512])),
                     "eviction": draw(st.sampled_from(["lru", "ttl", "fifo"]))},
           "hit_model": draw(st.sampled_from(["refined", "che", "seed"]))}
    bad = set()
    for path, valid in _VALID.items():
        section, key = path.split(".")
        if draw(st.integers(0, 9)) == 0:
            req[section][key] = draw(st.sampled_from(_BAD[path]))
            bad.add(path)
        else:
            req[section][key] = draw(valid)
    return req, bad


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(marked_requests())
def test_a_request_raises_iff_a_field_is_bad_and_names_it(marked):
    req, bad = marked
    if bad:
        with pytest.raises(InputError) as e:
            compute(req)
        assert e.value.field in bad, (e.value.field, bad)
        assert e.value.allowed
        return
    r = compute(req)
    for key in ("token_hit_rate", "request_hit_rate", "ideal_token_hit_rate"):
        assert r[key] is not None and 0.0 <= r[key] <= 1.0, (key, r[key])
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("path", sorted(_VALID))
def test_every_bad_value_of_every_field_is_named(path):
    section, key = path.split(".")
    for value in _BAD[path]:
        req = {"workload": {}, "cache": {"capacity_tokens": 3e5, "eviction": "ttl", "ttl_s": 60.0}}
        req[section][key] = value
        with pytest.raises(InputError) as e:
            compute(req)
        assert e.value.field == path, (value, e.value.field)


def test_a_list_capacity_is_named():
    with pytest.raises(InputError) as e:
        compute({"workload": {}, "cache": {"capacity_tokens": [1.0]}})
    assert e.value.field == "cache.capacity_tokens"


# Was a bug (FIFO inverse built a CacheConfig above the 1e13-token limit and raised on a valid request).
def test_inverse_beyond_the_capacity_limit():
    req = {"workload": {"conversation_rate_per_s": 7953.0, "turns_mean": 16.0, "gap_mean_s": 1180.0,
                        "user_tokens_per_turn": 1.0, "output_tokens_per_turn": 2446.0,
                        "system_prompt_tokens": 0.0, "service_time_s": 0.0},
           "cache": {"block_size_tokens": 1, "eviction": "fifo", "capacity_tokens": 0.0}}
    inv = compute(req)["inverse"]
    assert inv["reachable"] is False or inv["capacity_tokens"] <= 1e13
