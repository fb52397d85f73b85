"""compute()'s answer modules (memory_answer, panels, figure_data, inverse_answer, explain,
export): each request value must reach the engine command, figure or panel it sets (issue #10,
mutation testing: every test here failed on a surviving mutant of the first run).

Expected values are the request's own values written into the command (engine_cmd's documented
flags), or derived by hand in the comments; never copied from a run.
"""

import pytest

from kvcalc.api import compute

LLAMA, H100 = "meta-llama/Llama-3.1-8B", "h100-sxm-80gb"


def _argv(r, engine="vllm"):
    return r["engine_commands"][engine]["argv"]


def _flag(argv, name):
    return argv[argv.index(name) + 1]


def test_engine_command_takes_the_requests_utilization_and_block_size():
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "gpu_memory_utilization": 0.8,
                 "cache": {"block_size_tokens": 32}})
    v, s = _argv(r), _argv(r, "sglang")
    assert _flag(v, "--gpu-memory-utilization") == "0.8" and _flag(s, "--mem-fraction-static") == "0.8"
    assert _flag(v, "--block-size") == "32" and _flag(s, "--page-size") == "32"


def test_engine_command_without_a_kv_dtype_writes_auto_and_no_note():
    # no kv_cache_dtype in the request: the model's own dtype ("auto"), which both engines accept:
    # no "has no engine flag value" note
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}})
    assert _flag(_argv(r), "--kv-cache-dtype") == "auto" and _flag(_argv(r, "sglang"), "--kv-cache-dtype") == "auto"
    codes = [n["code"] for n in r["engine_commands"]["notes"]]
    assert "kv_dtype_not_in_engines" not in codes
    assert codes == ["memory_fraction_semantics"]


def test_fp8_weights_on_a_bf16_checkpoint_quantize_at_load():
    # Llama-3.1-8B's checkpoint is bf16; fp8 weights asked for: both engines quantize at load
    # time (--quantization fp8), no other checkpoint needed
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "weight_dtype": "fp8"})
    assert _flag(_argv(r), "--quantization") == "fp8" and _flag(_argv(r, "sglang"), "--quantization") == "fp8"
    # int4 weights need an int4 checkpoint: a note naming both dtypes, and no flag
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "weight_dtype": "int4"})
    assert "--quantization" not in _argv(r)
    note = [n for n in r["engine_commands"]["notes"] if n["code"] == "needs_quantized_checkpoint"]
    assert note and note[0]["params"] == {"weight_dtype": "int4", "checkpoint": "bf16"}
    # the checkpoint's own dtype: nothing to say
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "weight_dtype": "bf16"})
    assert "--quantization" not in _argv(r)
    assert all(n["code"] != "needs_quantized_checkpoint" for n in r["engine_commands"]["notes"])


# ----------------------------------------------------------------------------- figure_data

def test_preview_grids_are_coarser_by_the_documented_factors():
    from kvcalc.figure_data import figures_result
    from kvcalc.workload import CacheConfig, Workload
    w = Workload()
    figs = ["curve", "sweeps", "heatmap"]
    # LRU: 120 / 40 / 30 points; a preview keeps a third of the curve (40), a quarter of the sweeps
    # but at least 6 (10), a third of the heatmap's side but at least 6 (10)
    f = figures_result({"figures": figs}, w, CacheConfig(capacity_tokens=2e5), "che", None, coarse=True)
    assert len(f["curve"]["capacity_tokens"]) == 40
    assert len(f["sweeps"]["gap_mean_s"]["values"]) == 10
    assert len(f["heatmap"]["capacity_tokens"]) == 10 and len(f["heatmap"]["conversation_rate_per_s"]) == 10
    # FIFO: 30 / 10 / 10 points; a preview: 10 curve points, and the floor of 6 for the others
    # (10 // 4 = 2 and 10 // 3 = 3 are below it)
    f = figures_result({"figures": figs}, w, CacheConfig(capacity_tokens=2e5, eviction="fifo"), "refined", None,
                       coarse=True)
    assert len(f["curve"]["capacity_tokens"]) == 10
    assert len(f["sweeps"]["gap_mean_s"]["values"]) == 6
    assert len(f["heatmap"]["capacity_tokens"]) == 6 and len(f["heatmap"]["conversation_rate_per_s"]) == 6


@pytest.mark.parametrize("hit_model,want", [("refined", "che"), ("seed", "che"), ("che", "che"), ("closed", "closed")])
def test_figures_use_the_fast_model(hit_model, want):
    # the charts draw the fast model: Che for refined and seed (the module docstring), the asked
    # model otherwise
    from kvcalc.figure_data import figures_result
    from kvcalc.workload import CacheConfig, Workload
    f = figures_result({"figures": ["curve", "kv_context", "sweeps", "tornado", "heatmap"]}, Workload(),
                       CacheConfig(capacity_tokens=2e5), hit_model, None, coarse=True)
    assert set(f) == {"curve", "sweeps", "tornado", "heatmap"}
    assert {f[k]["model"] for k in f} == {want}
    # the tornado's base is the fast model's own rate at the request's point (a second call)
    from kvcalc.hitrate import hit_rates
    base = float(hit_rates(Workload(), CacheConfig(capacity_tokens=2e5), want)["token_hit_rate"])
    assert f["tornado"]["base_token_hit_rate"] == pytest.approx(base, rel=1e-9)


# ----------------------------------------------------------------------------- inverse_answer

def _fresh_inverse():
    from kvcalc import inverse_answer
    inverse_answer._inverse_cached.cache_clear()
    return inverse_answer.inverse_result


def test_ttl_cap_is_an_unreachable_result_with_its_detail():
    from kvcalc.workload import CacheConfig, Workload
    inverse_result = _fresh_inverse()
    # exponential gaps of mean 60 s and a TTL of 1 s: at most P(gap <= 1 s) = 1 - e^(-1/60) = 1.65 %
    # of the own history can hit, far below 50 %
    w = Workload()
    inv = inverse_result(w, CacheConfig(capacity_tokens=1e5, eviction="ttl", ttl_s=1.0), 0.5, "che")
    assert inv["status"] == "unreachable" and inv["reachable"] is False and inv["capacity_tokens"] is None
    d = inv["detail"]
    assert d["code"] == "inverse_ttl_cap" and d["message"] == inv["message"]
    assert d["params"] == {"target_token_hit_rate": 0.5, "ideal_token_hit_rate": inv["ideal_token_hit_rate"],
                           "ttl_s": 1.0}
    assert "reason" not in inv


def test_inverse_memo_tells_its_inputs_apart():
    """The memo is keyed on everything but the capacity: the same workload under another TTL,
    eviction, block size, target or model is another answer (each checked against a fresh solve)."""
    from kvcalc.workload import CacheConfig, Workload
    inverse_result = _fresh_inverse()
    w = Workload()
    base = dict(capacity_tokens=1e5, block_size_tokens=16)
    first = inverse_result(w, CacheConfig(**base, eviction="ttl", ttl_s=1e5), 0.5, "che")
    assert first["status"] == "ok"
    variants = [
        (CacheConfig(**base, eviction="ttl", ttl_s=1.0), 0.5, "che"),      # TTL 1 s: capped (above)
        (CacheConfig(capacity_tokens=1e5, block_size_tokens=256, eviction="ttl", ttl_s=1e5), 0.5, "che"),
        (CacheConfig(**base, eviction="ttl", ttl_s=1e5), 0.6, "che"),
        (CacheConfig(**base, eviction="ttl", ttl_s=1e5), 0.5, "refined"),
        (CacheConfig(**base, eviction="lru"), 0.5, "che"),
    ]
    from kvcalc import inverse_answer
    for c, target, model in variants:
        memo = inverse_result(w, c, target, model)
        inverse_answer._inverse_cached.cache_clear()
        fresh = inverse_result(w, c, target, model)
        assert memo == fresh, (c, target, model)
    # and those answers differ from the first where they should: the TTL cap, a coarser block
    # (fewer cached tokens per conversation: a larger capacity), a higher target
    assert inverse_result(w, variants[0][0], 0.5, "che")["status"] == "unreachable"
    assert inverse_result(w, variants[1][0], 0.5, "che")["capacity_tokens"] != first["capacity_tokens"]
    assert inverse_result(w, variants[2][0], 0.6, "che")["capacity_tokens"] > first["capacity_tokens"]
    # Che under a TTL far above T* equals Che under LRU
    assert inverse_result(w, variants[4][0], 0.5, "che")["capacity_tokens"] == pytest.approx(first["capacity_tokens"],
                                                                                           rel=1e-9)


# ----------------------------------------------------------------------------- memory_answer: kv_context

def test_kv_context_figure_only_when_asked_and_its_reload_over_the_gpus_link():
    from kvcalc import memory_answer
    from kvcalc.presets import get_gpu
    memory_answer._kv_context_cached.cache_clear()
    # not asked: no kv_context figure
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}})
    assert "kv_context" not in (r.get("figures") or {})
    # asked, with a GPU: the host part comes back over the H100's host link:
    # reload s = offloaded bytes / (link GB/s x 1e9)
    link = get_gpu(H100).host_link_bandwidth_gb_per_s
    fig = compute({"model": LLAMA, "gpu": H100, "workload": {}, "figures": ["kv_context"]})["figures"]["kv_context"]
    assert fig["host_link_gb_per_s"] == link
    assert fig["offload_reload_s"] == pytest.approx([b / (link * 1e9) for b in fig["offload_cpu_bytes"]], rel=1e-12)
    assert any(b > 0 for b in fig["offload_cpu_bytes"])
    # without a GPU there is no link to time it over
    memory_answer._kv_context_cached.cache_clear()
    fig = compute({"model": LLAMA, "figures": ["kv_context"]})["figures"]["kv_context"]
    assert fig["host_link_gb_per_s"] is None and all(x is None for x in fig["offload_reload_s"])


# ----------------------------------------------------------------------------- panels

def test_scenario_is_echoed_and_preview_leaves_the_panels_out():
    rec = {"candidates": 5, "user_tokens": 100, "item_tokens": 10}
    r = compute({"scenario": "rag", "model": LLAMA, "gpu": H100, "recommender": rec})
    assert r["scenario"] == "rag"
    assert "summary_details" in r and "recommender" in r
    r = compute({"model": LLAMA, "gpu": H100, "workload": {}, "recommender": rec})
    assert "scenario" not in r
    # a preview (the page's render while a slider moves): the numbers, without the panels
    p = compute({"scenario": "rag", "model": LLAMA, "gpu": H100, "recommender": rec, "preview": True})
    assert p["scenario"] == "rag"
    assert "summary_details" not in p and "recommender" not in p
    assert p["token_hit_rate"] == pytest.approx(compute({"scenario": "rag", "model": LLAMA, "gpu": H100})["token_hit_rate"],
                                                rel=1e-12)


def test_a_gpu_without_a_model_is_refused_with_the_reason():
    from kvcalc.errors import InputError
    from kvcalc.memory_answer import memory_result
    from kvcalc.workload import Workload
    with pytest.raises(InputError) as e:
        memory_result({"gpu": H100}, Workload(), 16)
    assert (e.value.field, e.value.value, e.value.problem) == ("model", None, "missing")
    assert e.value.allowed == 'a preset id or {"hf_config": {...}} (a GPU alone gives no KV size)'


# ----------------------------------------------------------------------------- explain

def test_seed_cached_fraction_below_one_active_conversation_and_capped_at_one():
    from kvcalc.explain import explain
    from kvcalc.workload import CacheConfig, Workload
    # rate 0.01/s, L = 2 (fixed), gap 10 s: active = 0.01 x 2 x 10 = 0.2 conversations;
    # s = 200 + 300 = 500 tokens a turn, C = 100 tokens: cached = 100 / (2 x 500) = 0.1;
    # cached fraction = min(1, 0.1 / 0.2) = 0.5, seed hit = (1 - 1/2) x 0.5 = 0.25
    w = Workload(conversation_rate_per_s=0.01, turns_mean=2.0, turns_distribution="fixed", gap_mean_s=10.0)
    s = explain(w, CacheConfig(capacity_tokens=100, block_size_tokens=1))["seed"]
    assert s["active_conversations"] == pytest.approx(0.2) and s["cached_conversations"] == pytest.approx(0.1)
    assert s["cached_fraction"] == pytest.approx(0.5, rel=1e-12)
    assert s["token_hit_rate"] == pytest.approx(0.25, rel=1e-12)
    # 10^6 tokens hold 1000 conversations, more than the 0.2 active: the fraction is capped at 1
    s = explain(w, CacheConfig(capacity_tokens=1e6, block_size_tokens=1))["seed"]
    assert s["cached_fraction"] == 1.0 and s["token_hit_rate"] == pytest.approx(0.5, rel=1e-12)


def test_explain_ignores_a_ttl_under_lru():
    # a TTL given with LRU eviction is not applied (the hit model ignores it too): Che's time is
    # LRU's, and the substituted formula reproduces the model's Che number
    from kvcalc.explain import explain
    from kvcalc.hitrate import hit_rates
    from kvcalc.workload import CacheConfig, Workload
    w = Workload()
    lru_ttl = CacheConfig(capacity_tokens=2e5, eviction="lru", ttl_s=1.0)
    che = explain(w, lru_ttl)["che"]
    assert che["characteristic_time_s"] == explain(w, CacheConfig(capacity_tokens=2e5))["che"]["characteristic_time_s"]
    assert che["characteristic_time_s"] > 1.0
    assert che["token_hit_rate"] == pytest.approx(float(hit_rates(w, lru_ttl, "che")["token_hit_rate"]), rel=1e-9)


def test_unknown_model_or_gpu_is_named_by_its_field():
    from kvcalc.errors import InputError
    from kvcalc.memory_answer import memory_result
    from kvcalc.workload import Workload
    with pytest.raises(InputError) as e:
        memory_result({"model": "no/such-model"}, Workload(), 16)
    assert (e.value.field, e.value.value) == ("model", "no/such-model")
    with pytest.raises(InputError) as e:
        memory_result({"model": LLAMA, "gpu": "no-such-gpu"}, Workload(), 16)
    assert (e.value.field, e.value.value) == ("gpu", "no-such-gpu")


@pytest.mark.parametrize("P,eviction,gaps", [(1000, "lru", "exponential"), (1000, "ttl", "exponential"),
                                              (16, "ttl", "exponential"), (1000, "lru", "lognormal")])
def test_explain_che_parts_recompose_the_models_number_at_block_16(P, eviction, gaps):
    """A second method: the substituted Che formula (shared + P(gap <= T) x own) equals the Che
    model's own token hit rate, here with blocks of 16 (P = 1000: 62 shared blocks; P = 16: one)
    and, under a 20 s TTL at 0.25 requests/s, a shared prompt not always present (h_s < 1; under LRU
    it always is)."""
    from kvcalc.explain import explain
    from kvcalc.hitrate import hit_rates
    from kvcalc.workload import CacheConfig, Workload
    w = Workload(system_prompt_tokens=P, conversation_rate_per_s=0.05, gap_distribution=gaps,
                 gap_lognormal_sigma=1.5)
    c = CacheConfig(capacity_tokens=2e4, block_size_tokens=16, eviction=eviction, ttl_s=20.0)
    che = explain(w, c)["che"]
    model = hit_rates(w, c, "che")
    if eviction == "ttl":
        assert float(model["system_prompt_presence"]) < 0.999      # the case this test is for
    assert che["token_hit_rate"] == pytest.approx(float(model["token_hit_rate"]), rel=1e-9)
    assert che["shared_prompt_share"] > 0.0


def test_a_chosen_context_wins_over_the_workloads_mean():
    # the default workload's mean context per request is 3500 tokens (test_hm4_assembly); a
    # context chosen in the request is the one the report uses
    from kvcalc.memory_answer import memory_result
    from kvcalc.workload import Workload
    report, _, _, _ = memory_result({"model": LLAMA, "gpu": H100, "context_tokens": 8192}, Workload(), 16)
    assert report["context_tokens"] == 8192 and report["max_model_len_tokens"] == 8192
    report, _, _, _ = memory_result({"model": LLAMA, "gpu": H100}, Workload(), 16)
    assert report["context_tokens"] == pytest.approx(3500.0, rel=1e-6)


def test_inverse_beyond_the_table_from_either_side():
    """1e4 conversations/s idle 1e5 s between 50 turns (test_hm4_assembly's case): the capacity
    for 50 % lies beyond the 1e13-token limit. Che's search stops at the limit (an InputError from
    the cache it tries, turned into a result); the refined model's search returns a capacity above
    it (6e14 tokens), capped the same way. Both give the same result shape."""
    from kvcalc.limits import LIMITS
    from kvcalc.workload import CacheConfig, Workload
    inverse_result = _fresh_inverse()
    hi = LIMITS["cache.capacity_tokens"].hi
    assert hi == 1e13
    w = Workload(conversation_rate_per_s=1e4, gap_mean_s=1e5, turns_mean=50)
    message = "reaching 50.0% needs more than 1e+13 tokens of cache, beyond the range the calculator takes"
    for model in ("che", "refined"):
        inv = inverse_result(w, CacheConfig(capacity_tokens=1e5), 0.5, model)
        assert inv["status"] == "beyond_range", model
        assert inv["capacity_tokens"] is None and inv["reachable"] is False
        assert inv["target_token_hit_rate"] == 0.5 and inv["capacity_limit_tokens"] == hi
        assert inv["message"] == message and "reason" not in inv
        d = inv["detail"]
        assert d["code"] == "inverse_beyond_range" and d["message"] == message
        assert d["params"]["target_token_hit_rate"] == 0.5 and d["params"]["capacity_limit_tokens"] == hi


@pytest.mark.parametrize("dist,L,expected", [
    # a = 10 + 10 = 20 tokens a turn, no shared prompt: fixed 4 turns, requests k = 1..4 once each,
    # sequence 20 k: (20 + 40 + 60 + 80) / 4 = 50
    ("fixed", 4.0, 50.0),
    # geometric L = 4: weights P(N >= k) = q^(k-1), q = 3/4: sum k q^(k-1) / sum q^(k-1) = 1/(1-q) = 4 -> 80
    ("geometric", 4.0, 80.0),
])
def test_mean_context_by_hand_with_the_memo_cleared(dist, L, expected):
    # the mean context is memoised per workload (hs4): cleared first so the sum itself runs here
    from kvcalc import memory_answer
    from kvcalc.workload import Workload
    memo = getattr(memory_answer, "_mean_context_tokens", None)
    if memo is not None and hasattr(memo, "cache_clear"):
        memo.cache_clear()
    w = Workload(turns_mean=L, turns_distribution=dist, system_prompt_tokens=0, user_tokens_per_turn=10,
                 output_tokens_per_turn=10)
    assert memory_answer.mean_context_tokens(w) == pytest.approx(expected, rel=1e-6)


def test_drag_extent_of_an_axis_by_hand():
    """figure_data._extent (hs4): the data's extent plus ``spare`` x its span on each side, in log10
    on a log axis (values <= 0 dropped there), never below 0 on a linear axis of values >= 0."""
    from kvcalc.figure_data import _extent
    # log: 1 .. 100 -> 0 .. 2, pad 0.25 x 2 = 0.5
    assert _extent([1.0, 10.0, 100.0], log=True, spare=0.25) == pytest.approx([-0.5, 2.5])
    # None, NaN, inf and (on a log axis) 0 and negatives are not placed: 10 .. 1000 -> 1 .. 3, pad 1
    assert _extent([None, float("nan"), float("inf"), 0.0, -5.0, 10.0, 1000.0], log=True, spare=0.5) == \
        pytest.approx([0.0, 4.0])
    # linear: 2 .. 6, pad 1; 1 .. 9 with pad 4 stops at 0; negatives keep their pad
    assert _extent([2.0, 6.0], log=False, spare=0.25) == pytest.approx([1.0, 7.0])
    assert _extent([9.0, 1.0], log=False, spare=0.5) == pytest.approx([0.0, 13.0])
    assert _extent([-2.0, 2.0], log=False, spare=0.25) == pytest.approx([-3.0, 3.0])
    assert _extent([0.0, -1.0], log=False, spare=1.0) == pytest.approx([-2.0, 1.0])
    # values >= 0 starting at 0 or below 1 stop at 0 too: 0 .. 4 pad 2; 0.5 .. 4.5 pad 2
    assert _extent([0.0, 4.0], log=False, spare=0.5) == pytest.approx([0.0, 6.0])
    assert _extent([0.5, 4.5], log=False, spare=0.5) == pytest.approx([0.0, 6.5])
    # nothing to place
    assert _extent([], log=False, spare=0.5) is None
    assert _extent([0.0, -1.0, None], log=True, spare=0.5) is None


def test_preview_curve_carries_its_log_drag_range():
    # a preview's curve carries the x range a drag render uses: log10 of its capacity extent plus a
    # quarter of the span each side; a full compute carries none
    import math
    from kvcalc.figure_data import figures_result
    from kvcalc.workload import CacheConfig, Workload
    f = figures_result({"figures": ["curve"]}, Workload(), CacheConfig(capacity_tokens=2e5), "che", 1000.0, coarse=True)
    caps = f["curve"]["capacity_tokens"]
    lo, hi = math.log10(min(caps)), math.log10(max(caps))
    rng = f["curve"]["x_range_log10"]
    assert rng["capacity_tokens"] == pytest.approx([lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo)], rel=1e-12)
    assert set(rng) == {"capacity_tokens", "capacity_gib"}
    full = figures_result({"figures": ["curve"]}, Workload(), CacheConfig(capacity_tokens=2e5), "che", 1000.0)
    assert "x_range_log10" not in full["curve"]


def test_preview_sweeps_carry_their_drag_ranges():
    # each sweep: its own grid's extent plus half its span each side, in log10 on a log-scale sweep
    import math
    from kvcalc.figure_data import figures_result
    from kvcalc.workload import CacheConfig, Workload
    f = figures_result({"figures": ["sweeps"]}, Workload(), CacheConfig(capacity_tokens=2e5), "che", None, coarse=True)
    scales = set()
    for name, row in f["sweeps"].items():
        if not isinstance(row, dict):
            continue
        scales.add(row["scale"])
        vals = [v for v in row["values"] if v is not None]
        if row["scale"] == "log":
            lo, hi = math.log10(min(vals)), math.log10(max(vals))
            want = [lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)]
        else:
            lo, hi = min(vals), max(vals)
            want = [max(0.0, lo - 0.5 * (hi - lo)) if lo >= 0 else lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)]
        assert row["x_range"] == pytest.approx(want, rel=1e-12), name
    assert "log" in scales


def test_preview_tornado_and_heatmap_drag_ranges():
    """Tornado: the extent of its base and every low/high rate, a quarter of the span spare, not
    below 0. Heatmap: the cells' outer edges, half a log step beyond the first and last centres
    (n centres evenly spaced in log10: a step is span / (n - 1), so spare = 0.5 / (n - 1))."""
    import math
    from kvcalc.figure_data import figures_result
    from kvcalc.hitrate import hit_rates
    from kvcalc.workload import CacheConfig, Workload
    w, c = Workload(), CacheConfig(capacity_tokens=2e5)
    che = float(hit_rates(w, c, "che")["token_hit_rate"])
    f = figures_result({"figures": ["tornado", "heatmap"]}, w, c, "refined", 1000.0, coarse=True,
                       che_token_hit_rate=che)
    tor = f["tornado"]
    assert tor["base_token_hit_rate"] == pytest.approx(che, rel=1e-12)
    xs = [tor["base_token_hit_rate"]] + [r[k] for r in tor["rows"] for k in ("low_token_hit_rate", "high_token_hit_rate")]
    lo, hi = min(xs), max(xs)
    assert tor["x_range"] == pytest.approx([max(0.0, lo - 0.25 * (hi - lo)), hi + 0.25 * (hi - lo)], rel=1e-12)
    hm = f["heatmap"]
    for key, got in [("capacity_tokens", hm["x_range_log10"]["capacity_tokens"]),
                     ("capacity_gib", hm["x_range_log10"]["capacity_gib"]),
                     ("conversation_rate_per_s", hm["y_range_log10"])]:
        v = hm[key]
        a, b = math.log10(min(v)), math.log10(max(v))
        half_step = 0.5 * (b - a) / (len(v) - 1)
        assert got == pytest.approx([a - half_step, b + half_step], rel=1e-12), key


def test_the_callers_che_rate_is_the_tornados_base_only_for_che():
    # the closed model's tornado keeps its own base even when the caller hands Che's rate in
    from kvcalc.figure_data import figures_result
    from kvcalc.hitrate import hit_rates
    from kvcalc.workload import CacheConfig, Workload
    w, c = Workload(), CacheConfig(capacity_tokens=2e5)
    che = float(hit_rates(w, c, "che")["token_hit_rate"])
    closed = float(hit_rates(w, c, "closed")["token_hit_rate"])
    assert abs(che - closed) > 1e-6                   # the case this test is for
    f = figures_result({"figures": ["tornado"]}, w, c, "closed", None, coarse=True, che_token_hit_rate=che)
    assert f["tornado"]["base_token_hit_rate"] == pytest.approx(closed, rel=1e-12)
