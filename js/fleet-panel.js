// The Fleet results (issue 7): the fleet's hit rate and cost, overload in words, per-tier
// results (hit rate, load time against recompute, verdict), hit rate vs K for each routing,
// the tier split along the memory curve, the sizing table (fleet_options) and the ranked
// recommendations with the vLLM / SGLang settings each names. Everything shown is a number of
// Python's result (compute() with "fleet" in figures and sizing: {}); this module formats and
// draws. Text only through textContent (el / setText); messages from the catalogues.
//
// mountFleetPanel(details, root, {onToggle}) -> {isOpen(), render(result, view), relabel()}
//   details  the <details> element of the section (open = ask Python for the fleet figures,
//            the sizing and the recommendations); onToggle() when the user opens or closes it
//   view     {theme, plotly}

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, setText, renderMessage } from "./i18n.js";
import { PLOT_CONFIG } from "./figures.js";
import { hitRateVsInstancesFigure, tierSplitFigure, tierLabel, routingLabel } from "./fleet-figures.js";

const cell = (text, props = {}) => el("td", props, text);
const head = (key) => setText(el("th", { scope: "col" }), key);
const ms = (x) => (typeof x === "number" ? t("unit.ms", { x: fmt.num(x) }) : fmt.DASH);
const pp = (x) => (typeof x === "number" ? t("res.fleet_pp", { x: fmt.fixed(x, 1) }) : fmt.DASH);

// A Python message with its routing-policy names in the page's language (they are values
// of Python's params: "random" -> opt.cluster.routing.random).
function message(detail) {
  const params = { ...(detail.params || {}) };
  if (typeof params.routing === "string") params.routing = routingLabel(params.routing);
  if (detail.code === "affinity_routing" && typeof params.from === "string") params.from = routingLabel(params.from);
  return renderMessage({ ...detail, params });
}

function row(labelKey, value, props = {}) {
  return el("div", props, setText(el("dt"), labelKey), el("dd", {}, value));
}

// ---------------------------------------------------------------- parts

function summary(r) {
  const f = r.fleet;
  const dl = el("dl", { class: "kv fleet-kv" });
  dl.append(row("res.fleet_hit_rate", el("b", { "data-fleet": "token_hit_rate", "data-value": String(r.token_hit_rate) },
                                            fmt.pct(r.token_hit_rate))));
  dl.append(row("res.fleet_gpus", t("res.fleet_gpus_value", { instances: fmt.int(f.instances), tp: fmt.int(r.tensor_parallel ?? 1),
                                                             gpus: fmt.int(f.gpus) })));
  dl.append(row("res.fleet_routing", routingLabel(f.routing)));
  dl.append(row("res.ideal", fmt.pct(f.ideal_token_hit_rate)));
  if (f.instances > 1 && (f.routing === "random" || f.routing === "round_robin")) {
    dl.append(row("res.fleet_ceiling", fmt.pct(f.random_routing_ceiling)));
  }
  if (typeof f.affinity_token_hit_rate === "number") {
    dl.append(row("res.fleet_affinity", t("res.fleet_affinity_value", { hit: fmt.pct(f.affinity_token_hit_rate),
                                                                        gain: pp(f.affinity_gain_pp) })));
  }
  if (typeof f.cost_per_hour === "number") {
    dl.append(row("res.fleet_cost", el("span", { "data-fleet": "cost_per_hour", "data-value": String(f.cost_per_hour) },
                                       t("res.fleet_cost_value", { x: fmt.fixed(f.cost_per_hour, 2) }))));
  }
  return dl;
}

function overload(r) {
  const f = r.fleet;
  if (!f.overload) return null;
  const p = el("p", { class: "error fleet-overload", role: "status" });
  if (typeof f.overload_ends_at_kv_gib_per_gpu === "number") {
    setText(p, "res.fleet_overload_gib", { gib: fmt.gib(f.overload_ends_at_kv_gib_per_gpu),
                                           tokens: fmt.int(f.overload_ends_at_capacity_tokens) });
  } else {
    setText(p, "res.fleet_overload_tokens", { tokens: fmt.int(f.overload_ends_at_capacity_tokens) });
  }
  return p;
}

function tiersTable(r) {
  const f = r.fleet;
  const split = r.tier_token_hit_rates || [];
  const report = new Map((r.tiers_report || []).map((x) => [x.name, x]));
  const table = el("table", { class: "fleet-table", "data-fleet": "tiers" });
  table.append(el("thead", {}, el("tr", {}, head("res.fleet_col_tier"), head("res.fleet_col_capacity"),
                                  head("res.fleet_col_read"), head("res.fleet_col_hit"), head("res.fleet_col_load"),
                                  head("res.fleet_col_recompute"), head("res.fleet_col_verdict"))));
  const body = el("tbody");
  body.append(el("tr", { "data-tier": "gpu" }, cell(tierLabel("gpu", 1)),
                 cell(typeof r.cache_capacity_gib === "number" ? t("res.fleet_per_gpu", { x: fmt.gib(r.cache_capacity_gib) })
                                                               : fmt.withUnit(r.cache_capacity_tokens, "unit.tokens", fmt.int)),
                 cell(fmt.DASH), cell(fmt.pct(split[0]), { "data-value": String(split[0]) }),
                 cell(fmt.DASH), cell(fmt.DASH), cell(fmt.DASH)));
  f.tiers.forEach((tier, i) => {
    const rep = report.get(tier.name);
    const cap = typeof tier.capacity_gib_per_instance === "number" ? fmt.gib(tier.capacity_gib_per_instance)
                                                                   : fmt.withUnit(tier.capacity_tokens, "unit.tokens", fmt.int);
    const verdict = rep ? el("td", { class: rep.helps_ttft ? "ok" : "warn" }, message(rep)) : cell(fmt.DASH);
    body.append(el("tr", { "data-tier": tier.name }, cell(tierLabel(tier.name, i + 2)), cell(cap),
                   cell(t("res.fleet_gb_per_s", { x: fmt.num(tier.read_gb_per_s) })),
                   cell(fmt.pct(split[i + 1]), { "data-value": String(split[i + 1]) }),
                   cell(rep ? ms(rep.load_ms_per_request) : fmt.DASH), cell(rep ? ms(rep.recompute_ms_per_request) : fmt.DASH),
                   verdict));
  });
  table.append(body);
  return el("div", { class: "table-wrap" }, table);
}

function sizingTable(r) {
  const options = r.fleet_options;
  const wrap = el("div", { class: "fleet-sizing" });
  const target = r.inverse && r.inverse.target_token_hit_rate;
  wrap.append(setText(el("h4"), "res.fleet_sizing", { target: fmt.pct(target) }));
  if (!Array.isArray(options)) {
    wrap.append(setText(el("p", { class: "muted small" }), "res.fleet_sizing_needs_model"));
    return wrap;
  }
  const table = el("table", { class: "fleet-table", "data-fleet": "sizing" });
  table.append(el("thead", {}, el("tr", {}, head("res.fleet_col_tp"), head("res.fleet_col_instances"),
                                  head("res.fleet_col_gpus"), head("res.fleet_col_cpu_tier"), head("res.fleet_col_hit"),
                                  head("res.fleet_col_busy"), head("res.fleet_col_cost"), head("res.fleet_col_verdict"))));
  const body = el("tbody");
  for (const o of options) {
    const busy = typeof o.prefill_utilization === "number"
      ? t("res.fleet_busy_value", { prefill: fmt.pct(o.prefill_utilization, 0), decode: fmt.pct(o.decode_utilization, 0) })
      : fmt.DASH;
    body.append(el("tr", { class: o.fits ? "fits" : "no-fit", "data-tp": String(o.tensor_parallel),
                           "data-instances": o.instances === null ? "" : String(o.instances),
                           "data-tier-gib": String(o.tier_gib_per_instance), "data-fits": String(o.fits),
                           "data-code": o.code },
                   cell(fmt.int(o.tensor_parallel)), cell(o.instances === null ? fmt.DASH : fmt.int(o.instances)),
                   cell(o.gpus === null ? fmt.DASH : fmt.int(o.gpus)),
                   cell(o.tier_gib_per_instance ? fmt.gib(o.tier_gib_per_instance) : t("res.fleet_none")),
                   cell(fmt.pct(o.token_hit_rate), { "data-value": o.token_hit_rate === null ? "" : String(o.token_hit_rate) }),
                   cell(busy),
                   cell(typeof o.cost_per_hour === "number" ? fmt.fixed(o.cost_per_hour, 2) : fmt.DASH),
                   el("td", { class: o.fits ? "ok" : "warn" }, message(o))));
  }
  table.append(body);
  wrap.append(el("div", { class: "table-wrap" }, table));
  return wrap;
}

function setting(s) {
  const value = s.value === null || s.value === undefined ? "" : ` ${s.value}`;
  return el("li", {}, el("span", { class: "engine" }, s.engine), " ", el("code", {}, `${s.flag}${value}`));
}

function recommendations(r) {
  const wrap = el("div", { class: "fleet-levers" });
  wrap.append(setText(el("h4"), "res.fleet_levers"));
  const levers = r.recommendations;
  if (!Array.isArray(levers)) {
    wrap.append(setText(el("p", { class: "muted small" }), "res.fleet_sizing_needs_model"));
    return wrap;
  }
  const ol = el("ol", { class: "levers", "data-fleet": "recommendations" });
  for (const x of levers) {
    const effect = typeof x.token_hit_rate === "number"
      ? t("res.fleet_lever_effect", { hit: fmt.pct(x.token_hit_rate), delta: pp(x.delta_pp),
                                      gpus_before: fmt.int(x.gpus_before ?? 0), gpus_after: fmt.int(x.gpus_after ?? 0) })
      : "";
    const li = el("li", { "data-code": x.code, "data-delta-pp": typeof x.delta_pp === "number" ? String(x.delta_pp) : "" },
                  el("span", { class: "lever-text" }, message(x)),
                  effect ? el("span", { class: "muted lever-effect" }, effect) : null);
    if (x.settings && x.settings.length) li.append(el("ul", { class: "flags" }, x.settings.map(setting)));
    ol.append(li);
  }
  wrap.append(ol);
  return wrap;
}

// ---------------------------------------------------------------- the panel

export function mountFleetPanel(details, root, { onToggle = () => {} } = {}) {
  const state = { result: null, view: {} };
  const charts = {
    k: el("div", { class: "chart fleet-chart", id: "chart-fleet-k", role: "img" }),
    tiers: el("div", { class: "chart fleet-chart", id: "chart-fleet-tiers", role: "img" }),
  };
  const content = el("div", { class: "fleet-content" });
  const waiting = setText(el("p", { class: "muted small" }), "res.fleet_waiting");
  root.replaceChildren(waiting, content);
  details.addEventListener("toggle", () => onToggle(details.open));

  async function draw() {
    const { plotly, theme } = state.view;
    if (!plotly || !state.result || !details.open) return;
    for (const [name, fn] of [["k", hitRateVsInstancesFigure], ["tiers", tierSplitFigure]]) {
      const fig = fn(state.result, { theme, width: charts[name].clientWidth || 800 });
      await plotly.react(charts[name], fig.data, fig.layout, PLOT_CONFIG);
    }
    root.dataset.drawn = String((Number(root.dataset.drawn) || 0) + 1);
  }

  function build() {
    const r = state.result;
    if (!r || !r.fleet) {
      content.replaceChildren();
      waiting.hidden = false;
      return;
    }
    waiting.hidden = true;
    const kTitle = setText(el("h4"), "chart.fleet_k_title");
    const tTitle = setText(el("h4"), "chart.fleet_tiers_title");
    charts.k.setAttribute("aria-label", t("chart.fleet_k_title"));
    charts.tiers.setAttribute("aria-label", t("chart.fleet_tiers_title"));
    content.replaceChildren(
      summary(r),
      overload(r) || "",
      setText(el("h4"), "res.fleet_tiers"),
      tiersTable(r),
      el("div", { class: "fleet-charts" },
         el("figure", {}, kTitle, charts.k, setText(el("figcaption", { class: "muted small" }), "chart.fleet_k_caption")),
         el("figure", {}, tTitle, charts.tiers, setText(el("figcaption", { class: "muted small" }), "chart.fleet_tiers_caption"))),
      sizingTable(r),
      recommendations(r),
    );
  }

  return {
    isOpen: () => details.open,
    open(on = true) { details.open = on; },
    async render(result, view) {
      state.result = result;
      state.view = view;
      if (!details.open) return;
      build();
      await draw();
    },
    async relabel() {
      if (!details.open) return;
      build();
      await draw();
    },
  };
}
