"""Shortcuts the preview path takes (speed) give the numbers of the long way, bit for bit.

* kvcalc.hitrate.structure computes the sums over turns on the shape of the turn inputs alone
  and broadcasts them: each element must equal the structure of that element's scalar inputs
  (the second method: one scalar call per point).
* hit_rates(..., also=("che",)) takes Che's token hit rate from the headline model's structure
  and T: it must equal Che's own call, under every eviction policy and on arrays.
* compute's che_token_hit_rate and the tornado's base rate come from that: they must equal
  Che's own call.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kvcalc.api import compute
from kvcalc.hitrate import hit_rates, structure
from kvcalc.workload import CacheConfig, Workload

WL = dict(conversation_rate_per_s=1.3, turns_mean=5.5, gap_mean_s=80.0, user_tokens_per_turn=210.0,
          output_tokens_per_turn=290.0, system_prompt_tokens=1000.0, service_time_s=2.0)


@pytest.mark.parametrize("turns", ["geometric", "fixed"])
def test_structure_on_a_capacity_and_rate_grid_equals_pointwise_scalar_structures(turns):
    rates = np.array([0.2, 1.0, 4.0])[:, None]
    caps = np.array([2e3, 5e4, 6e5, 3e6])[None, :]
    w = Workload(**{**WL, "conversation_rate_per_s": rates}, turns_distribution=turns)
    st = structure(w, CacheConfig(capacity_tokens=caps, block_size_tokens=16))
    assert st.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            one = structure(Workload(**{**WL, "conversation_rate_per_s": float(rates[i, 0])}, turns_distribution=turns),
                            CacheConfig(capacity_tokens=float(caps[0, j]), block_size_tokens=16))
            for f in dataclasses.fields(st):
                v = getattr(st, f.name)
                if isinstance(v, np.ndarray) and f.name not in ("w_ret", "B"):
                    assert v.shape == (3, 4), f.name
                    assert v[i, j] == getattr(one, f.name), f.name
            assert np.array_equal(st.B[i, j], one.B) and np.array_equal(st.w_ret[i, j], one.w_ret)


def test_structure_with_turn_inputs_varying_equals_pointwise():
    users = np.array([50.0, 400.0])[:, None]
    gaps = np.array([10.0, 300.0])[None, :]
    w = Workload(**{**WL, "user_tokens_per_turn": users, "gap_mean_s": gaps})
    st = structure(w, CacheConfig(capacity_tokens=1e5, block_size_tokens=16))
    for i in range(2):
        for j in range(2):
            one = structure(Workload(**{**WL, "user_tokens_per_turn": float(users[i, 0]), "gap_mean_s": float(gaps[0, j])}),
                            CacheConfig(capacity_tokens=1e5, block_size_tokens=16))
            for name in ("A1", "A2", "A1sq", "A2sq", "pin_mean", "pin_var", "denom_tokens", "EN", "returning_any"):
                assert getattr(st, name)[i, j] == getattr(one, name), name


@pytest.mark.parametrize("eviction,ttl", [("lru", float("inf")), ("ttl", 45.0), ("fifo", float("inf"))])
@pytest.mark.parametrize("model", ["refined", "seed"])
def test_che_alongside_the_headline_model_equals_ches_own_call(model, eviction, ttl):
    caps = np.array([3e3, 4e4, 2.5e5, 2e6])
    w = Workload(**WL)
    c = CacheConfig(capacity_tokens=caps if eviction != "fifo" else 2.5e5, block_size_tokens=16,
                    eviction=eviction, ttl_s=ttl)
    both = hit_rates(w, c, model, also=("che",))
    assert np.array_equal(both["che_token_hit_rate"], hit_rates(w, c, "che")["token_hit_rate"])
    alone = hit_rates(w, c, model)
    assert np.array_equal(both["token_hit_rate"], alone["token_hit_rate"])
    # Che differs from the headline model (the extra key is not a copy of the headline), except
    # under FIFO, where the FIFO model replaces both refined and Che (the seed formula stays)
    same = eviction == "fifo" and model == "refined"
    assert np.array_equal(both["che_token_hit_rate"], both["token_hit_rate"]) == same


def test_a_model_answering_alone_gets_no_extra():
    r = hit_rates(Workload(**{**WL, "system_prompt_tokens": 0.0}), CacheConfig(capacity_tokens=3e5, block_size_tokens=1),
                  "closed", also=("che",))
    assert "che_token_hit_rate" not in r


@pytest.mark.parametrize("preview", [True, False])
def test_compute_che_rate_and_tornado_base_equal_ches_own_call(preview):
    req = {"workload": WL, "cache": {"capacity_tokens": 2.2e5}, "figures": ["tornado"], "preview": preview}
    r = compute(req)
    che = float(hit_rates(Workload(**WL), CacheConfig(capacity_tokens=2.2e5, block_size_tokens=16), "che")["token_hit_rate"])
    assert r["che_token_hit_rate"] == che
    assert r["figures"]["tornado"]["base_token_hit_rate"] == che
    assert r["token_hit_rate"] != che   # refined, the headline model, is another number
