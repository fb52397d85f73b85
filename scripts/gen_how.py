"""Write the "How it works" pages (how.html, how.zh-CN.html) from the project's own validation data.

    python scripts/gen_how.py [--data data/validation/model_vs_sim.json] [--out .]

The figures are generated, never drawn by hand, so they stay true:
* model against simulator: data/validation/model_vs_sim.json, written by
  ``python bench/validate_model.py --requests 1000000 --json data/validation/model_vs_sim.json``
  (72 workloads of kvcalc.validation, each simulated with ~1e6 requests); tests/test_how_page.py
  checks its model columns against the code and re-simulates one point;
* the trace curve against its replay: the exact one-pass LRU curve of the shipped Mooncake
  conversation trace (kvcalc.trace.curve.lru_curve) and a block-by-block LRU replay at a few
  capacities (lru_replay), computed here.

The pages are static HTML with inline SVG (no script: the CSP allows none inline, and none is
needed); their text in both languages is the "how.*" keys of the page's catalogues (i18n/*.json). tests/test_how_page.py runs this script and
fails when the committed pages differ from its output.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py"))

from kvcalc.trace.curve import lru_curve, lru_replay  # noqa: E402
from kvcalc.trace.loaders import load_trace  # noqa: E402

DATA = ROOT / "data" / "validation" / "model_vs_sim.json"
TRACE = ROOT / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
REPLAY_CAPACITIES_BLOCKS = (10, 100, 1000, 3000, 10000, 30000)
MODELS = ("refined", "che", "seed")
LANGS = ("en", "zh-CN")
FILES = {"en": "how.html", "zh-CN": "how.zh-CN.html"}

#: every string of the pages: "how.*" keys of the page's catalogues (i18n/en.json, i18n/zh-CN.json),
#: so tests/test_i18n.py keeps both languages in step; one family: how.variant.<workload>
#: (kvcalc.validation.VARIANTS' names, see variant_key)
CATALOGUES = {lang: json.loads((ROOT / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))["messages"]
              for lang in LANGS}
MODEL_KEYS = {"refined": "how.model_refined", "che": "how.model_che", "seed": "how.model_seed"}


def variant_key(name: str) -> str:
    """The catalogue key of a validation workload's name ("gap lognormal s=1.8" -> how.variant.gap_lognormal_s_1_8)."""
    return "how.variant." + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def variant_name(name: str, lang: str) -> str:
    return tx(variant_key(name), lang)


def validity_params() -> dict:
    """The validated ranges the page quotes (kvcalc.validation.grid_ranges), as text."""
    from kvcalc.validation import grid_ranges
    g = grid_ranges()
    return {f"{name}_{end}": f"{g[f'{key}_{end}']:g}" for name, key in
            (("pressure", "pressure_gaps"), ("turns", "turns_mean"), ("rate", "conversation_rate_per_s"),
             ("block", "block_size_tokens")) for end in ("min", "max")} | \
        {"gap_min_s": f"{g['gap_mean_s_min']:g}", "gap_max_s": f"{g['gap_mean_s_max']:g}"}


def tx(key: str, lang: str, **params) -> str:
    v = CATALOGUES[lang][key]
    return v.format(**params) if params else v


def fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


# ---------------------------------------------------------------- SVG

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 520, 360, 56, 46, 12, 30


def _svg(body: list[str], label: str) -> str:
    return (f'<svg class="fig" viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def _axes(xlab: str, ylab: str, xt: list[tuple[float, str]], yt: list[tuple[float, str]]) -> list[str]:
    out = [f'<rect class="plot" x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}"/>']
    for px, text in xt:
        out.append(f'<line class="grid" x1="{px:.1f}" y1="{PAD_T}" x2="{px:.1f}" y2="{H - PAD_B}"/>'
                   f'<text class="tick" x="{px:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{text}</text>')
    for py, text in yt:
        out.append(f'<line class="grid" x1="{PAD_L}" y1="{py:.1f}" x2="{W - PAD_R}" y2="{py:.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 6}" y="{py + 4:.1f}" text-anchor="end">{text}</text>')
    out.append(f'<text class="label" x="{(PAD_L + W - PAD_R) / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlab)}</text>')
    out.append(f'<text class="label" transform="translate(14 {(PAD_T + H - PAD_B) / 2}) rotate(-90)" '
               f'text-anchor="middle">{html.escape(ylab)}</text>')
    return out


def _lin(v: float, lo: float, hi: float, a: float, b: float) -> float:
    return a + (v - lo) / (hi - lo) * (b - a)


def scatter_svg(rows: list[dict], lang: str) -> str:
    x = lambda v: _lin(v, 0, 1, PAD_L, W - PAD_R)          # noqa: E731
    y = lambda v: _lin(v, 0, 1, H - PAD_B, PAD_T)          # noqa: E731
    ticks = [(i / 5, f"{i * 20} %") for i in range(6)]
    body = _axes(tx("how.axis_sim", lang), tx("how.axis_model", lang), [(x(v), t) for v, t in ticks], [(y(v), t) for v, t in ticks])
    body.append(f'<line class="diag" x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}"/>')
    for m in ("seed", "che", "refined"):
        for r in rows:
            body.append(f'<circle class="pt {m}" cx="{x(r["sim"]):.1f}" cy="{y(min(max(r[m], 0), 1)):.1f}" r="3"/>')
    for i, m in enumerate(MODELS):
        yy = PAD_T + 14 + 16 * i
        body.append(f'<circle class="pt {m}" cx="{PAD_L + 14}" cy="{yy}" r="4"/>'
                    f'<text class="legend" x="{PAD_L + 24}" y="{yy + 4}">{html.escape(tx(MODEL_KEYS[m], lang))}</text>')
    return _svg(body, tx("how.h_sim", lang))


def trace_svg(curve: dict, replay: list[dict], lang: str) -> str:
    caps = [c for c in curve["capacity_blocks"] if c > 0]
    lo, hi = math.log10(min(caps)), math.log10(max(caps))
    x = lambda v: _lin(math.log10(max(v, 10 ** lo)), lo, hi, PAD_L, W - PAD_R)   # noqa: E731
    top = max(curve["token_hit_rate"]) * 1.1 or 1.0
    y = lambda v: _lin(v, 0, top, H - PAD_B, PAD_T)                            # noqa: E731
    xt = [(x(10 ** k), f"{10 ** k:,}") for k in range(math.ceil(lo), math.floor(hi) + 1)]
    step = 0.05 if top <= 0.4 else 0.1
    yt = [(y(i * step), f"{round(i * step * 100)} %") for i in range(int(top / step) + 1)]
    body = _axes(tx("how.axis_capacity", lang), tx("how.axis_hit", lang), xt, yt)
    pts = " ".join(f"{x(c):.1f},{y(h):.1f}" for c, h in zip(curve["capacity_blocks"], curve["token_hit_rate"]) if c > 0)
    body.append(f'<polyline class="curve" points="{pts}"/>')
    for r in replay:
        body.append(f'<circle class="pt replay" cx="{x(r["capacity_blocks"]):.1f}" cy="{y(r["token_hit_rate"]):.1f}" r="4.5"/>')
    body.append(f'<line class="curve" x1="{PAD_L + 8}" y1="{PAD_T + 14}" x2="{PAD_L + 26}" y2="{PAD_T + 14}"/>'
                f'<text class="legend" x="{PAD_L + 32}" y="{PAD_T + 18}">{html.escape(tx("how.legend_curve", lang))}</text>'
                f'<circle class="pt replay" cx="{PAD_L + 17}" cy="{PAD_T + 32}" r="4.5"/>'
                f'<text class="legend" x="{PAD_L + 32}" y="{PAD_T + 36}">{html.escape(tx("how.legend_replay", lang))}</text>')
    return _svg(body, tx("how.h_trace", lang))


# ---------------------------------------------------------------- data

def trace_data() -> dict:
    trace = load_trace(TRACE)
    curve = lru_curve(trace)
    grid = sorted({int(round(10 ** (k / 20))) for k in range(0, 101)} | set(REPLAY_CAPACITIES_BLOCKS))
    blocks, tokens = curve.hits_at(grid)
    replay = []
    for c in REPLAY_CAPACITIES_BLOCKS:
        r = lru_replay(trace, c)
        replay.append({"capacity_blocks": c, "token_hit_rate": r["token_hits"] / r["prompt_tokens"],
                       "curve_token_hit_rate": float(tokens[grid.index(c)]) / curve.tokens_total})
    return {"requests": trace.n_requests, "block_size_tokens": trace.block_size_tokens,
            "curve": {"capacity_blocks": grid, "token_hit_rate": [float(t) / curve.tokens_total for t in tokens]},
            "replay": replay,
            "max_difference": max(abs(r["token_hit_rate"] - r["curve_token_hit_rate"]) for r in replay)}


def variant_errors(rows: list[dict]) -> list[tuple[str, dict]]:
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["variant"], {m: [] for m in MODELS})
        for m in MODELS:
            d[m].append(abs(r[m] - r["sim"]) * 100)
    return [(k, {m: sum(v[m]) / len(v[m]) for m in MODELS}) for k, v in out.items()]


# ---------------------------------------------------------------- page

CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'none'")


def page(lang: str, doc: dict, tr: dict) -> str:
    rows, summary = doc["rows"], doc["summary"]
    e = html.escape
    other = LANGS[1 - LANGS.index(lang)]
    p = []
    p.append(f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
             f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
             '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
             '<meta name="color-scheme" content="light dark">\n'
             f'<title>{e(tx("how.title", lang))}</title>\n<link rel="icon" href="data:,">\n'
             '<link rel="stylesheet" href="how.css">\n</head>\n<body>\n<main class="how-page">\n')
    p.append(f'<nav><a href="index.html?lang={lang}">{e(tx("how.back", lang))}</a> · '
             f'<a href="{FILES[other]}" lang="{other}" hreflang="{other}">{e(tx("how.other_lang", lang))}</a></nav>\n')
    p.append(f'<h1>{e(tx("how.title", lang))}</h1>\n<p>{e(tx("how.intro", lang))}</p>\n')
    p.append(f'<h2>{e(tx("how.h_memory", lang))}</h2>\n<p>{e(tx("how.memory", lang))}</p>\n')
    p.append(f'<h2>{e(tx("how.h_model", lang))}</h2>\n<p>{e(tx("how.model", lang))}</p>\n'
             f'<p class="formula">{e(tx("how.formula_che", lang))}</p>\n<p class="formula">{e(tx("how.formula_seed", lang))}</p>\n')
    p.append(f'<h2>{e(tx("how.h_assume", lang))}</h2>\n<ul>\n' +
             f"<li>{e(tx('how.assume_1', lang))}</li>\n<li>{e(tx('how.assume_2', lang))}</li>\n"
             f"<li>{e(tx('how.assume_3', lang, **validity_params()))}</li>\n</ul>\n")
    sim_text = tx("how.sim", lang, requests=f"{doc['requests']:,}", seed=doc["seed"])
    p.append(f'<h2>{e(tx("how.h_sim", lang))}</h2>\n<p>{e(sim_text)}</p>\n')
    p.append(f'<figure>{scatter_svg(rows, lang)}</figure>\n<ul class="summary">\n')
    for m in MODELS:
        s = summary[m]
        p.append(f'<li data-model="{m}" data-mae-pp="{s["mae_pp"]!r}" data-max-pp="{s["max_pp"]!r}">' +
                 e(tx("how.summary_row", lang, model=tx(MODEL_KEYS[m], lang), mae=fmt(s["mae_pp"]), max=fmt(s["max_pp"]),
                      n=len(rows))) + "</li>\n")
    p.append("</ul>\n")
    p.append(f'<h3>{e(tx("how.h_table", lang))}</h3>\n<div class="table-wrap"><table>\n<thead><tr><th>{e(tx("how.col_variant", lang))}</th>' +
             "".join(f'<th>{e(tx(MODEL_KEYS[m], lang))}</th>' for m in MODELS) + "</tr></thead>\n<tbody>\n")
    for name, errs in variant_errors(rows):
        p.append(f"<tr><th>{e(variant_name(name, lang))}</th>" + "".join(f"<td>{fmt(errs[m])}</td>" for m in MODELS) + "</tr>\n")
    p.append("</tbody>\n</table></div>\n")
    ratio = summary["seed"]["mae_pp"] / summary["refined"]["mae_pp"]
    p.append(f'<h2>{e(tx("how.h_legacy", lang))}</h2>\n<p>{e(tx("how.legacy", lang, seed_mae=fmt(summary["seed"]["mae_pp"], 1), ratio=f"{ratio:.0f}"))}</p>\n')
    diff = f"{tr['max_difference']:.1e}" if tr["max_difference"] else "0"
    trace_text = tx("how.trace", lang, requests=f"{tr['requests']:,}", block=tr["block_size_tokens"], n=len(tr["replay"]),
                    diff=diff)
    p.append(f'<h2>{e(tx("how.h_trace", lang))}</h2>\n<p>{e(trace_text)}</p>\n')
    p.append(f'<figure>{trace_svg(tr["curve"], tr["replay"], lang)}</figure>\n')
    p.append(f'<p class="muted">{e(tx("how.generated", lang))}</p>\n</main>\n</body>\n</html>\n')
    return "".join(p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT))
    ns = ap.parse_args(argv)
    doc = json.loads(Path(ns.data).read_text())
    tr = trace_data()
    for lang in LANGS:
        Path(ns.out, FILES[lang]).write_text(page(lang, doc, tr), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
