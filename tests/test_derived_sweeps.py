"""The page's figures (kvcalc.sweeps) against a second method: the model called point by point.

Every figure evaluates the hit-rate model once on broadcast arrays; here each
plotted point is recomputed by a separate scalar call of kvcalc.hitrate.hit_rates
with that one parameter changed, and the axes are checked against their stated
construction (log-spaced around the current value, inside the field's limits).
Tolerance 1e-6: the vectorised and the scalar solves of T stop at their own
Newton tolerances (differences ~1e-8 seen); a swapped or shifted point moves by
far more.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kvcalc.hitrate import hit_rates, seed_token_hit_rate
from kvcalc.sweeps import SWEEP_PARAMS, capacity_grid_tokens, curve_vs_capacity, heatmap_capacity_rate, \
    sweeps_all, tornado
from kvcalc.workload import CacheConfig, Workload

W = Workload(conversation_rate_per_s=1.0, turns_mean=5.0, gap_mean_s=60.0, user_tokens_per_turn=200.0,
             output_tokens_per_turn=300.0, system_prompt_tokens=1000.0, service_time_s=2.0)
C = CacheConfig(capacity_tokens=3e5)
TOL = 1e-6


def _tok(w, cap, model="che"):
    return float(hit_rates(w, CacheConfig(capacity_tokens=cap), model)["token_hit_rate"])


def _geometric(x):
    r = np.diff(np.log(np.asarray(x)))
    return np.allclose(r, r[0], rtol=1e-9, atol=1e-12) and r[0] > 0


def test_curve_points_equal_direct_calls():
    caps = [5e4, 1.5e5, 4e5, 2e6]
    out = curve_vs_capacity(W, C, capacities_tokens=caps, model="che")
    assert out["capacity_tokens"] == caps and out["model"] == "che"
    for cap, tok, req, seed in zip(caps, out["token_hit_rate"], out["request_hit_rate"], out["seed_token_hit_rate"]):
        direct = hit_rates(W, CacheConfig(capacity_tokens=cap), "che")
        assert tok == pytest.approx(float(direct["token_hit_rate"]), abs=TOL)
        assert req == pytest.approx(float(direct["request_hit_rate"]), abs=TOL)
        assert seed == pytest.approx(float(seed_token_hit_rate(W, CacheConfig(capacity_tokens=cap))), abs=1e-12)
    for key in ("token_hit_rate", "request_hit_rate", "seed_token_hit_rate"):
        assert len(out[key]) == len(caps), key
    assert out["current_capacity_tokens"] == 3e5
    assert out["current_token_hit_rate"] == pytest.approx(_tok(W, 3e5), abs=TOL)
    # ideal: geometric turns, b = 16 (see test_hitrate's enumeration): the same at any capacity
    assert out["ideal_token_hit_rate"] == pytest.approx(
        float(hit_rates(W, CacheConfig(capacity_tokens=1e12), "che")["ideal_token_hit_rate"]), rel=1e-12)
    assert out["token_hit_rate"] == sorted(out["token_hit_rate"])    # more memory, more hits


def test_capacity_grid_spans_working_set_to_ten_gaps():
    grid = capacity_grid_tokens(W, C, points=50)
    assert len(grid) == 50 and _geometric(grid)
    # low end: 5 % above the in-flight working set (T = 0): just below it the model overloads
    assert not bool(hit_rates(W, CacheConfig(capacity_tokens=grid[0]), "che")["overload"])
    assert bool(hit_rates(W, CacheConfig(capacity_tokens=grid[0] / 1.05 * 0.99), "che")["overload"])
    assert not bool(hit_rates(W, CacheConfig(capacity_tokens=grid[0] / 1.05 * 1.01), "che")["overload"])
    # high end: where the characteristic time reaches ten mean gaps (600 s)
    T_hi = float(hit_rates(W, CacheConfig(capacity_tokens=grid[-1]), "che")["characteristic_time_s"])
    assert T_hi == pytest.approx(600.0, rel=1e-3)
    # a current capacity far outside widens the grid to a factor 4 beyond it
    g = capacity_grid_tokens(W, C, points=30, around=1e3)
    assert g[0] == pytest.approx(1e3 / 4, rel=1e-12) and g[-1] == pytest.approx(grid[-1], rel=1e-12)
    g = capacity_grid_tokens(W, C, points=30, around=1e9)
    assert g[0] == pytest.approx(grid[0], rel=1e-12) and g[-1] == pytest.approx(4e9, rel=1e-12)
    # a zero capacity is ignored; a tiny one stops at one block (64 tokens here: logspace
    # returns 63.99999999999999 for 10**log10(64), the clip keeps it at the limit)
    assert np.array_equal(capacity_grid_tokens(W, C, points=50, around=0.0), grid)
    g = capacity_grid_tokens(W, CacheConfig(capacity_tokens=3e5, block_size_tokens=64), points=30, around=0.5)
    assert g[0] >= 64 and g[0] == pytest.approx(64, rel=1e-12)
    # the grid spans at least a decade: with one turn, 1 s gaps and 100 s of service, the
    # in-flight working set (T = 0) is most of the cache even after ten gaps, so hi = 10 x lo
    w1 = Workload(turns_mean=1, gap_mean_s=1, service_time_s=100, system_prompt_tokens=0)
    g = capacity_grid_tokens(w1, C, points=10)
    assert g[-1] / g[0] == pytest.approx(10.0, rel=1e-12)


def test_every_sweep_row_equals_direct_calls():
    out = sweeps_all(W, C, model="che", points=7)
    assert out["model"] == "che" and set(out) == set(SWEEP_PARAMS) | {"model"}
    for key, scale in SWEEP_PARAMS.items():
        row = out[key]
        cur = float(getattr(W, key))
        assert row["parameter"] == key and row["scale"] == scale and row["current"] == cur
        vals = np.array(row["values"])
        assert len(vals) == 7
        if scale == "log":   # a decade each side of the current value
            assert _geometric(vals)
            lo = 1.0 if key == "turns_mean" else cur / 10   # 0.5 turns is below the 1-turn limit
            assert vals[0] == pytest.approx(lo, rel=1e-9) and vals[-1] == pytest.approx(cur * 10, rel=1e-9)
        else:                # from 0 to the current value + 2 x max(current, 1)
            assert vals[0] == 0.0 and vals[-1] == pytest.approx(cur + 2 * max(cur, 1.0), rel=1e-12)
            assert np.allclose(np.diff(vals), vals[1] - vals[0])
        for i in (0, 3, 6):
            w_i = dataclasses.replace(W, **{key: float(vals[i])})
            assert row["token_hit_rate"][i] == pytest.approx(_tok(w_i, 3e5), abs=TOL), (key, i)


def test_sweep_of_zero_output_tokens_uses_a_positive_log_axis():
    w = dataclasses.replace(W, output_tokens_per_turn=0.0)
    vals = sweeps_all(w, C, model="che", points=5)["output_tokens_per_turn"]["values"]
    assert vals[0] == pytest.approx(0.1, rel=1e-9) and vals[-1] == pytest.approx(10.0, rel=1e-9)


def test_tornado_rows_equal_direct_calls_and_respect_limits():
    w = dataclasses.replace(W, turns_mean=1.1, system_prompt_tokens=0.0)
    out = tornado(w, C, 0.3, model="che")
    assert out["change_fraction"] == 0.3 and out["model"] == "che"
    assert out["base_token_hit_rate"] == pytest.approx(_tok(w, 3e5), abs=TOL)
    rows = {r["parameter"]: r for r in out["rows"]}
    assert set(rows) == set(SWEEP_PARAMS) | {"capacity_tokens"}
    swings = [r["swing"] for r in out["rows"]]
    assert swings == sorted(swings, reverse=True)
    for key, r in rows.items():
        cur = 3e5 if key == "capacity_tokens" else float(getattr(w, key))
        lo, hi = cur * 0.7, cur * 1.3
        if key == "turns_mean":
            lo = 1.0          # 0.77 is below the field's closed lower limit of 1 turn
        assert r["low_value"] == pytest.approx(lo, rel=1e-12) and r["high_value"] == pytest.approx(hi, rel=1e-12)
        if key == "capacity_tokens":
            low, high = _tok(w, lo), _tok(w, hi)
        else:
            low = _tok(dataclasses.replace(w, **{key: lo}), 3e5)
            high = _tok(dataclasses.replace(w, **{key: hi}), 3e5)
        assert r["low_token_hit_rate"] == pytest.approx(low, abs=TOL), key
        assert r["high_token_hit_rate"] == pytest.approx(high, abs=TOL), key
        assert r["swing"] == pytest.approx(abs(high - low), abs=2 * TOL), key


def test_tornado_keeps_open_limits_open():
    # a parameter at its closed lower limit 0 stays 0 on the low side (0 x 0.7)
    w = dataclasses.replace(W, service_time_s=0.0)
    rows = {r["parameter"]: r for r in tornado(w, C, 0.5, model="che")["rows"]}
    assert rows["service_time_s"]["low_value"] == 0.0 and rows["service_time_s"]["high_value"] == 0.0
    # with a change of 0.9 the low side of an open-limit field stays positive
    rows = {r["parameter"]: r for r in tornado(W, C, 0.9, model="che")["rows"]}
    assert rows["gap_mean_s"]["low_value"] == pytest.approx(6.0, rel=1e-12)
    assert rows["conversation_rate_per_s"]["low_value"] == pytest.approx(0.1, rel=1e-12)


def test_heatmap_cells_equal_direct_calls():
    caps = [1e5, 3e5, 1e6]
    out = heatmap_capacity_rate(W, C, capacities_tokens=caps, model="che", points=5)
    rates = out["conversation_rate_per_s"]
    assert out["capacity_tokens"] == caps and len(rates) == 5 and _geometric(rates)
    assert rates[0] == pytest.approx(0.1, rel=1e-9) and rates[-1] == pytest.approx(10.0, rel=1e-9)
    assert len(out["token_hit_rate"]) == 5 and all(len(row) == 3 for row in out["token_hit_rate"])
    assert out["model"] == "che"
    for i in (0, 2, 4):
        for j in range(3):
            direct = _tok(dataclasses.replace(W, conversation_rate_per_s=rates[i]), caps[j])
            assert out["token_hit_rate"][i][j] == pytest.approx(direct, abs=TOL), (i, j)
    default = heatmap_capacity_rate(W, C, model="che", points=4)
    assert len(default["capacity_tokens"]) == 4 and _geometric(default["capacity_tokens"])


def test_default_arguments_of_the_figures():
    # the grids and models the page gets when it passes nothing
    curve = curve_vs_capacity(W, CacheConfig(capacity_tokens=1e9))
    assert curve["model"] == "che" and len(curve["capacity_tokens"]) == 120
    assert curve["capacity_tokens"] == list(capacity_grid_tokens(W, C, 120, around=1e9))
    hm = heatmap_capacity_rate(W, CacheConfig(capacity_tokens=1e9))
    assert hm["model"] == "che" and len(hm["conversation_rate_per_s"]) == 30
    assert hm["capacity_tokens"] == list(capacity_grid_tokens(W, C, 30, around=1e9))
    sw = sweeps_all(W, C)
    assert sw["model"] == "che" and all(len(sw[k]["values"]) == 40 for k in SWEEP_PARAMS)
    td = tornado(W, C)
    assert td["model"] == "che" and td["change_fraction"] == 0.2


def test_sweep_axes_for_small_current_values():
    # a log parameter below 1 is centred on itself (0.5/s -> 0.05 .. 5/s); a linear one
    # below 1 spans 0 .. current + 2 (span max(current, 1))
    w = dataclasses.replace(W, conversation_rate_per_s=0.5, service_time_s=0.5)
    out = sweeps_all(w, C, points=5)
    assert out["conversation_rate_per_s"]["values"][0] == pytest.approx(0.05, rel=1e-9)
    assert out["conversation_rate_per_s"]["values"][-1] == pytest.approx(5.0, rel=1e-9)
    assert out["service_time_s"]["values"][-1] == pytest.approx(2.5, rel=1e-12)


def test_tornado_at_a_full_change_keeps_limits():
    # change 1.0: the low side is 0, allowed for closed-limit fields (system prompt), replaced
    # by 1e-9 x the value for open ones (rate, gap); the high side of capacity stops at 1e13
    rows = {r["parameter"]: r for r in tornado(W, C, 1.0, model="che")["rows"]}
    assert rows["system_prompt_tokens"]["low_value"] == 0.0
    assert rows["gap_mean_s"]["low_value"] == pytest.approx(60e-9, rel=1e-12)
    assert rows["conversation_rate_per_s"]["low_value"] == pytest.approx(1e-9, rel=1e-12)
    assert rows["turns_mean"]["low_value"] == 1.0
    big = {r["parameter"]: r for r in tornado(W, CacheConfig(capacity_tokens=1e13), 0.2, model="che")["rows"]}
    assert big["capacity_tokens"]["high_value"] == 1e13 and big["capacity_tokens"]["low_value"] == 8e12


def test_grid_sizes_and_the_upper_limit_of_a_log_axis():
    assert len(capacity_grid_tokens(W, C)) == 120
    assert len(curve_vs_capacity(W, C, points=17)["capacity_tokens"]) == 17
    # 50 turns: the turns axis runs to 10 x 50 = 500, cut at the field's limit of 200 turns;
    # 10**log10(200) is 200.00000000000003 in floats, so the clip must bring it back
    vals = sweeps_all(dataclasses.replace(W, turns_mean=50.0), C, points=5)["turns_mean"]["values"]
    assert vals[0] == pytest.approx(5.0, rel=1e-12) and vals[-1] == 200.0
