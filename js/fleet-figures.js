// The Fleet section's two Plotly figures, as pure functions of Python's result
// (result.fleet_figures, from compute() with "fleet" in figures):
//   hitRateVsInstancesFigure  token hit rate against the number of instances K for each routing
//                             policy (each instance with the current capacity and tiers), the
//                             random-routing ceiling L/(L+K-1) of own-history reuse, and the
//                             current K;
//   tierSplitFigure           the token hit rate split by tier (GPU, CPU, SSD) along the GPU
//                             memory per instance, stacked, with the current memory marked.
// They only place Python's numbers on axes (fractions shown as percent by Plotly's formats).

import { THEMES } from "./figures.js";
import { t as tr } from "./i18n.js";

// one colour per routing policy and per tier, in both themes
const ROUTING_COLORS = {
  light: { affinity: "#2f6fd6", random: "#e08a1e", round_robin: "#8a8f98", pooled: "#2a9d5c" },
  dark: { affinity: "#6ea0ff", random: "#ffb057", round_robin: "#a3a9b3", pooled: "#4cc38a" },
};
const TIER_COLORS = {
  light: ["#2f6fd6", "#e08a1e", "#7048e8", "#2a9d5c"],
  dark: ["#6ea0ff", "#ffb057", "#b197fc", "#4cc38a"],
};
// routing and tier names Python uses -> their catalogue labels
const ROUTING_LABELS = { affinity: "opt.cluster.routing.affinity", random: "opt.cluster.routing.random",
                         round_robin: "opt.cluster.routing.round_robin", pooled: "opt.cluster.routing.pooled" };
const TIER_LABELS = { gpu: "res.fleet_tier_gpu", cpu: "res.fleet_tier_cpu", ssd: "res.fleet_tier_ssd" };
// A tier name the catalogue does not know (an API user's own) never reaches Plotly's text raw:
// it is "tier n", n its 1-based place in the hierarchy (the GPU is tier 1).
export const tierLabel = (name, level) => (TIER_LABELS[name] ? tr(TIER_LABELS[name]) : tr("res.fleet_tier_n", { n: level }));
export const routingLabel = (name) => (ROUTING_LABELS[name] ? tr(ROUTING_LABELS[name]) : name);

function layout(theme, name, narrow, extra) {
  const c = THEMES[theme] || THEMES.light;
  return {
    uirevision: `kvcalc-${name}`,
    paper_bgcolor: c.paper, plot_bgcolor: c.plot,
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 12, color: c.font },
    hoverlabel: { bgcolor: c.hover, font: { color: c.font } },
    margin: narrow ? { l: 48, r: 8, t: 80, b: 48 } : { l: 60, r: 16, t: 56, b: 48 },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)",
              ...(narrow ? { entrywidth: 0.5, entrywidthmode: "fraction", font: { size: 10 } } : {}) },
    ...extra,
  };
}

function axis(theme, title, more = {}) {
  const c = THEMES[theme] || THEMES.light;
  return { title: { text: title }, gridcolor: c.grid, zerolinecolor: c.zero, linecolor: c.zero, automargin: true, ...more };
}

function empty(theme, name, message) {
  return { data: [], layout: layout(theme, name, false, {
    xaxis: { visible: false }, yaxis: { visible: false },
    annotations: [{ text: message, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] }) };
}

export function hitRateVsInstancesFigure(result, view = {}) {
  const { theme = "light", width = 800 } = view;
  const c = THEMES[theme] || THEMES.light;
  const fig = result && result.fleet_figures && result.fleet_figures.hit_rate_vs_instances;
  if (!fig) return empty(theme, "fleet-k", tr("chart.computing"));
  const colors = ROUTING_COLORS[theme] || ROUTING_COLORS.light;
  const x = fig.instances;
  const data = Object.entries(fig.routing).map(([routing, y]) => ({
    type: "scatter", mode: "lines+markers", name: routingLabel(routing), x, y,
    line: { color: colors[routing], width: routing === "round_robin" ? 1.5 : 2.5,
            dash: routing === "round_robin" ? "dash" : "solid" },
    marker: { size: 6 },
    hovertemplate: `${tr("chart.fleet_hover_k")}<extra>${routingLabel(routing)}</extra>`,
  }));
  if (fig.random_routing_ceiling.every((v) => typeof v === "number")) {
    data.push({ type: "scatter", mode: "lines", name: tr("chart.fleet_ceiling"), x, y: fig.random_routing_ceiling,
                line: { color: c.seed, width: 1.5, dash: "dot" },
                hovertemplate: `${tr("chart.fleet_hover_ceiling")}<extra></extra>` });
  }
  const K = result.fleet && result.fleet.instances;
  if (typeof K === "number" && typeof result.token_hit_rate === "number") {
    data.push({ type: "scatter", mode: "markers", name: tr("chart.current"), x: [K], y: [result.token_hit_rate],
                marker: { color: c.point, size: 12, line: { color: c.plot, width: 2 } },
                hovertemplate: `${tr("chart.fleet_hover_k")}<extra>${tr("chart.current")}</extra>` });
  }
  return {
    data,
    layout: layout(theme, "fleet-k", width < 560, {
      xaxis: axis(theme, tr("chart.fleet_axis_instances"), { type: "log", tickvals: x, ticktext: x.map(String) }),
      yaxis: axis(theme, tr("chart.axis_hit_rate"), { tickformat: ".0%", range: [0, 1.02], hoverformat: ".1%" }),
    }),
  };
}

export function tierSplitFigure(result, view = {}) {
  const { theme = "light", width = 800 } = view;
  const c = THEMES[theme] || THEMES.light;
  const split = result && result.fleet_figures && result.fleet_figures.tier_split;
  if (!split) return empty(theme, "fleet-tiers", tr("chart.computing"));
  const usesGib = Array.isArray(split.capacity_gib);
  const x = usesGib ? split.capacity_gib : split.capacity_tokens;
  const unit = usesGib ? "GiB" : tr("unit.tokens_word");
  const colors = TIER_COLORS[theme] || TIER_COLORS.light;
  const data = split.tiers.map((tier, i) => ({
    type: "scatter", mode: "lines", stackgroup: "tiers", name: tierLabel(tier.name, i + 1), x, y: tier.token_hit_rate,
    line: { color: colors[i % colors.length], width: 1 }, fillcolor: colors[i % colors.length],
    hovertemplate: `%{x:.3s} ${unit}: %{y:.1%}<extra>${tierLabel(tier.name, i + 1)}</extra>`,
  }));
  const curX = usesGib ? result.cache_capacity_gib : result.cache_capacity_tokens;
  const shapes = typeof curX === "number" ? [{ type: "line", xref: "x", yref: "paper", x0: curX, x1: curX, y0: 0, y1: 1,
                                               line: { color: c.point, width: 1.5, dash: "dot" } }] : [];
  return {
    data,
    layout: layout(theme, "fleet-tiers", width < 560, {
      xaxis: axis(theme, usesGib ? tr("chart.axis_cache_gib") : tr("chart.axis_cache_tokens"), { type: "log" }),
      yaxis: axis(theme, tr("chart.axis_hit_rate"), { tickformat: ".0%", range: [0, 1.02], hoverformat: ".1%" }),
      shapes,
    }),
  };
}
