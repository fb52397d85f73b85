// The "trace" tab: analyse a request trace (.jsonl / .jsonl.gz) or a shipped Mooncake sample.
//
// How the main page mounts it (the tab builds all of its DOM inside the root element):
//
//   import { mountTraceTab } from "./js/trace-tab.js";
//   const traceTab = mountTraceTab(document.getElementById("trace-root"), {
//     client,                      // the page's createClient() (js/client.js), shared
//     getMemoryContext: () => last && last.kv_bytes_per_token ? {
//       kv_bytes_per_token: last.kv_bytes_per_token,    // from the page's compute() result
//       kv_capacity_tokens: last.kv_capacity_tokens,
//       model: last.model_id, gpu: last.gpu_id, tensor_parallel: last.tensor_parallel,
//     } : null,                    // null: no GiB axis and no operating point
//     plotly: window.Plotly,       // the page's Plotly (runtime/ or the pinned CDN)
//     onResult: (result) => {},    // optional: trace_analyze's result (e.g. fit.workload)
//   });
//   // after each new compute result of the main page (model, GPU, TP, dtype changed):
//   traceTab.refresh();            // re-analyses only if the memory context changed
//
// Returns {refresh(), analyse(source), cancel(), destroy(), get result, get timings}.
//
// Every number comes from Python: kvcalc.api.call("trace", request) -> trace_analyze in the
// worker, with kv_bytes_per_token (GiB axis), operating_capacity_tokens (operating point)
// and model_curve (the analytic model of the fitted workload at the curve's capacities).
// JS only formats and draws. Untrusted text (file names, file contents echoed in error
// messages) only ever reaches the DOM through textContent.
//
// Files are read locally (File.arrayBuffer()) and the bytes are transferred (not copied) to
// the worker as an ArrayBuffer ({"$buffer": 0} in the request; see js/client.js). Nothing is
// uploaded. Samples are fetched from data/traces/mooncake/ on the same origin.
//
// Cancel: Python runs synchronously in the worker, so the worker cannot read a cancel message
// until it finishes (a cooperative flag would need SharedArrayBuffer, i.e. cross-origin
// isolation headers that GitHub Pages cannot send). Cancel therefore terminates the worker and
// starts a new one (client.retry()): robust, costs a worker start-up (~3 s), and any request
// the main page had in flight resolves with error kind "crash" and must be re-sent.

import * as fmt from "./format.js";
import { lang, t, setText, setAttr, translate, renderMessage } from "./i18n.js";

const HIT_MODEL_KEYS = ["refined", "che", "closed", "seed"];   // hitmodel.<name> in the catalogues

// A node whose text is the template's text around its [data-slot] children (js/i18n.js).
function template(node, key) {
  node.dataset.i18nTemplate = key;
  translate(node);
  return node;
}

const SAMPLE_BASE = new URL("../data/traces/mooncake/", import.meta.url);
// labels and hints: kvt.sample.<id> and kvt.sample.<id>_hint in the catalogues
const SAMPLES = [
  { id: "conversation", file: "conversation_trace.jsonl" },
  { id: "synthetic", file: "synthetic_trace.jsonl" },
];
const MAX_FILE_BYTES = 512 * 1024 * 1024;
// Sent as max_bytes with every upload (issue 12): Python refuses a trace whose decompressed
// size exceeds it, so a small gzip of blank lines cannot run the worker out of memory.
const MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024;
const OPTION_DEBOUNCE_MS = 300;
const COLORS = { token: "#2f6fd6", block: "#e08a1e", model: "#2a9d5c", ceiling: "#8a8f98",
                 op: "#d6336c", gap: "#2f6fd6", turn: "#e08a1e" };
// axis titles and option texts: kvt.axis.<name> and kvt.axis_unit.<name>
const AXES = {
  blocks: { key: "capacities_blocks" },
  tokens: { key: "capacity_tokens" },
  gib: { key: "capacity_gib" },
};
const FORMATS = ["auto", "mooncake", "bailian", "generic"];   // texts: kvt.fmt.<name>

// ---------------------------------------------------------------- DOM helpers (no HTML)

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Formatting in the page's language (js/format.js); text from the catalogues (js/i18n.js).
const nf = (digits) => new Intl.NumberFormat(lang(), { maximumFractionDigits: digits });
const fmtInt = (x) => (x === null || x === undefined ? "–" : nf(0).format(x));
const fmtNum = (x, d = 2) => (x === null || x === undefined ? "–" : nf(d).format(x));
const fmtPct = (x, d = 1) => fmt.pct(x, d);
const fmtBytes = (n) => (n >= 1048576 ? `${fmtNum(n / 1048576, 1)} MiB` : `${fmtNum(n / 1024, 1)} KiB`);

// A value cell the tests can find: data-result="trace.<path>", data-value = the raw number.
function resultCell(path, value, text) {
  const data = { result: `trace.${path}` };
  if (value !== null && value !== undefined) data.value = String(value);
  return el("span", { class: "kvt-value", data, text });
}

function row(labelKey, ...value) {
  return [el("dt", { text: t(labelKey) }), el("dd", {}, ...value)];
}

// ---------------------------------------------------------------- styles (theme-agnostic)

const STYLE_ID = "kvcalc-trace-tab-style";
const CSS = `
.kvt { color: inherit; font: inherit; display: grid; gap: 1rem; }
.kvt h3 { margin: 0 0 .4rem; font-size: 1rem; }
.kvt .kvt-card { border: 1px solid color-mix(in srgb, currentColor 18%, transparent);
  border-radius: 8px; padding: .75rem 1rem; }
.kvt .kvt-sources { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; }
.kvt button, .kvt select, .kvt input { font: inherit; color: inherit;
  background: color-mix(in srgb, currentColor 6%, transparent);
  border: 1px solid color-mix(in srgb, currentColor 30%, transparent); border-radius: 6px;
  padding: .25rem .55rem; }
.kvt button { cursor: pointer; }
.kvt button:hover:not(:disabled) { background: color-mix(in srgb, currentColor 14%, transparent); }
.kvt button:disabled { opacity: .5; cursor: default; }
.kvt input[type=number] { width: 6.5em; }
.kvt input[type=checkbox] { padding: 0; }
.kvt .kvt-note { font-size: .85em; opacity: .78; margin: .35rem 0 0; }
.kvt .kvt-options { display: flex; flex-wrap: wrap; gap: .5rem 1.25rem; align-items: center; }
.kvt .kvt-options label { display: inline-flex; gap: .4rem; align-items: center; }
.kvt .kvt-status { display: flex; gap: .75rem; align-items: center; min-height: 1.8rem; }
.kvt .kvt-status progress { width: 14rem; }
.kvt .kvt-error { border-color: #d6336c; background: color-mix(in srgb, #d6336c 10%, transparent);
  white-space: pre-wrap; overflow-wrap: anywhere; }
.kvt .kvt-grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); }
.kvt dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .9rem; margin: 0; }
.kvt dt { opacity: .78; }
.kvt dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.kvt .kvt-headline { display: flex; flex-wrap: wrap; gap: .5rem 2rem; }
.kvt .kvt-big { font-size: 1.6rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.kvt .kvt-plot { width: 100%; height: 26rem; }
.kvt .kvt-plot.kvt-small { height: 18rem; }
.kvt .kvt-axis { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; margin-bottom: .4rem; }
.kvt [hidden] { display: none !important; }
`;

function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(el("style", { id: STYLE_ID, text: CSS }));
}

// ---------------------------------------------------------------- the tab

export function mountTraceTab(root, { client, getMemoryContext = () => null, plotly, onResult } = {}) {
  if (!root) throw new Error("mountTraceTab: no root element");
  if (!client) throw new Error("mountTraceTab: options.client (js/client.js) is required");
  ensureStyle();
  const Plotly = plotly || globalThis.Plotly;

  let source = null;          // {kind: "file", file} | {kind: "sample", id}
  let running = false;        // one analysis in flight; newer requests wait (newest wins)
  let pending = false;
  let cancelled = false;
  let inPython = false;       // the current analysis is in the worker (cancel = restart it)
  let lastResult = null;
  let lastContextKey = null;
  let timings = null;
  let debounce = null;

  // -- controls
  const fileInput = setAttr(el("input", { type: "file", accept: ".jsonl,.gz,.jsonl.gz,application/gzip,application/x-ndjson" }),
                            "aria-label", "kvt.file_label");
  const sampleButtons = SAMPLES.map((s) => setAttr(setText(el("button", {
    type: "button", data: { sample: s.id },
    onclick: () => { source = { kind: "sample", id: s.id }; fileInput.value = ""; analyse(); },
  }), `kvt.sample.${s.id}`), "title", `kvt.sample.${s.id}_hint`));
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    source = { kind: "file", file };
    analyse();
  });

  const format = el("select", { name: "format" },
    ...FORMATS.map((f) => setText(el("option", { value: f }), `kvt.fmt.${f}`)));
  const blockSize = setAttr(el("input", { type: "number", name: "block_size_tokens", min: "1", step: "1" }),
                            "placeholder", "kvt.fmt.auto");
  const warmup = el("input", { type: "number", name: "warmup_fraction", min: "0", max: "0.95",
                               step: "0.05", value: "0" });
  const fullBlocks = el("input", { type: "checkbox", name: "full_blocks_only", checked: true });
  const skipBad = el("input", { type: "checkbox", name: "skip_bad_lines" });
  for (const c of [format, blockSize, warmup, fullBlocks, skipBad]) {
    c.addEventListener("change", () => {
      clearTimeout(debounce);
      if (source) debounce = setTimeout(analyse, OPTION_DEBOUNCE_MS);
    });
  }

  const progress = el("progress", { max: "1" });
  const statusText = el("span", { class: "kvt-status-text", "aria-live": "polite" });
  const cancelButton = setText(el("button", { type: "button", class: "kvt-cancel", onclick: () => cancel() }), "kvt.cancel");
  const status = el("div", { class: "kvt-status" }, progress, statusText, cancelButton);
  progress.hidden = true;
  cancelButton.hidden = true;
  const errorBox = el("div", { class: "kvt-card kvt-error", role: "alert", data: { role: "trace-error" } });
  errorBox.hidden = true;

  const axisSelect = setAttr(el("select", { name: "capacity_axis" },
    ...Object.keys(AXES).map((k) => setText(el("option", { value: k }), `kvt.axis_unit.${k}`))), "aria-label", "kvt.capacity_axis");
  const logAxis = el("input", { type: "checkbox", name: "log_capacity", checked: true });
  axisSelect.addEventListener("change", () => drawCurve());
  logAxis.addEventListener("change", () => drawCurve());
  const gibHint = el("span", { class: "kvt-note" });

  const results = el("div", { class: "kvt-results" });
  const curveDiv = el("div", { class: "kvt-plot", data: { figure: "trace-curve" } });
  const gapDiv = el("div", { class: "kvt-plot kvt-small", data: { figure: "trace-reuse-gap" } });

  root.replaceChildren(el("div", { class: "kvt" },
    el("div", { class: "kvt-card" },
      setText(el("h3"), "kvt.title"),
      el("div", { class: "kvt-sources" },
        el("label", {}, setText(el("span"), "kvt.your_trace"), " ", fileInput),
        setText(el("span"), "kvt.or_sample"),
        ...sampleButtons),
      setText(el("p", { class: "kvt-note" }), "kvt.privacy"),
      template(el("p", { class: "kvt-note", data: { role: "sample-license" } },
        el("a", { href: "https://github.com/kvcache-ai/Mooncake", target: "_blank", rel: "noopener noreferrer",
                  text: "kvcache-ai/Mooncake", data: { slot: "link" } })), "kvt.samples")),
    el("div", { class: "kvt-card" },
      setText(el("h3"), "kvt.options"),
      el("div", { class: "kvt-options" },
        el("label", {}, setText(el("span"), "kvt.format"), format),
        el("label", {}, setText(el("span"), "kvt.block_size"), blockSize),
        el("label", {}, setText(el("span"), "kvt.warmup"), warmup),
        el("label", {}, fullBlocks, setText(el("span"), "kvt.full_blocks")),
        el("label", {}, skipBad, setText(el("span"), "kvt.skip_bad")))),
    status,
    errorBox,
    results,
  ));
  results.hidden = true;

  // -- running

  function request() {
    const req = {
      format: format.value,
      warmup_fraction: warmup.value === "" ? 0 : Number(warmup.value),
      full_blocks_only: fullBlocks.checked,
      skip_bad_lines: skipBad.checked,
      model_curve: true,
    };
    if (blockSize.value !== "") req.block_size_tokens = Number(blockSize.value);
    const ctx = memoryContext();
    if (ctx && ctx.kv_bytes_per_token) req.kv_bytes_per_token = ctx.kv_bytes_per_token;
    if (ctx && ctx.kv_capacity_tokens) req.operating_capacity_tokens = ctx.kv_capacity_tokens;
    return req;
  }

  function memoryContext() {
    try { return getMemoryContext() || null; } catch (err) { console.warn("getMemoryContext:", err); return null; }
  }

  function contextKey(ctx) {
    return ctx ? JSON.stringify([ctx.kv_bytes_per_token, ctx.kv_capacity_tokens]) : "none";
  }

  // text: [catalogue key, params] (re-rendered on a language switch)
  function setBusy([key, params = null], fraction = null) {
    root.dataset.state = "running";
    progress.hidden = false;
    cancelButton.hidden = false;
    if (fraction === null) progress.removeAttribute("value");   // indeterminate
    else progress.value = fraction;
    setText(statusText, key, params);
    for (const b of sampleButtons) b.disabled = true;
  }

  function setIdle(text, state) {
    root.dataset.state = state;
    progress.hidden = true;
    cancelButton.hidden = true;
    if (text) setText(statusText, text[0], text[1] || null);
    else { statusText.textContent = ""; delete statusText.dataset.i18n; }
    for (const b of sampleButtons) b.disabled = false;
  }

  function showError(message, name = null) {
    errorBox.replaceChildren(el("strong", { text: name ? t("kvt.cannot_analyse_name", { name }) : t("kvt.cannot_analyse") }),
                             message);
    errorBox.hidden = false;
  }

  async function readSource(src) {
    if (src.kind === "file") {
      if (src.file.size > MAX_FILE_BYTES) {
        throw new Error(t("kvt.too_big", { name: src.file.name, size: fmtBytes(src.file.size), max: fmtBytes(MAX_FILE_BYTES) }));
      }
      return { name: src.file.name, bytes: await src.file.arrayBuffer() };
    }
    const sample = SAMPLES.find((s) => s.id === src.id);
    const url = new URL(sample.file, SAMPLE_BASE);
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(t("kvt.sample_http", { file: sample.file, status: String(resp.status) }));
    return { name: t(`kvt.sample.${sample.id}`), bytes: await resp.arrayBuffer() };
  }

  async function analyse(src = source) {
    if (!src) return;
    source = src;
    if (running) { pending = true; return; }
    running = true;
    cancelled = false;
    errorBox.hidden = true;
    const t0 = performance.now();
    const tim = { start: t0 };
    try {
      setBusy(["kvt.reading"]);
      const { name, bytes } = await readSource(src);
      tim.readMs = performance.now() - t0;
      tim.bytes = bytes.byteLength;
      if (cancelled) return;
      const req = request();
      lastContextKey = contextKey(memoryContext());
      setBusy(["kvt.analysing", { name, size: fmtBytes(bytes.byteLength) }]);
      const tCall = performance.now();
      inPython = true;
      const reply = await callTrace({ ...req, max_bytes: req.max_bytes ?? MAX_DECOMPRESSED_BYTES, text: { $buffer: 0 } }, {
        buffers: [bytes],
        onProgress: (f) => setBusy(["kvt.analysing_pct", { name, pct: fmt.pct(f, 0) }], f),
      });
      inPython = false;
      tim.callMs = performance.now() - tCall;
      tim.pythonMs = reply.ms;
      if (cancelled) return;
      if (reply.status !== "ok") {
        showError(describeError(reply.error), name);
        setIdle(null, "error");
        return;
      }
      lastResult = reply.result;
      lastResult.sourceName = name;
      setBusy(["kvt.drawing"]);
      const tDraw = performance.now();
      render(lastResult);
      tim.drawMs = performance.now() - tDraw;
      tim.totalMs = performance.now() - t0;
      timings = tim;
      setIdle(["kvt.done", { name, total: fmtNum(tim.totalMs / 1000, 2), python: fmtNum((tim.pythonMs || 0) / 1000, 2) }], "done");
      root.dispatchEvent(new CustomEvent("kvcalc-trace:drawn", { detail: { timings: tim } }));
      if (onResult) onResult(lastResult);
    } catch (err) {
      if (!cancelled) {
        showError(String(err && err.message ? err.message : err));
        setIdle(null, "error");
      }
    } finally {
      running = false;
      inPython = false;
      if (pending && !cancelled) { pending = false; analyse(); }
      pending = false;
    }
  }

  // kvcalc.api.trace(request) when the worker lists it, else kvcalc.api.call("trace", request)
  // (which answers {ok, result | error} inside the reply): one reply shape either way.
  async function callTrace(req, opts) {
    const ready = await client.ready();
    if (!ready.ok) return { status: "error", error: ready.error };
    const endpoints = (client.info && client.info.endpoints) || [];
    if (endpoints.includes("trace")) return client.call("trace", [req], opts);
    const r = await client.call("call", ["trace", req], opts);
    if (r.status !== "ok") return r;
    return r.result && r.result.ok ? { ...r, result: r.result.result }
                                   : { status: "error", id: r.id, ms: r.ms, error: r.result && r.result.error };
  }

  function describeError(error) {
    if (!error) return t("err.unknown");
    // InputError names the field (for a bad line: "line N: ...") and the bad value. A code the
    // catalogues know is rendered from them; the trace readers' own problems ("malformed JSON",
    // code "invalid") keep Python's English message, which says more.
    let text = error.code && error.code !== "invalid" ? renderMessage(error, { withField: true })
      : (error.message || `${error.field}: ${error.problem}`);
    if (error.field && /^line \d+$/.test(error.field)) {
      if (format.value !== "auto") {
        text += "\n" + t("kvt.try_auto", { format: format.value });
      } else if (!skipBad.checked) {
        text += "\n" + t("kvt.tick_skip");
      }
    }
    return text;
  }

  async function cancel() {
    if (!running) return;
    cancelled = true;
    pending = false;
    if (!inPython) {                 // still reading the file: nothing runs in the worker
      setIdle(["kvt.cancelled"], "cancelled");
      return;
    }
    setBusy(["kvt.cancelling"]);
    cancelButton.hidden = true;
    client.retry();                  // resolves the outstanding call at once (kind "crash")
    const r = await client.ready();
    if (!running) {
      setIdle(r.ok ? ["kvt.cancelled"] : ["kvt.cancel_failed", { detail: r.error.message }], "cancelled");
    }
  }

  // -- rendering

  function render(res) {
    results.replaceChildren(
      headline(res),
      el("div", { class: "kvt-card" },
        el("div", { class: "kvt-axis" },
          el("label", {}, t("kvt.capacity_axis"), " ", axisSelect),
          el("label", {}, logAxis, t("kvt.log_scale")),
          gibHint),
        curveDiv,
        el("p", { class: "kvt-note", data: { result: "trace.counting_rule" }, text: t("kvt.counting_rule", { rule: res.counting_rule }) }),
        modelNote(res)),
      el("div", { class: "kvt-grid" }, detectionCard(res.detection), statsCard(res.stats, res.fit)),
      el("div", { class: "kvt-card" },
        el("h3", { text: t("kvt.reuse_gaps") }),
        gapDiv,
        el("p", { class: "kvt-note" },
          t("kvt.reuse_note", { zero: fmtInt(res.stats.reuse_gap_s.n_zero), n: fmtInt(res.stats.reuse_gap_s.n) }))),
    );
    results.hidden = false;
    const hasGib = Array.isArray(res.curve.capacity_gib);
    axisSelect.querySelector("option[value=gib]").disabled = !hasGib;
    if (!hasGib && axisSelect.value === "gib") axisSelect.value = "blocks";
    gibHint.textContent = hasGib ? "" : t("kvt.gib_hint");
    drawCurve();
    drawGaps();
  }

  function headline(res) {
    const op = res.operating_point;
    return el("div", { class: "kvt-card kvt-headline" },
      el("div", {},
        el("div", { class: "kvt-note", text: t("kvt.ideal_token") }),
        el("div", { class: "kvt-big" }, resultCell("ideal_token_hit_rate", res.ideal_token_hit_rate, fmtPct(res.ideal_token_hit_rate)))),
      el("div", {},
        el("div", { class: "kvt-note", text: t("kvt.ideal_block") }),
        el("div", { class: "kvt-big" }, resultCell("ideal_block_hit_rate", res.ideal_block_hit_rate, fmtPct(res.ideal_block_hit_rate)))),
      el("div", {},
        el("div", { class: "kvt-note", text: t("kvt.saturation") }),
        el("div", { class: "kvt-big" },
          resultCell("curve.saturation_capacity_blocks", res.curve.saturation_capacity_blocks,
                     fmt.withUnit(res.curve.saturation_capacity_blocks, "unit.blocks", fmtInt))),
        el("div", { class: "kvt-note" }, resultCell("curve.saturation_capacity_tokens", res.curve.saturation_capacity_tokens,
          fmt.withUnit(res.curve.saturation_capacity_tokens, "unit.tokens", fmtInt)),
          res.curve.saturation_capacity_gib !== undefined ? ` = ${fmt.gib(res.curve.saturation_capacity_gib)}` : "")),
      op ? el("div", {},
        el("div", { class: "kvt-note" }, op.capacity_gib !== null
          ? t("kvt.at_calc_gib", { tokens: fmt.withUnit(op.capacity_tokens, "unit.tokens", fmtInt), gib: fmt.gib(op.capacity_gib) })
          : t("kvt.at_calc", { tokens: fmt.withUnit(op.capacity_tokens, "unit.tokens", fmtInt) })),
        el("div", { class: "kvt-big" }, resultCell("operating_point.token_hit_rate", op.token_hit_rate, fmtPct(op.token_hit_rate))),
        el("div", { class: "kvt-note" }, t("kvt.block_prefix"),
          resultCell("operating_point.block_hit_rate", op.block_hit_rate, fmtPct(op.block_hit_rate)),
          op.model_token_hit_rate !== undefined ? [t("kvt.model_sep"),
            resultCell("operating_point.model_token_hit_rate", op.model_token_hit_rate, fmtPct(op.model_token_hit_rate))] : ""))
        : null);
  }

  function modelNote(res) {
    const m = res.model_curve;
    if (!m) return null;
    if (!m.available) return el("p", { class: "kvt-note", text: m.message });
    return el("p", { class: "kvt-note" }, t("kvt.model_note", { model: HIT_MODEL_KEYS.includes(m.model) ? t(`hitmodel.${m.model}`) : m.model }));
  }

  function detectionCard(d) {
    const reasons = Object.entries(d.bad_lines_by_reason || {});
    return el("div", { class: "kvt-card", data: { role: "detection" } },
      el("h3", { text: t("kvt.detected") }),
      el("dl", {},
        row("kvt.row.file", resultCell("source", null, lastResult.sourceName)),
        row("kvt.row.format", resultCell("detection.format", d.format, d.format), ` (${d.format_source})`),
        row("kvt.row.block_size", resultCell("detection.block_size_tokens", d.block_size_tokens,
          fmt.withUnit(d.block_size_tokens, "unit.tokens", fmtInt)), ` (${d.block_size_source})`),
        row("kvt.row.chained", resultCell("detection.ids_prefix_chained", d.ids_prefix_chained,
          t(d.ids_prefix_chained ? "kvt.yes" : "kvt.no")), d.chaining ? ` (${d.chaining})` : ""),
        row("kvt.row.requests", resultCell("detection.n_requests", d.n_requests, fmtInt(d.n_requests)),
          d.truncated ? t("kvt.truncated") : ""),
        row("kvt.row.blocks", t("kvt.blocks_distinct", { total: fmtInt(d.n_blocks_total), unique: fmtInt(d.n_blocks_unique) })),
        row("kvt.row.read", fmtBytes(d.bytes_read)),
        row("kvt.row.skipped", resultCell("detection.bad_lines_skipped", d.bad_lines_skipped, fmtInt(d.bad_lines_skipped)),
          reasons.length ? el("ul", {}, ...reasons.map(([reason, n]) =>
            el("li", {}, `${reason.replace(/_/g, " ")}: ${fmtInt(n)}`,
              d.bad_lines_first && d.bad_lines_first[reason] ? t("kvt.first", { line: d.bad_lines_first[reason] }) : ""))) : ""),
      ));
  }

  function quantiles(q, withTokens, digits = 0) {
    return t(withTokens ? "kvt.quantiles_tokens" : "kvt.quantiles", { mean: fmtNum(q.mean, digits), p50: fmtNum(q.p50, digits),
             p90: fmtNum(q.p90, digits), p99: fmtNum(q.p99, digits), max: fmtNum(q.max, digits) });
  }

  function statsCard(s, fit) {
    const ses = s.sessions || {};
    return el("div", { class: "kvt-card", data: { role: "stats" } },
      el("h3", { text: t("kvt.statistics") }),
      el("dl", {},
        row("kvt.row.duration", t("unit.s", { x: fmtNum(s.duration_s, 0) })),
        row("kvt.row.arrival_rate", resultCell("stats.arrival_rate_per_s", s.arrival_rate_per_s,
          t("kvt.requests_per_s", { x: fmtNum(s.arrival_rate_per_s, 3) }))),
        row("kvt.row.sessions", t("kvt.sessions_value", { n: fmtInt(ses.n_sessions), rate: fmtNum(ses.conversation_rate_per_s, 3) })),
        row("kvt.row.requests_per_session", ses.requests_per_session ? quantiles(ses.requests_per_session, false, 2) : "–"),
        row("kvt.row.input_length", quantiles(s.input_tokens, true)),
        row("kvt.row.output_length", quantiles(s.output_tokens, true)),
        row("kvt.row.shared_prefix", resultCell("stats.shared_prefix_token_share", s.shared_prefix_token_share,
          fmtPct(s.shared_prefix_token_share)), t("kvt.of_prompt")),
        row("kvt.row.system_prompt", fmt.withUnit(s.system_prompt_tokens, "unit.tokens", fmtInt)),
        row("kvt.row.session_rule", ses.source || "–"),
      ),
      fit && fit.notes && fit.notes.length ? el("details", {},
        el("summary", { text: t("kvt.fit") }),
        el("ul", {}, ...fit.notes.map((n) => el("li", { text: n })))) : null);
  }

  function themeColors() {
    const fg = getComputedStyle(root).color || "#222";
    return { fg, grid: `color-mix(in srgb, ${fg} 15%, transparent)` };
  }

  function baseLayout(xTitle, yTitle, logX) {
    const { fg } = themeColors();
    // Plotly does not understand color-mix(): grid colour as the text colour at low opacity.
    const grid = fg.replace(/^rgb\(([^)]+)\)$/, "rgba($1, 0.15)");
    return {
      uirevision: "trace",
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: fg, size: 12 },
      margin: { l: 60, r: 20, t: 10, b: 50 },
      legend: { orientation: "h", y: -0.2 },
      xaxis: { title: { text: xTitle }, type: logX ? "log" : "linear", gridcolor: grid, zerolinecolor: grid },
      yaxis: { title: { text: yTitle }, gridcolor: grid, zerolinecolor: grid, rangemode: "tozero" },
    };
  }

  function drawCurve() {
    const res = lastResult;
    if (!res || !Plotly) return;
    const axisName = AXES[axisSelect.value] ? axisSelect.value : "blocks";
    const axis = AXES[axisName];
    const c = res.curve;
    const xs = c[axis.key];
    if (!xs) return;
    const logX = logAxis.checked;
    const keep = xs.map((x, i) => i).filter((i) => !logX || xs[i] > 0);
    const pick = (arr) => keep.map((i) => arr[i]);
    const x = pick(xs);
    const traces = [
      { name: t("kvt.tr.exact_token"), x, y: pick(c.token_hit_rate), mode: "lines",
        line: { shape: "hv", color: COLORS.token, width: 2.5 } },
      { name: t("kvt.tr.exact_block"), x, y: pick(c.block_hit_rate), mode: "lines",
        line: { shape: "hv", color: COLORS.block, width: 1.5, dash: "dash" } },
    ];
    if (res.model_curve && res.model_curve.available) {
      traces.push({ name: t("kvt.tr.model"), x, y: pick(res.model_curve.token_hit_rate),
                    mode: "lines", line: { color: COLORS.model, width: 2, dash: "dot" } });
    }
    if (x.length) {
      traces.push({ name: t("kvt.tr.ceiling"), x: [x[0], x[x.length - 1]],
                    y: [res.ideal_token_hit_rate, res.ideal_token_hit_rate], mode: "lines",
                    line: { color: COLORS.ceiling, width: 1.5, dash: "longdash" }, hoverinfo: "y" });
    }
    const op = res.operating_point;
    const opX = op ? { blocks: op.capacity_blocks, tokens: op.capacity_tokens, gib: op.capacity_gib }[axisSelect.value] : null;
    if (op && opX !== null && opX !== undefined && (!logX || opX > 0)) {
      traces.push({ name: t("kvt.tr.op"), x: [opX], y: [op.token_hit_rate],
                    mode: "markers", marker: { color: COLORS.op, size: 11, symbol: "diamond" } });
    }
    const layout = baseLayout(t(`kvt.axis.${axisName}`), t("kvt.axis_hit_rate"), logX);
    layout.yaxis.tickformat = ".0%";
    layout.yaxis.range = [0, Math.min(1, Math.max(res.ideal_token_hit_rate, res.ideal_block_hit_rate) * 1.15 || 1)];
    layout.xaxis.autorange = true;
    Plotly.react(curveDiv, traces, layout, { displaylogo: false, responsive: true });
  }

  function drawGaps() {
    const res = lastResult;
    if (!res || !Plotly) return;
    const traces = [];
    for (const [key, name, color] of [["reuse_gap_s", t("kvt.tr.reuse_gap"), COLORS.gap],
                                      ["turn_gap_s", t("kvt.tr.turn_gap"), COLORS.turn]]) {
      const h = res.stats[key];
      if (!h || !h.bin_edges || !h.counts || !h.counts.length) continue;
      // A step over the bin edges: no arithmetic on the numbers, exact bin boundaries.
      traces.push({ name, x: h.bin_edges, y: [...h.counts, h.counts[h.counts.length - 1]], mode: "lines",
                    line: { shape: "hv", color, width: 2 }, fill: key === "reuse_gap_s" ? "tozeroy" : "none" });
    }
    const layout = baseLayout(t("kvt.axis_gap"), t("kvt.axis_count"), true);
    Plotly.react(gapDiv, traces, layout, { displaylogo: false, responsive: true });
  }

  // Redraw (cheap) when the page's theme changes; colours follow the inherited text colour.
  const redraw = () => { drawCurve(); drawGaps(); };
  const mq = globalThis.matchMedia ? matchMedia("(prefers-color-scheme: dark)") : null;
  if (mq) mq.addEventListener("change", redraw);
  const themeObserver = new MutationObserver(redraw);
  themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["class", "data-theme", "style"] });

  function refresh() {
    if (!source || !lastResult) return;
    if (contextKey(memoryContext()) !== lastContextKey) analyse();
  }

  function destroy() {
    themeObserver.disconnect();
    if (mq) mq.removeEventListener("change", redraw);
    if (Plotly) { Plotly.purge(curveDiv); Plotly.purge(gapDiv); }
    root.replaceChildren();
  }

  // After a language switch (the catalogue already in force): the fixed texts are marked and
  // re-translated; the results are drawn again from the last result, without re-analysing.
  function relabel() {
    translate(root);
    if (lastResult && !results.hidden) render(lastResult);
  }

  root.dataset.state = "idle";
  return {
    analyse: (src) => analyse(src),
    refresh,
    relabel,
    cancel,
    destroy,
    get result() { return lastResult; },
    get timings() { return timings; },
    get running() { return running; },
  };
}
