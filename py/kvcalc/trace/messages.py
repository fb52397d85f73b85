"""Trace mode's texts as message twins ``{code, params, message}`` (the page renders ``msg.<code>``).

``message`` is the English text the CLI prints; the page shows ``msg.<code>`` from its
catalogues with ``params``. Every code trace mode can emit is listed in :data:`TRACE_CODES`
(tests/test_i18n.py checks each has ``msg.<code>`` in both catalogues).
"""

from __future__ import annotations

__all__ = ["TRACE_CODES", "BAD_LINE_REASONS", "twin", "detection_details", "session_source_detail",
           "counting_rule_detail"]

#: reasons of a bad line (``detection.bad_lines_by_reason`` keys); error code: trace_bad_<reason>
BAD_LINE_REASONS = ("bad_value", "hash_ids_inconsistent_with_input_length", "line_too_long", "malformed_json",
                    "missing_field", "negative_length", "non_monotone_timestamp", "not_an_object", "not_text",
                    "prefix_chain_broken", "too_deep", "truncated_line")

TRACE_CODES = (
    # a bad line: an error naming the line, or a count by reason
    "trace_bad_bad_value", "trace_bad_hash_ids_inconsistent_with_input_length", "trace_bad_line_too_long",
    "trace_bad_malformed_json", "trace_bad_missing_field", "trace_bad_negative_length",
    "trace_bad_non_monotone_timestamp", "trace_bad_not_an_object", "trace_bad_not_text",
    "trace_bad_prefix_chain_broken", "trace_bad_too_deep", "trace_bad_truncated_line",
    # what is wrong in a bad line: the detail next to trace_bad_<reason>
    "trace_line_missing_field", "trace_line_not_integer", "trace_line_beyond_tokens", "trace_line_negative",
    "trace_line_not_a_number", "trace_line_beyond_time", "trace_line_not_finite_time", "trace_line_not_a_list",
    "trace_line_bad_id", "trace_line_id_out_of_range", "trace_line_too_long", "trace_line_binary",
    "trace_line_not_utf8", "trace_line_too_deep", "trace_line_too_deep_plain", "trace_line_malformed_json",
    "trace_line_malformed_json_at", "trace_line_not_an_object", "trace_line_truncated", "trace_line_truncated_at",
    "trace_line_ids_mismatch", "trace_line_time_backwards", "trace_line_missing_chat", "trace_line_bad_chat_id",
    "trace_line_chain_moved", "trace_line_chain_repeat",
    # the stream broke or hit a limit
    "trace_read_error", "trace_corrupt_gzip", "trace_trailing_data", "trace_truncated_gzip", "trace_max_bytes",
    "trace_max_lines", "trace_cancelled", "trace_chunk_not_bytes", "trace_file_unreadable",
    # the whole trace
    "trace_empty", "trace_no_json_lines", "trace_format_undetected", "trace_block_size_unknown",
    "trace_bad_header_block_size", "trace_out_of_memory",
    "trace_sampling_rate", "trace_sampling_rate_small",
    # detection
    "trace_format_user", "trace_format_detected", "trace_bs_user", "trace_bs_header", "trace_bs_format_default",
    "trace_bs_inferred", "trace_chain_verified", "trace_chain_rechained", "trace_chain_sampled",
    "trace_sessions_chat", "trace_sessions_field", "trace_sessions_inferred",
    # counting rule, sampling, fleet, model
    "trace_counting_full", "trace_counting_partial", "trace_counting_full_sampled", "trace_counting_partial_sampled",
    "trace_counting_full_all", "trace_counting_partial_all", "trace_counting_full_sampled_all",
    "trace_counting_partial_sampled_all",
    "trace_sampling_auto_sampled", "trace_sampling_auto_exact",
    "trace_sampling_exact_asked", "trace_sampling_rate_asked", "trace_sampling_heavy_hitters",
    "trace_sampling_accuracy", "trace_capacity_beyond_trace",
    "trace_routing_one_cache", "trace_routing_pool", "trace_routing_index", "trace_routing_uniform",
    "trace_routing_session", "trace_routing_first_block", "trace_fleet_note", "trace_fleet_note_pooled",
    "trace_fleet_note_sampled", "trace_fleet_note_sampled_pooled",
    "trace_model_unavailable", "trace_model_domain_overload", "trace_model_domain_one_request",
    # workload fit notes
    "trace_fit_one_timestamp", "trace_fit_service_time_default", "trace_fit_gap_mean",
    "trace_fit_no_follow_ups", "trace_fit_gap_exponential", "trace_fit_gap_lognormal", "trace_fit_user_tokens",
    "trace_fit_turns_geometric", "trace_fit_clamped",
)


def twin(code: str, message: str, **params) -> dict:
    """A message twin; ``code`` must be in :data:`TRACE_CODES`."""
    assert code in TRACE_CODES, code
    return {"code": code, "params": params, "message": message}


_BS_SOURCES = {"user": "trace_bs_user", "header": "trace_bs_header", "format default": "trace_bs_format_default"}


def detection_details(info: dict) -> dict:
    """``info`` with ``format_source_detail``, ``block_size_source_detail``, ``chaining_detail``."""
    fs = info.get("format_source")
    if fs in ("user", "detected"):
        info["format_source_detail"] = twin(f"trace_format_{fs}", fs)
    bs = info.get("block_size_source")
    if isinstance(bs, str):
        info["block_size_source_detail"] = twin(_BS_SOURCES.get(bs, "trace_bs_inferred"), bs)
    ch = info.get("chaining")
    if isinstance(ch, str):
        code = ("trace_chain_rechained" if ch.startswith("re-chained") else
                "trace_chain_sampled" if "sampled" in ch else "trace_chain_verified")
        info["chaining_detail"] = twin(code, ch)
    return info


def session_source_detail(source: str | None) -> dict | None:
    if source is None:
        return None
    code = ("trace_sessions_chat" if source.startswith("chat_id") else
            "trace_sessions_field" if source.startswith("session_id") else "trace_sessions_inferred")
    return twin(code, source)


def counting_rule_detail(full_blocks_only: bool, warmup_fraction: float, message: str, sampled: bool = False) -> dict:
    """The counting rule's twin; without a warm-up (0) a code of its own ("..._all": every request
    counted), not "the first 0 % of requests not counted"."""
    code = {(True, False): "trace_counting_full", (False, False): "trace_counting_partial",
            (True, True): "trace_counting_full_sampled", (False, True): "trace_counting_partial_sampled"}[
        (bool(full_blocks_only), bool(sampled))]
    if warmup_fraction == 0:
        return twin(code + "_all", message)
    return twin(code, message, warmup_fraction=warmup_fraction)
