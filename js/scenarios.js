// Workload scenarios (chat, coding agent, RAG over a shared document, recommender broadcast).
// The presets are Python's (kvcalc.scenarios, written to py/kvcalc/scenarios.json); picking
// one fills the traffic inputs with them. This module also shows the chosen scenario's
// explanation under its control and the recommender card (numbers from Python's
// result.recommender; JavaScript formats and draws only).

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, setText } from "./i18n.js";
import { PARAM_BY_KEY } from "./params.js";
import { THEMES, PLOT_CONFIG } from "./figures.js";

export const SCENARIOS_URL = new URL("../py/kvcalc/scenarios.json", import.meta.url).href;
export const SCENARIOS = await fetch(SCENARIOS_URL)
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .then((doc) => doc.scenarios || {})
  .catch((err) => { console.error(`kvcalc: could not read ${SCENARIOS_URL}: ${err.message}`); return {}; });

// One paragraph per scenario: when it applies (catalogue keys, written out for the key scan).
export const SCENARIO_HELP = {
  chat: "res.scenario.chat_help",
  coding_agent: "res.scenario.coding_agent_help",
  rag: "res.scenario.rag_help",
  recommender: "res.scenario.recommender_help",
};

// The preset's values as the page's parameter keys ("workload.turns_mean": "30").
export function presetPatch(name) {
  const s = SCENARIOS[name];
  if (!s) return {};
  const patch = {};
  for (const [part, values] of Object.entries(s)) {
    for (const [k, v] of Object.entries(values)) {
      const key = `${part}.${k}`;
      if (PARAM_BY_KEY.has(key)) patch[key] = String(v);
    }
  }
  return patch;
}

// A patch from the form: choosing a scenario brings its preset along (what the user typed in
// the same patch wins).
export function scenarioPatch(patch) {
  if (!patch || typeof patch.scenario !== "string" || !(patch.scenario in SCENARIOS)) return patch;
  return { ...presetPatch(patch.scenario), ...patch };
}

// ---------------------------------------------------------------- rendering

function helpParagraph(form) {
  let p = form.querySelector("#scenario-help");
  if (!p) {
    const field = form.querySelector('[data-field="scenario"]');
    if (!field) return null;
    p = el("p", { id: "scenario-help", class: "scenario-help small", "aria-live": "polite" });
    field.append(p);
  }
  return p;
}

export function renderScenarioHelp(form, name) {
  const p = helpParagraph(form);
  if (!p) return;
  if (SCENARIO_HELP[name]) {
    const w = (SCENARIOS[name] && SCENARIOS[name].workload) || {};   // the preset's own sizes
    setText(p, SCENARIO_HELP[name], { system: fmt.int(w.system_prompt_tokens), turns: fmt.int(w.turns_mean) });
    p.dataset.scenario = name;
    p.hidden = false;
  } else p.hidden = true;
}

const ROWS = [
  // [catalogue key, help key, result key, formatter]
  ["res.rec.kv_without", "res.rec.kv_without_help", "kv_gib_per_gpu_without_sharing", fmt.gib],
  ["res.rec.kv_with", "res.rec.kv_with_help", "kv_gib_per_gpu_with_sharing", fmt.gib],
  ["res.rec.memory_ratio", "res.rec.memory_ratio_help", "memory_ratio", (x) => fmt.withUnit(x, "unit.times", (y) => fmt.fixed(y, 1))],
  ["res.rec.prefill_without", "res.rec.prefill_without_help", "prefill_s_without_sharing", fmt.seconds],
  ["res.rec.prefill_with", "res.rec.prefill_with_help", "prefill_s_with_sharing", fmt.seconds],
  ["res.rec.extra_without", "res.rec.extra_without_help", "extra_prefill_fraction_without_sharing", (x) => fmt.pct(x, 1)],
  ["res.rec.extra_with", "res.rec.extra_with_help", "extra_prefill_fraction_with_sharing", (x) => fmt.pct(x, 1)],
];

export function renderRecommender(card, result, { plotly = null, theme = null } = {}) {
  const rec = result && result.recommender;
  card.hidden = !rec;
  if (!rec) { card.replaceChildren(); return; }
  const head = setText(el("h3"), "res.rec.title", { n: fmt.int(rec.candidates) });
  const dl = el("dl", { class: "kv" });
  for (const [label, help, key, f] of ROWS) {
    if (rec[key] === undefined) continue;
    // a help "?" as everywhere: a button whose data-tip js/a11y.js shows on hover, focus and tap
    const hint = el("button", { type: "button", class: "hint", "data-tip": t(help), "aria-label": t(help) }, "?");
    dl.append(el("div", {}, el("dt", {}, setText(el("span"), label), " ", hint),
                 el("dd", { "data-rec": key, "data-value": String(rec[key]), text: f(rec[key]) })));
  }
  const note = setText(el("p", { class: "muted small" }), "res.rec.note");
  const chart = el("div", { class: "chart", id: "chart-recommender" });
  card.replaceChildren(head, dl, chart, note);
  if (plotly && theme) drawRecommender(plotly, chart, rec, theme);
}

function drawRecommender(plotly, div, rec, themeName) {
  const theme = THEMES[themeName] || THEMES.light;
  const c = rec.curve;
  // two panels: KV memory (left) and prefill time (right), each with and without sharing
  const without = { color: theme.high }, withB = { color: theme.line };
  const data = [
    { type: "scatter", mode: "lines", name: t("res.rec.without"), legendgroup: "wo", line: without,
      x: c.candidates, y: c.kv_gib_per_gpu_without_sharing },
    { type: "scatter", mode: "lines", name: t("res.rec.with"), legendgroup: "w", line: withB,
      x: c.candidates, y: c.kv_gib_per_gpu_with_sharing },
  ];
  const twoPanels = Boolean(c.prefill_s_without_sharing);
  if (twoPanels) {
    data.push({ type: "scatter", mode: "lines", xaxis: "x2", yaxis: "y2", showlegend: false, legendgroup: "wo",
                name: t("res.rec.without"), line: without, x: c.candidates, y: c.prefill_s_without_sharing });
    data.push({ type: "scatter", mode: "lines", xaxis: "x2", yaxis: "y2", showlegend: false, legendgroup: "w",
                name: t("res.rec.with"), line: withB, x: c.candidates, y: c.prefill_s_with_sharing });
  }
  const ax = (title, domain, anchor) => ({ type: "log", title: { text: title }, gridcolor: theme.grid, automargin: true,
                                           dtick: "D2", ...(domain ? { domain } : {}), ...(anchor ? { anchor } : {}) });
  const layout = {
    paper_bgcolor: theme.paper, plot_bgcolor: theme.plot,
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", color: theme.font, size: 12 },
    margin: { l: 56, r: 16, t: 10, b: 48 }, height: 320, uirevision: "kvcalc-recommender",
    xaxis: ax(t("res.rec.axis_n"), twoPanels ? [0, 0.4] : null),
    yaxis: ax(t("res.rec.axis_gib")),
    // legend under the panels: above them it meets Plotly's toolbar on a phone
    legend: { orientation: "h", x: 0, y: -0.32, yanchor: "top", bgcolor: "rgba(0,0,0,0)" },
  };
  layout.margin.b = 90;
  if (twoPanels) {
    layout.xaxis2 = ax(t("res.rec.axis_n"), [0.62, 1], "y2");
    layout.yaxis2 = ax(t("res.rec.axis_s"), null, "x2");
  }
  return plotly.react(div, data, layout, PLOT_CONFIG);
}

// ---------------------------------------------------------------- trace -> calculator

// The trace tab's fitted workload as a patch of the page's inputs (fit.page_inputs from Python's
// kvcalc.trace: request keys, whole numbers where the page's boxes take them).
export function fitPatch(fit) {
  const patch = {};
  if (!fit || fit.available === false || !fit.page_inputs) return patch;   // a sampled trace has no fit
  for (const [key, v] of Object.entries(fit.page_inputs)) {
    if (PARAM_BY_KEY.has(key)) patch[key] = String(v);
  }
  return patch;
}

// "Use this fit in the calculator" under the trace tab: shown once a trace has a fit.
export function renderFitButton(bar, traceResult, onApply) {
  const patch = fitPatch(traceResult && traceResult.fit);
  if (!Object.keys(patch).length) { bar.replaceChildren(); bar.hidden = true; return; }
  const b = setText(el("button", { type: "button", id: "use-fit" }), "res.scenario.use_fit");
  b.addEventListener("click", () => onApply(patch));
  bar.replaceChildren(b, " ", setText(el("span", { class: "muted small" }), "res.scenario.use_fit_help"));
  bar.hidden = false;
}
