"""Engine log parsing and the comparison with an estimate, on hand-made lines and reports
(issue #10, mutation testing). The reports are plain dicts with round numbers, so every expected
difference and implied reserve is worked out in the comment beside it."""

import pytest

from kvcalc.enginelog import MAX_LOG_CHARS, compare_with_estimate, parse_engine_log
from kvcalc.errors import InputError


def test_every_vllm_line_kind_with_separators():
    text = "\n".join([
        "INFO Available KV cache memory: 1,024.5 GiB",
        "INFO GPU KV cache size: 1,234,567 tokens",
        "INFO Maximum concurrency for 32,768 tokens per request: 37.68x",
        "INFO Model loading took 15.5 GB and 3.2 seconds",
        "INFO GPU blocks: 7,000, # CPU blocks: 2048",
    ])
    p = parse_engine_log(text)
    assert p["engine"] == "vllm"
    assert p["available_kv_cache_gib"] == 1024.5 and p["kv_cache_tokens"] == 1234567
    assert (p["max_concurrency_context_tokens"], p["max_concurrency"]) == (32768, 37.68)
    assert p["weights_gib"] == 15.5 and p["gpu_blocks"] == 7000
    # bytes per token = GiB x 2^30 / tokens
    assert p["kv_cache_bytes_per_token"] == 1024.5 * 2**30 / 1234567
    assert p["lines"] == text.splitlines()


def test_last_line_wins_and_lines_are_trimmed():
    # one line per TP worker: the last one counts; leading/trailing spaces are stripped, long lines cut at 300
    long_tail = " x" * 400
    text = ("  Available KV cache memory: 8.00 GiB  \n"
            "Available KV cache memory: 9.25 GiB" + long_tail + "\n"
            "nothing here\n")
    p = parse_engine_log(text)
    assert p["available_kv_cache_gib"] == 9.25
    assert p["lines"][0] == "Available KV cache memory: 8.00 GiB"
    assert len(p["lines"]) == 2 and len(p["lines"][1]) == 300
    assert p["kv_cache_tokens"] is None and p["kv_cache_bytes_per_token"] is None


def test_profile_line_only_fills_a_missing_kv_memory():
    # v0's "kv_cache_size=3.81GiB" counts when no "Available KV cache memory" line came first
    assert parse_engine_log("Memory profiling results: kv_cache_size=3.81GiB")["available_kv_cache_gib"] == 3.81
    p = parse_engine_log("Available KV cache memory: 5 GiB\nMemory profiling results: kv_cache_size=3.81GiB")
    assert p["available_kv_cache_gib"] == 5.0 and p["engine"] == "vllm"


def test_sglang_lines():
    text = ("Load weight end. type=Qwen3ForCausalLM, dtype=torch.bfloat16, avail mem=60.1 GB, mem usage=14.99 GB.\n"
            "KV Cache is allocated. #tokens: 100000, K size: 1.5 GB, V size: 1.5 GB")
    p = parse_engine_log(text)
    assert p["engine"] == "sglang" and p["weights_gib"] == 14.99
    # K + V = 3.0 GiB over 100000 tokens
    assert p["available_kv_cache_gib"] == 3.0 and p["kv_cache_tokens"] == 100000
    assert p["kv_cache_bytes_per_token"] == 3.0 * 2**30 / 100000
    assert parse_engine_log(text.splitlines()[0])["engine"] == "sglang"


def test_zero_tokens_give_no_bytes_per_token():
    p = parse_engine_log("Available KV cache memory: 1 GiB\nGPU KV cache size: 0 tokens")
    assert p["kv_cache_tokens"] == 0 and p["kv_cache_bytes_per_token"] is None


def test_log_size_limit():
    line = "GPU KV cache size: 16 tokens"
    ok = line + " " * (MAX_LOG_CHARS - len(line))
    assert len(ok) == MAX_LOG_CHARS and parse_engine_log(ok)["kv_cache_tokens"] == 16
    with pytest.raises(InputError) as e:
        parse_engine_log(ok + " ")
    assert e.value.field == "engine_log" and e.value.problem == "too long"
    assert e.value.value == f"{MAX_LOG_CHARS + 1} characters"
    assert e.value.allowed == "at most 2000000 characters (paste the start-up part)"


def test_unreadable_and_mixed_logs_carry_codes():
    with pytest.raises(InputError) as e:
        parse_engine_log("hello\n" * 10)
    assert e.value.code == "engine_log_unreadable" and e.value.value == "hello\nhello\nhello\nhello\nhello\nhello\n" \
        "hello\nhello\nhello\nhello"[:80]
    with pytest.raises(InputError) as e:
        parse_engine_log("GPU KV cache size: 16 tokens\nKV Cache is allocated. #tokens: 1, K size: 1 GB, V size: 1 GB")
    assert e.value.code == "engine_log_mixed" and e.value.value == "vLLM and SGLang lines"
    assert e.value.allowed == "the log of one engine"
    with pytest.raises(InputError) as e:
        parse_engine_log(b"GPU KV cache size: 16 tokens")
    assert e.value.field == "engine_log" and e.value.problem == "not text"


# --- comparison -----------------------------------------------------------------------------------------

REPORT = {"kv_capacity_tokens": 100000, "kv_budget_gib": 10.0, "weights_gib_per_gpu": 20.0,
          "kv_bytes_per_token": 100000.0, "usable_gib_per_gpu": 32.0, "vllm_block_size_tokens": 16,
          "max_model_len_tokens": 4096, "max_concurrency_at_context": 24.0}


def test_compare_rows_and_adopted_reserve_by_hand():
    parsed = parse_engine_log("Available KV cache memory: 8 GiB\nGPU KV cache size: 80,000 tokens\n"
                              "Maximum concurrency for 4096 tokens per request: 20x\n"
                              "Model loading took 21 GiB")
    c = compare_with_estimate(parsed, REPORT)
    assert c["engine"] == "vllm"
    rows = c["rows"]
    # (estimate - engine) / engine
    assert rows["kv_cache_gib"] == {"engine": 8.0, "estimate": 10.0, "relative_difference": 0.25,
                                   "relative_difference_pct": 25.0}
    assert rows["kv_cache_tokens"]["relative_difference"] == 0.25
    # same max model length as the report: the report's vLLM concurrency (24) against 20
    assert rows["max_concurrency"] == {"engine": 20.0, "estimate": 24.0, "relative_difference": 0.2,
                                      "relative_difference_pct": pytest.approx(20.0, rel=1e-15)}
    assert rows["weights_gib_per_gpu"]["relative_difference"] == pytest.approx(-1 / 21, rel=1e-15)
    # engine bytes per token 8 x 2^30 / 80000 = 107374.18; ours 100000
    assert rows["kv_bytes_per_token"]["engine"] == 8 * 2**30 / 80000
    # reserve = usable 32 - the engine's weights 21 (vLLM's own figure) - engine KV 8 = 3 GiB
    assert (c["adopt"]["capacity_tokens"], c["adopt"]["runtime_reserve_gib"]) == (80000, 3.0)
    # messages: every row off by more than 5 %, in row order
    assert [m["params"]["quantity"] for m in c["messages"]] == [
        "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "kv_bytes_per_token"]
    m = c["messages"][0]
    assert m["code"] == "engine_differs" and m["params"]["relative_difference"] == 0.25
    assert m["message"] == "kv_cache_gib: the estimate 10 differs from the engine's 8 by +25.0%."
    assert c["messages"][3]["message"].endswith("by -6.9%.")
    # a looser tolerance keeps only the rows above it (25 % and 20 %: 0.2 is not above 0.2)
    assert [m["params"]["quantity"] for m in compare_with_estimate(parsed, REPORT, tolerance=0.2)["messages"]] == [
        "kv_cache_gib", "kv_cache_tokens"]


def test_compare_other_length_blocks_and_sglang_weights():
    # concurrency at another length: capacity / that length = 100000 / 2048; tokens from v0 blocks x 16
    parsed = parse_engine_log("# GPU blocks: 5000\nMaximum concurrency for 2048 tokens per request: 40x")
    c = compare_with_estimate(parsed, REPORT)
    assert c["rows"]["max_concurrency"]["estimate"] == 100000 / 2048
    assert c["adopt"]["capacity_tokens"] == 5000 * 16
    assert c["rows"]["kv_cache_gib"]["relative_difference"] is None     # the log gave no KV memory
    assert c["adopt"]["runtime_reserve_gib"] is None
    # a report without a block size (older reports) counts blocks of 16; a hybrid model's larger block is used
    assert compare_with_estimate(parsed, dict(REPORT, vllm_block_size_tokens=None))["adopt"]["capacity_tokens"] \
        == 80000
    assert compare_with_estimate(parsed, dict(REPORT, vllm_block_size_tokens=544))["adopt"]["capacity_tokens"] \
        == 5000 * 544
    # SGLang's weights line is not used for the reserve (its figure is not per the same accounting):
    # reserve = 32 - report's 20 - KV 3 = 9
    sg = parse_engine_log("Load weight end. mem usage=14.99 GB.\n"
                          "KV Cache is allocated. #tokens: 100000, K size: 1.5 GB, V size: 1.5 GB")
    c = compare_with_estimate(sg, REPORT)
    assert c["adopt"]["runtime_reserve_gib"] == 9.0 and c["engine"] == "sglang"
    assert c["rows"]["max_concurrency"] == {"engine": None, "estimate": None, "relative_difference": None,
                                                  "relative_difference_pct": None}


def test_compare_reserve_zero_negative_and_missing_capacity():
    # engine KV exactly usable - weights: reserve 0 is adopted
    parsed = parse_engine_log("Available KV cache memory: 12 GiB")
    c = compare_with_estimate(parsed, REPORT)
    assert c["adopt"]["runtime_reserve_gib"] == 0.0
    assert not any(m["code"] == "engine_reserve_negative" for m in c["messages"])
    # more than that: no reserve, and a message saying the run does not match
    c = compare_with_estimate(parse_engine_log("Available KV cache memory: 12.5 GiB"), REPORT)
    assert c["adopt"]["runtime_reserve_gib"] is None
    neg = [m for m in c["messages"] if m["code"] == "engine_reserve_negative"]
    assert len(neg) == 1 and neg[0]["params"] == {"reserve_gib": -0.5}
    assert "exceeds this GPU's usable memory" in neg[0]["message"]
    # an engine value of 0 has no relative difference
    c = compare_with_estimate(parse_engine_log("GPU KV cache size: 0 tokens"), REPORT)
    assert c["rows"]["kv_cache_tokens"]["relative_difference"] is None and c["messages"] == []
    with pytest.raises(InputError) as e:
        compare_with_estimate(parsed, dict(REPORT, kv_capacity_tokens=None))
    assert e.value.field == "gpu" and e.value.problem == "missing"


def test_every_key_present_with_none_and_integer_counts():
    p = parse_engine_log("GPU KV cache size: 1,234 tokens\n# GPU blocks: 77")
    assert set(p) == {"engine", "available_kv_cache_gib", "kv_cache_tokens", "max_concurrency",
                      "max_concurrency_context_tokens", "weights_gib", "gpu_blocks", "kv_cache_bytes_per_token",
                      "lines"}
    assert p["max_concurrency"] is None and p["max_concurrency_context_tokens"] is None and p["weights_gib"] is None
    assert p["available_kv_cache_gib"] is None
    # token and block counts are whole numbers
    assert type(p["kv_cache_tokens"]) is int and type(p["gpu_blocks"]) is int and p["gpu_blocks"] == 77


def test_sglang_k_and_v_sizes_add():
    p = parse_engine_log("KV Cache is allocated. #tokens: 1000, K size: 1.5 GB, V size: 2.5 GB")
    assert p["available_kv_cache_gib"] == 4.0


def test_refusal_words():
    with pytest.raises(InputError) as e:
        parse_engine_log(3)
    assert (e.value.value, e.value.allowed) == (3, "the text of the engine's start-up log")
    text = "x" * 50 + " " + "y" * 50
    with pytest.raises(InputError) as e:
        parse_engine_log("  " + text + "  ")
    # the value shown is the first 80 characters of the stripped text
    assert e.value.value == text[:80] and e.value.problem == "no vLLM or SGLang KV cache line found"
    with pytest.raises(InputError) as e:
        parse_engine_log("GPU KV cache size: 16 tokens\nKV Cache is allocated. #tokens: 1, K size: 1 GB, V size: 1 GB")
    assert e.value.field == "engine_log" and e.value.problem == "mixed engine logs"
    with pytest.raises(InputError) as e:
        compare_with_estimate(parse_engine_log("GPU KV cache size: 16 tokens"), dict(REPORT, kv_capacity_tokens=None))
    assert e.value.allowed == "a GPU, so the estimate has a capacity to compare"
    c = compare_with_estimate(parse_engine_log("Available KV cache memory: 12.5 GiB"), REPORT)
    neg = [m for m in c["messages"] if m["code"] == "engine_reserve_negative"][0]
    assert neg["message"] == ("The engine's KV memory exceeds this GPU's usable memory less the weights: "
                              "check the GPU, tensor parallelism and memory fraction match the run.")
