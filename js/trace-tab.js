// The "trace" tab: analyse a request trace (.jsonl / .jsonl.gz) or a shipped Mooncake sample.
//
// How the main page mounts it (the tab builds all of its DOM inside the root element):
//
//   import { mountTraceTab } from "./js/trace-tab.js";
//   const traceTab = mountTraceTab(document.getElementById("trace-root"), {
//     client,                      // the page's createClient() (js/client.js), shared
//     getMemoryContext: () => ({kv_bytes_per_token, kv_capacity_tokens}) or null,
//     plotly: window.Plotly,
//     onResult: (result) => {},    // optional
//     store,                       // optional: the page's store (js/store.js) with a key "trace"
//     urlNotices,                  //   holding the options, and what the link had wrong
//   });
//   traceTab.refresh();            // after a new compute(): re-analyses if the memory context changed
//   traceTab.relabel();            // after a language switch
//
// Returns {refresh(), relabel(), analyse(source), cancel(), destroy(), result, timings, running, options}.
//
// Options: rows of the page's parameter table (TRACE_PARAMS in js/params.js), parsed and kept in
// links by js/state.js like every parameter; the store key "trace" holds {row key: value}. A
// change of a control goes to store.set({trace}); the tab's subscriber re-analyses (debounced)
// and the page's writes the URL. Without a page store (a standalone mount, e.g.
// tests/browser/trace_harness.html) the tab makes its own from ?trace.<key>= and writes the
// URL itself.
//
// Modules: js/trace-options.js (the request from the options),
// js/trace-render.js (result cards), js/trace-figures.js (Plotly figures in the page's theme).
// Every number comes from Python (kvcalc.api.trace in the worker); JS formats and draws.
//
// Reading: an uploaded File is handed to the worker as a handle ({"$file": 0}, not its bytes);
// Python reads it by 1 MiB slices (FileReaderSync in the worker), so memory holds one chunk
// plus what the analysis keeps, whatever the file's size (above 256 MiB of text, "auto"
// sampling keeps a bounded sample). The reading status (bytes read, requests/s) arrives as
// progress while Python runs. Why slices and not File.stream() (issue #11 named it): Python runs
// synchronously in the worker and pulls its input, while a stream's reader.read() is a Promise
// it cannot wait for (Pyodide 0.27 can only block on a Promise with JSPI, not in every browser);
// and the loaders read the head of the file first, then start again from byte 0, which a
// one-shot stream cannot do without keeping it. Reading costs little either way: 192 MiB read in
// a bare worker (bench/bench_trace_page_upload.py --read-only) take 0.3 s as a stream and
// 0.9-1.8 s by 1 MiB slices, against 35 s of parsing in Python. Samples are fetched from
// data/traces/mooncake/ on the same origin. Nothing is uploaded.
//
// Cancel: Python runs synchronously in the worker, which cannot read a cancel message until it
// finishes (a cooperative flag needs SharedArrayBuffer, i.e. cross-origin isolation headers
// GitHub Pages cannot send). Cancel terminates the worker and starts a new one (client.retry()):
// robust, costs a worker start-up (~3 s); a request of the main page in flight resolves with
// error kind "crash" and is re-sent by the page.

import { el } from "./ui.js";
import { createStore } from "./store.js";
import * as fmt from "./format.js";
import { t, setText, setAttr, translate, renderMessage } from "./i18n.js";
import { TRACE_PARAMS, TRACE_PARAM_BY_KEY } from "./params.js";
import { parseValue, valueToText, traceFromQuery, withTraceInQuery } from "./state.js";
import { requestFrom, samplingText } from "./trace-options.js";
import { AXES, PLOT_CONFIG, traceCurveFigure, traceGapsFigure } from "./trace-figures.js";
import { headline, modelNote, samplingCard, fleetCard, detectionCard, statsCard, gapsNote, bytesText, lineLabel } from "./trace-render.js";

const SAMPLE_BASE = new URL("../data/traces/mooncake/", import.meta.url);
// labels and hints: kvt.sample.<id> and kvt.sample.<id>_hint in the catalogues; the hints'
// sizes (requests, minutes) come from Python: samples.json (python -m kvcalc samples --json)
const SAMPLES_INFO_URL = new URL("samples.json", SAMPLE_BASE);
const SAMPLES = [
  { id: "conversation", file: "conversation_trace.jsonl" },
  { id: "synthetic", file: "synthetic_trace.jsonl" },
];
const OPTION_DEBOUNCE_MS = 300;
const STYLE_URL = new URL("./trace-tab.css", import.meta.url).href;
// the options by card: the trace's reading, then scale (sampling, fleet, tier)
const READING_KEYS = ["trace.format", "trace.block_size_tokens", "trace.warmup_fraction", "trace.full_blocks_only",
                      "trace.skip_bad_lines", "trace.keep_partial"];
const SCALE_KEYS = ["trace.sampling", "trace.cluster.instances", "trace.cluster.routing", "trace.tiers[1].capacity_gib"];

function ensureStyle() {
  if (document.querySelector("link[data-kvt-style]")) return;
  document.head.append(el("link", { rel: "stylesheet", href: STYLE_URL, "data-kvt-style": "" }));
}

const theme = () => (document.documentElement.dataset.theme === "dark"
  || (!document.documentElement.dataset.theme && globalThis.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches)
  ? "dark" : "light");

// A node whose text is the template's text around its [data-slot] children (js/i18n.js).
function template(node, key) {
  node.dataset.i18nTemplate = key;
  translate(node);
  return node;
}

// The control of one option (a row of TRACE_PARAMS), its texts from the catalogues: a check box,
// a select (a number row with words, sampling, offers its words, its rates and the value of a
// link), or a text box.
function optionControl(p, value) {
  const attrs = { name: p.key, data: { param: p.key } };
  if (p.kind === "bool") {
    const box = el("input", { type: "checkbox", ...attrs });
    box.checked = Boolean(value);
    return box;
  }
  if (p.kind === "select" || p.words) {
    const choices = p.kind === "select" ? [...p.options] : [...p.words, ...p.options.map(String)];
    if (p.words && !choices.includes(valueToText(p, value))) choices.push(valueToText(p, value));   // from the URL
    const sel = el("select", attrs, ...choices.map((c) => optionNode(p, c)));
    sel.value = valueToText(p, value);
    return sel;
  }
  const box = el("input", { type: "text", inputmode: "decimal", class: "num", autocomplete: "off",
                            value: valueToText(p, value), ...attrs });
  if (p.placeholder) setAttr(box, "placeholder", p.placeholder);
  return box;
}

function optionNode(p, c) {
  if (p.labels && p.labels[c]) return setText(el("option", { value: c }), p.labels[c]);
  return el("option", { value: c, text: samplingText(c) });     // sampling: re-rendered on relabel
}

// A standalone mount's store: the options from the URL, written back to it on each change.
function ownStore() {
  const fromUrl = traceFromQuery(location.search);
  const store = createStore({ trace: fromUrl.values });
  store.subscribe((changed, s) => {
    if (!changed.includes("trace")) return;
    history.replaceState(history.state, "", `${location.pathname}?${withTraceInQuery(location.search, s.trace)}${location.hash}`);
  });
  return { store, urlNotices: fromUrl.notices };
}

export function mountTraceTab(root, { client, getMemoryContext = () => null, plotly, onResult, store = null,
                                      urlNotices = [] } = {}) {
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
  let lastName = "";
  let lastContextKey = null;
  let timings = null;
  let debounce = null;
  let status = null;          // [key, params] of the status line (re-rendered on relabel)

  // -- options: in the store (from the URL), shown by the controls
  if (!store) ({ store, urlNotices } = ownStore());
  const traceOptions = () => store.get("trace");
  const controls = new Map();
  const optionMsgs = new Map();
  for (const p of TRACE_PARAMS) {
    const c = optionControl(p, traceOptions()[p.key]);
    controls.set(p.key, c);
    optionMsgs.set(p.key, el("span", { class: "kvt-msg", role: "status", "aria-live": "polite" }));
    c.addEventListener("change", () => optionChanged(p));
  }
  const urlNotice = el("p", { class: "kvt-note kvt-url-notice", data: { role: "trace-url-notice" } });
  urlNotice.hidden = urlNotices.length === 0;

  function optionChanged(p) {
    const c = controls.get(p.key);
    const r = parseValue(p, p.kind === "bool" ? String(c.checked) : c.value);
    const msg = optionMsgs.get(p.key);
    if ("error" in r) {
      setText(msg, r.error.key, r.error.params);
      c.setAttribute("aria-invalid", "true");
      return;
    }
    msg.textContent = "";
    delete msg.dataset.i18n;
    c.setAttribute("aria-invalid", "false");
    store.set({ trace: { ...traceOptions(), [p.key]: r.value } });   // -> URL, then optionsChanged
  }

  // The store's options changed (by a control or by a store.set elsewhere): the controls show
  // the new values (a control's own change, or a text it holds invalid, is left as typed),
  // then hints and the analysis.
  function optionsChanged(values, before) {
    for (const p of TRACE_PARAMS) {
      const v = values[p.key];
      if (Object.is(v, before[p.key])) continue;
      const c = controls.get(p.key);
      if (p.kind === "bool") { c.checked = Boolean(v); continue; }
      const shown = parseValue(p, c.value);
      if ("value" in shown && Object.is(shown.value, v)) continue;
      const text = valueToText(p, v);
      if (c.tagName === "SELECT" && ![...c.options].some((o) => o.value === text)) c.append(optionNode(p, text));
      c.value = text;
      c.setAttribute("aria-invalid", "false");
      optionMsgs.get(p.key).textContent = "";
      delete optionMsgs.get(p.key).dataset.i18n;
    }
    updateHints();
    clearTimeout(debounce);
    if (source) debounce = setTimeout(analyse, OPTION_DEBOUNCE_MS);
  }
  const unsubscribe = store.subscribe((changed, s, before) => {
    if (changed.includes("trace")) optionsChanged(s.trace, before.trace);
  });

  // -- sources
  const fileInput = setAttr(el("input", { type: "file", accept: ".jsonl,.gz,.jsonl.gz,application/gzip,application/x-ndjson" }),
                            "aria-label", "kvt.file_label");
  const sampleButtons = SAMPLES.map((s) => setText(el("button", {
    type: "button", data: { sample: s.id },
    onclick: () => { source = { kind: "sample", id: s.id }; fileInput.value = ""; analyse(); },
  }), `kvt.sample.${s.id}`));
  fetch(SAMPLES_INFO_URL).then((r) => (r.ok ? r.json() : null)).then((doc) => {
    for (const [i, s] of SAMPLES.entries()) {
      const d = doc && doc.samples && doc.samples[s.id];
      if (d) setAttr(sampleButtons[i], "title", `kvt.sample.${s.id}_hint`,
                     { requests: fmt.int(d.requests), minutes: fmt.int(d.duration_minutes) });
    }
  }).catch(() => {});          // no hint then: the buttons work without it
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    source = { kind: "file", file };
    analyse();
  });

  const progress = el("progress", { max: "1" });
  const statusText = el("span", { class: "kvt-status-text", "aria-live": "polite" });
  const cancelButton = setText(el("button", { type: "button", class: "kvt-cancel", onclick: () => cancel() }), "kvt.cancel");
  const statusBox = el("div", { class: "kvt-status" }, progress, statusText, cancelButton);
  progress.hidden = true;
  cancelButton.hidden = true;
  const errorBox = el("div", { class: "kvt-card kvt-error", role: "alert", data: { role: "trace-error" } });
  errorBox.hidden = true;
  const tierHint = setText(el("span", { class: "kvt-note" }), "kvt.tier_hint");

  const axisSelect = setAttr(el("select", { name: "capacity_axis" },
    ...Object.keys(AXES).map((k) => setText(el("option", { value: k }), `kvt.axis_unit.${k}`))), "aria-label", "kvt.capacity_axis");
  const logAxis = el("input", { type: "checkbox", name: "log_capacity" });
  logAxis.checked = true;
  axisSelect.addEventListener("change", () => drawCurve());
  logAxis.addEventListener("change", () => drawCurve());
  const gibHint = el("span", { class: "kvt-note" });

  const results = el("div", { class: "kvt-results" });
  const curveDiv = el("div", { class: "kvt-plot", data: { figure: "trace-curve" } });
  const gapDiv = el("div", { class: "kvt-plot kvt-small", data: { figure: "trace-reuse-gap" } });

  const optionLabel = (key) => el("label", {},
    ...(TRACE_PARAM_BY_KEY.get(key).kind === "bool"
      ? [controls.get(key), setText(el("span"), TRACE_PARAM_BY_KEY.get(key).label)]
      : [setText(el("span"), TRACE_PARAM_BY_KEY.get(key).label), controls.get(key)]), optionMsgs.get(key));

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
        ...READING_KEYS.map(optionLabel)),
      el("div", { class: "kvt-options", data: { role: "trace-scale-options" } },
        ...SCALE_KEYS.map(optionLabel), tierHint),
      urlNotice),
    statusBox,
    errorBox,
    results,
  ));
  results.hidden = true;
  renderUrlNotice();
  updateHints();

  function renderUrlNotice() {
    urlNotice.textContent = urlNotices.map((n) => t(n.key, n.params)).join(" ");
  }

  function updateHints() {
    const ctx = memoryContext();
    const values = traceOptions();
    tierHint.hidden = values["trace.tiers[1].capacity_gib"] === null || Boolean(ctx && ctx.kv_capacity_tokens);
    controls.get("trace.cluster.routing").disabled = values["trace.cluster.instances"] <= 1;
  }

  // -- running

  function memoryContext() {
    try { return getMemoryContext() || null; } catch (err) { console.warn("getMemoryContext:", err); return null; }
  }

  function contextKey(ctx) {
    return ctx ? JSON.stringify([ctx.kv_bytes_per_token, ctx.kv_capacity_tokens]) : "none";
  }

  function showStatus() {
    if (status) setText(statusText, status[0], status[1] || null);
    else { statusText.textContent = ""; delete statusText.dataset.i18n; }
  }

  // text: [catalogue key, params] (re-rendered on a language switch)
  function setBusy(text, fraction = null) {
    root.dataset.state = "running";
    progress.hidden = false;
    cancelButton.hidden = false;
    if (fraction === null) progress.removeAttribute("value");   // indeterminate
    else progress.value = fraction;
    status = text;
    showStatus();
    for (const b of sampleButtons) b.disabled = true;
  }

  function setIdle(text, state) {
    root.dataset.state = state;
    progress.hidden = true;
    cancelButton.hidden = true;
    status = text;
    showStatus();
    for (const b of sampleButtons) b.disabled = false;
  }

  function showError(message, name = null) {
    errorBox.replaceChildren(el("strong", { text: name ? t("kvt.cannot_analyse_name", { name }) : t("kvt.cannot_analyse") }),
                             message);
    errorBox.hidden = false;
  }

  // {name, size, args: the request's text, opts: {files | buffers}}
  async function readSource(src) {
    if (src.kind === "file") {
      return { name: src.file.name, size: src.file.size, text: { $file: 0 }, opts: { files: [src.file] } };
    }
    const sample = SAMPLES.find((s) => s.id === src.id);
    const url = new URL(sample.file, SAMPLE_BASE);
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(t("kvt.sample_http", { file: sample.file, status: String(resp.status) }));
    const bytes = await resp.arrayBuffer();
    return { name: t(`kvt.sample.${sample.id}`), size: bytes.byteLength, text: { $buffer: 0 }, opts: { buffers: [bytes] } };
  }

  // A reading status from Python ({bytes_read, bytes_total, requests, requests_per_s, ...}).
  function onProgress(name, fraction, detail) {
    if (detail && typeof detail === "object") {
      setBusy(["kvt.reading_status", { name, read: bytesText(detail.bytes_read), total: bytesText(detail.bytes_total),
                                       requests: fmt.int(detail.requests), rate: fmt.int(detail.requests_per_s) }],
              typeof detail.fraction === "number" ? detail.fraction : null);
      lastStatus = detail;
      return;
    }
    setBusy(["kvt.analysing_pct", { name, pct: fmt.pct(fraction, 0) }], fraction);
  }
  let lastStatus = null;

  async function analyse(src = source) {
    if (!src) return;
    source = src;
    if (running) { pending = true; return; }
    running = true;
    cancelled = false;
    errorBox.hidden = true;
    lastStatus = null;
    const t0 = performance.now();
    const tim = { start: t0 };
    try {
      setBusy(["kvt.reading"]);
      const { name, size, text, opts } = await readSource(src);
      tim.readMs = performance.now() - t0;
      tim.bytes = size;
      if (cancelled) return;
      const ctx = memoryContext();
      lastContextKey = contextKey(ctx);
      setBusy(["kvt.analysing", { name, size: bytesText(size) }]);
      const tCall = performance.now();
      inPython = true;
      const reply = await callTrace({ ...requestFrom(traceOptions(), ctx), text }, {
        ...opts, onProgress: (f, detail) => onProgress(name, f, detail),
      });
      inPython = false;
      tim.callMs = performance.now() - tCall;
      tim.pythonMs = reply.ms;
      tim.status = lastStatus;
      if (cancelled) return;
      if (reply.status !== "ok") {
        showError(describeError(reply.error), name);
        setIdle(null, "error");
        return;
      }
      lastResult = reply.result;
      lastName = name;
      setBusy(["kvt.drawing"]);
      const tDraw = performance.now();
      render(lastResult);
      tim.drawMs = performance.now() - tDraw;
      tim.totalMs = performance.now() - t0;
      timings = tim;
      setIdle(["kvt.done", { name, total: fmt.fixed(tim.totalMs / 1000, 2), python: fmt.fixed((tim.pythonMs || 0) / 1000, 2) }], "done");
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

  // kvcalc.api.trace(request) in the worker
  async function callTrace(req, callOpts) {
    const ready = await client.ready();
    if (!ready.ok) return { status: "error", error: ready.error };
    return client.call("trace", [req], callOpts);
  }

  function describeError(error) {
    if (!error) return t("err.unknown");
    const values = traceOptions();
    let text = renderMessage(error, { withField: true, fieldLabel: lineLabel(error) });
    if (error.field && /^line \d+$/.test(error.field)) {
      const format = values["trace.format"];
      if (format !== "auto") text += "\n" + t("kvt.try_auto", { format });
      else if (!values["trace.skip_bad_lines"]) text += "\n" + t("kvt.tick_skip");
    }
    if (!values["trace.keep_partial"] && error.code && /^trace_(bad_|truncated_gzip|corrupt_gzip|max_|read_error|trailing)/.test(error.code)) {
      text += "\n" + t("kvt.tick_keep_partial");
    }
    return text;
  }

  async function cancel() {
    if (!running) return;
    cancelled = true;
    pending = false;
    if (!inPython) {                 // still fetching a sample: nothing runs in the worker
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
        el("p", { class: "kvt-note", data: { result: "trace.counting_rule" },
                  text: t("kvt.counting_rule", { rule: res.counting_rule_detail ? renderMessage(res.counting_rule_detail) : fmt.DASH }) }),
        modelNote(res)),
      el("div", { class: "kvt-grid" }, samplingCard(res), fleetCard(res)),
      el("div", { class: "kvt-grid" }, detectionCard(res, lastName), statsCard(res)),
      res.stats.reuse_gap_s ? el("div", { class: "kvt-card" }, el("h3", { text: t("kvt.reuse_gaps") }), gapDiv, gapsNote(res)) : null,
    );
    results.hidden = false;
    const hasGib = Array.isArray(res.curve.capacity_gib);
    axisSelect.querySelector("option[value=gib]").disabled = !hasGib;
    if (!hasGib && axisSelect.value === "gib") axisSelect.value = "blocks";
    gibHint.textContent = hasGib ? "" : t("kvt.gib_hint");
    drawCurve();
    drawGaps();
  }

  function drawCurve() {
    if (!lastResult || !Plotly) return;
    const fig = traceCurveFigure(lastResult, { theme: theme(), axis: axisSelect.value, logX: logAxis.checked,
                                               width: curveDiv.clientWidth });
    Plotly.react(curveDiv, fig.data, fig.layout, PLOT_CONFIG);
  }

  function drawGaps() {
    if (!lastResult || !Plotly || !lastResult.stats.reuse_gap_s) return;
    const fig = traceGapsFigure(lastResult, { theme: theme(), width: gapDiv.clientWidth });
    Plotly.react(gapDiv, fig.data, fig.layout, PLOT_CONFIG);
  }

  // Redraw (cheap) when the page's theme changes.
  const redraw = () => { drawCurve(); drawGaps(); };
  const mq = globalThis.matchMedia ? matchMedia("(prefers-color-scheme: dark)") : null;
  if (mq) mq.addEventListener("change", redraw);
  const themeObserver = new MutationObserver(redraw);
  themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["class", "data-theme"] });

  function refresh() {
    updateHints();
    if (!source || !lastResult) return;
    if (contextKey(memoryContext()) !== lastContextKey) analyse();
  }

  function destroy() {
    unsubscribe();
    themeObserver.disconnect();
    if (mq) mq.removeEventListener("change", redraw);
    if (Plotly) { Plotly.purge(curveDiv); Plotly.purge(gapDiv); }
    root.replaceChildren();
  }

  // After a language switch: marked texts re-translated; results drawn again without re-analysing.
  function relabel() {
    translate(root);
    renderUrlNotice();
    showStatus();
    for (const p of TRACE_PARAMS) {                    // sampling's texts carry numbers: not keys
      if (!p.words) continue;
      for (const o of controls.get(p.key).options) o.textContent = samplingText(o.value);
    }
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
    get options() { return { ...traceOptions() }; },
  };
}

