// The "Model and engine" card of the results: which model the numbers are for and what was
// derived rather than given (Python's derived_fields, rendered from msg.<code>), maximum
// concurrency at the context length as vLLM computes it, KV memory of one sequence against
// its length (the kv_context figure), the vllm serve / SGLang launch_server command lines with
// copy buttons, and a pasted engine log read against the estimate (adopt its capacity and
// reserve). Also runs the Hugging Face fetch (js/hf-fetch.js) when the model is given by id.
// Formatting and drawing only: every number is Python's.

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, has, setText, setAttr, renderMessage } from "./i18n.js";
import { THEMES, PLOT_CONFIG } from "./figures.js";
import { createHfFetcher } from "./hf-fetch.js";

// Rows of the engine-log comparison (kvcalc.enginelog.compare_with_estimate's "rows").
const ENGINE_ROWS = [
  ["kv_cache_gib", "res.eng_kv_cache_gib", fmt.gib],
  ["kv_cache_tokens", "res.eng_kv_cache_tokens", fmt.int],
  ["max_concurrency", "res.eng_max_concurrency", (x) => fmt.fixed(x, 2)],
  ["weights_gib_per_gpu", "res.eng_weights_gib", fmt.gib],
  ["kv_bytes_per_token", "res.eng_kv_bytes_per_token", fmt.int],
];

// Series of the memory-vs-context chart: result key, label key, colour name in THEMES.
const KV_SERIES = [
  ["full_attention_gib", "chart.kv_full", "seed", "dot"],
  ["sliding_window_gib", "chart.kv_window", "line", "solid"],
  ["paged_gib", "chart.kv_paged", "ideal", "dash"],
  ["offload_gpu_gib", "chart.kv_offload_gpu", "sim", "dashdot"],
];

// {data, layout} of KV GiB per sequence (one GPU) against context length.
export function kvContextFigure(result, { theme = "light", width = 600 } = {}) {
  const c = THEMES[theme] || THEMES.light;
  const f = result && result.figures && result.figures.kv_context;
  const layout = {
    uirevision: "kvcalc-kv_context", paper_bgcolor: c.paper, plot_bgcolor: c.plot,
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 12, color: c.font },
    margin: { l: 56, r: 16, t: 16, b: 48 }, hoverlabel: { bgcolor: c.hover, font: { color: c.font } },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)" },
    xaxis: { title: { text: t("chart.axis_context_tokens") }, type: "log", dtick: "D2", exponentformat: "none",
             separatethousands: true, gridcolor: c.grid,
             zerolinecolor: c.zero, linecolor: c.zero, automargin: true },
    yaxis: { title: { text: t("chart.axis_kv_gib_per_sequence") }, type: "log", dtick: "D2", exponentformat: "none", gridcolor: c.grid,
             zerolinecolor: c.zero, linecolor: c.zero, automargin: true },
    shapes: [],
  };
  if (!f) return { data: [], layout };
  const narrow = width < 560;
  const x = f.context_tokens;
  const data = [];
  for (const [key, label, color, dash] of KV_SERIES) {
    if (!Array.isArray(f[key])) continue;
    // the window series only where the model has windowed layers (else it is the full one)
    if (key === "sliding_window_gib" && !f.draw_sliding_window) continue;
    data.push({ type: "scatter", mode: "lines", name: t(label), x, y: f[key],
                line: { color: c[color], width: key === "sliding_window_gib" ? 2.5 : 1.8, dash },
                hovertemplate: `%{x:,} ${t("unit.tokens_word")}: %{y:.3s} GiB<extra>${t(label)}</extra>` });
  }
  // the lines' texts are the shapes' own labels: placed in data units on the log axes by Plotly
  if (typeof f.kv_budget_gib === "number") {
    layout.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: f.kv_budget_gib, y1: f.kv_budget_gib,
                         line: { color: c.target, width: 1.5, dash: "dot" },
                         label: { text: t("chart.kv_budget_line"), textposition: "start", xanchor: "left", yanchor: "bottom",
                                  font: { color: c.target, size: 11 } } });
  }
  const ctx = result.max_model_len_tokens;
  if (typeof ctx === "number") {
    layout.shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: ctx, x1: ctx,
                         line: { color: c.point, width: 1.5, dash: "dot" },
                         label: { text: narrow ? fmt.int(ctx) : t("chart.kv_context_line", { tokens: fmt.int(ctx) }),
                                  textposition: "end", textangle: 0, xanchor: "right", yanchor: "top",
                                  font: { color: c.point, size: 11 } } });
  }
  return { data, layout };
}

function copyButton(getText) {
  const b = setText(el("button", { type: "button", class: "copy" }), "ui.copy");
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(getText());
      setText(b, "ui.copied");
    } catch {
      setText(b, "ui.copy_failed");
    }
    setTimeout(() => setText(b, "ui.copy"), 2000);
  });
  return b;
}

// A result row: its label, a help hint (res.<...>_help), its value.
const HELP = {
  "res.model_name": "res.model_name_help", "res.attention": "res.attention_help",
  "res.weight_format": "res.weight_format_help", "res.max_concurrency_at": "res.max_concurrency_at_help",
  "res.max_concurrency_at_mean": "res.max_concurrency_at_mean_help",
};
const kvRow = (labelKey, value, attrs = {}, params = null) =>
  el("div", attrs, el("dt", {}, setText(el("span"), labelKey, params), " ",
                      setAttr(setAttr(el("button", { type: "button", class: "hint" }, "?"), "data-tip", HELP[labelKey]),
                              "aria-label", HELP[labelKey])),
     el("dd", {}, value));

// A per-layer (or repeating) list of layer kinds as the form writes it: the shortest period,
// run-length coded ("local*5, global"). Text formatting of Python's preset data, no arithmetic
// beyond counting equal neighbours.
export function patternText(kinds) {
  if (!Array.isArray(kinds) || !kinds.length) return "";
  let period = kinds.length;
  for (let p = 1; p < kinds.length; p++) {
    if (kinds.every((k, i) => k === kinds[i % p])) { period = p; break; }
  }
  const runs = [];
  for (const k of kinds.slice(0, period)) {
    if (runs.length && runs[runs.length - 1][0] === k) runs[runs.length - 1][1]++;
    else runs.push([k, 1]);
  }
  return runs.map(([k, n]) => (n > 1 ? `${k}*${n}` : k)).join(", ");
}

// The hand-entry fields from a preset's config numbers (presets/models.json), as control text;
// null for a preset the form cannot hold (linear-attention sizes are not in the form).
export function architectureFromPreset(m) {
  if (!m || (Array.isArray(m.layer_pattern) && m.layer_pattern.includes("linear"))) return null;
  const A = "model.architecture.";
  const text = (x) => (x === null || x === undefined ? "" : String(x));
  const mla = Boolean(m.kv_lora_rank);
  return {
    [A + "name"]: text(m.name), [A + "num_layers"]: text(m.num_hidden_layers), [A + "hidden_size"]: text(m.hidden_size),
    [A + "num_attention_heads"]: text(m.num_attention_heads), [A + "attention"]: mla ? "mla" : "auto",
    [A + "num_kv_heads"]: mla ? "" : text(m.num_key_value_heads), [A + "head_dim"]: text(m.head_dim),
    [A + "kv_lora_rank"]: mla ? text(m.kv_lora_rank) : "", [A + "qk_rope_head_dim"]: mla ? text(m.qk_rope_head_dim) : "",
    [A + "layer_pattern"]: patternText(m.layer_pattern), [A + "window_tokens"]: text(m.window_tokens),
    [A + "linear_state_bytes_per_layer"]: "", [A + "params_total"]: text(m.params_total),
    [A + "params_active"]: m.params_active !== m.params_total ? text(m.params_active) : "",
    [A + "vocab_size"]: text(m.vocab_size), [A + "max_position_embeddings"]: text(m.max_position_embeddings),
  };
}

// Mounts the card after the charts (the main chart stays near the headline) and the fetcher; app: the page object of app.js.
// presets: {models, gpus} as loaded by app.js (switching from a preset to "type the
// architecture" starts from that preset's numbers).
export function mountModelPanel(app, { setState, presetIds, presets = { models: {} } }) {
  const card = el("div", { class: "card model-panel", id: "model-panel", hidden: true });
  const anchor = document.querySelector("#results .charts") || document.querySelector("#results .cards");
  anchor.after(card);
  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

  // ------------------------------------------------------------ Hugging Face fetch
  const fetcher = createHfFetcher({
    getState: () => app.state,
    getOthers: () => (app.compareA ? [app.compareA] : []),   // a pinned setup A by Hugging Face id
    presetIds,
    onDone: () => setState({}),   // re-check: the fetched config (or why not) is now known
  });
  let timer = null;
  const form = document.getElementById("form");
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => fetcher.check(), 700); });
  form.addEventListener("change", () => { clearTimeout(timer); fetcher.check(); });
  let lastModel = app.state.values.model;
  form.addEventListener("change", (ev) => {
    if (!ev.target || ev.target.dataset.param !== "model") return;
    const now = app.state.values.model;
    const from = presets.models[lastModel];
    lastModel = now;
    if (now !== "manual" || !from) return;
    const patch = architectureFromPreset(from);
    if (patch) setState(patch);
  });
  // "Fetch again" beside the id (a failure is remembered per id until then)
  const idBox = form.querySelector('[data-param="model.hf_id"]');
  if (idBox) {
    const again = setText(el("button", { type: "button", class: "hf-retry", id: "hf-retry" }), "ui.hf_fetch_again");
    again.addEventListener("click", () => {
      fetcher.forget(app.state.values["model.hf_id"]);
      setState({});
      fetcher.check();
    });
    idBox.after(again);
  }
  fetcher.check();

  // ------------------------------------------------------------ rendering
  function render() {
    const r = app.result;
    card.hidden = !r || !r.model_name;
    if (card.hidden) return;
    const parts = [setText(el("h3"), "res.model_card")];
    const kv = el("dl", { class: "kv" });
    // a name (preset, repo id, or typed by hand) is not page text: translate="no"
    const hand = r.model_id === "architecture" && !(app.resultRequest && app.resultRequest.model
                                                   && app.resultRequest.model.architecture && app.resultRequest.model.architecture.name);
    kv.append(kvRow("res.model_name", hand ? setText(el("span"), "res.model_hand_entered")
                                          : el("span", { translate: "no", text: r.model_name })));
    if (r.attention) kv.append(kvRow("res.attention", t(`opt.model.architecture.attention.${r.attention}`)));
    if (r.weight_dtype) {
      const dtype = has(`opt.weight_dtype.${r.weight_dtype}`) ? t(`opt.weight_dtype.${r.weight_dtype}`) : r.weight_dtype;
      kv.append(kvRow("res.weight_format", t("res.weight_format_value", {
        dtype, bits: fmt.fixed(r.weights_mean_bits_per_param, 2) })));
    }
    if (typeof r.max_concurrency_at_context === "number") {
      const dd = el("span", { "data-result": "max_concurrency_at_context", "data-value": String(r.max_concurrency_at_context),
                              text: t("unit.sequences", { x: fmt.fixed(r.max_concurrency_at_context, 2) }) });
      kv.append(kvRow("res.max_concurrency_at", dd, { id: "mc-at-context" }, { tokens: fmt.int(r.max_model_len_tokens) }));
    }
    // beside it, the value at the workload's mean context (the same number when no length is set)
    if (typeof r.max_concurrency_at_mean_context === "number" && app.resultRequest && app.resultRequest.context_tokens) {
      const dd = el("span", { "data-result": "max_concurrency_at_mean_context", "data-value": String(r.max_concurrency_at_mean_context),
                              text: t("unit.sequences", { x: fmt.fixed(r.max_concurrency_at_mean_context, 2) }) });
      kv.append(kvRow("res.max_concurrency_at_mean", dd, { id: "mc-at-mean" }, { tokens: fmt.int(r.mean_context_tokens) }));
    }
    parts.push(kv);
    // what was derived rather than given
    // a weight format chosen in the page replaces the one the model entry did not give
    const chosen = app.resultRequest && app.resultRequest.weight_dtype;
    const derived = (r.derived_fields || []).filter((d) => !(chosen && d.field === "weight_dtype"));
    if (derived.length) {
      parts.push(setText(el("h4"), "res.derived_heading"));
      parts.push(el("ul", { class: "derived", id: "derived-fields" },
                    derived.map((d) => el("li", { "data-field": d.field, "data-code": d.code },
                                          el("code", { translate: "no", text: d.field }), " ",
                                          el("span", { text: renderMessage(d) })))));
    }
    // memory per sequence against context length
    parts.push(setText(el("h4"), "res.kv_context_heading"));
    const chart = el("div", { class: "chart kv-context", id: "chart-kv_context" });
    parts.push(chart);
    parts.push(setText(el("p", { class: "muted small" }), "chart.kv_context_caption"));
    // engine command lines
    const cmds = r.engine_commands;
    if (cmds) {
      parts.push(setText(el("h4"), "res.engine_flags_heading"));
      for (const [name, label] of [["vllm", "res.engine_vllm"], ["sglang", "res.engine_sglang"]]) {
        if (!cmds[name]) continue;
        const text = cmds[name].command;
        parts.push(el("div", { class: "cmd", "data-engine": name },
                      el("div", { class: "cmd-head" }, setText(el("span"), label), copyButton(() => text)),
                      el("pre", { translate: "no" }, el("code", { text }))));
      }
      for (const n of cmds.notes || []) parts.push(el("p", { class: "muted small", text: renderMessage(n) }));
    }
    // the pasted engine log against the estimate
    const log = r.engine_log;
    if (log) {
      parts.push(setText(el("h4"), "res.engine_log_heading", { engine: log.engine === "sglang" ? "SGLang" : "vLLM" }));
      const table = el("table", { class: "eng-table", id: "engine-log-table" },
                       el("thead", {}, el("tr", {}, setText(el("th"), "res.eng_quantity"), setText(el("th"), "res.eng_engine"),
                                          setText(el("th"), "res.eng_estimate"), setText(el("th"), "res.eng_difference"))));
      const body = el("tbody");
      for (const [key, labelKey, f] of ENGINE_ROWS) {
        const row = log.rows && log.rows[key];
        if (!row || (row.engine === null && row.estimate === null)) continue;
        const rel = row.relative_difference_pct;
        body.append(el("tr", { "data-row": key }, setText(el("td"), labelKey), el("td", { text: f(row.engine) }),
                       el("td", { text: f(row.estimate) }),
                       el("td", { text: typeof rel === "number" ? t("res.eng_rel", { x: (rel >= 0 ? "+" : "") + fmt.fixed(rel, 1) }) : fmt.DASH })));
      }
      table.append(body);
      parts.push(table);
      const rowLabel = Object.fromEntries(ENGINE_ROWS.map(([key, labelKey]) => [key, labelKey]));
      for (const m of log.messages || []) {
        const q = m.params && rowLabel[m.params.quantity];   // the quantity's name in the page's language
        parts.push(el("p", { class: "warn small", text: renderMessage(q ? { ...m, params: { ...m.params, quantity: t(q) } } : m) }));
      }
      const adopt = log.adopt || {};
      const row = el("div", { class: "adopt" });
      if (typeof adopt.capacity_tokens === "number") {
        const b = setText(el("button", { type: "button", id: "adopt-capacity" }), "ui.adopt_capacity", { tokens: fmt.int(adopt.capacity_tokens) });
        b.addEventListener("click", () => setState({ "cache.capacity_tokens": String(adopt.page_inputs["cache.capacity_tokens"]) }));
        row.append(b);
      }
      if (typeof adopt.runtime_reserve_gib === "number") {
        const b = setText(el("button", { type: "button", id: "adopt-reserve" }), "ui.adopt_reserve", { gib: fmt.fixed(adopt.runtime_reserve_gib, 2) });
        b.addEventListener("click", () => setState({ runtime_reserve_gib: String(adopt.page_inputs.runtime_reserve_gib) }));
        row.append(b);
      }
      if (row.childNodes.length) parts.push(row);
    }
    card.replaceChildren(...parts);
    draw();
  }

  async function draw() {
    const div = card.querySelector("#chart-kv_context");
    if (!div || !app.plotly || !app.result) return;
    const fig = kvContextFigure(app.result, { theme: darkQuery.matches ? "dark" : "light", width: div.clientWidth });
    await app.plotly.react(div, fig.data, fig.layout, PLOT_CONFIG);
    div.dataset.rendered = String(app.resultSeq);
  }

  document.addEventListener("kvcalc:rendered", render);
  document.addEventListener("kvcalc:lang", render);
  darkQuery.addEventListener("change", draw);
  return { render, fetcher, card };
}
