// Plotly figures as pure functions: figureFor(name, state, result, view) -> {data, layout}.
// They only place Python's numbers on axes (hit rates stay fractions: Plotly's ".0%" tick
// format shows them as percent). A fixed layout.uirevision per figure keeps the user's zoom
// across recomputes (Plotly.react).
//
// view: {theme: "light" | "dark", width: px of the chart container, sim: simulate() result or null,
//        preview: true while a slider moves (app.js renderPreview): cheaper drawing where the
//        look allows (the heatmap's cells stretched by the browser, not interpolated by Plotly;
//        its target contour without its label),
//        rowOrder: a drag render's tornado rows in the order on screen (layout.meta.tornado_rows)}
// drawFigure(plotly, div, fig, {preview}) draws one; a drag render of the same chart moves its
// traces without rebuilding it (see there).

import { PARAM_BY_KEY } from "./params.js";
import * as fmt from "./format.js";
import { t as tr, has } from "./i18n.js";
import { moveTraces, showHidden } from "./drag-draw.js";

export const THEMES = {
  light: { paper: "rgba(0,0,0,0)", plot: "#ffffff", font: "#1d2127", grid: "#e3e7ec", zero: "#c9ced6",
           line: "#2f6fd6", seed: "#8a8f98", ideal: "#2a9d5c", point: "#d6336c", sim: "#e08a1e",
           low: "#2f6fd6", high: "#e08a1e", target: "#7048e8", hover: "#ffffff" },
  dark: { paper: "rgba(0,0,0,0)", plot: "#1b1f26", font: "#e3e6ea", grid: "#2e343d", zero: "#48505c",
          line: "#6ea0ff", seed: "#a3a9b3", ideal: "#4cc38a", point: "#ff6b9a", sim: "#ffb057",
          low: "#6ea0ff", high: "#ffb057", target: "#b197fc", hover: "#262b33" },
};

export const PLOT_CONFIG = {
  responsive: true, displaylogo: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
};

function baseLayout(theme, name, extra = {}) {
  const c = THEMES[theme] || THEMES.light;
  return {
    uirevision: `kvcalc-${name}`,
    paper_bgcolor: c.paper,
    plot_bgcolor: c.plot,
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 12, color: c.font },
    margin: { l: 56, r: 16, t: 16, b: 48 },
    hoverlabel: { bgcolor: c.hover, font: { color: c.font } },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)" },
    ...extra,
  };
}

// Log axes label 1, 2 and 5 of each decade ("D2"): Plotly's default labels every digit,
// which is cluttered and costs about 4 ms per redraw of the curve.
function axis(theme, title, more = {}) {
  const c = THEMES[theme] || THEMES.light;
  return { title: { text: title }, gridcolor: c.grid, zerolinecolor: c.zero, linecolor: c.zero,
           automargin: true, ...(more.type === "log" ? { dtick: "D2" } : {}), ...more };
}

const PCT_AXIS = { tickformat: ".0%", range: [0, 1.02], hoverformat: ".1%" };

// Which capacity axis: GiB of KV per GPU when Python gave it, else tokens.
function capacityAxis(obj) {
  return obj && Array.isArray(obj.capacity_gib)
    ? { key: "capacity_gib", title: tr("chart.axis_cache_gib"), unit: "GiB" }
    : { key: "capacity_tokens", title: tr("chart.axis_cache_tokens"), unit: tr("unit.tokens_word") };
}

const empty = (theme, name, message) => ({
  data: [],
  layout: baseLayout(theme, name, {
    xaxis: { visible: false }, yaxis: { visible: false },
    annotations: message ? [{ text: message, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] : [],
  }),
});

// ---------------------------------------------------------------- hit rate vs memory

export function curveFigure(state, result, view) {
  const { theme = "light", sim = null, width = 800 } = view || {};
  const c = THEMES[theme] || THEMES.light;
  const narrow = width < 560;
  const curve = result && result.figures && result.figures.curve;
  if (!curve) return empty(theme, "curve", tr("chart.no_curve"));
  const ax = capacityAxis(curve);
  const x = curve[ax.key];
  const usesGib = ax.key === "capacity_gib";
  const data = [
    { type: "scatter", mode: "lines", name: tr(curve.fleet ? "chart.curve_fleet" : "chart.curve_model", { model: tr(`hitmodel.${curve.model}`) }), x, y: curve.token_hit_rate,
      line: { color: c.line, width: 2.5 },
      hovertemplate: `%{x:.3s} ${ax.unit}: %{y:.1%}<extra>${tr("chart.hover_model")}</extra>` },
    { type: "scatter", mode: "lines", name: tr(narrow ? "chart.seed_short" : "chart.seed"), x, y: curve.seed_token_hit_rate,
      line: { color: c.seed, width: 1.5, dash: "dash" },
      hovertemplate: `%{x:.3s} ${ax.unit}: %{y:.1%}<extra>${tr("chart.seed_short")}</extra>` },
    { type: "scatter", mode: "lines", name: tr("chart.ideal"), x: [x[0], x[x.length - 1]],
      y: [curve.ideal_token_hit_rate, curve.ideal_token_hit_rate],
      line: { color: c.ideal, width: 1.5, dash: "dot" }, hovertemplate: `${tr("chart.hover_ideal")}<extra></extra>` },
  ];
  const curX = usesGib ? result.cache_capacity_gib : result.cache_capacity_tokens;
  if (typeof curX === "number" && typeof result.token_hit_rate === "number") {
    data.push({ type: "scatter", mode: "markers", name: tr("chart.current_model", { model: tr(`hitmodel.${result.hit_model}`) }),
                x: [curX], y: [result.token_hit_rate],
                marker: { color: c.point, size: 12, symbol: "circle", line: { color: c.plot, width: 2 } },
                hovertemplate: `${tr("chart.hover_current", { unit: ax.unit })}<extra></extra>` });
  }
  const inv = result.inverse;
  const invX = inv && (usesGib ? inv.kv_gib_per_gpu : inv.capacity_tokens);
  if (typeof invX === "number") {
    data.push({ type: "scatter", mode: "markers", name: tr("chart.target"),
                x: [invX], y: [inv.target_token_hit_rate],
                marker: { color: c.target, size: 11, symbol: "diamond", line: { color: c.plot, width: 1.5 } },
                hovertemplate: `${tr("chart.hover_target", { unit: ax.unit })}<extra></extra>` });
  }
  if (sim && Array.isArray(sim.points) && sim.points.length) {
    const key = usesGib && sim.points.every((p) => typeof p.capacity_gib === "number") ? "capacity_gib" : "capacity_tokens";
    if (key === ax.key) {
      const bx = [];
      const by = [];
      for (const p of sim.points) {
        bx.push(p[key], p[key], null);
        by.push(p.token_hit_rate_ci95_low, p.token_hit_rate_ci95_high, null);
      }
      data.push({ type: "scatter", mode: "lines", name: tr("chart.sim_ci"), x: bx, y: by, showlegend: false,
                  line: { color: c.sim, width: 2 }, hoverinfo: "skip" });
      data.push({ type: "scatter", mode: "markers", name: tr("chart.sim", { seed: String(sim.seed) }),
                  x: sim.points.map((p) => p[key]), y: sim.points.map((p) => p.token_hit_rate),
                  customdata: sim.points.map((p) => [p.token_hit_rate_ci95_low, p.token_hit_rate_ci95_high]),
                  marker: { color: c.sim, size: 9, symbol: "square" },
                  hovertemplate: `${tr("chart.hover_sim", { unit: ax.unit })}<extra></extra>` });
    }
  }
  const dragRange = curve.x_range_log10 && curve.x_range_log10[ax.key];
  return {
    data,
    dragRanges: dragRange ? { xaxis: dragRange } : {},
    layout: baseLayout(theme, "curve", {
      // fixed margins (no automargin): nothing jumps while dragging, and a cheaper redraw
      xaxis: axis(theme, ax.title, { type: "log", automargin: false, ...(narrow ? { title: { text: ax.title, standoff: 14 }, automargin: "height" } : {}) }),
      yaxis: axis(theme, tr("chart.axis_hit_rate"), { ...PCT_AXIS, automargin: false }),
      margin: narrow ? { l: 52, r: 8, t: 74, b: 52 } : { l: 64, r: 16, t: 56, b: 52 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)",
                ...(narrow ? { entrywidth: 0.5, entrywidthmode: "fraction", font: { size: 10 } } : {}) },
    }),
  };
}

// ---------------------------------------------------------------- sensitivity sweeps

// A sweep's or tornado row's input by its name in Python's figures ("gap_mean_s"): the
// parameter's label (and unit) from the catalogue.
function paramLabel(name, withUnit = true) {
  const p = PARAM_BY_KEY.get(`workload.${name}`) || PARAM_BY_KEY.get(`cache.${name}`) || PARAM_BY_KEY.get(name);
  if (name === "capacity_tokens") return tr(withUnit ? "chart.cache_capacity_unit" : "chart.cache_capacity");
  if (!p) return name;   // an input the page has no row for: its Python name
  const label = tr(`param.${p.key}.label`);
  const unitKey = `param.${p.key}.unit`;
  return withUnit && has(unitKey) ? tr("ui.label_unit", { label, unit: tr(unitKey) }) : label;
}

export function sweepsFigure(state, result, view) {
  const { theme = "light", width = 800 } = view || {};
  const c = THEMES[theme] || THEMES.light;
  const sw = result && result.figures && result.figures.sweeps;
  if (!sw) return empty(theme, "sweeps", tr("chart.computing"));
  const names = Object.keys(sw).filter((k) => sw[k] && Array.isArray(sw[k].values));
  const narrow = width < 560;
  const columns = narrow ? 2 : width < 900 ? 3 : 4;
  const rows = Math.ceil(names.length / columns);
  const data = [];
  const dragRanges = {};
  const layout = baseLayout(theme, "sweeps", {
    grid: { rows, columns, pattern: "independent", xgap: narrow ? 0.18 : 0.12, ygap: narrow ? 0.5 : 0.35 },
    showlegend: false,
    margin: { l: 48, r: 12, t: 12, b: 40 },
  });
  names.forEach((name, i) => {
    const s = sw[name];
    const n = i === 0 ? "" : String(i + 1);
    data.push({ type: "scatter", mode: "lines", x: s.values, y: s.token_hit_rate, xaxis: `x${n}`, yaxis: `y${n}`,
                line: { color: c.line, width: 2 }, name: paramLabel(name),
                hovertemplate: `%{x:.3s}: %{y:.1%}<extra>${paramLabel(name)}</extra>` });
    if (s.x_range) dragRanges[`xaxis${n}`] = s.x_range;
    const title = paramLabel(name, !narrow);
    layout[`xaxis${n}`] = axis(theme, title, { type: s.scale === "log" ? "log" : "linear",
                                               title: { text: title, font: { size: narrow ? 10 : 11 } },
                                               tickfont: { size: narrow ? 9 : 11 } });
    layout[`yaxis${n}`] = axis(theme, !narrow && i % columns === 0 ? tr("chart.axis_hit_rate") : "",
                               { ...PCT_AXIS, tickfont: { size: narrow ? 9 : 11 } });
    // the current value: a trace over the fixed hit-rate range (not a layout shape), so a drag
    // render moves it with the curves (drawFigure: data only, no relayout)
    if (typeof s.current === "number") {
      data.push({ type: "scatter", mode: "lines", x: [s.current, s.current], y: [...PCT_AXIS.range], xaxis: `x${n}`, yaxis: `y${n}`,
                  line: { color: c.point, width: 1.5, dash: "dot" }, hoverinfo: "skip", showlegend: false,
                  name: tr("chart.current") });
    }
  });
  return { data, layout, dragRanges };
}

// ---------------------------------------------------------------- tornado

export function tornadoFigure(state, result, view) {
  const { theme = "light", width = 800 } = view || {};
  const c = THEMES[theme] || THEMES.light;
  const tor = result && result.figures && result.figures.tornado;
  if (!tor) return empty(theme, "tornado", tr("chart.computing"));
  const base = tor.base_token_hit_rate;
  // Rows are numbered (y = 0, 1, ... in Python's order, widest swing first) and labelled by the
  // input's name alone (phones: without its unit): the labels change only when the order does,
  // so a drag render moves the bars (drawFigure) instead of rebuilding the chart. The inputs'
  // low and high values are in the bar ends' hover text.
  // A drag render keeps the rows where they are on screen (view.rowOrder: their parameters, top
  // first, when the same set): near-equal swings would otherwise swap rows at every input; the
  // full render at release puts them in Python's order again.
  const narrow = width < NARROW_PX;
  const order = view && view.rowOrder;
  const byName = new Map(tor.rows.map((r) => [r.parameter, r]));
  const rows = Array.isArray(order) && order.length === tor.rows.length && order.every((p) => byName.has(p))
    ? order.map((p) => byName.get(p)) : tor.rows;
  const seg = (which) => {
    const x = [];
    const y = [];
    rows.forEach((r, i) => { x.push(base, r[`${which}_token_hit_rate`], null); y.push(i, i, null); });
    return { x, y };
  };
  const lo = seg("low");
  const hi = seg("high");
  const rowIndex = rows.map((_, i) => i);
  const frac = tor.change_fraction;
  return {
    dragRanges: tor.x_range ? { xaxis: tor.x_range } : {},
    data: [
      { type: "scatter", mode: "lines", name: tr("chart.input_down", { pct: fmt.pct(frac, 0) }), ...lo,
        line: { color: c.low, width: 16 }, hoverinfo: "skip" },
      { type: "scatter", mode: "lines", name: tr("chart.input_up", { pct: fmt.pct(frac, 0) }), ...hi,
        line: { color: c.high, width: 16 }, hoverinfo: "skip" },
      { type: "scatter", mode: "markers", showlegend: false, x: rows.map((r) => r.low_token_hit_rate), y: rowIndex,
        text: rows.map((r) => fmt.num(r.low_value)),
        marker: { color: c.low, size: 4, opacity: 0 }, hovertemplate: `${tr("chart.hover_low")}<extra></extra>` },
      { type: "scatter", mode: "markers", showlegend: false, x: rows.map((r) => r.high_token_hit_rate), y: rowIndex,
        text: rows.map((r) => fmt.num(r.high_value)),
        marker: { color: c.high, size: 4, opacity: 0 }, hovertemplate: `${tr("chart.hover_high")}<extra></extra>` },
      // the base rate: a trace over the fixed rows (not a layout shape), so a drag render moves it
      { type: "scatter", mode: "lines", showlegend: false, x: [base, base], y: [-0.5, rows.length - 0.5],
        line: { color: c.font, width: 1.5 }, hoverinfo: "skip", name: tr("chart.current") },
    ],
    layout: baseLayout(theme, "tornado", {
      xaxis: axis(theme, tr("chart.axis_hit_rate"), { tickformat: ".0%", hoverformat: ".1%", ...(narrow ? { nticks: 5, tickangle: 0 } : {}) }),
      yaxis: axis(theme, "", { type: "linear", range: [rows.length - 0.5, -0.5], tickmode: "array", tickvals: rowIndex,
                               ticktext: rows.map((r) => paramLabel(r.parameter, !narrow)), showgrid: false, zeroline: false,
                               ...(narrow ? { tickfont: { size: 10 } } : {}) }),
      margin: { l: 12, r: 16, t: 40, b: 48 },
      meta: { tornado_rows: rows.map((r) => r.parameter), drag_range: "grow" },
    }),
  };
}

// ---------------------------------------------------------------- heatmap memory x rate

export function heatmapFigure(state, result, view) {
  const { theme = "light", preview = false } = view || {};
  const c = THEMES[theme] || THEMES.light;
  const hm = result && result.figures && result.figures.heatmap;
  if (!hm) return empty(theme, "heatmap", tr("chart.computing"));
  const ax = capacityAxis(hm);
  const usesGib = ax.key === "capacity_gib";
  const x = hm[ax.key];
  const target = result.inverse && result.inverse.target_token_hit_rate;
  const data = [
    { type: "heatmap", x, y: hm.conversation_rate_per_s, z: hm.token_hit_rate, zmin: 0, zmax: 1,
      // "best" interpolates every pixel of the plot; a preview draws one pixel a cell, stretched
      // by the browser ("fast": the cells are even on these log axes, log-spaced grids)
      colorscale: "Viridis", zsmooth: preview ? "fast" : "best",
      colorbar: { title: { text: tr("chart.axis_hit_rate"), side: "right" }, tickformat: ".0%", thickness: 12, outlinewidth: 0 },
      hovertemplate: `${tr("chart.hover_heatmap", { unit: ax.unit })}<extra></extra>` },
  ];
  if (typeof target === "number") {
    data.push({ type: "contour", x, y: hm.conversation_rate_per_s, z: hm.token_hit_rate, showscale: false,
                // a drag render leaves out the contour's label (its text measured and placed at
                // every draw: ~5 ms of a ~30 ms redraw); the release draws it again
                contours: { start: target, end: target, size: 1, coloring: "lines", showlabels: !preview,
                            labelformat: ".0%", labelfont: { color: "#ffffff" } },
                line: { color: "#ffffff", width: 2, dash: "dash" }, hoverinfo: "skip", name: tr("chart.target") });
  }
  const curX = usesGib ? result.cache_capacity_gib : result.cache_capacity_tokens;
  const rate = state && state.values && state.values["workload.conversation_rate_per_s"];
  if (typeof curX === "number" && typeof rate === "number") {
    data.push({ type: "scatter", mode: "markers", x: [curX], y: [rate], name: tr("chart.current"),
                marker: { color: c.point, size: 12, line: { color: "#ffffff", width: 2 } },
                hovertemplate: `${tr("chart.hover_heatmap_current", { unit: ax.unit })}<extra></extra>` });
  }
  const xRange = hm.x_range_log10 && hm.x_range_log10[ax.key];
  return {
    data,
    dragRanges: { ...(xRange ? { xaxis: xRange } : {}), ...(hm.y_range_log10 ? { yaxis: hm.y_range_log10 } : {}) },
    layout: baseLayout(theme, "heatmap", {
      showlegend: false,
      xaxis: axis(theme, ax.title, { type: "log" }),
      yaxis: axis(theme, paramLabel("conversation_rate_per_s"), { type: "log" }),
    }),
  };
}

export const FIGURES = { curve: curveFigure, sweeps: sweepsFigure, tornado: tornadoFigure, heatmap: heatmapFigure };

// Phones (a chart narrower than NARROW_PX): Plotly's toolbar sits at the top right of the
// chart, where a top legend is, so the legend goes under the plot (rows of two entries) and the
// top margin keeps a strip for the toolbar alone.
export const NARROW_PX = 560;
const MODEBAR_STRIP_PX = 36;
const LEGEND_ROW_PX = 20;

function forNarrow(fig) {
  const l = fig.layout;
  const margin = { l: 56, r: 16, t: 16, b: 48, ...(l.margin || {}) };
  margin.t = Math.max(margin.t, MODEBAR_STRIP_PX);
  const entries = fig.data.filter((d) => d.showlegend !== false && d.name && d.type !== "heatmap" && d.type !== "contour").length;
  if (l.showlegend !== false && entries > 0) {
    margin.t = MODEBAR_STRIP_PX;
    margin.b += Math.ceil(entries / 2) * LEGEND_ROW_PX + 8;
    const { entrywidth, entrywidthmode, ...rest } = l.legend || {};   // entries flow by their own width
    l.legend = { ...rest, orientation: "h", x: 0, xanchor: "left", xref: "container", y: 0, yanchor: "bottom",
                 yref: "container", font: { size: 11 } };
  }
  l.margin = margin;
  return fig;
}

export function figureFor(name, state, result, view) {
  const fig = FIGURES[name](state, result, view);
  return view && view.width && view.width < NARROW_PX ? forNarrow(fig) : fig;
}

// ---------------------------------------------------------------- drawing

// What a drag render may keep from the chart on screen: everything but the traces' numeric x
// and y and their per-point text (hover text: the tornado's input values); category labels
// are kept (a new category needs its axis redrawn).
const numeric = (xs) => Array.isArray(xs) && xs.every((v) => v === null || typeof v === "number");
const grid = (zs) => Array.isArray(zs) && zs.every(numeric);
function drawnShape(fig) {
  return JSON.stringify({ data: fig.data.map(({ x, y, z, text, ...rest }) => ({ ...rest, ...(numeric(x) ? {} : { x }), ...(numeric(y) ? {} : { y }),
                                                                               ...(z === undefined || grid(z) ? {} : { z }),
                                                                               ...(Array.isArray(text) ? { text: "[]" } : text === undefined ? {} : { text }) })),
                          layout: fig.layout });
}
const moved = ({ x, y, text }) => (Array.isArray(text) ? { x, y, text } : { x, y });
const MOVABLE = new Set(["scatter", "heatmap", "contour"]);   // moveTraces draws these (a heatmap's
// cells and a scatter's points; a contour is hidden until the release)
const SHAPES = new WeakMap();   // chart div -> drawnShape of the figure on it
const DRAWN_HERE = new WeakSet();   // chart divs whose last drag render moveTraces drew
const NO_TRANSITION = { transition: { duration: 0 }, frame: { duration: 0, redraw: false }, mode: "immediate" };

// A drag render's axes to re-range: {"xaxisN.range": Python's range for it} (fig.dragRanges:
// the data's extent in the axis's units, kvcalc.figure_data), for an axis whose data is now
// less than half on screen, or spans less than a third of it (not for a "grow" figure, see
// below). The data stays where it was drawn otherwise (clipped by the plot area at its edges):
// re-ranging redraws the axis (ticks, labels), which costs more than moving the traces. A
// figure whose data keeps its span and moves along the axis (layout.meta.drag_range "grow":
// the tornado) widens its range to take in Python's as soon as a point leaves it. Only axes
// Plotly ranges itself (no range in the figure's layout). Decided in pixels (the axis's c2p).
function xRangeUpdates(div, fig) {
  const full = div._fullLayout || {};
  const grow = Boolean(fig.layout.meta && fig.layout.meta.drag_range === "grow");
  const out = {};
  for (const [name, range] of Object.entries(fig.dragRanges || {})) {
    const ax = full[name];
    if (!ax || !Array.isArray(ax.range) || !Array.isArray(range) || (fig.layout[name] && fig.layout[name].range)) continue;
    const letter = name[0];   // "x" | "y"
    const id = `${letter}${name.slice(5)}`;
    let lo = Infinity;
    let hi = -Infinity;
    for (const d of fig.data) {
      const values = d[letter];
      if ((d[`${letter}axis`] || letter) !== id || !Array.isArray(values)) continue;
      for (const v of values) {
        const px = typeof v === "number" ? ax.c2p(v) : NaN;
        if (!Number.isFinite(px)) continue;
        if (px < lo) lo = px;
        if (px > hi) hi = px;
      }
    }
    if (!(hi >= lo)) continue;
    const length = ax._length;
    const outside = lo < -0.5 || hi > length + 0.5;
    const shown = hi > lo ? (Math.min(hi, length) - Math.max(lo, 0)) / (hi - lo) : Number(!outside);
    if (grow ? outside : shown < 0.5 || hi - lo < length / 3) {
      const [r0, r1] = ax.range[0] <= ax.range[1] ? ax.range : [ax.range[1], ax.range[0]];
      out[`${name}.range`] = grow ? [Math.min(r0, range[0]), Math.max(r1, range[1])] : range;
    }
  }
  return Object.keys(out).length ? out : null;
}

// Draws fig into div. A drag render (preview) whose figure differs from the one on screen only
// in its traces' x and y, all of them scatter traces, moves those: drawn in the SVG on screen
// (drag-draw.js moveTraces: no Plotly update at all), after an x axis is re-ranged (a relayout
// of its range alone) when the data left its range or shrank to less than half of it; when that
// cannot draw them, Plotly.animate without a redraw (no axes, margins, legend or hover layer
// rebuilt). Anything else, and every full render: Plotly.react (after a drag render drawn in
// the SVG, with a new layout.datarevision: Plotly's own data of the chart is older than gd.data).
let dataRevision = 0;
export async function drawFigure(plotly, div, fig, { preview = false, config = PLOT_CONFIG } = {}) {
  const movable = fig.data.every((d) => MOVABLE.has(d.type));
  const scatter = fig.data.every((d) => d.type === "scatter");
  const shape = movable ? drawnShape(fig) : null;
  const onScreen = div._fullData;
  if (preview && movable && SHAPES.get(div) === shape && Array.isArray(onScreen) && onScreen.length === fig.data.length
      && onScreen.every((d, i) => d.type === fig.data[i].type)) {
    try {
      const ranges = xRangeUpdates(div, fig);
      if (ranges) {
        await plotly.relayout(div, ranges);
        div.dataset.reranged = String(Number(div.dataset.reranged || 0) + 1);
      }
      if (moveTraces(div, fig)) {
        DRAWN_HERE.add(div);
        div.dataset.drawPath = "svg";
        return "moved";
      }
      if (!scatter) throw new Error("Plotly.animate moves scatter traces only");
      await plotly.animate(div, { data: fig.data.map(moved), traces: fig.data.map((_, i) => i) },
                           NO_TRANSITION);
      DRAWN_HERE.delete(div);
      div.dataset.drawPath = "plotly";
      return "moved";
    } catch {
      // an animation interrupted (Plotly rejects its promise): draw the whole figure instead
    }
  }
  const layout = DRAWN_HERE.has(div) ? { ...fig.layout, datarevision: `drag-${++dataRevision}` } : fig.layout;
  if (DRAWN_HERE.has(div)) showHidden(div);
  DRAWN_HERE.delete(div);
  await plotly.react(div, fig.data, layout, config);
  SHAPES.set(div, shape);
  div.dataset.drawPath = "plotly";
  return "drawn";
}
