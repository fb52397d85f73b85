"""Sizing (py/kvcalc/sizing.py) against hand derivations and brute force.

* ``serving_load``: the roofline written out by hand for one configuration
  (mean prompt of geometric and fixed turns derived in closed form);
* ``_first_k_reaching``: the doubling + bisection search against a brute-force
  scan over every K;
* ``size_fleet``: each row recomputed from its definition (memory_report,
  fleet_hit_rates, serving_load), the CPU tier's size by hand, the rows that
  cannot work and why, the order of the rows.
"""

from __future__ import annotations

import math

import pytest

from kvcalc.benefit import prefill_flops
from kvcalc.fleet import FleetConfig, TierConfig, fleet_hit_rates
from kvcalc.memory import memory_report
from kvcalc.presets import get_gpu, get_model
from kvcalc.sizing import MAX_BATCH, _first_k_reaching, serving_load, size_fleet
from kvcalc.workload import CacheConfig, Workload

QWEN = get_model("Qwen/Qwen3-32B")
H100 = get_gpu("h100-sxm-80gb")   # 989.4 dense BF16 TFLOPS, 3350 GB/s HBM, 64 GB/s host link


# --------------------------------------------------------------------------- serving_load by hand

def test_serving_load_by_hand_geometric_turns():
    # (structure() sums the turn distribution up to a tail of about 1e-8, hence rel = 1e-6 below.)
    # Geometric N, mean L = 4: requests of turn k are weighted by P(N >= k); sum_k P(N>=k)(k-1)
    # = E[N(N-1)/2] = L(L-1) for the geometric, so the mean prompt is P + (L-1) a + u
    # = 1000 + 3 x 500 + 200 = 2700 tokens and the mean context at the end 2700 + o = 3000.
    w = Workload(conversation_rate_per_s=2.0, turns_mean=4, user_tokens_per_turn=200, output_tokens_per_turn=300,
                 system_prompt_tokens=1000)
    tp, K, h, kv_b, wb, cap, mfu, mbu = 2, 2, 0.5, 131072.0, 32e9, 600_000.0, 0.4, 0.6
    out = serving_load(QWEN, H100, tp, K, w, h, kv_b, wb, cap, mfu, mbu)
    req = 2.0 * 4 / K                                        # requests per s per instance
    prefill = req * prefill_flops(QWEN, 2700.0, 1350.0) / (989.4e12 * mfu * tp)
    batch = 600_000 / 3000                                    # 200 sequences fit (< 256)
    t_step = (wb + batch * 3000 * kv_b) / (3350e9 * mbu)
    assert out["decode_batch"] == pytest.approx(batch, rel=1e-6)
    assert out["prefill_utilization"] == pytest.approx(prefill, rel=1e-6)
    assert out["decode_max_tokens_per_s"] == pytest.approx(batch / t_step, rel=1e-6)
    assert out["decode_utilization"] == pytest.approx(req * 300 / (batch / t_step), rel=1e-6)
    # the batch is capped at MAX_BATCH = 256 and floored at one sequence
    big = serving_load(QWEN, H100, tp, K, w, h, kv_b, wb, 1e9, mfu, mbu)
    assert big["decode_batch"] == MAX_BATCH == 256
    assert big["decode_max_tokens_per_s"] == pytest.approx(256 * 3350e9 * mbu / (wb + 256 * 3000 * kv_b), rel=1e-6)
    tiny = serving_load(QWEN, H100, tp, K, w, h, kv_b, wb, 1000.0, mfu, mbu)
    assert tiny["decode_batch"] == 1.0
    # defaults: MFU 0.4 (benefit.DEFAULT_MFU) and MBU 0.6 (the docstring)
    assert serving_load(QWEN, H100, tp, K, w, h, kv_b, wb, cap) == out


def test_serving_load_fixed_turns_mean_prompt():
    # Fixed N = 3: the mean prompt is P + a (0 + 1 + 2) / 3 + u = 1000 + 500 + 200 = 1700, context 2000
    # (a finite sum: exact, so the roofline is checked to rounding: TFLOPS x 1e12, GB/s x 1e9).
    w = Workload(conversation_rate_per_s=3.0, turns_mean=3, turns_distribution="fixed", user_tokens_per_turn=200,
                 output_tokens_per_turn=300, system_prompt_tokens=1000)
    out = serving_load(QWEN, H100, 1, 3, w, 0.0, 1000.0, 1e9, 400_000.0, 0.5, 0.5)
    req = 3.0 * 3 / 3
    assert out["prefill_utilization"] == pytest.approx(req * prefill_flops(QWEN, 1700.0, 0.0) / (989.4e12 * 0.5),
                                                       rel=1e-14, abs=0)
    assert out["decode_batch"] == 200.0
    t_step = (1e9 + 200 * 2000 * 1000.0) / (3350e9 * 0.5)
    assert out["decode_max_tokens_per_s"] == pytest.approx(200 / t_step, rel=1e-14, abs=0)
    assert out["decode_utilization"] == pytest.approx(req * 300 * t_step / 200, rel=1e-14, abs=0)


# --------------------------------------------------------------------------- the search for K

@pytest.mark.parametrize("k_max", [1, 2, 3, 5, 8, 13, 64, 100])
def test_first_k_reaching_equals_a_brute_force_scan(k_max):
    def hit_at(k):            # increasing in K
        return 1.0 - 1.0 / (k + 1)
    values = [hit_at(k) for k in range(1, k_max + 1)]
    targets = values + [(x + y) / 2 for x, y in zip(values, values[1:])] + [0.0, values[-1] + 1e-9, 2.0]
    for target in targets:
        brute = next((k for k in range(1, k_max + 1) if hit_at(k) >= target), None)
        k, h = _first_k_reaching(target, hit_at, k_max)
        assert k == brute, (target, k_max)
        assert h == hit_at(brute if brute is not None else k_max)


# --------------------------------------------------------------------------- size_fleet

W7 = Workload(conversation_rate_per_s=3, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)


def test_rows_recomputed_from_their_definitions():
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0, block_size_tokens=32), 0.8,
                      tier_gib_per_instance=(0.0, 100.0), tensor_parallel_sizes=(2, 4), price_per_gpu_hour=3.0,
                      model_name="che", memory_kwargs={"runtime_reserve_gib": 2.0})
    assert len(rows) >= 4
    for r in rows:
        tp = r["tensor_parallel"]
        mem = memory_report(QWEN, H100, tensor_parallel=tp, block_size_tokens=32, runtime_reserve_gib=2.0)
        assert r["gpu_capacity_tokens_per_instance"] == mem["kv_capacity_tokens"]
        # tier: 100 GiB of host memory holds whole 32-token blocks of TP shards of bpt bytes each
        bpt = mem["kv_bytes_per_token"]
        tier = math.floor(r["tier_gib_per_instance"] * 2**30 / (bpt * tp) / 32) * 32
        assert r["tier_capacity_tokens_per_instance"] == tier
        if r["tier_gib_per_instance"]:
            assert tier == 100 * 2**30 // 262144 == 409600   # bpt x tp = 262144 B (bf16 KV)
        tiers = (TierConfig("cpu", tier),) if tier else ()
        c = CacheConfig(capacity_tokens=mem["kv_capacity_tokens"], block_size_tokens=32)
        K = r["instances"]
        h = fleet_hit_rates(W7, c, FleetConfig(K, "affinity", tiers), "che")["token_hit_rate"]
        assert r["token_hit_rate"] == pytest.approx(h, abs=1e-12) and h >= 0.8
        assert r["gpus"] == K * tp and r["cost_per_hour"] == pytest.approx(3.0 * K * tp)
        if r["sized_for"] == "hit_rate" and K > 1:
            assert fleet_hit_rates(W7, c, FleetConfig(K - 1, "affinity", tiers), "che")["token_hit_rate"] < 0.8
        load = serving_load(QWEN, H100, tp, K, W7, h, bpt, mem["weights_gib_per_gpu"] * 2**30,
                            float(mem["kv_capacity_tokens"]))
        for key, v in load.items():
            assert r[key] == pytest.approx(v, rel=1e-12), key
        busy = load["prefill_utilization"] + load["decode_utilization"]
        assert r["fits"] == (busy <= 1.0) and r["code"] == ("fits" if busy <= 1.0 else "traffic_exceeds_compute")
        assert r["params"] == pytest.approx({
            "tensor_parallel": tp, "instances": K, "token_hit_rate": h, "busy_fraction": busy,
            "prefill_fraction": load["prefill_utilization"], "decode_fraction": load["decode_utilization"],
            "mfu": 0.4, "mbu_fraction": 0.6, "instances_to_serve_traffic": r["instances_to_serve_traffic"]}, rel=1e-12)
        assert r["routing"] == "affinity" and r["reason"] == ""
    # cheapest first: fewer GPUs first, then the smaller tier, then the smaller TP
    keys = [(r["gpus"], r["tier_gib_per_instance"], r["tensor_parallel"]) for r in rows]
    assert keys == sorted(keys)


def test_traffic_beyond_compute_adds_a_row_sized_for_the_traffic():
    # 20 chats/s of 6 turns and long prompts: the few instances the hit rate needs cannot serve it.
    w = Workload(conversation_rate_per_s=20, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)
    rows = size_fleet(QWEN, H100, w, CacheConfig(capacity_tokens=1.0), 0.5, tensor_parallel_sizes=(2,),
                      price_per_gpu_hour=2.0, mfu=0.3, mbu=0.5)
    assert [r["sized_for"] for r in rows] == ["traffic", "hit_rate"]   # the traffic row fits: first
    traffic, by_hit = rows
    mem = memory_report(QWEN, H100, tensor_parallel=2)
    cap, bpt, wb = float(mem["kv_capacity_tokens"]), mem["kv_bytes_per_token"], mem["weights_gib_per_gpu"] * 2**30
    c = CacheConfig(capacity_tokens=cap)
    K = by_hit["instances"]
    assert not by_hit["fits"] and by_hit["code"] == "traffic_exceeds_compute"
    # the smallest K' >= K that the roofline says serves the traffic, scanned by hand
    k_serve = next(k for k in range(K, 257)
                   if sum(v for n, v in serving_load(QWEN, H100, 2, k, w, by_hit["token_hit_rate"], bpt, wb, cap,
                                                     0.3, 0.5).items() if n.endswith("utilization")) <= 1.0)
    assert k_serve > K
    assert by_hit["instances_to_serve_traffic"] == k_serve == traffic["instances"]
    assert by_hit["params"]["instances_to_serve_traffic"] == k_serve
    assert f"about {k_serve} instances serve the traffic" in by_hit["reason"]
    assert by_hit["params"]["mfu"] == 0.3 and by_hit["params"]["mbu_fraction"] == 0.5
    for key, v in serving_load(QWEN, H100, 2, K, w, by_hit["token_hit_rate"], bpt, wb, cap, 0.3, 0.5).items():
        assert by_hit[key] == pytest.approx(v, rel=1e-12), key
    assert (k_serve - K) % 2 == 1   # (an odd step count: a search stepping by 2 would miss it)
    h2 = fleet_hit_rates(w, c, FleetConfig(k_serve, "affinity"))["token_hit_rate"]
    assert traffic["token_hit_rate"] == pytest.approx(h2, abs=1e-12) and h2 > by_hit["token_hit_rate"]
    load = serving_load(QWEN, H100, 2, k_serve, w, h2, bpt, wb, cap, 0.3, 0.5)
    for key, v in load.items():
        assert traffic[key] == pytest.approx(v, rel=1e-12), key
    assert traffic["fits"] and traffic["code"] == "fits" and traffic["reason"] == ""
    assert traffic["gpus"] == 2 * k_serve and traffic["cost_per_hour"] == pytest.approx(2.0 * 2 * k_serve)
    assert by_hit["cost_per_hour"] == pytest.approx(2.0 * 2 * K)


def test_traffic_no_instance_count_serves():
    # 40 chats/s with at most 3 instances (one reaches 0.2; each would be ~20x busy at K = 3):
    # the row sized for the traffic cannot serve it either.
    w = Workload(conversation_rate_per_s=40, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)
    rows = size_fleet(QWEN, H100, w, CacheConfig(capacity_tokens=1.0), 0.2, tensor_parallel_sizes=(2,),
                      max_instances=3)
    assert [r["code"] for r in rows] == ["traffic_exceeds_compute", "traffic_not_served"]
    assert rows[1]["instances"] == 3 and rows[1]["params"] == {"tensor_parallel": 2, "max_instances": 3}
    assert rows[1]["reason"] == "TP=2: 3 instances do not serve the traffic"
    assert "cost_per_hour" not in rows[0] and "cost_per_hour" not in rows[1]


def test_rows_that_cannot_work():
    big = get_model("meta-llama/Llama-3.1-405B")
    rows = size_fleet(big, H100, W7, CacheConfig(capacity_tokens=1.0), 0.8, tensor_parallel_sizes=(1,),
                      tier_gib_per_instance=(0.0, 64.0))
    assert [r["tier_gib_per_instance"] for r in rows] == [0.0, 64.0]   # one row per tier size
    for r in rows:
        assert (r["code"], r["fits"], r["instances"], r["gpus"], r["token_hit_rate"]) == \
            ("weights_do_not_fit", False, None, None, None)
        assert r["params"]["tensor_parallel"] == 1
        assert r["reason"].startswith("TP=1: model weights")
    # the weights fit but leave less than one block: the reserve takes all but 1 MiB of the KV budget
    m0 = memory_report(QWEN, H100, tensor_parallel=1, runtime_reserve_gib=0.0)
    reserve = m0["usable_gib_per_gpu"] - m0["weights_gib_per_gpu"] - 2**-10
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.8, tensor_parallel_sizes=(1,),
                      memory_kwargs={"runtime_reserve_gib": reserve})
    (r,) = rows
    assert r["code"] == "weights_do_not_fit" and r["tier_gib_per_instance"] == 0.0
    assert r["params"]["tensor_parallel"] == 1 and (r["instances"], r["fits"]) == (None, False)
    assert r["reason"] == "TP=1: the weights and the runtime reserve leave less than one KV block"
    assert r["params"]["weights_gib_per_gpu"] == pytest.approx(m0["weights_gib_per_gpu"])
    # (usable less the reserve: the weights + 1 MiB)
    assert r["params"]["usable_gib_per_gpu"] == pytest.approx(m0["weights_gib_per_gpu"] + 2**-10, abs=1e-9)
    # above the ideal: target_not_reached with the ideal of an unbounded cache
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.99, tensor_parallel_sizes=(2,),
                      max_instances=16, routing="random")
    (r,) = rows
    c = CacheConfig(capacity_tokens=memory_report(QWEN, H100, tensor_parallel=2)["kv_capacity_tokens"])
    h16 = fleet_hit_rates(W7, c, FleetConfig(16, "random"))["token_hit_rate"]
    ideal = fleet_hit_rates(W7, CacheConfig(capacity_tokens=1e13), FleetConfig(1, "random"))["ideal_token_hit_rate"]
    assert r["code"] == "target_not_reached" and r["fits"] is False and r["instances"] is None and r["gpus"] is None
    assert r["token_hit_rate"] == pytest.approx(h16, abs=1e-12) and h16 < 0.99
    assert r["params"]["ideal_token_hit_rate"] == pytest.approx(ideal, abs=1e-12)
    assert r["params"]["token_hit_rate"] == pytest.approx(h16, abs=1e-12) and r["params"]["tensor_parallel"] == 2
    assert r["params"]["max_instances"] == 16 and r["params"]["routing"] == "random"
    assert r["reason"] == f"TP=2: 16 instances reach only {h16:.1%} (ideal {ideal:.1%}) with random routing"
    assert r["routing"] == "random"


def test_options_with_other_memory_settings():
    # fp8 KV and a lower memory utilisation reach the row through memory_report
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.6, tensor_parallel_sizes=(2,),
                      gpu_memory_utilization=0.8, kv_cache_dtype="fp8")
    mem = memory_report(QWEN, H100, tensor_parallel=2, gpu_memory_utilization=0.8, kv_cache_dtype="fp8")
    assert rows[0]["gpu_capacity_tokens_per_instance"] == mem["kv_capacity_tokens"]
    assert mem["kv_bytes_per_token"] == 262144 / 2 / 2   # fp8 halves bf16; TP 2 halves again


def test_cpu_read_bandwidth_reaches_the_tier():
    # The tier's read bandwidth does not change a hit rate, but it is the tier's: a bandwidth of 0
    # (not a bandwidth) is refused by TierConfig, naming the field; the host link's 64 GB/s is fine.
    from kvcalc.errors import InputError
    with pytest.raises(InputError) as e:
        size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.6, tensor_parallel_sizes=(2,),
                   tier_gib_per_instance=(10.0,), cpu_read_gb_per_s=0.0)
    assert e.value.field == "tiers.read_gb_per_s"
    assert size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.6, tensor_parallel_sizes=(2,),
                      tier_gib_per_instance=(10.0,))[0]["tier_gib_per_instance"] == 10.0


def test_one_block_is_enough_and_the_next_tp_is_still_tried():
    # A reserve that leaves 1.5 blocks of 16 tokens x 262144 B at TP = 1: capacity = one block,
    # which is enough to be sized (not "weights do not fit"); a reserve leaving less than a block
    # rules TP = 1 out and TP = 2 (half the weights per GPU) is still sized after it.
    m0 = memory_report(QWEN, H100, tensor_parallel=1, runtime_reserve_gib=0.0)
    spare = m0["usable_gib_per_gpu"] - m0["weights_gib_per_gpu"]
    one_and_half = 1.5 * 16 * 262144 / 2**30
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.5, tensor_parallel_sizes=(1,),
                      max_instances=2, memory_kwargs={"runtime_reserve_gib": spare - one_and_half})
    assert rows[0]["gpu_capacity_tokens_per_instance"] == 16.0 and rows[0]["code"] == "target_not_reached"
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.5, tensor_parallel_sizes=(1, 2),
                      memory_kwargs={"runtime_reserve_gib": spare - 2**-10})
    assert [(r["tensor_parallel"], r["code"]) for r in rows][-1] == (1, "weights_do_not_fit")
    assert any(r["tensor_parallel"] == 2 and r["fits"] for r in rows)


def test_a_one_gib_tier():
    # 1 GiB / (262144 B per token over TP = 2 GPUs) = 4096 tokens = 256 blocks of 16
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.6, tensor_parallel_sizes=(2,),
                      tier_gib_per_instance=(1.0,))
    assert rows[0]["tier_capacity_tokens_per_instance"] == 4096.0


def test_instance_cap_and_row_order():
    w = Workload(conversation_rate_per_s=20, turns_mean=6, gap_mean_s=45, system_prompt_tokens=800)
    kw = dict(tensor_parallel_sizes=(2,), mfu=0.3, mbu=0.5)
    # the hit rate needs 23 instances, which are too busy; capped at 23 no bigger row is added
    rows = size_fleet(QWEN, H100, w, CacheConfig(capacity_tokens=1.0), 0.5, max_instances=23, **kw)
    assert [(r["code"], r["instances"], r["instances_to_serve_traffic"]) for r in rows] == \
        [("traffic_exceeds_compute", 23, 23)]
    # capped at 26: 26 instances are still busier than 1 (prefill + decode), so not served
    rows = size_fleet(QWEN, H100, w, CacheConfig(capacity_tokens=1.0), 0.5, max_instances=26, **kw)
    last = rows[-1]
    assert last["code"] == "traffic_not_served" and last["instances"] == 26 and last["fits"] is False
    assert 1.0 < last["prefill_utilization"] + last["decode_utilization"]
    # unreachable target: one row per tier size, every TP tried
    rows = size_fleet(QWEN, H100, W7, CacheConfig(capacity_tokens=1.0), 0.99, tensor_parallel_sizes=(2, 4),
                      max_instances=4, tier_gib_per_instance=(0.0, 1.0))
    assert sorted((r["tensor_parallel"], r["tier_gib_per_instance"]) for r in rows) == \
        [(2, 0.0), (2, 1.0), (4, 0.0), (4, 1.0)]
    # order: fitting rows first, then the others by GPUs, a row without GPUs (weights do not fit) last
    m0 = memory_report(QWEN, H100, tensor_parallel=1, runtime_reserve_gib=0.0)
    rows = size_fleet(QWEN, H100, w, CacheConfig(capacity_tokens=1.0), 0.5, tensor_parallel_sizes=(1, 2),
                      mfu=0.3, mbu=0.5,
                      memory_kwargs={"runtime_reserve_gib": m0["usable_gib_per_gpu"] - m0["weights_gib_per_gpu"] - 2**-10})
    assert [r["code"] for r in rows] == ["fits", "traffic_exceeds_compute", "weights_do_not_fit"]
