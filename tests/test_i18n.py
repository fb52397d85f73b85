"""The page's two catalogues (i18n/en.json, i18n/zh-CN.json) against the code that uses them.

Both directions, in both languages:
* every key the page uses (index.html's data-i18n*, string literals in app.js and js/*.js, the
  key families built from tables: param.<key>.*, opt.<key>.<value>, ...) and every message code
  Python emits (msg.<code>) is in each catalogue;
* every catalogue key is used by one of them (no dead text);
* en and zh-CN hold the same keys with the same {parameters};
* a zh-CN text equal to its English one is a name or a unit on a short list (nothing left
  untranslated by accident).

How Python's codes are found (add a code, then add ``msg.<code>`` to both catalogues):
``code="x"`` / ``"code": "x"`` / ``reason="x"`` (keyword or dict key), ``note("x", ...)`` /
``warn("x", ...)`` calls, and any module-level ``..._CODES = (...)`` tuple (kvcalc.errors.CODES).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kvcalc.hitrate import HIT_MODELS
from i18n_terms import TERMS

ROOT = Path(__file__).resolve().parents[1]
LANGS = ("en", "zh-CN")
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
# keys are dotted words with a known namespace
NAMESPACES = ("ui", "lang", "stage", "status", "notice", "state", "res", "occ", "unit", "chart", "sim", "err",
              "msg", "param", "opt", "group", "hitmodel", "kvt", "how")
KEY_LITERAL = re.compile(r"""["'`]((?:%s)\.[A-Za-z0-9_.\-]+)["'`]""" % "|".join(NAMESPACES))
#: zh-CN may equal en here: names, units, notation
SAME_IN_BOTH = {"lang.en", "lang.zh-CN", "param.cache.ttl_s.label", "param.gpu.label", "param.model.hf_config.label",
                "stage.core", "stage.numpy", "ui.label_unit", "ui.slider_value", "ui.unit_brackets", "unit.gib", "kvt.axis_unit.gib", "unit.mib", "unit.kib", "kvt.equals",
                "kvt.fmt.mooncake"}


def catalogue(lang: str) -> dict:
    doc = json.loads((ROOT / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert doc["lang"] == lang
    return doc["messages"]


def page_sources() -> dict[str, str]:
    """The page's HTML and JavaScript, and scripts/gen_how.py (the How it works pages' "how.*" texts)."""
    files = [ROOT / "index.html", ROOT / "app.js", *sorted((ROOT / "js").glob("*.js")), ROOT / "scripts" / "gen_how.py"]
    return {str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files}


def literal_keys() -> set[str]:
    """Keys written out in the page's HTML and JavaScript."""
    keys: set[str] = set()
    for name, text in page_sources().items():
        if name.endswith(".html"):
            keys |= set(re.findall(r'data-i18n(?:-template)?="([^"]+)"', text))
            for spec in re.findall(r'data-i18n-attr="([^"]+)"', text):
                keys |= {pair.split("=", 1)[1] for pair in spec.split(";") if "=" in pair}
        else:
            keys |= {k for k in KEY_LITERAL.findall(text) if not k.endswith(".")}
            for spec in re.findall(r"i18nAttr = `([^`]+)`", text):
                keys |= {pair.split("=", 1)[1] for pair in spec.split(";") if "=" in pair and "${" not in pair}
    return {k for k in keys if not re.search(r"\.(html|css)$", k)}   # file names (how.html, how.css) are no keys


def param_rows() -> list[dict]:
    """js/params.js's table, read by Node (the rows' keys, groups and select options)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is needed to read js/params.js")
    # Node's fetch does not read file: URLs: js/limits.js gets the table (its tier rows) from disk
    script = ("import {readFileSync} from 'node:fs';"
              "globalThis.fetch = async (u) => ({ok: true, json: async () => JSON.parse(readFileSync(new URL(u)))});"
              "import('./js/params.js').then(m => console.log(JSON.stringify({groups: m.GROUPS, "
              "params: m.PARAMS.map(p => ({key: p.key, options: p.options ?? null, numeric: !!p.numeric}))})))")
    out = subprocess.run([node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out)


def family_keys(messages: dict) -> tuple[set[str], set[str]]:
    """(keys the page builds from tables and must find, keys it may use if present)."""
    doc = param_rows()
    required: set[str] = {f"group.{g['id']}" for g in doc["groups"]}
    optional: set[str] = set()
    for p in doc["params"]:
        required |= {f"param.{p['key']}.label", f"param.{p['key']}.help"}
        optional.add(f"param.{p['key']}.unit")        # rows with a unit (js/ui.js asks has())
        if isinstance(p["options"], list) and not p["numeric"]:
            required |= {f"opt.{p['key']}.{v}" for v in p["options"]}
    required |= {"opt.model.custom"}
    required |= {f"stage.{s}" for s in re.search(r"STAGE_KEYS = \[([^\]]*)\]", (ROOT / "app.js").read_text())
                 .group(1).replace('"', "").replace(" ", "").split(",")}
    required |= {f"occ.{s}" for s in re.search(r"const parts = \[([^\]]*)\]", (ROOT / "js/ui.js").read_text())
                 .group(1).replace('"', "").replace(" ", "").split(",")}
    required |= {f"hitmodel.{m}" for m in HIT_MODELS}
    trace = "\n".join(f.read_text() for f in sorted((ROOT / "js").glob("trace-*.js")))
    samples = re.findall(r'\{ id: "(\w+)", file:', trace)
    axes = re.findall(r'^  (\w+): \{ key: "capacit', trace, flags=re.M)
    assert samples and axes, "js/trace-*.js: SAMPLES or AXES not found"
    # the trace tab's selects offer Python's choices (py/kvcalc/limits.json "choices"): kvt.fmt.<format>,
    # kvt.routing.<routing> (js/params.js TRACE_PARAMS)
    from kvcalc.limits import choices
    formats = choices()["trace.format"]["choices"]
    required |= {f"kvt.routing.{r}" for r in choices()["trace.cluster.routing"]["choices"]}
    required |= {f"kvt.sample.{s}{h}" for s in samples for h in ("", "_hint")}
    required |= {f"kvt.axis.{a}" for a in axes} | {f"kvt.axis_unit.{a}" for a in axes}
    required |= {f"kvt.fmt.{f}" for f in formats}
    required |= {f"ui.source.{s}" for s in ("local", "cdn")}
    required |= {f"msg.{c}" for c in python_codes()}
    # the How it works pages' table: one row per workload of the validation grid (scripts/gen_how.py)
    from kvcalc.validation import VARIANTS
    required |= {how_variant_key(name) for name, _, _ in VARIANTS}
    return required, optional


def how_variant_key(name: str) -> str:
    """scripts/gen_how.py's variant_key: "gap lognormal s=1.8" -> how.variant.gap_lognormal_s_1_8."""
    return "how.variant." + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


_CODE_PATTERNS = [
    re.compile(r"""\b(?:code|reason)\s*=\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""["'](?:code|reason)["']\s*:\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""\b_?(?:note|warn)\(\s*["']([a-z][a-z0-9_]*)["']"""),
    # the other branch of  code="a" if ok else "b"  /  "code": "a" if ok else "b"
    re.compile(r"""\b["']?(?:code|reason)["']?\s*[:=]\s*["'][a-z][a-z0-9_]*["']\s+if\s[^\n]*?\belse\s+["']([a-z][a-z0-9_]*)["']"""),
]


def python_codes() -> set[str]:
    """Every message code the Python package can emit (see the module docstring)."""
    codes: set[str] = set()
    for f in sorted((ROOT / "py" / "kvcalc").rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        for pat in _CODE_PATTERNS:
            codes |= set(pat.findall(text))
        for body in re.findall(r"^[A-Z_]*CODES\s*=\s*\(([^)]*)\)", text, flags=re.M):
            codes |= set(re.findall(r"""["']([a-z][a-z0-9_]*)["']""", body))
    return codes


def test_python_codes_found():
    """The scan sees the codes we know of (a scan that finds nothing checks nothing)."""
    codes = python_codes()
    from kvcalc.errors import CODES
    assert set(CODES) <= codes
    assert {"weights_do_not_fit", "reserve_estimated", "fp8_dequantized", "lfu_as_lru", "overload",
            "inverse_above_ideal", "inverse_beyond_range", "benefit_assumptions"} <= codes


@pytest.mark.parametrize("lang", LANGS)
def test_every_used_key_exists(lang):
    messages = catalogue(lang)
    required, _ = family_keys(messages)
    used = literal_keys() | required
    missing = sorted(k for k in used if k not in messages)
    assert not missing, f"missing in i18n/{lang}.json: {missing}"


@pytest.mark.parametrize("lang", LANGS)
def test_every_key_is_used(lang):
    messages = catalogue(lang)
    required, optional = family_keys(messages)
    used = literal_keys() | required | optional
    unused = sorted(k for k in messages if k not in used)
    assert not unused, f"unused keys in i18n/{lang}.json: {unused}"


def test_same_keys_and_parameters():
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert sorted(set(en) ^ set(zh)) == []
    for k in en:
        assert isinstance(en[k], str) and en[k].strip() and isinstance(zh[k], str) and zh[k].strip(), k
        assert set(PLACEHOLDER.findall(en[k])) == set(PLACEHOLDER.findall(zh[k])), k
        # Plotly's own %{...} hover fields must survive translation too
        assert sorted(re.findall(r"%\{[^}]+\}", en[k])) == sorted(re.findall(r"%\{[^}]+\}", zh[k])), k


def test_chinese_is_translated():
    en, zh = catalogue("en"), catalogue("zh-CN")
    same = {k for k in en if en[k] == zh[k]}
    assert same <= SAME_IN_BOTH, sorted(same - SAME_IN_BOTH)
    # a zh-CN text has no English words but the terms engineers keep in English (tests/i18n_terms.py)
    for k, v in zh.items():
        if k in SAME_IN_BOTH:
            continue
        words = set(re.findall(r"[A-Za-z][A-Za-z0-9_\-]*[A-Za-z0-9]|[A-Za-z]", PLACEHOLDER.sub("", re.sub(r"%\{[^}]+\}|--[\w-]+|“[^”]*”", "", v))))   # flags, quoted log lines
        words = {w for w in words if not re.fullmatch(r"[A-Za-z]{1,2}\d*|[a-z]+\d+", w)}   # B, s, x2, int8
        assert words <= TERMS, (k, sorted(words - TERMS))


def test_key_scan_sees_the_page():
    """The literal scan finds keys in each kind of place (else the tests above check nothing)."""
    keys = literal_keys()
    assert {"ui.title", "res.inverse_sentence", "ui.copy_link_title",      # index.html: text, template, attr
            "status.ready", "chart.axis_hit_rate", "state.enter_number"} <= keys   # app.js, figures.js, state.js


def test_english_catalogue_matches_python_messages():
    """msg.<code> with parameters renders Python's English message (same sense, same numbers):
    checked on one warning by filling the template the way js/i18n.js does."""
    from kvcalc.api import compute
    r = compute({"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb",
                 "workload": {"conversation_rate_per_s": 1}})
    d = next(w for w in r["warning_details"] if w["code"] == "reserve_estimated")
    tpl = catalogue("en")["msg.reserve_estimated"]
    text = PLACEHOLDER.sub(lambda m: f"{d['params'][m.group(1)]:.2f} GiB", tpl)
    assert text == d["message"]


def test_results_carry_codes_for_every_message():
    """Each English text of a result has its {code, params} twin, and the code has a catalogue key."""
    from kvcalc.api import compute
    en = catalogue("en")
    base = {"model": "meta-llama/Llama-3.1-8B", "gpu": "h100-sxm-80gb",
            "workload": {"conversation_rate_per_s": 1, "gap_mean_s": 60}}
    r = compute({**base, "target_token_hit_rate": 0.99})            # above the ideal ceiling (93.5 %)
    inv = r["inverse"]
    assert inv["status"] == "unreachable" and inv["detail"]["code"] == "inverse_above_ideal"
    assert inv["detail"]["params"]["target_token_hit_rate"] == 0.99
    assert inv["detail"]["params"]["ideal_token_hit_rate"] == inv["ideal_token_hit_rate"]
    assert inv["detail"]["message"] == inv["message"]
    b = r["benefit"]
    assert b["note_detail"]["code"] == "benefit_assumptions" and b["note_detail"]["message"] == b["note"]
    assert b["note_detail"]["params"] == {"mfu": b["mfu"], "peak_tflops_per_gpu": b["peak_tflops_per_gpu"]}
    assert [w["message"] for w in r["warning_details"]] == r["warnings"]
    assert all(f"msg.{w['code']}" in en for w in r["warning_details"])
    ok = compute({**base, "target_token_hit_rate": 0.5})
    assert ok["inverse"]["status"] == "ok" and "detail" not in ok["inverse"]
    ttl = compute({**base, "cache": {"eviction": "ttl", "ttl_s": 10}})  # a 10 s TTL against 60 s gaps
    assert ttl["inverse"]["detail"]["code"] == "inverse_ttl_cap"
    assert ttl["inverse"]["detail"]["params"]["ttl_s"] == 10
    over = compute({"cache": {"capacity_tokens": 2000}, "workload": {"conversation_rate_per_s": 50}})
    assert over["overload"] and over["overload_detail"]["code"] == "overload"
    assert "msg.overload" in en
