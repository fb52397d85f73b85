"""The calculator's capacity on a trace (operating_point) beyond the trace is explained (#11).

Issue #11, "Bad input": capacities beyond the trace are explained. The rows of
``capacities_blocks`` carried the note; the operating point (the capacity the page sends from
the calculator, ``operating_capacity_tokens``) carries it too, exact and sampled, so the trace
tab can show it. At or above the saturation capacity every reuse hits: the rate is the ideal one.
"""

from __future__ import annotations

import pytest

from kvcalc.trace.api import trace_analyze


@pytest.mark.parametrize("sampling", ["exact", 0.1])
def test_operating_point_beyond_the_trace_carries_the_note(sampling):
    base = trace_analyze({"sample": "synthetic", "sampling": sampling})
    sat_blocks = base["curve"]["saturation_capacity_blocks"]
    bs = base["detection"]["block_size_tokens"]
    for blocks, beyond in ((sat_blocks // 2, False), (sat_blocks - 1, False), (sat_blocks, True),
                           (10 * sat_blocks, True)):
        res = trace_analyze({"sample": "synthetic", "sampling": sampling, "operating_capacity_tokens": blocks * bs})
        op = res["operating_point"]
        assert op["capacity_blocks"] == blocks
        assert op.get("beyond_trace", False) is beyond, blocks
        if beyond:
            d = op["note_detail"]
            assert d["code"] == "trace_capacity_beyond_trace"
            assert d["params"] == {"capacity_blocks": blocks, "saturation_capacity_blocks": sat_blocks}
            # every reuse hits: the ideal (infinite-cache) rate, the trace's ceiling
            assert op["token_hit_rate"] == pytest.approx(res["ideal_token_hit_rate"], abs=1e-12)
        else:
            assert "note_detail" not in op
            assert op["token_hit_rate"] < res["ideal_token_hit_rate"]
