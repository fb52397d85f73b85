"""Where the fitted model's curve holds (kvcalc.trace.api.model_domain), and the counting rule
without a warm-up.

The analytic model pins running requests and holds the shared prompt while any request runs
(MODEL.md): below the in-flight working set O(0) = lambda*S*sum_k P(N>=k)*Bpin_k + P_s blocks it
is in overload and keeps the prompt hitting, which a replay (requests not pinned) never does;
below one mean request nothing runs at all. On the Mooncake synthetic sample (6,144-token prompt,
17.5 requests in flight) the model's curve was drawn from one block up, flat at 41 %, against 0-8 %
replayed. The boundaries below are derived by hand; the in-flight working set is checked against
the simulator's time-average of pinned blocks.
"""

from pathlib import Path

import pytest

from kvcalc.simulate import simulate
from kvcalc.trace.api import _model_curve, model_domain, trace_analyze
from kvcalc.workload import CacheConfig, Workload

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "data" / "traces" / "mooncake" / "synthetic_trace.jsonl"


def one_turn(service_time_s: float, system_prompt_tokens: float = 0.0) -> Workload:
    return Workload(conversation_rate_per_s=1.0, turns_mean=1.0, turns_distribution="fixed", gap_mean_s=60.0,
                    user_tokens_per_turn=1000.0, output_tokens_per_turn=24.0,
                    system_prompt_tokens=system_prompt_tokens, service_time_s=service_time_s)


def test_overload_boundary_by_hand():
    # one turn of 1,024 tokens, b = 16: Bpin = ceil(1024/16) = 64 blocks; 1/s x 5 s = 5 in flight:
    # O(0) = 320 blocks, the smallest capacity above it 321 blocks = 5,136 tokens; one request 1,024.
    d = model_domain(one_turn(5.0), 16)
    assert d["in_flight_requests"] == pytest.approx(5.0)
    assert d["overload_ends_at_capacity_tokens"] == 321 * 16
    assert d["request_capacity_tokens"] == 64 * 16
    assert d["valid_from_capacity_tokens"] == 5136 and d["limited_by"] == "overload"


def test_one_request_boundary_by_hand():
    # 0.5 in flight: O(0) = 32 blocks -> 33 x 16 = 528 tokens, below one request (1,024): that wins
    d = model_domain(one_turn(0.5), 16)
    assert d["valid_from_capacity_tokens"] == 1024 and d["limited_by"] == "one_request"
    # a 100-token prompt: P_s = floor(100/16) = 6 shared blocks; Z_1 = 1,124 tokens,
    # Bpin = ceil(1124/16) - 6 = 65; O(0) = 0.5 x 65 + 6 = 38.5 -> 39 x 16 = 624; one request 71 x 16
    d = model_domain(one_turn(0.5, 100.0), 16)
    assert d["overload_ends_at_capacity_tokens"] == 624 and d["system_prompt_tokens"] == 96
    assert d["valid_from_capacity_tokens"] == 71 * 16 and d["limited_by"] == "one_request"


def test_in_flight_working_set_matches_the_simulator():
    """O(0) (the overload boundary) is the mean number of pinned blocks; the simulator measures it
    as the time-average of blocks held by running requests (shared prompt included), at a capacity
    where nothing is evicted. 15 requests in flight, 3 turns on average: 20,000 conversations
    (~60,000 requests over ~20,000 s) give a standard error of about 0.7 % (M/G/inf: variance of
    the mean ~ 2 x 15 x S / horizon in requests); tolerance 3 %."""
    w = Workload(conversation_rate_per_s=1.0, turns_mean=3.0, gap_mean_s=30.0, user_tokens_per_turn=1000.0,
                 output_tokens_per_turn=24.0, system_prompt_tokens=100.0, service_time_s=5.0)
    d = model_domain(w, 16)
    o0_blocks = d["overload_ends_at_capacity_tokens"] / 16 - 1          # floor(O(0))
    sim = simulate(w, CacheConfig(capacity_tokens=1e8, block_size_tokens=16), seed=3, n_conversations=20000)
    pinned = sim["occupancy_blocks"]["pinned"] + sim["occupancy_blocks"]["shared_prompt"]
    assert pinned == pytest.approx(o0_blocks, rel=0.03)
    assert d["in_flight_requests"] == pytest.approx(15.0)


def test_model_curve_flags_the_points_outside_the_domain():
    fit = {"workload": {"conversation_rate_per_s": 1.0, "turns_mean": 1.0, "turns_distribution": "fixed",
                        "gap_mean_s": 60.0, "user_tokens_per_turn": 1000.0, "output_tokens_per_turn": 24.0,
                        "system_prompt_tokens": 0.0, "service_time_s": 5.0}}
    m = _model_curve(fit, [0, 16, 1024, 5120, 5136, 100000], 16)
    assert m["available"] and m["valid_from_capacity_tokens"] == 5136
    assert m["in_domain"] == [False, False, False, False, True, True]
    assert m["domain_detail"]["code"] == "trace_model_domain_overload"
    assert m["domain_detail"]["params"]["valid_from_capacity_tokens"] == 5136
    assert m["domain_detail"]["params"]["in_flight_requests"] == pytest.approx(5.0)


def test_synthetic_sample_model_starts_past_the_requests_in_flight():
    """The screenshot's case: the model's curve no longer starts at one block."""
    r = trace_analyze({"path": str(SYNTHETIC), "model_curve": True})
    m, w = r["model_curve"], r["fit"]["workload"]
    caps = r["curve"]["capacity_tokens"]
    start = m["valid_from_capacity_tokens"]
    # each running request pins at least its own u + o tokens, the shared prompt is held too
    n = m["domain"]["in_flight_requests"]
    assert n == pytest.approx(w["conversation_rate_per_s"] * w["service_time_s"] * 1.0 * _mean_turns(r), rel=1e-6)
    assert start >= n * (w["user_tokens_per_turn"] + w["output_tokens_per_turn"]) + w["system_prompt_tokens"]
    assert m["in_domain"] == [c >= start for c in caps]
    assert caps[0] < start < caps[-1] and m["domain_detail"]["code"] == "trace_model_domain_overload"


def _mean_turns(r) -> float:
    # geometric turns with the fitted mean: E[N] is the mean itself
    return r["fit"]["workload"]["turns_mean"]


@pytest.mark.parametrize("warmup,code", [(0.0, "trace_counting_full_all"), (0.25, "trace_counting_full")])
def test_counting_rule_without_warmup_has_its_own_message(warmup, code):
    text = "\n".join('{"timestamp": %d, "input_length": 64, "output_length": 1, "hash_ids": [1, 2, 3, 4]}' % t
                     for t in range(8))
    for sampling, suffix in (("exact", ""), (1.0, "_sampled")):
        r = trace_analyze({"text": text, "block_size_tokens": 16, "warmup_fraction": warmup, "sampling": sampling})
        want = code.replace("full", "full" + suffix) if suffix else code
        assert r["counting_rule_detail"]["code"] == want
        if warmup == 0:
            assert r["counting_rule_detail"]["params"] == {}
            assert "every request counted (no warm-up)" in r["counting_rule"] and "first 0 %" not in r["counting_rule"]
        else:
            assert r["counting_rule_detail"]["params"] == {"warmup_fraction": 0.25}
            assert "the first 25 % of requests" in r["counting_rule"]


def test_one_request_boundary_rounds_up_a_fractional_mean_request():
    # two fixed turns, 1,000-token prompt (P_s = floor(1000/16) = 62 blocks), 1,000 user and 8 output
    # tokens a turn, b = 16. A running turn pins its prompt and output past the shared blocks:
    # turn 1: ceil((1000 + 1000 + 8)/16) - 62 = 126 - 62 = 64; turn 2: ceil((2008 + 1000 + 8)/16) - 62
    # = 189 - 62 = 127. Mean request = 62 + (64 + 127)/2 = 157.5 blocks: one whole request needs 158
    # blocks = 2,528 tokens (157 would not hold it). In flight 1/s x 2 x 0.25 s = 0.5: O(0) = 0.25 x 191
    # + 62 = 109.75 -> 110 blocks = 1,760 tokens, below one request.
    w = Workload(conversation_rate_per_s=1.0, turns_mean=2.0, turns_distribution="fixed", gap_mean_s=60.0,
                 user_tokens_per_turn=1000.0, output_tokens_per_turn=8.0, system_prompt_tokens=1000.0,
                 service_time_s=0.25)
    d = model_domain(w, 16)
    assert d["system_prompt_tokens"] == 62 * 16
    assert d["overload_ends_at_capacity_tokens"] == 110 * 16
    assert d["request_capacity_tokens"] == 158 * 16
    assert d["valid_from_capacity_tokens"] == 158 * 16 and d["limited_by"] == "one_request"
