"""The page's parameter table mirrors the core's limits (js/params.js vs kvcalc.workload).

The table's lo/hi/loOpen decide the inline messages before a request is sent;
Python validates again. If the two drifted, the page would accept what Python
refuses (or the reverse), so every workload and cache field is compared here.
"""

import pytest

from kvcalc.workload import CACHE_LIMITS, WORKLOAD_LIMITS

pytestmark = pytest.mark.browser


def test_params_table_limits_equal_python_limits(page, server):
    page.goto(f"{server}tests/browser/harness.html")
    rows = page.evaluate("""async () => {
        const m = await import('/js/params.js');
        return m.PARAMS.filter(p => p.kind === 'number')
                       .map(p => ({key: p.key, lo: p.lo, hi: p.hi, loOpen: !!p.loOpen}));
    }""")
    by_key = {r["key"]: r for r in rows}
    checked = 0
    for prefix, limits in (("workload", WORKLOAD_LIMITS), ("cache", CACHE_LIMITS)):
        for name, (lo, hi, lo_open) in limits.items():
            key = f"{prefix}.{name}"
            if key not in by_key:
                continue
            row = by_key[key]
            assert row["lo"] == lo and row["loOpen"] == lo_open, (key, row, (lo, hi, lo_open))
            if hi != float("inf"):
                assert row["hi"] == hi, (key, row, hi)
            checked += 1
    # every numeric workload field has a control
    assert all(f"workload.{n}" in by_key for n in WORKLOAD_LIMITS)
    assert checked >= len(WORKLOAD_LIMITS) + 1
