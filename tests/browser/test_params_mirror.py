"""Every row of the page's parameter table agrees with Python (js/params.js vs kvcalc), the
trace tab's rows (TRACE_PARAMS: keys "trace." + kvcalc.trace.api's request key paths) included.

Numeric rows take their valid range from py/kvcalc/limits.json (written from
kvcalc.limits); this checks the page really applied it, row by row, so the page
refuses exactly what Python refuses. Select rows offer only values Python accepts
(and, for Python's fixed lists, all of them). The committed limits.json must be
what `python -m kvcalc limits --json` prints now.
"""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from kvcalc.fleet import ROUTINGS, TIER_MODES
from kvcalc.architecture import ARCHITECTURE_KEYS
from kvcalc.hitrate import HIT_MODELS
from kvcalc.quant import WEIGHT_FORMATS
from kvcalc.limits import CHOICE_DEFAULTS, LIMITS, PAGE_TIERS, limits_json
from kvcalc.trace.api import REQUEST_KEYS as TRACE_REQUEST_KEYS
from kvcalc.trace.fleet import ROUTINGS as TRACE_ROUTINGS
from kvcalc.trace.loaders import FORMATS as TRACE_FORMATS
from kvcalc.request import CACHE_KEYS, RECOMMENDER_KEYS, REQUEST_KEYS, SIMULATION_KEYS, WORKLOAD_KEYS
from kvcalc.scenarios import SCENARIOS
from kvcalc.units import DTYPE_BITS
from kvcalc.workload import EVICTIONS, GAP_DISTRIBUTIONS, TURNS_DISTRIBUTIONS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser

#: select rows: (choices Python accepts, whether the page must offer every one of them)
SELECT_CHOICES = {
    "workload.turns_distribution": (set(TURNS_DISTRIBUTIONS), True),
    "workload.gap_distribution": (set(GAP_DISTRIBUTIONS), True),
    "cache.eviction": (set(EVICTIONS), True),
    "hit_model": (set(HIT_MODELS), True),
    "kv_cache_dtype": ({"auto"} | set(DTYPE_BITS), False),
    "scenario": (set(SCENARIOS), True),
    "cluster.routing": (set(ROUTINGS), True),
    "tier_mode": (set(TIER_MODES), True),
    # "auto": nothing sent (the checkpoint's own format)
    "weight_dtype": ({"auto"} | set(WEIGHT_FORMATS), False),
    "model.architecture.attention": ({"auto", "mha", "gqa", "mqa", "mla"}, True),
    "trace.format": (set(TRACE_FORMATS), True),
    "trace.cluster.routing": (set(TRACE_ROUTINGS), True),
}
#: rows of the page only (request: false): the Hugging Face id, resolved by the page to a config
PAGE_ONLY = {"model.hf_id"}


def _key_known(key: str) -> bool:
    if key.startswith("trace."):   # the trace tab: a key of kvcalc.trace.api's request
        rest = key[len("trace."):]
        return rest in TRACE_REQUEST_KEYS or rest in ("cluster.instances", "cluster.routing", "tiers[1].capacity_gib")
    if key.startswith("tiers["):   # a field of one tier of the list (js/fleet-params.js)
        return key.split("]", 1)[1] in (".capacity_gib", ".read_gb_per_s", ".capacity_tokens")
    head, _, rest = key.partition(".")
    if not rest:
        return head in REQUEST_KEYS
    if key in PAGE_ONLY:
        return True
    known = {"workload": WORKLOAD_KEYS, "cache": CACHE_KEYS, "simulation": SIMULATION_KEYS,
             "model": ("hf_config",) + tuple(f"architecture.{k}" for k in ARCHITECTURE_KEYS),
             "recommender": RECOMMENDER_KEYS, "cluster": ("instances", "routing")}
    return head in known and rest in known[head]


def test_committed_limits_json_is_current():
    committed = (ROOT / "py" / "kvcalc" / "limits.json").read_text(encoding="utf-8")
    assert committed == limits_json(), "run: python -m kvcalc limits --json > py/kvcalc/limits.json"
    out = subprocess.run([sys.executable, "-m", "kvcalc", "limits", "--json"], cwd=ROOT / "py",
                         capture_output=True, text=True, check=True).stdout
    assert out == committed


def test_every_page_row_agrees_with_python(page, server):
    page.goto(f"{server}tests/browser/harness.html")
    rows = page.evaluate("""async () => {
        const m = await import('/js/params.js');
        return m.ALL_PARAMS.map(p => ({key: p.key, kind: p.kind, lo: p.lo, hi: p.hi === Infinity ? 'inf' : p.hi,
                                   loOpen: p.loOpen, hiOpen: p.hiOpen, integer: p.integer,
                                   options: Array.isArray(p.options) ? [...p.options] : p.options,
                                   words: p.words ?? null,
                                   min: p.min, max: p.max, def: p.default, limit: p.limit ?? null}));
    }""")
    assert len(rows) >= 25
    seen_numbers = 0
    for row in rows:
        key = row["key"]
        assert _key_known(key), f"{key}: the page shows a field Python does not know"
        if row["kind"] == "number":
            key = row["limit"] or key   # list fields use their list's row ("tiers[].read_gb_per_s")
            assert key in LIMITS, f"{key}: numeric row with no limit in kvcalc.limits"
            lim = LIMITS[key]
            assert row["lo"] == lim.lo and row["loOpen"] == lim.lo_open, (key, row, lim)
            assert row["hi"] == ("inf" if lim.hi == math.inf else lim.hi) and row["hiOpen"] == lim.hi_open, (key, row, lim)
            # whole numbers where Python wants them, and where its table says the page takes them
            assert row["integer"] == (lim.integer or lim.page_integer), (key, row, lim)
            # the default and the slider's ends are values Python accepts (or a word it takes)
            if row["words"] is not None:
                assert row["def"] in row["words"] and row["def"] == CHOICE_DEFAULTS[row["key"]], row
                assert set(row["words"]) <= {"auto", "exact"}, row               # kvcalc.trace.api's words
                assert all(lim.contains(x) for x in row["options"]), row        # the select's rates
            for x in (row["def"], row["min"], row["max"]):
                if x is not None and not isinstance(x, str):
                    assert lim.contains(x) and (not lim.integer or x == int(x)), (key, x, lim)
            if lim.default is not None and row["def"] is not None:
                assert row["def"] == lim.default, (key, row["def"], lim.default)
            seen_numbers += 1
        elif row["kind"] == "select" and key in SELECT_CHOICES:
            choices, complete = SELECT_CHOICES[key]
            offered = set(row["options"])
            assert offered <= choices, (key, offered - choices)
            if complete:
                assert offered == choices, (key, choices - offered)
            if key in CHOICE_DEFAULTS:
                assert row["def"] == CHOICE_DEFAULTS[key], (key, row["def"])
        elif row["kind"] == "bool":
            assert row["options"] == [True, False] and row["def"] == CHOICE_DEFAULTS[key], row
        elif key == "cache.block_size_tokens":
            lim = LIMITS[key]
            assert all(lim.contains(x) and x == int(x) for x in row["options"]), row["options"]
            assert row["def"] == lim.default
        else:
            # model/gpu options come from presets/*.json at start-up; the config.json box is free text
            # free text: the config.json box, the repo id, the layer pattern, the name, the engine log
            assert key in ("model", "gpu", "model.hf_config", "model.hf_id", "model.architecture.name",
                           "model.architecture.layer_pattern", "engine_log"), key
    # every numeric request field with a page control is covered, every workload field has one
    assert all(f"workload.{n}" in {r["key"] for r in rows} for n in WORKLOAD_KEYS)
    assert seen_numbers == sum(1 for r in rows if r["kind"] == "number")


def test_page_only_rows_come_from_python(page, server):
    """The Fleet inputs' tier rows are Python's PAGE_TIERS, in order, with their sliders' ends; the
    trace tab's auto-sampling threshold is the page_default of Python's row."""
    page.goto(f"{server}tests/browser/harness.html")
    got = page.evaluate("""async () => {
        const f = await import('/js/fleet-params.js');
        const o = await import('/js/trace-options.js');
        const p = await import('/js/params.js');
        const rows = f.FLEET_PARAMS.filter(p => p.key.startsWith('tiers[')).map(p => [p.key, p.min, p.max]);
        return {names: f.TIER_NAMES, rows, auto: o.PAGE_AUTO_SAMPLE_ABOVE_MIB,
                sent: o.requestFrom(p.traceDefaults(), null).sampling_auto_above_mib,
                request: f.fleetRequest({"cluster.instances": 1, "cluster.routing": "affinity",
                                         "tiers[0].capacity_gib": 64, "tiers[1].capacity_gib": 512}).tiers};
    }""")
    assert got["names"] == [t["name"] for t in PAGE_TIERS]
    want = []
    for i, tier in enumerate(PAGE_TIERS):
        want += [[f"tiers[{i}].capacity_gib", *tier["capacity_gib_slider"]],
                 [f"tiers[{i}].read_gb_per_s", *tier["read_gb_per_s_slider"]]]
    assert got["rows"] == want
    assert got["request"] == [{"name": PAGE_TIERS[0]["name"], "capacity_gib": 64},
                              {"name": PAGE_TIERS[1]["name"], "capacity_gib": 512}]
    mib = LIMITS["trace.sampling_auto_above_mib"].page_default
    assert got["auto"] == got["sent"] == mib
