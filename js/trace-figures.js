// The trace tab's Plotly figures as pure functions: (result, view) -> {data, layout}. They
// place Python's numbers on axes only; colours and fonts are the page's theme (js/figures.js).
//
// view: {theme: "light" | "dark", axis: "blocks" | "tokens" | "gib", logX: bool}

import { THEMES, PLOT_CONFIG } from "./figures.js";
import { t } from "./i18n.js";
import { ROUTING_LABEL } from "./trace-options.js";

export { PLOT_CONFIG };

// axis titles and option texts: kvt.axis.<name> and kvt.axis_unit.<name>
export const AXES = {
  blocks: { key: "capacities_blocks" },
  tokens: { key: "capacity_tokens" },
  gib: { key: "capacity_gib" },
};
const FLEET_KEYS = { blocks: "capacities_blocks_per_instance", tokens: "capacity_tokens_per_instance" };

// Narrower than this (a phone), a log axis is labelled at decades only: with 2 and 5 between
// them the labels run into each other.
const NARROW_PX = 480;
const isNarrow = (width) => width !== null && width > 0 && width < NARROW_PX;

// Plotly never wraps a legend entry: one longer than the figure is cut at its right edge (the
// fleet's on a phone). Entries are broken into lines that fit: at spaces (or anywhere between
// CJK characters, which have none), a CJK character counted as two Latin ones.
const LEGEND_SYMBOL_PX = 46;      // the line sample and the gap before the text
const LEGEND_CHAR_PX = 6.6;       // a Latin character at the legend's 12 px font, on average
const WIDE = /[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]/;
export function wrapLegendName(name, width) {
  const budget = Math.max(12, Math.floor((width - LEGEND_SYMBOL_PX) / LEGEND_CHAR_PX));
  const units = (s) => [...s].reduce((n, ch) => n + (WIDE.test(ch) ? 2 : 1), 0);
  // pieces: words with their following space, and every CJK character alone
  const pieces = String(name).match(/[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef][，、：；）」]?|[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]+\s*|\s+/g) || [];
  const lines = [];
  let line = "";
  for (const piece of pieces) {
    if (line && units(line + piece.trimEnd()) > budget) { lines.push(line.trimEnd()); line = piece.trimStart(); }
    else line += piece;
  }
  if (line.trim()) lines.push(line.trimEnd());
  return lines.join("<br>");
}

function layout(theme, name, xTitle, yTitle, logX, width = null) {
  const narrow = isNarrow(width);
  const c = THEMES[theme] || THEMES.light;
  // whole numbers with separators (10,000), not SI suffixes (10k): no untranslated letters
  const ax = (title, more) => ({ title: { text: title }, gridcolor: c.grid, zerolinecolor: c.zero,
                                 linecolor: c.zero, automargin: true, exponentformat: "none",
                                 separatethousands: true, ...more });
  return {
    uirevision: `kvcalc-trace-${name}`,
    paper_bgcolor: c.paper, plot_bgcolor: c.plot,
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 12, color: c.font },
    hoverlabel: { bgcolor: c.hover, font: { color: c.font } },
    margin: { l: 60, r: 20, t: 10, b: 50 },
    legend: { orientation: "h", y: -0.2 },
    xaxis: ax(xTitle, { type: logX ? "log" : "linear", ...(logX ? { dtick: narrow ? 1 : "D2" } : {}) }),
    yaxis: ax(yTitle, { rangemode: "tozero" }),
  };
}

// The hit-rate curve of the trace (exact or sampled), the model, the ceiling, the fleet and
// the calculator's operating point.
export function traceCurveFigure(res, { theme = "light", axis = "blocks", logX = true, width = null } = {}) {
  const c = THEMES[theme] || THEMES.light;
  const name = AXES[axis] ? axis : "blocks";
  const curve = res.curve;
  const xs = curve[AXES[name].key];
  if (!xs) return { data: [], layout: layout(theme, "curve", t(`kvt.axis.${name}`), t("kvt.axis_hit_rate"), logX, width) };
  const keep = xs.map((x, i) => i).filter((i) => !logX || xs[i] > 0);
  const pick = (arr) => keep.map((i) => arr[i]);
  const x = pick(xs);
  const sampled = res.sampling && res.sampling.mode === "sampled";
  const data = [
    { name: t(sampled ? "kvt.tr.sampled_token" : "kvt.tr.exact_token"), x, y: pick(curve.token_hit_rate), mode: "lines",
      line: { shape: "hv", color: c.line, width: 2.5 } },
    { name: t(sampled ? "kvt.tr.sampled_block" : "kvt.tr.exact_block"), x, y: pick(curve.block_hit_rate), mode: "lines",
      line: { shape: "hv", color: c.sim, width: 1.5, dash: "dash" } },
  ];
  if (res.model_curve && res.model_curve.available) {
    // only where Python says the model holds (in_domain): below, the requests in flight do not fit
    const inDomain = res.model_curve.in_domain;
    const mk = inDomain ? keep.filter((i) => inDomain[i]) : keep;
    data.push({ name: t("kvt.tr.model"), x: mk.map((i) => xs[i]), y: mk.map((i) => res.model_curve.token_hit_rate[i]),
                mode: "lines", line: { color: c.ideal, width: 2, dash: "dot" } });
  }
  const fleet = res.fleet;
  if (fleet && FLEET_KEYS[name] && fleet.routing !== "pooled" && fleet.instances > 1) {
    const fx = fleet[FLEET_KEYS[name]];
    const fk = fx.map((v, i) => i).filter((i) => !logX || fx[i] > 0);
    data.push({ name: t("kvt.tr.fleet", { k: String(fleet.instances), routing: t(ROUTING_LABEL(fleet.routing)) }),
                x: fk.map((i) => fx[i]), y: fk.map((i) => fleet.token_hit_rate[i]), mode: "lines",
                line: { shape: "hv", color: c.target, width: 2 } });
  }
  if (x.length) {
    data.push({ name: t("kvt.tr.ceiling"), x: [x[0], x[x.length - 1]],
                y: [res.ideal_token_hit_rate, res.ideal_token_hit_rate], mode: "lines",
                line: { color: c.seed, width: 1.5, dash: "longdash" }, hoverinfo: "y" });
  }
  const op = res.operating_point;
  const opX = op ? { blocks: op.capacity_blocks, tokens: op.capacity_tokens, gib: op.capacity_gib }[name] : null;
  if (op && opX !== null && opX !== undefined && (!logX || opX > 0)) {
    data.push({ name: t("kvt.tr.op"), x: [opX], y: [op.token_hit_rate],
                mode: "markers", marker: { color: c.point, size: 11, symbol: "diamond" } });
  }
  const lay = layout(theme, "curve", t(`kvt.axis.${name}`), t("kvt.axis_hit_rate"), logX, width);
  lay.yaxis.tickformat = ".0%";
  // from 0 to a little above the highest line (Plotly's own padding), never above 100 %
  Object.assign(lay.yaxis, { autorange: true, rangemode: "tozero", autorangeoptions: { maxallowed: 1 } });
  lay.xaxis.autorange = true;
  if (isNarrow(width)) {
    // a phone: the legend (one entry a line, long ones broken into lines that fit) at the
    // figure's foot, clear of the x axis's title
    for (const d of data) d.name = wrapLegendName(d.name, width);
    const lines = data.reduce((n, d) => n + d.name.split("<br>").length, 0);
    Object.assign(lay, { legend: { orientation: "h", x: 0, yref: "container", y: 0, yanchor: "bottom" },
                         margin: { ...lay.margin, b: 60 + 20 * lines } });
  }
  return { data, layout: lay };
}

// Histograms of block reuse gaps and of gaps between turns (Python's bins, drawn as steps).
export function traceGapsFigure(res, { theme = "light", width = null } = {}) {
  const c = THEMES[theme] || THEMES.light;
  const data = [];
  for (const [key, label, color] of [["reuse_gap_s", "kvt.tr.reuse_gap", c.line], ["turn_gap_s", "kvt.tr.turn_gap", c.sim]]) {
    const h = res.stats[key];
    if (!h || !h.bin_edges || !h.counts || !h.counts.length) continue;
    data.push({ name: t(label), x: h.bin_edges, y: [...h.counts, h.counts[h.counts.length - 1]], mode: "lines",
                line: { shape: "hv", color, width: 2 }, fill: key === "reuse_gap_s" ? "tozeroy" : "none" });
  }
  const lay = layout(theme, "gaps", t("kvt.axis_gap"), t("kvt.axis_count"), true, width);
  // a short plot: the legend at the figure's foot (below the x axis's title, which a legend
  // placed relative to the plot ran into; above the plot it meets the toolbar on a phone)
  Object.assign(lay, { legend: { orientation: "h", x: 0, yref: "container", y: 0, yanchor: "bottom" },
                       margin: { ...lay.margin, b: 96 } });
  return { data, layout: lay };
}
