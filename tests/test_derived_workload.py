"""kvcalc.workload: the turn-count distribution and the validated inputs, against hand
computations written beside each assertion (issue #10, mutation testing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kvcalc.errors import InputError
from kvcalc.workload import CacheConfig, Workload, turn_pmf, turn_support


# ----------------------------------------------------------------------------- turn_support / turn_pmf

def test_geometric_support_reaches_the_tail_bound():
    # P(N > k) = (1 - 1/L)^k < eps: L = 4 -> k > ln(1e-10) / ln(0.75) = -23.0259 / -0.287682 = 80.04,
    # so ceil = 81, plus one: 82
    assert turn_support(4.0, "geometric") == 82
    assert 0.75 ** 81 < 1e-10 < 0.75 ** 80
    # eps = 1e-4: ln(1e-4) / ln(0.5) = 13.29 -> 14, plus one: 15 (L = 2)
    assert turn_support(2.0, "geometric", eps=1e-4) == 15
    # arrays: the largest mean decides
    assert turn_support(np.array([2.0, 4.0]), "geometric") == 82


def test_support_of_one_turn_and_fixed():
    assert turn_support(1.0, "geometric") == 1        # p = 1: every conversation has one turn
    assert turn_support(0.5, "geometric") == 1
    assert turn_support(2.5, "fixed") == 3            # 2 or 3 turns
    assert turn_support(3.0, "fixed") == 3
    assert turn_support(np.array([1.2, 6.5]), "fixed") == 7


def test_geometric_pmf_by_hand():
    # p (1 - p)^(k - 1), p = 1/4: 1/4, 3/16, 9/64, 27/256
    assert turn_pmf(4.0, "geometric", 4).tolist() == [0.25, 0.1875, 0.140625, 0.10546875]   # exact binary
    # default kmax: the support, and the mass sums to 1 - 0.75^82 (1 - 5.6e-11)
    pmf = turn_pmf(4.0, "geometric")
    assert pmf.shape == (82,)      # np.shape(4.0) + (kmax,)
    assert pmf.sum() == pytest.approx(1 - 0.75 ** 82, abs=1e-14)
    # the mean sum k P(N = k) is L = 4 up to the cut tail
    assert (pmf * np.arange(1, 83)).sum() == pytest.approx(4.0, abs=1e-7)
    # one turn: all mass at k = 1
    assert turn_pmf(1.0, "geometric", 3).tolist() == [1.0, 0.0, 0.0]


def test_fixed_pmf_mixes_floor_and_ceil():
    # L = 2.25: 3/4 at 2 turns, 1/4 at 3 (mean 2 * 0.75 + 3 * 0.25 = 2.25)
    assert turn_pmf(2.25, "fixed", 4).tolist() == [0.0, 0.75, 0.25, 0.0]
    assert turn_pmf(3.0, "fixed", 4).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert turn_pmf(2.5, "fixed").tolist() == [0.0, 0.5, 0.5]


def test_pmf_shape_broadcasts_over_arrays():
    pmf = turn_pmf(np.array([2.0, 4.0]), "geometric", 3)
    assert pmf.shape == (2, 3)
    assert pmf.tolist() == [[0.5, 0.25, 0.125], [0.25, 0.1875, 0.140625]]   # exact binary fractions


# ----------------------------------------------------------------------------- Workload / CacheConfig

def test_tokens_per_turn_is_user_plus_output():
    assert Workload(user_tokens_per_turn=120.0, output_tokens_per_turn=35.0).tokens_per_turn == 155.0


def test_lists_become_float_arrays_and_round_trip():
    w = Workload(turns_mean=[2, 3], gap_mean_s=[1.5, 2])
    assert isinstance(w.turns_mean, np.ndarray) and w.turns_mean.dtype == float
    assert w.turns_mean.tolist() == [2.0, 3.0]
    d = w.to_dict()
    assert d["turns_mean"] == [2.0, 3.0] and d["gap_mean_s"] == [1.5, 2.0]
    assert d["turns_distribution"] == "geometric" and d["conversation_rate_per_s"] == 1.0
    assert Workload.from_dict(d).to_dict() == d


def test_defaults_and_from_dict():
    w = Workload.from_dict(None)
    assert (w.conversation_rate_per_s, w.turns_mean, w.gap_mean_s, w.user_tokens_per_turn,
            w.output_tokens_per_turn, w.system_prompt_tokens, w.service_time_s,
            w.gap_lognormal_sigma) == (1.0, 5.0, 60.0, 200.0, 300.0, 1000.0, 2.0, 1.0)
    assert Workload.from_dict({"turns_mean": 7}).turns_mean == 7.0


@pytest.mark.parametrize("bad, field", [
    ("nope", "workload"),
    ({"turns": 3}, "workload.turns"),
    ({"zeta": 1, "alpha": 2}, "workload.alpha"),          # the first unknown key in sorted order
])
def test_from_dict_refuses(bad, field):
    with pytest.raises(InputError) as e:
        Workload.from_dict(bad)
    assert e.value.field == field


@pytest.mark.parametrize("kwargs, field", [
    ({"turns_mean": ["a", "b"]}, "workload.turns_mean"),
    ({"turns_mean": []}, "workload.turns_mean"),
    ({"turns_mean": [2.0, 0.5]}, "workload.turns_mean"),             # below 1
    ({"gap_mean_s": [1.0, 0.0]}, "workload.gap_mean_s"),             # open at 0
    ({"gap_mean_s": 0.0}, "workload.gap_mean_s"),
    ({"user_tokens_per_turn": [5.0, math.nan]}, "workload.user_tokens_per_turn"),
    ({"user_tokens_per_turn": [5.0, math.inf]}, "workload.user_tokens_per_turn"),
    ({"system_prompt_tokens": [2e7]}, "workload.system_prompt_tokens"),  # above 1e7
    ({"turns_distribution": "poisson"}, "workload.turns_distribution"),
    ({"gap_distribution": "pareto"}, "workload.gap_distribution"),
])
def test_workload_refuses_bad_fields(kwargs, field):
    with pytest.raises(InputError) as e:
        Workload(**kwargs)
    assert e.value.field == field


def test_bad_list_error_names_the_bad_element():
    with pytest.raises(InputError) as e:
        Workload(turns_mean=[2.0, 3.0, 0.25])
    assert e.value.value == 0.25
    with pytest.raises(InputError) as e:
        Workload(turns_mean=["x"])
    assert "[1, 200]" in str(e.value)          # the allowed range, closed at both ends


def test_open_range_is_written_open():
    with pytest.raises(InputError) as e:
        Workload(gap_mean_s=["x"])
    assert "(0, 1e+07]" in str(e.value)


def test_edges_inside_the_range_are_accepted():
    w = Workload(turns_mean=[1.0, 200.0], output_tokens_per_turn=[0.0, 1e7])
    assert w.turns_mean.tolist() == [1.0, 200.0] and w.output_tokens_per_turn.tolist() == [0.0, 1e7]


def test_cache_config_normalises():
    c = CacheConfig(capacity_tokens=[1000, 2000], block_size_tokens=32.0, ttl_s=5)
    assert c.capacity_tokens.tolist() == [1000.0, 2000.0]
    assert c.block_size_tokens == 32 and isinstance(c.block_size_tokens, int)
    assert c.ttl_s == 5.0 and isinstance(c.ttl_s, float)
    d = CacheConfig()
    assert d.ttl_s == math.inf and d.eviction == "lru" and d.block_size_tokens == 16
    assert d.capacity_tokens == 1_000_000.0


@pytest.mark.parametrize("kwargs, field", [
    ({"eviction": "random"}, "cache.eviction"),
    ({"block_size_tokens": 0}, "cache.block_size_tokens"),
    ({"ttl_s": 0.0}, "cache.ttl_s"),
    ({"ttl_s": math.nan}, "cache.ttl_s"),
    ({"capacity_tokens": -1.0}, "cache.capacity_tokens"),
])
def test_cache_config_refuses(kwargs, field):
    with pytest.raises(InputError) as e:
        CacheConfig(**kwargs)
    assert e.value.field == field


def test_to_dict_writes_infinity_as_none():
    from kvcalc.workload import _plain
    assert _plain(math.inf) is None and _plain(2.0) == 2.0 and _plain(np.array([1.0])) == [1.0]


# ----------------------------------------------------------------------------- the error contract (field, value, allowed, problem, code)

def test_error_details_of_from_dict():
    with pytest.raises(InputError) as e:
        Workload.from_dict("nope")
    assert (e.value.value, e.value.allowed, e.value.problem, e.value.code) == \
        ("nope", "an object of workload fields", "not an object", "not_an_object")
    with pytest.raises(InputError) as e:
        Workload.from_dict({"zz": 3})
    assert (e.value.value, e.value.problem, e.value.code) == (3, "unknown key", "unknown_key")
    assert e.value.allowed.startswith("one of the keys conversation_rate_per_s, gap_distribution, ")


def test_error_details_of_a_bad_list():
    with pytest.raises(InputError) as e:
        Workload(turns_mean=["x"])
    assert (e.value.value, e.value.problem, e.value.code) == (["x"], "not a number", "not_a_number")
    with pytest.raises(InputError) as e:
        Workload(turns_mean=[[1.0, 2.0], [3.0]])      # ragged: numpy cannot make an array of it
    assert e.value.field == "workload.turns_mean" and e.value.code == "not_a_number"


def test_infinity_is_not_finite_not_out_of_range():
    # every workload field has a finite upper end, so inf is refused as "not finite"
    with pytest.raises(InputError) as e:
        Workload(user_tokens_per_turn=[5.0, math.inf])
    assert e.value.code == "not_finite"
    with pytest.raises(InputError) as e:
        Workload(user_tokens_per_turn=math.inf)
    assert e.value.code == "not_finite"


def test_scalar_above_the_upper_end_is_refused():
    with pytest.raises(InputError) as e:
        Workload(system_prompt_tokens=2e7)             # limit 1e7
    assert e.value.field == "workload.system_prompt_tokens" and e.value.code == "out_of_range"
