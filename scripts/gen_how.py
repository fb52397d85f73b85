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
needed); text in both languages lives in TEXT below. tests/test_how_page.py runs this script and
fails when the committed pages differ from its output.
"""

from __future__ import annotations

import argparse
import html
import json
import math
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

#: every string of the pages: key -> (English, 简体中文)
TEXT = {
    "title": ("How kvcalc works", "kvcalc 的工作原理"),
    "back": ("← back to the calculator", "← 返回计算器"),
    "other_lang": ("简体中文", "English"),
    "intro": ("kvcalc answers three questions about an LLM serving deployment: how many tokens of KV cache fit on "
              "the GPUs, what share of prompt tokens the prefix cache will serve (the token hit rate), and how much "
              "memory a target hit rate needs. This page says how, under which assumptions, and how well it agrees "
              "with a simulator and with a real trace.",
              "kvcalc 回答关于 LLM 推理部署的三个问题：GPU 上能放下多少 token 的 KV 缓存；前缀缓存能覆盖多少比例的提示词 "
              "token（token 命中率，即前缀缓存命中率）；达到目标命中率需要多少显存。本页说明计算方法、假设，以及与模拟器和真实 "
              "trace 的吻合程度。"),
    "h_memory": ("1. KV memory", "1. KV 显存"),
    "memory": ("Each token keeps a key and a value per attention layer: bytes per token = 2 × layers × KV heads × head "
               "size × bits / 8, per GPU divided by tensor parallelism (MLA keeps one latent per token; sliding-window "
               "layers keep at most their window). The budget is GPU memory × utilization − weights − runtime "
               "reserve, as vLLM reports “Available KV cache memory”; the capacity is the whole blocks that fit.",
               "每个 token 在每个注意力层保存一个 K 和一个 V：每 token 字节数 = 2 × 层数 × KV 头数 × 头维度 × 位宽 / 8，"
               "按张量并行 (TP) 切分到每张 GPU（MLA 每个 token 保存一个潜向量；滑动窗口层最多保存窗口内的 token）。"
               "预算 = GPU 显存 × 利用率 − 权重 − 运行时预留，即 vLLM 的“Available KV cache memory”；容量是预算内能放下的完整块数。"),
    "h_model": ("2. The hit rate in plain words", "2. 命中率的直观解释"),
    "model": ("Conversations arrive at random; each turn resends the whole conversation. A turn hits the cache when "
              "its conversation's blocks are still cached, and an LRU cache keeps a block that was used within the "
              "last T seconds, the characteristic time: the time in which the traffic touches as many blocks as the "
              "cache holds. So hit rate ≈ shared prompt + P(gap ≤ T) × own history (the Che approximation). The "
              "refined model (the default) adds what Che leaves out: the evicting volume fluctuates (Normal around "
              "its mean), partial chains hit, running requests pin their blocks and the shared system prompt stays "
              "while anyone uses it.",
              "对话随机到达；每一轮都会重新发送整段对话。如果对话的块仍在缓存中，这一轮就命中；LRU 缓存会保留最近 T 秒内被"
              "使用过的块，T 称为特征时间：流量在这段时间内访问的块数恰好等于缓存容量。因此 命中率 ≈ 共享提示词部分 + "
              "P(间隔 ≤ T) × 自身历史部分（Che 近似）。refined 精细模型（默认）补上了 Che 忽略的因素：驱逐量的波动（围绕均值的"
              "正态分布）、部分链命中、运行中请求锁定的块，以及只要有人在用就一直保留的共享系统提示词。"),
    "formula_che": ("T solves: blocks touched within T = cache capacity;  hit ≈ h_s × shared + F_gap(T) × own",
                    "T 满足：T 内访问的块数 = 缓存容量；  命中率 ≈ h_s × 共享部分 + F_间隔(T) × 自身历史部分"),
    "formula_seed": ("legacy: hit = (1 − 1/turns) × min(1, capacity / (turns × tokens per turn) / (rate × turns × gap))",
                     "旧公式：命中率 = (1 − 1/轮数) × min(1, 容量 / (轮数 × 每轮 token 数) / (速率 × 轮数 × 间隔))"),
    "h_assume": ("3. Assumptions and validity", "3. 假设与适用范围"),
    "assume": [("Poisson arrivals of conversations; independent gaps between turns with a chosen distribution "
                "(exponential, deterministic, lognormal); geometric or fixed turns per conversation.",
                "对话按泊松过程到达；轮间间隔相互独立，服从所选分布（指数、确定性、对数正态）；每个对话的轮数为几何分布或固定值。"),
               ("Whole blocks are reused along a prefix chain, as in vLLM and SGLang; eviction is LRU (TTL and FIFO "
                "are modelled too); one cache per instance (fleets, routing and lower tiers have their own models).",
                "沿前缀链复用完整的块，与 vLLM 和 SGLang 一致；驱逐策略为 LRU（也建模了 TTL 和 FIFO）；每个实例一个缓存"
                "（集群、路由和下层存储另有模型）。"),
               ("Validated from heavy pressure (a tenth of a gap cached) to light (four gaps), 2 to 12 turns, gaps of "
                "10 to 60 s, 0.1 to 10 conversations/s, blocks of 1 to 256 tokens, with and without a system prompt "
                "(the grid below). "
                "In overload the figures describe a queue, not a steady cache.",
                "验证范围：从高压（只缓存十分之一个间隔）到低压（四个间隔），2 到 12 轮，间隔 10 到 60 秒，每秒 0.1 到 10 个对话，"
                "块大小 1 到 256 token，有无系统提示词（见下方网格）。过载时数字描述的是排队系统，而非稳定的缓存。")],
    "h_sim": ("4. Model against simulator", "4. 模型与模拟器对比"),
    "sim": ("Each point is one workload and cache size of the validation grid; the simulator is kvcalc's seeded "
            "block-level discrete-event simulator with {requests} requests per point (seed {seed}). On the diagonal "
            "the model equals the simulator.",
            "每个点是验证网格中的一个负载和缓存大小；模拟器是 kvcalc 的带种子块级离散事件模拟器，每个点 {requests} 个请求"
            "（种子 {seed}）。落在对角线上表示模型与模拟器一致。"),
    "axis_sim": ("simulated token hit rate", "模拟的 token 命中率"),
    "axis_model": ("model", "模型"),
    "summary_row": ("{model}: mean |error| {mae} pp, largest {max} pp over {n} points",
                    "{model}：平均绝对误差 {mae} 个百分点，最大 {max} 个百分点（共 {n} 个点）"),
    "h_table": ("Error by workload (percentage points, mean of |model − simulator| over four cache sizes)",
                "各负载的误差（百分点，四种缓存大小下 |模型 − 模拟器| 的平均值）"),
    "col_variant": ("workload", "负载"),
    "h_legacy": ("5. The legacy formula's error", "5. 旧公式的误差"),
    "legacy": ("The formula the project started from (the seed design's) ignores that finished conversations keep "
               "occupying the cache until evicted and that a cache serves conversations by recency, not by count. Its "
               "mean error is {seed_mae} percentage points against the simulator, {ratio} times the refined model's; "
               "it is shown in the calculator for comparison only.",
               "项目最初使用的公式（seed 设计中的公式）忽略了已结束的对话在被驱逐前仍占用缓存，也忽略了缓存按最近使用时间而非"
               "对话数量来服务对话。它与模拟器相比平均误差 {seed_mae} 个百分点，是 refined 精细模型的 {ratio} 倍；计算器中只作对比展示。"),
    "h_trace": ("6. A real trace: the exact curve against its replay", "6. 真实 trace：精确曲线与回放对比"),
    "trace": ("The Mooncake conversation trace ({requests} requests, blocks of {block} tokens, Apache-2.0): the line is "
              "kvcalc's one-pass exact LRU curve, the points are a block-by-block LRU replay at {n} capacities. They "
              "agree exactly (largest difference {diff}), as the tests check at every capacity of small traces.",
              "Mooncake 对话 trace（{requests} 个请求，块大小 {block} token，Apache-2.0 许可）：曲线是 kvcalc 一次遍历得到的精确 "
              "LRU 曲线，点是在 {n} 个容量下逐块 LRU 回放的结果。两者完全一致（最大差异 {diff}），测试会在小 trace 的每个容量上检查这一点。"),
    "axis_capacity": ("cache capacity [blocks]", "缓存容量 [块]"),
    "axis_hit": ("token hit rate", "token 命中率"),
    "legend_curve": ("exact curve", "精确曲线"),
    "legend_replay": ("replay", "回放"),
    "model_refined": ("refined model", "refined 精细模型"),
    "model_che": ("Che approximation", "Che 近似"),
    "model_seed": ("legacy formula (seed)", "seed 旧公式"),
    "generated": ("Generated by scripts/gen_how.py from data/validation/model_vs_sim.json and the shipped trace.",
                  "由 scripts/gen_how.py 根据 data/validation/model_vs_sim.json 和随附的 trace 生成。"),
}


#: the validation grid's workload names (kvcalc.validation.VARIANTS) in Chinese
VARIANT_ZH = {
    "base": "基准", "gap deterministic": "固定间隔", "gap lognormal s=1": "对数正态间隔 σ=1",
    "gap lognormal s=1.8": "对数正态间隔 σ=1.8", "rate 10/s": "速率 10/s", "rate 0.1/s": "速率 0.1/s",
    "turns 2": "2 轮", "turns 12": "12 轮", "turns fixed 4": "固定 4 轮", "short turns 50+100": "短轮次 50+100",
    "long turns 2000+500": "长轮次 2000+500", "no system prompt": "无系统提示词", "system prompt 4000": "系统提示词 4000",
    "block 1 token": "块大小 1 token", "block 256": "块大小 256", "service 0 s": "服务时间 0 秒",
    "service 20 s": "服务时间 20 秒", "gap 10 s": "间隔 10 秒",
}


def variant_name(name: str, lang: str) -> str:
    return VARIANT_ZH.get(name, name) if lang == "zh-CN" else name


def tx(key: str, lang: str, **params) -> str:
    v = TEXT[key][0 if lang == "en" else 1]
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
    body = _axes(tx("axis_sim", lang), tx("axis_model", lang), [(x(v), t) for v, t in ticks], [(y(v), t) for v, t in ticks])
    body.append(f'<line class="diag" x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}"/>')
    for m in ("seed", "che", "refined"):
        for r in rows:
            body.append(f'<circle class="pt {m}" cx="{x(r["sim"]):.1f}" cy="{y(min(max(r[m], 0), 1)):.1f}" r="3"/>')
    for i, m in enumerate(MODELS):
        yy = PAD_T + 14 + 16 * i
        body.append(f'<circle class="pt {m}" cx="{PAD_L + 14}" cy="{yy}" r="4"/>'
                    f'<text class="legend" x="{PAD_L + 24}" y="{yy + 4}">{html.escape(tx("model_" + m, lang))}</text>')
    return _svg(body, tx("h_sim", lang))


def trace_svg(curve: dict, replay: list[dict], lang: str) -> str:
    caps = [c for c in curve["capacity_blocks"] if c > 0]
    lo, hi = math.log10(min(caps)), math.log10(max(caps))
    x = lambda v: _lin(math.log10(max(v, 10 ** lo)), lo, hi, PAD_L, W - PAD_R)   # noqa: E731
    top = max(curve["token_hit_rate"]) * 1.1 or 1.0
    y = lambda v: _lin(v, 0, top, H - PAD_B, PAD_T)                            # noqa: E731
    xt = [(x(10 ** k), f"{10 ** k:,}") for k in range(math.ceil(lo), math.floor(hi) + 1)]
    step = 0.05 if top <= 0.4 else 0.1
    yt = [(y(i * step), f"{round(i * step * 100)} %") for i in range(int(top / step) + 1)]
    body = _axes(tx("axis_capacity", lang), tx("axis_hit", lang), xt, yt)
    pts = " ".join(f"{x(c):.1f},{y(h):.1f}" for c, h in zip(curve["capacity_blocks"], curve["token_hit_rate"]) if c > 0)
    body.append(f'<polyline class="curve" points="{pts}"/>')
    for r in replay:
        body.append(f'<circle class="pt replay" cx="{x(r["capacity_blocks"]):.1f}" cy="{y(r["token_hit_rate"]):.1f}" r="4.5"/>')
    body.append(f'<line class="curve" x1="{PAD_L + 8}" y1="{PAD_T + 14}" x2="{PAD_L + 26}" y2="{PAD_T + 14}"/>'
                f'<text class="legend" x="{PAD_L + 32}" y="{PAD_T + 18}">{html.escape(tx("legend_curve", lang))}</text>'
                f'<circle class="pt replay" cx="{PAD_L + 17}" cy="{PAD_T + 32}" r="4.5"/>'
                f'<text class="legend" x="{PAD_L + 32}" y="{PAD_T + 36}">{html.escape(tx("legend_replay", lang))}</text>')
    return _svg(body, tx("h_trace", lang))


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
             f'<title>{e(tx("title", lang))}</title>\n<link rel="icon" href="data:,">\n'
             '<link rel="stylesheet" href="how.css">\n</head>\n<body>\n<main class="how-page">\n')
    p.append(f'<nav><a href="index.html?lang={lang}">{e(tx("back", lang))}</a> · '
             f'<a href="{FILES[other]}" lang="{other}" hreflang="{other}">{e(tx("other_lang", lang))}</a></nav>\n')
    p.append(f'<h1>{e(tx("title", lang))}</h1>\n<p>{e(tx("intro", lang))}</p>\n')
    p.append(f'<h2>{e(tx("h_memory", lang))}</h2>\n<p>{e(tx("memory", lang))}</p>\n')
    p.append(f'<h2>{e(tx("h_model", lang))}</h2>\n<p>{e(tx("model", lang))}</p>\n'
             f'<p class="formula">{e(tx("formula_che", lang))}</p>\n<p class="formula">{e(tx("formula_seed", lang))}</p>\n')
    p.append(f'<h2>{e(tx("h_assume", lang))}</h2>\n<ul>\n' +
             "".join(f"<li>{e(a[0] if lang == 'en' else a[1])}</li>\n" for a in TEXT["assume"]) + "</ul>\n")
    sim_text = tx("sim", lang, requests=f"{doc['requests']:,}", seed=doc["seed"])
    p.append(f'<h2>{e(tx("h_sim", lang))}</h2>\n<p>{e(sim_text)}</p>\n')
    p.append(f'<figure>{scatter_svg(rows, lang)}</figure>\n<ul class="summary">\n')
    for m in MODELS:
        s = summary[m]
        p.append(f'<li data-model="{m}" data-mae-pp="{s["mae_pp"]!r}" data-max-pp="{s["max_pp"]!r}">' +
                 e(tx("summary_row", lang, model=tx("model_" + m, lang), mae=fmt(s["mae_pp"]), max=fmt(s["max_pp"]),
                      n=len(rows))) + "</li>\n")
    p.append("</ul>\n")
    p.append(f'<h3>{e(tx("h_table", lang))}</h3>\n<div class="table-wrap"><table>\n<thead><tr><th>{e(tx("col_variant", lang))}</th>' +
             "".join(f'<th>{e(tx("model_" + m, lang))}</th>' for m in MODELS) + "</tr></thead>\n<tbody>\n")
    for name, errs in variant_errors(rows):
        p.append(f"<tr><th>{e(variant_name(name, lang))}</th>" + "".join(f"<td>{fmt(errs[m])}</td>" for m in MODELS) + "</tr>\n")
    p.append("</tbody>\n</table></div>\n")
    ratio = summary["seed"]["mae_pp"] / summary["refined"]["mae_pp"]
    p.append(f'<h2>{e(tx("h_legacy", lang))}</h2>\n<p>{e(tx("legacy", lang, seed_mae=fmt(summary["seed"]["mae_pp"], 1), ratio=f"{ratio:.0f}"))}</p>\n')
    diff = f"{tr['max_difference']:.1e}" if tr["max_difference"] else "0"
    trace_text = tx("trace", lang, requests=f"{tr['requests']:,}", block=tr["block_size_tokens"], n=len(tr["replay"]),
                    diff=diff)
    p.append(f'<h2>{e(tx("h_trace", lang))}</h2>\n<p>{e(trace_text)}</p>\n')
    p.append(f'<figure>{trace_svg(tr["curve"], tr["replay"], lang)}</figure>\n')
    p.append(f'<p class="muted">{e(tx("generated", lang))}</p>\n</main>\n</body>\n</html>\n')
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
