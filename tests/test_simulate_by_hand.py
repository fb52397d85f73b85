"""The simulator (py/kvcalc/simulate.py) on traces small enough to follow by hand.

Every expected value below is derived in the comments from the module docstring's rules
(hits, blocks, batches, occupancy), not read from the simulator. Both engines (chains and
the block reference) must give them.
"""

from __future__ import annotations

import math

import pytest

from kvcalc.fleet import FleetConfig, TierConfig
from kvcalc.simulate import Trace, simulate, simulate_trace
from kvcalc.workload import CacheConfig, Workload

# b = 4 tokens a block; P = 8 (Ps = 2 shared blocks), u = 4, o = 4, so a = 8:
#   turn k: prompt = P + (k-1) a + u = 8k + 4 tokens, Z_k = P + k a = 8k + 8 tokens,
#   ceil(Z_1 / 4) = 4 blocks (2 shared + 2 own), ceil(Z_2 / 4) = 6 blocks (2 shared + 4 own);
#   the hit is capped at floor((prompt - 1) / 4) = 2 blocks at turn 1, 4 blocks at turn 2.
# S = 0.1 s. Three conversations:
#   c0 arrives at 0.0, 2 turns, gap 1.0 s: turn 1 in [0, 0.1], turn 2 in [1.1, 1.2]
#   c1 arrives at 0.5, 1 turn:            [0.5, 0.6]
#   c2 arrives at 2.0, 2 turns, gap 0.5:  turn 1 in [2.0, 2.1], turn 2 in [2.6, 2.7]
# No two requests overlap. With room for every block (Cb = 250):
#   c0 t1 at 0.0: empty cache, hit 0 of 12 tokens; its end caches shared 0-1 and own 2-3
#   c1 t1 at 0.5: the shared 2 blocks (the cap), hit 8 of 12, no own hit
#   c0 t2 at 1.1: shared 2 + own 2 = 4 blocks (the cap), hit 16 of 20, own hit
#   c2 t1 at 2.0: shared 2, hit 8 of 12
#   c2 t2 at 2.6: 4 blocks, hit 16 of 20, own hit
# H = 48 hit tokens of Q = 76 prompt tokens; 2 own hits in 5 requests; shared blocks hit
# 0 + 2 + 2 + 2 + 2 = 8 of Ps x R = 10.
HAND = Workload(conversation_rate_per_s=1.0, turns_mean=2.0, gap_mean_s=1.0, user_tokens_per_turn=4,
                output_tokens_per_turn=4, system_prompt_tokens=8, service_time_s=0.1)
TRACE = Trace.from_lists([0.0, 0.5, 2.0], [2, 1, 2], [[1.0], [], [0.5]])
BIG = CacheConfig(capacity_tokens=1000, block_size_tokens=4)   # Cb = 250 blocks

# Student t(0.975, 4) = 2.776 (NIST/SEMATECH e-Handbook, 1.3.6.7.2, column 0.025, df 4).
T975_DF4 = 2.776


def _batch_means(ratios, point):
    m = len(ratios)
    mean = sum(ratios) / m
    sd = math.sqrt(sum((r - mean) ** 2 for r in ratios) / (m - 1))
    half = T975_DF4 * sd / math.sqrt(m)
    assert m == 5
    return max(0.0, point - half), min(1.0, point + half)


@pytest.mark.parametrize("reference", [False, True])
def test_three_conversations_hits_batches_and_occupancy_by_hand(reference):
    rec = []
    out = simulate_trace(TRACE, HAND, BIG, warmup_s=0.0, horizon_s=3.0, reference=reference, record=rec)
    assert [(c, k, hit, prompt, over) for _, c, k, hit, prompt, over in rec] == [
        (0, 1, 0, 12, False), (1, 1, 2, 12, False), (0, 2, 4, 20, False), (2, 1, 2, 12, False),
        (2, 2, 4, 20, False)]
    assert (out["hit_tokens"], out["prompt_tokens"], out["requests"], out["own_hit_requests"]) == (48, 76, 5, 2)
    assert out["token_hit_rate"] == 48 / 76 and out["request_hit_rate"] == 2 / 5
    assert out["shared_prompt_hit_rate"] == 8 / 10
    assert out["overload_requests"] == 0 and out["overload_fraction"] == 0.0
    # Batches: the window [0, 3] in 10 batches of 0.3 s (narrower than 1 s on purpose); the starts
    # 0, 0.5, 1.1, 2.0, 2.6 fall in batches 0, 1, 3, 6, 8 (one request each), so the per-batch
    # token ratios are 0/12, 8/12, 16/20, 8/12, 16/20 and the own-hit ratios 0, 0, 1, 0, 1.
    lo, hi = _batch_means([0.0, 8 / 12, 16 / 20, 8 / 12, 16 / 20], 48 / 76)
    # (by hand: mean 0.58667, sd 0.33466, half 2.776 x 0.33466 / sqrt 5 = 0.41547: [0.63158 - 0.41547 = 0.21611, 1.047 -> 1])
    assert lo == pytest.approx(0.21611, abs=1e-5) and hi == 1.0
    assert out["token_hit_rate_ci95_low"] == pytest.approx(lo, abs=1e-12)
    assert out["token_hit_rate_ci95_high"] == 1.0
    lo, hi = _batch_means([0.0, 0.0, 1.0, 0.0, 1.0], 2 / 5)   # half 0.680: clipped on both sides
    assert (lo, hi) == (0.0, 1.0)
    assert (out["request_hit_rate_ci95_low"], out["request_hit_rate_ci95_high"]) == (0.0, 1.0)
    # Occupancy over [0, 2.7] (the last event, c2's end, is before the horizon 3):
    #   pinned: 4, 4, 6, 4, 6 blocks for 0.1 s each = 2.4 block-s
    #   shared prompt cached (not pinned): [0.1, 0.5) [0.6, 1.1) [1.2, 2.0) [2.1, 2.6): 2.2 s x 2 = 4.4
    #   returning: c0's 2 own blocks in [0.1, 1.1] = 2.0, c2's 2 in [2.1, 2.6] = 1.0: 3.0
    #   finished: c1's 2 own blocks in [0.6, 2.7] = 4.2, c0's 4 in [1.2, 2.7] = 6.0: 10.2
    assert out["horizon_s"] == pytest.approx(2.7, abs=1e-12) and out["warmup_s"] == 0.0
    occ = out["occupancy_blocks"]
    span = 2.7
    for name, block_s in (("pinned", 2.4), ("shared_prompt", 4.4), ("returning", 3.0), ("finished", 10.2)):
        assert occ[name] == pytest.approx(block_s / span, rel=1e-12), name
    assert out["mean_cached_blocks"] == pytest.approx(17.6 / span, rel=1e-12)
    assert out["mean_used_blocks"] == pytest.approx(20.0 / span, rel=1e-12)
    assert occ["free"] == pytest.approx(250 - 20.0 / span, rel=1e-12)
    assert out["capacity_blocks"] == 250 and out["block_size_tokens"] == 4 and out["ci_batches"] == 10
    assert out["requests_simulated"] == 5 and out["overload_requests_simulated"] == 0
    assert out["tier_token_hit_rates"] == [48 / 76]
    assert (out["eviction"], out["instances"], out["routing"]) == ("lru", 1, "affinity")


@pytest.mark.parametrize("reference", [False, True])
def test_infinite_horizon_is_one_batch_without_an_interval(reference):
    # No horizon: the window cannot be cut into batches, so every request falls in one batch and
    # there is no interval (m = 1 < 2); the counts are those of the first test, and the occupancy
    # window ends at the last event (2.7 s).
    out = simulate_trace(TRACE, HAND, BIG, reference=reference)
    assert (out["hit_tokens"], out["prompt_tokens"], out["requests"]) == (48, 76, 5)
    for k in ("token_hit_rate_ci95_low", "token_hit_rate_ci95_high", "request_hit_rate_ci95_low",
              "request_hit_rate_ci95_high"):
        assert out[k] is None, k
    assert out["horizon_s"] == pytest.approx(2.7, abs=1e-12)
    assert out["occupancy_blocks"]["finished"] == pytest.approx(10.2 / 2.7, rel=1e-12)


@pytest.mark.parametrize("reference", [False, True])
def test_warmup_and_horizon_select_the_measured_requests(reference):
    # Window [1.0, 2.5]: the requests starting at 1.1 and 2.0 are measured (c0 t2: 16 of 20, own hit;
    # c2 t1: 8 of 12); width 0.15 s, batches int(0.1 / 0.15) = 0 and int(1.0 / 0.15) = 6.
    # The events after 2.5 (c2 t2 at 2.6) are not simulated: the last event is c2 t1's end at 2.1.
    # Occupancy over [1.0, 2.1]: pinned 6 blocks x 0.1 + 4 x 0.1 = 1.0; shared cached [1.0, 1.1) and
    # [1.2, 2.0): 0.9 s x 2 = 1.8; returning: c0's 2 own in [1.0, 1.1] = 0.2; finished: c1's 2 own
    # over the whole 1.1 s = 2.2, c0's 4 own in [1.2, 2.1] = 3.6: 5.8.
    rec = []
    out = simulate_trace(TRACE, HAND, BIG, warmup_s=1.0, horizon_s=2.5, reference=reference, record=rec)
    assert len(rec) == 4 and out["requests_simulated"] == 4
    assert (out["hit_tokens"], out["prompt_tokens"], out["requests"], out["own_hit_requests"]) == (24, 32, 2, 1)
    assert out["shared_prompt_hit_rate"] == 4 / 4
    # two batches, ratios 0.8 and 2/3: mean 11/15, sd = sqrt(2) / 15 (m - 1 = 1); t(0.975, 1) = 12.706
    half = 12.706 * (math.sqrt(2) / 15) / math.sqrt(2)   # = 0.847, so the interval is [0, 1]
    assert half == pytest.approx(0.84707, abs=1e-5)
    assert (out["token_hit_rate_ci95_low"], out["token_hit_rate_ci95_high"]) == (0.0, 1.0)
    assert out["horizon_s"] == pytest.approx(2.1, abs=1e-12) and out["warmup_s"] == 1.0
    occ = out["occupancy_blocks"]
    span = 1.1
    for name, block_s in (("pinned", 1.0), ("shared_prompt", 1.8), ("returning", 0.2), ("finished", 5.8)):
        assert occ[name] == pytest.approx(block_s / span, rel=1e-9), name


def test_integral_float_seeds_are_the_integer_seeds():
    # A seed given as a float with an integral value (0.0, 1000.0) is that integer seed.
    c = CacheConfig(capacity_tokens=200, block_size_tokens=4)
    for s in (0, 1000):
        a = simulate(HAND, c, seed=s, n_conversations=30)
        b = simulate(HAND, c, seed=float(s), n_conversations=30)
        assert {k: v for k, v in a.items() if k != "seed"} == {k: v for k, v in b.items() if k != "seed"}


@pytest.mark.parametrize("reference", [False, True])
def test_short_and_empty_windows(reference):
    # A window of length 0 at t = 0: the request starting at 0 is measured (hit 0 of 12 tokens, one
    # batch, no interval); no time passes, so every occupancy is 0 and all 250 blocks are free.
    out = simulate_trace(TRACE, HAND, BIG, warmup_s=0.0, horizon_s=0.0, reference=reference)
    assert (out["requests"], out["hit_tokens"], out["prompt_tokens"], out["token_hit_rate"]) == (1, 0, 12, 0.0)
    assert out["token_hit_rate_ci95_low"] is None and out["horizon_s"] == 0.0
    assert out["occupancy_blocks"] == {"pinned": 0.0, "shared_prompt": 0.0, "returning": 0.0, "finished": 0.0,
                                       "free": 250.0}
    # Window [0, 0.55], shorter than a second: events at 0 (c0 starts), 0.1 (ends), 0.5 (c1 starts);
    # c1's end at 0.6 is past the horizon. Over [0, 0.5]: pinned 4 blocks x 0.1 s = 0.4 block-s;
    # shared prompt cached 2 x 0.4 = 0.8; c0's 2 own blocks returning 2 x 0.4 = 0.8; nothing finished.
    out = simulate_trace(TRACE, HAND, BIG, warmup_s=0.0, horizon_s=0.55, reference=reference)
    assert (out["requests"], out["hit_tokens"], out["prompt_tokens"]) == (2, 8, 24)
    assert out["horizon_s"] == 0.5
    occ = out["occupancy_blocks"]
    for name, block_s in (("pinned", 0.4), ("shared_prompt", 0.8), ("returning", 0.8), ("finished", 0.0)):
        assert occ[name] == pytest.approx(block_s / 0.5, rel=1e-12, abs=1e-15), name


def test_no_measured_request_with_a_lower_tier():
    # Warm-up after the last event: nothing is measured, so no hit rate exists at any level.
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 100.0),))
    out = simulate_trace(TRACE, HAND, BIG, warmup_s=10.0, horizon_s=20.0, fleet=fleet)
    assert out["requests"] == 0 and out["prompt_tokens"] == 0 and out["requests_simulated"] == 5
    assert out["token_hit_rate"] is None and out["request_hit_rate"] is None
    assert out["tier_token_hit_rates"] == [None, None]
    assert out["shared_prompt_hit_rate"] is None and out["overload_fraction"] == 0.0


@pytest.mark.parametrize("reference", [False, True])
def test_no_event_in_the_window(reference):
    # The only arrival (2.0 s) is after the horizon (1.5 s): nothing happens, the simulated clock
    # never leaves 0, so the horizon reached is 0 and nothing is measured or occupied.
    out = simulate_trace(Trace.from_lists([2.0], [1], [[]]), HAND, BIG, warmup_s=0.0, horizon_s=1.5,
                         reference=reference)
    assert out["requests_simulated"] == 0 and out["requests"] == 0 and out["token_hit_rate"] is None
    assert out["horizon_s"] == 0.0
    assert out["mean_used_blocks"] == 0.0 and out["occupancy_blocks"]["free"] == 250.0


@pytest.mark.parametrize("reference", [False, True])
def test_a_request_end_runs_before_an_arrival_at_the_same_time(reference):
    # Cb = 4 blocks. c0 (one turn) runs [0, 0.1] and pins 4 blocks (2 shared + 2 own); c1 arrives at
    # exactly 0.1. Ends run first (module docstring): c0's 4 blocks become cached, c1 hits the 2
    # shared ones (its cap) and evicts c0's 2 own blocks for its 2 new ones: no overload. (Were the
    # arrival first, c0 would still pin all 4 blocks and c1's 2 new blocks would overload.)
    rec = []
    out = simulate_trace(Trace.from_lists([0.0, 0.1], [1, 1], [[], []]), HAND,
                         CacheConfig(capacity_tokens=16, block_size_tokens=4), reference=reference, record=rec)
    assert [(c, hit, over) for _, c, _, hit, _, over in rec] == [(0, 0, False), (1, 2, False)]
    assert out["overload_requests_simulated"] == 0


def test_progress_is_reported_at_each_32nd_of_the_horizon():
    # progress(x) is called at the first event at or after each multiple of horizon / 32 (so the
    # i-th call, i = 1..32, reports at least i / 32), then once with 1.0 at the end: at most 33 calls.
    seen = []
    simulate(HAND, CacheConfig(capacity_tokens=400, block_size_tokens=4), seed=3, n_conversations=400,
             progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) <= 33
    run = seen[:-1]
    assert len(run) >= 30   # (400 arrivals: about 12 events per 32nd, so nearly every step reports)
    assert all(x >= (i + 1) / 32 - 1e-12 for i, x in enumerate(run)), run


@pytest.mark.parametrize("reference", [False, True])
def test_returning_turns_at_one_time_run_in_the_order_they_were_scheduled(reference):
    # S = 0.25 s. c0 arrives at 0: turn 1 [0, 0.25], gap 0.5, turn 2 [0.75, 1.0], gap 0.75 -> turn 3
    # at 1.75, scheduled at 1.0. c1 arrives at 0.5: turn 1 [0.5, 0.75], gap 1.0 -> turn 2 at 1.75,
    # scheduled at 0.75, before c0's. Equal-time returning turns run in the order they were
    # scheduled (module docstring): c1's turn 2, then c0's turn 3. (All times are exact binary
    # fractions, so the two starts are equal.)
    w = Workload(**{**HAND.to_dict(), "service_time_s": 0.25})
    rec = []
    simulate_trace(Trace.from_lists([0.0, 0.5], [3, 2], [[0.5, 0.75], [1.0]]), w, BIG, reference=reference,
                   record=rec)
    assert [(t, c, k) for t, c, k, *_ in rec] == [(0.0, 0, 1), (0.5, 1, 1), (0.75, 0, 2), (1.75, 1, 2),
                                                  (1.75, 0, 3)]


# A GPU smaller than the shared prompt, so the prompt's tail goes down to the lower tiers.
# P = 16 (Ps = 4 shared blocks of 4 tokens), u = o = 4: a first turn asks prompt 20, Z = 24 tokens =
# 6 blocks (4 shared + 2 own), and may hit at most floor(19 / 4) = 4 blocks. GPU: 8 tokens = 2 blocks.
# c0 (one turn) at 0 finds nothing and overloads (6 blocks > 2); at its end (0.1 s) its 2 own blocks
# and the 4 shared become cached, 6 > 2, so the 4 least recently freed go down, tail first: c0's
# own 2 (freed before the shared prompt), then the prompt's last 2 blocks; the GPU keeps blocks 0-1.
# c1 (one turn) arrives at 0.5 s.
LOW = Workload(**{**HAND.to_dict(), "system_prompt_tokens": 16})
TWO = Trace.from_lists([0.0, 0.5], [1, 1], [[], []])
GPU2 = CacheConfig(capacity_tokens=8, block_size_tokens=4)


def test_shared_prompt_pieces_in_two_exclusive_tiers():
    # Exclusive tiers cpu (1 block) -> ssd (8 blocks). The 4 demoted blocks overflow the cpu tier
    # by 3, its oldest first: c0's 2 own blocks and the prompt's last block go on to ssd; cpu keeps
    # block 2. c1 then hits blocks 0-1 on the GPU, 2 on cpu, 3 on ssd: 4 blocks = 16 of 20 tokens,
    # and overloads too (its 2 own blocks plus the 2 promoted ones do not fit beside the 2 pinned).
    # Token hit rate 16 / 40 = 0.4: GPU 8 / 40, cpu 4 / 40, ssd 4 / 40; shared blocks 4 of 2 x 4.
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 4.0), TierConfig("ssd", 32.0)))
    rec = []
    out = simulate_trace(TWO, LOW, GPU2, record=rec, fleet=fleet)
    assert [(c, hit, prompt, over) for _, c, _, hit, prompt, over in rec] == [(0, 0, 20, True), (1, 4, 20, True)]
    assert out["token_hit_rate"] == 16 / 40
    assert out["tier_token_hit_rates"] == pytest.approx([0.2, 0.1, 0.1], abs=1e-15)
    assert out["shared_prompt_hit_rate"] == 4 / 8


def test_shared_prompt_prefix_in_an_inclusive_tier():
    # Inclusive (write-through) tier of 3 blocks: at c0's end it gets c0's own 2 blocks and the 4
    # shared ones, 6 > 3, so its own LRU drops c0's 2 and the prompt's last block: it keeps blocks
    # 0-2. The GPU keeps blocks 0-1 (as above). c1's longest cached prefix is 3 blocks: 0-1 from the
    # GPU and block 2 from the tier copy: 12 of 20 tokens; GPU 8 / 40 and tier 4 / 40.
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 12.0),), "inclusive")
    rec = []
    out = simulate_trace(TWO, LOW, GPU2, record=rec, fleet=fleet)
    assert [(c, hit, over) for _, c, _, hit, _, over in rec] == [(0, 0, True), (1, 3, True)]
    assert out["token_hit_rate"] == 12 / 40
    assert out["tier_token_hit_rates"] == pytest.approx([0.2, 0.1], abs=1e-15)
    # Two inclusive tiers of 3 blocks each: both keep blocks 0-2. The first gives block 2; the second
    # holds nothing beyond what the GPU and the first gave: still 3 blocks, and 0 for the second tier.
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 12.0), TierConfig("ssd", 12.0)), "inclusive")
    rec = []
    out = simulate_trace(TWO, LOW, GPU2, record=rec, fleet=fleet)
    assert [(c, hit) for _, c, _, hit, *_ in rec] == [(0, 0), (1, 3)]
    assert out["tier_token_hit_rates"] == pytest.approx([0.2, 0.1, 0.0], abs=1e-15)


def test_own_history_in_two_inclusive_tiers():
    # c0 with 2 turns (gap 1 s) on the 2-block GPU above two inclusive tiers of 6 blocks, which keep
    # everything freed: c0's own 2 blocks and the 4 shared. The GPU keeps shared blocks 0-1 only.
    # Turn 2 (prompt 28, Z = 32: 8 blocks, at most floor(27 / 4) = 6 hit): GPU blocks 0-1, then the
    # first tier gives shared 2-3 and own 4-5; the second tier holds nothing more: 6 blocks, 24 of 28
    # tokens. Over both turns 24 / 48: GPU 8 / 48, first tier 16 / 48, second 0.
    fleet = FleetConfig(1, "affinity", (TierConfig("cpu", 24.0), TierConfig("ssd", 24.0)), "inclusive")
    rec = []
    out = simulate_trace(Trace.from_lists([0.0], [2], [[1.0]]), LOW, GPU2, record=rec, fleet=fleet)
    assert [(k, hit, prompt) for _, _, k, hit, prompt, _ in rec] == [(1, 0, 20), (2, 6, 28)]
    assert out["token_hit_rate"] == 24 / 48
    assert out["tier_token_hit_rates"] == pytest.approx([8 / 48, 16 / 48, 0.0], abs=1e-15)


def test_progress_on_a_trace_with_starts_on_the_32nds():
    # One-turn chats start at 1, 2, ..., 32 s; horizon 32 s, so the progress step is exactly 1 s and
    # every start is on a step: progress is called at each start with k / 32 (calls come at starts).
    seen = []
    simulate_trace(Trace.from_lists([float(k) for k in range(1, 33)], [1] * 32, [[]] * 32), HAND, BIG,
                   horizon_s=32.0, progress=seen.append)
    assert seen == [k / 32 for k in range(1, 33)]


def test_an_array_input_is_refused_with_its_value():
    from kvcalc.errors import InputError
    with pytest.raises(InputError) as e:
        simulate_trace(TRACE, Workload(**{**HAND.to_dict(), "turns_mean": [2.0, 3.0]}), BIG)
    assert (e.value.field, e.value.problem) == ("workload.turns_mean", "an array")
    assert [float(x) for x in e.value.value] == [2.0, 3.0]   # the value given, not None


def test_warm_up_warning_threshold():
    # The warm-up warning asks for 5 mean gaps plus service times: 5 (tau + S) = 5 (20 + 5) = 125 s,
    # and only when there are gaps (L > 1). 20 % of a horizon of ~690 s at 1 chat/s is ~138 s: in
    # (125, 150), so no warning (a 6x rule would warn). Two turns with n = 50 (warm-up ~10 s) warn;
    # one-turn chats with the same short warm-up do not.
    base = dict(conversation_rate_per_s=1.0, gap_mean_s=20.0, user_tokens_per_turn=40, output_tokens_per_turn=40,
                system_prompt_tokens=64, service_time_s=5.0, turns_distribution="fixed")
    c = CacheConfig(capacity_tokens=4000, block_size_tokens=16)
    out = simulate(Workload(**base, turns_mean=3), c, seed=2, n_conversations=690)
    assert 125.0 < out["warmup_s"] < 150.0
    assert not any(x.startswith("warm-up") for x in out["warnings"])
    short = simulate(Workload(**base, turns_mean=2), c, seed=2, n_conversations=50)
    assert short["warmup_s"] < 125.0 and short["warnings"][0].startswith("warm-up")
    one = simulate(Workload(**base, turns_mean=1), c, seed=2, n_conversations=50)
    assert one["warmup_s"] < 125.0 and not any(x.startswith("warm-up") for x in one["warnings"])


@pytest.mark.parametrize("reference", [False, True])
def test_resumed_turns_run_before_an_arrival_and_in_list_order(reference):
    # Two pre-history conversations (c2, then c1 in the resume list) re-enter at their turn 2 at 0.5 s,
    # when c0 arrives: returning turns run before arrivals, in the order they were scheduled (the
    # resume list's order), so c2, c1, then c0.
    tr = Trace([0.5], [1, 2, 2], [1.0, 1.0], [0, 0, 1], resume=[(0.5, 2, 2), (0.5, 1, 2)])
    rec = []
    simulate_trace(tr, HAND, BIG, reference=reference, record=rec)
    assert [(t, c, k) for t, c, k, *_ in rec] == [(0.5, 2, 2), (0.5, 1, 2), (0.5, 0, 1)]


@pytest.mark.parametrize("reference", [False, True])
def test_hit_cap_leaves_one_token_to_compute(reference):
    # P = 8 (Ps = 2 blocks of 4), u = 1, o = 3: a first turn asks prompt 9 tokens and may hit at most
    # floor((9 - 1) / 4) = 2 blocks (one token is always computed): c1 hits both shared blocks that
    # c0 cached, 8 of 9 tokens.
    w = Workload(**{**HAND.to_dict(), "user_tokens_per_turn": 1, "output_tokens_per_turn": 3})
    rec = []
    simulate_trace(Trace.from_lists([0.0, 0.5], [1, 1], [[], []]), w, BIG, reference=reference, record=rec)
    assert [(c, hit, prompt) for _, c, _, hit, prompt, _ in rec] == [(0, 0, 9), (1, 2, 9)]
