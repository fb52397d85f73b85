// The page: one path  store.set(patch) -> URL + localStorage -> compute -> render.
// The page state (inputs, tab, setup A, language, trace options, sequence numbers) lives in
// one store (js/store.js, keys below); its subscribers write the URL and localStorage, ask
// Python and draw. Python (kvcalc.api in a Web Worker, through js/client.js) computes every
// number; this file wires the controls, the worker and the drawing together. Runtime handles
// (worker client, Plotly, timers) and the results stay outside the store, in `app`.
// window.__kvcalc exposes both for the browser tests and bench/bench_slider.py.
//
// While a slider moves (its `input` events) the page asks for a preview instead: the same
// numbers from Python, only the visible tab's figure on a coarser grid (request "preview":
// true), drawn with the numbers and nothing else (no panels, model card, fleet, URL or
// localStorage: "kvcalc:preview"). The full compute and render ("kvcalc:rendered") follow on
// release (`change`, also after each keyboard step), PREVIEW_IDLE_MS after the last input (or drag render),
// and for typed values. Measured (bench/bench_slider.py, curve tab, before this): of ~75 ms
// per input, the model card's rebuild and kv_context chart took ~25 ms, the URL write
// (history.replaceState) ~5 ms and Python's extras ~8 ms.

import { attachClient, runtimeParam as bootRuntimeParam } from "./js/boot.js";   // the worker, started first
import { createStore, touches } from "./js/store.js";
import { browserStorage } from "./js/storage.js";
import { resolveRuntime, loadPlotly } from "./js/runtime-source.js";
import { defaultValues } from "./js/params.js";
import {
  applyPatch, initialState, hasErrors, buildRequest, buildSimulateRequest, toQuery, fromQuery,
  saveLocal, loadLocal, loadLocalTab, clearLocal, paramForField, traceFromQuery, traceToQuery, withTraceInQuery,
} from "./js/state.js";
import { buildForm, syncForm, renderResults, renderOccupancy, renderMessages, el } from "./js/ui.js";
import { drawFigure as drawFigureTo, figureFor, FIGURES, PLOT_CONFIG } from "./js/figures.js";
import { mountFleetPanel } from "./js/fleet-panel.js";
import { fleetActive } from "./js/fleet-params.js";
import { installA11y, plotlyLocale } from "./js/a11y.js";
import { mountModelPanel } from "./js/model-panel.js";
import {
  LANGS, LANG_QUERY, pickLang, rememberLang, loadCatalogue, setCatalogue, t, setText, translate,
  renderMessage,
} from "./js/i18n.js";
import { scenarioPatch, renderScenarioHelp, renderRecommender, renderFitButton } from "./js/scenarios.js";
import { renderExplain } from "./js/headline.js";
import { COMPARE_QUERY, compareFromSearch, compareQuery, withCompare, renderCompare, addCompareTrace } from "./js/compare.js";
import { mountExport } from "./js/export.js";

const $ = (id) => document.getElementById(id);
const TABS = ["curve", "sweeps", "tornado", "heatmap", "trace"];
const STAGE_KEYS = ["runtime", "numpy", "core"];   // labels: stage.<name>
const PREVIEW_IDLE_MS = 150;   // a resting slider's full compute; app.previewIdleMs (a test may lengthen it)

// The trace tab's options from the link (?trace.<key>=): the store holds the values; the
// tab shows the notices about names or values it refused.
const traceFromUrl = traceFromQuery(location.search);

// The page state. Every change goes through store.set; nothing else holds a copy.
const store = createStore({
  inputs: null,           // {values, raw, errors} of the controls (js/state.js)
  edit: { keys: [], mode: null, patched: [] },   // the newest edit (setState): its keys (where a
                          // Python error about them is shown), mode and the keys it patched
  savedValues: null,      // the last values Python accepted: the only ones in the URL and localStorage
  tab: "curve",
  compareA: null,         // setup A's values (js/compare.js), or null
  lang: null,             // the language whose catalogue is in force (js/i18n.js)
  trace: traceFromUrl.values,   // the trace tab's options ({row key: value}, TRACE_PARAMS of js/params.js)
  requested: 0,           // sequence number of the newest compute or preview asked for
  fullSeq: 0,             // ... of the newest full compute asked for
  resultSeq: 0,           // ... of the full result in app.result
  renderedSeq: 0,         // ... of the newest full result drawn
  previewSeq: 0,          // ... of the newest preview drawn
});

// Runtime handles and results: not page state, never in the URL.
const app = {
  store,
  options: {},            // select key -> allowed values (presets included)
  controls: null,
  client: null,
  plotly: null,
  plotlyError: null,
  traceTab: null,
  fleet: null,
  modelPanel: null,
  ready: false,
  presetsError: null,     // the presets could not be loaded: nothing else may hide that
  result: null,           // the last good compute() result
  resultRequest: null,
  lastRequest: null,
  serverErrors: {},       // {param key: {render}} from Python's InputError (rendered per language)
  sim: null,              // simulate() result shown on the curve
  simToken: 0,
  preview: null,          // the newest preview drawn: {result, seq} (app.result stays the last full one)
  renderCount: 0,
  previewCount: 0,
  timings: {},            // last compute: roundTripMs (incl. Python), numbersMs, chartMs
  previewQueued: false,
  idleTimer: 0,
  previewIdleMs: PREVIEW_IDLE_MS,
};
// The store's keys read through `app` (read-only): the tests, bench/bench_slider.py,
// js/model-panel.js (state, compareA, resultSeq) and js/export.js (tab) read them there.
for (const [name, key] of Object.entries({ state: "inputs", savedValues: "savedValues", tab: "tab", compareA: "compareA",
                                           requested: "requested", fullSeq: "fullSeq", resultSeq: "resultSeq",
                                           renderedSeq: "renderedSeq", previewSeq: "previewSeq" })) {
  Object.defineProperty(app, name, { get: () => store.get(key), enumerable: true });
}
window.__kvcalc = app;

// ---------------------------------------------------------------- theme

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
const theme = () => (darkQuery.matches ? "dark" : "light");
darkQuery.addEventListener("change", () => { drawVisible(); if (app.fleet) app.fleet.render(app.result, { theme: theme(), plotly: app.plotly }); });

// ---------------------------------------------------------------- worker status

// The status line: a catalogue key and its parameters (re-rendered on a language switch).
function setStatus(state, key, params = null) {
  const box = $("status");
  box.dataset.state = state;
  setText($("status-text"), key, params);
}

// Download telemetry from the worker, in words: "3.1 of 10.1 MB, 420 kB/s" (slow when it is).
const SLOW_AFTER_S = 8;
const SLOW_BELOW_BYTES_PER_S = 300e3;
function downloadText(d) {
  const mb = (b) => (b / 1e6).toFixed(1);
  const slow = d.elapsed_s >= SLOW_AFTER_S && d.rate_bytes_per_s < SLOW_BELOW_BYTES_PER_S;
  const params = { received: mb(d.received_bytes), total: d.total_bytes ? mb(d.total_bytes) : "?",
                   rate: String(Math.round(d.rate_bytes_per_s / 1000)) };
  return { key: "status.download", params: slow ? { ...params, slow: { key: "status.download_slow",
           params: { elapsed: String(Math.round(d.elapsed_s)) } } } : { ...params, slow: "" } };
}

function onProgress({ stage, fraction, detail }) {
  const node = document.querySelector(`#status .stage[data-stage="${stage}"] progress`);
  if (node) node.value = fraction;
  for (const s of document.querySelectorAll("#status .stage")) s.classList.toggle("active", s.dataset.stage === stage);
  if (app.presetsError) return;
  const name = STAGE_KEYS.includes(stage) ? { key: `stage.${stage}` } : stage;
  if (detail && detail.file && typeof detail.received_bytes === "number") {
    setStatus("starting", "status.starting_download", { stage: name, download: downloadText(detail) });
  } else setStatus("starting", "status.starting_stage", { stage: name });
}

function onReady(info) {
  app.ready = true;
  for (const p of document.querySelectorAll("#status progress")) p.value = 1;
  const v = info.versions || {};
  const total = info.timings && typeof info.timings.total === "number" ? info.timings.total / 1000 : null;
  if (!app.presetsError) {
    if (total === null) setStatus("ready", "status.ready");
    else setStatus("ready", "status.ready_in", { s: total.toFixed(1) });
  }
  markStale();
  setText($("versions"), "ui.versions", { python: v.python ?? "?", pyodide: v.pyodide ?? "?", numpy: v.numpy ?? "?",
                                          kvcalc: v.kvcalc ?? "?", source: { key: `ui.source.${info.source}` } });
}

function onFatal({ message, retry }) {
  app.ready = false;
  releasePlotly();   // no numbers are coming: Plotly loads as it used to (its errors shown)
  const stalled = /stall/i.test(message);
  // The worker's own message is a technical detail (file names, hashes): shown as it is.
  const text = { key: stalled ? "status.stalled" : "status.failed", params: { detail: message } };
  // A presets failure came first and is the cause to fix: keep it in front.
  if (app.presetsError) setStatus("failed", "status.also", { first: app.presetsError, second: text });
  else setStatus("failed", text.key, text.params);
  const btn = $("retry");
  btn.hidden = false;
  btn.onclick = () => {
    btn.hidden = true;
    for (const p of document.querySelectorAll("#status progress")) p.value = 0;
    setStatus("starting", "status.retrying");
    retry();
    requestCompute();
  };
  markStale();
}

// ---------------------------------------------------------------- state

function visibleFigures() {
  const tab = store.get("tab");
  return ["curve", "kv_context", ...(["sweeps", "tornado", "heatmap"].includes(tab) ? [tab] : []),
          ...(app.fleet && app.fleet.isOpen() ? ["fleet"] : [])];   // fleet: also sizing + recommendations
}

// The URL ("Copy link") and localStorage hold only values Python accepted (savedValues), the
// tab, setup A, the language and the trace options; never the runtime parameter. A value
// Python refuses (TP = 3 on a model with 8 KV heads) stays in its box with the message, but
// is not saved or shared. Before Python accepted any values the link keeps the values it came
// with; only the language and the trace options are written then.
function saveState() {
  const { savedValues, compareA, trace } = store.state;
  const tab = store.get("tab") === "curve" ? null : store.get("tab");
  const language = store.get("lang");
  if (!savedValues) {
    const q = new URLSearchParams(withTraceInQuery(location.search, trace));
    q.delete("runtime");
    if (language) q.set(LANG_QUERY, language);
    const search = q.toString();
    if (search !== location.search.slice(1)) history.replaceState(null, "", `${location.pathname}${search ? "?" : ""}${search}${location.hash}`);
    return;
  }
  const query = toQuery(savedValues, { tab, [LANG_QUERY]: language, [COMPARE_QUERY]: compareQuery(compareA),
                                       ...traceToQuery(trace) });
  history.replaceState(null, "", `${location.pathname}?${query}`);
  saveLocal(savedValues, browserStorage(), tab);
}

// First subscriber: what is shared or kept across reloads is written before anything is asked
// of Python or drawn.
store.subscribe((changed, s) => {
  if (touches(changed, "lang")) rememberLang(s.lang);
  if (touches(changed, "savedValues", "tab", "compareA", "lang", "trace")) saveState();
});

function stripRuntimeParam() {
  const url = new URL(location.href);
  if (!url.searchParams.has("runtime")) return;
  url.searchParams.delete("runtime");
  history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
}

function sameValues(a, b) {
  return Object.keys(a).every((k) => a[k] === b[k]) && Object.keys(b).every((k) => a[k] === b[k]);
}

// An edit of the controls: their texts {key: text} applied to the inputs (on `base`, the
// inputs now unless given). mode: "drag" (a slider's input event: a preview now, the full
// compute PREVIEW_IDLE_MS after the last one), "release" (its change event: the full compute
// unless one was asked since the last preview), or nothing (the full compute).
function setState(patch, { mode = null, base = store.get("inputs") } = {}) {
  patch = scenarioPatch(patch);   // a scenario brings its preset inputs along
  const keys = Object.keys(patch);
  store.set({ inputs: applyPatch(base, patch, app.options),
              edit: { keys: keys.length ? keys : store.get("edit").keys, mode, patched: keys } });
}

// The inputs' subscriber (store keys inputs/edit): a new edit clears Python's errors and an
// outdated simulation, then asks for the preview or the compute its mode calls for.
function inputsChanged({ inputs, edit }, before) {
  app.serverErrors = {};
  const changed = edit.patched.some((k) => before.inputs.values[k] !== inputs.values[k]);
  if (changed && app.sim) {
    app.sim = null;
    app.simToken++;
    setText($("sim-status"), "sim.inputs_changed");
  }
  syncForm(app.controls, inputs, app.serverErrors);
  if (hasErrors(inputs)) {
    cancelPreview();
    markStale();
    return;
  }
  if (edit.mode === "drag") schedulePreview();
  else if (edit.mode !== "release" || app.idleTimer || store.get("requested") > store.get("fullSeq")) requestCompute();
}

// A preview after this event's handlers (a keyboard step's `change` follows its `input` at
// once: then only the full compute is sent), and the full compute once the slider rests.
function schedulePreview() {
  armIdleTimer();
  if (app.previewQueued) return;
  app.previewQueued = true;
  queueMicrotask(() => {
    if (!app.previewQueued) return;
    app.previewQueued = false;
    requestPreview();
  });
}

// The full compute, app.previewIdleMs after the last input or the last preview drawn, whichever
// is later (on a slow machine a preview can take longer than that: the drag goes on meanwhile).
function armIdleTimer() {
  clearTimeout(app.idleTimer);
  app.idleTimer = setTimeout(() => { app.idleTimer = 0; requestCompute(); }, app.previewIdleMs);
}

function cancelPreview() {
  clearTimeout(app.idleTimer);
  app.idleTimer = 0;
  app.previewQueued = false;
}

// The figures a preview draws: the visible tab's (none on the trace tab).
function previewFigures() {
  return store.get("tab") in FIGURES ? [store.get("tab")] : [];
}

async function requestPreview() {
  if (hasErrors(store.get("inputs")) || !app.result) { requestCompute(); return; }
  const seq = store.get("requested") + 1;
  store.set({ requested: seq });
  const request = { ...buildRequest(store.get("inputs").values, previewFigures()), preview: true };
  app.lastPreviewRequest = request;
  $("results").dataset.state = "computing";
  const tSent = performance.now();
  let reply;
  try {
    reply = await app.client.compute(request);
  } catch (err) {
    reply = { status: "error", error: { kind: "internal", message: String(err && err.message ? err.message : err) } };
  }
  if (reply.status === "superseded") return;
  // a full compute asked after this one draws next; an error is the full compute's to report
  if (seq < store.get("fullSeq") || seq < store.get("resultSeq") || seq < store.get("previewSeq")) return;
  if (reply.status !== "ok") { if (seq === store.get("requested")) requestCompute(); return; }
  app.timings.roundTripMs = performance.now() - tSent;
  app.computeMs = reply.ms;
  app.preview = { result: reply.result, seq };
  await renderPreview(seq);
}

function isStale() {
  return hasErrors(store.get("inputs")) || Object.keys(app.serverErrors).length > 0 || $("compute-error").hidden === false;
}

function markStale() {
  if (!store.get("inputs")) return;   // the worker answered before the form was built
  const stale = isStale() && app.result !== null;
  $("results").classList.toggle("stale", stale);
  $("results").dataset.stale = stale ? "true" : "false";
  $("stale").hidden = !stale;
  $("simulate").disabled = !app.result || hasErrors(store.get("inputs")) || !app.ready;
  const picks = simulationCapacities();
  if (picks) setText($("simulate"), "sim.button", { n: picks.length });
}

// The capacities the simulator runs at: chosen in Python (figures.curve.simulation_capacity_tokens).
function simulationCapacities() {
  const curve = app.result && app.result.figures && app.result.figures.curve;
  return (curve && curve.simulation_capacity_tokens) || null;
}

async function requestCompute() {
  cancelPreview();
  if (hasErrors(store.get("inputs"))) return;
  const seq = store.get("requested") + 1;
  store.set({ requested: seq, fullSeq: seq });
  const request = withCompare(buildRequest(store.get("inputs").values, visibleFigures()), store.get("compareA"));
  app.lastRequest = request;
  $("results").dataset.state = "computing";
  const tSent = performance.now();
  const values = { ...store.get("inputs").values };
  let reply;
  try {
    reply = await app.client.compute(request);
  } catch (err) {   // the client settles in-band; this is only a last resort
    reply = { status: "error", error: { kind: "internal", message: String(err && err.message ? err.message : err) } };
  }
  if (reply.status === "superseded") return;
  app.timings.roundTripMs = performance.now() - tSent;
  if (seq < store.get("resultSeq")) return;
  const errBox = $("compute-error");
  if (reply.status === "error") {
    const e = reply.error || {};
    const p = e.kind === "input" ? errorParam(e) : null;
    if (p) {
      app.serverErrors = { [p.key]: { render: () => renderMessage(e) } };
      errBox.hidden = true;
    } else if (e.kind === "crash" || e.kind === "fatal") {
      // The worker died or never started: the status bar says so. After a restart (retry,
      // or the trace tab's cancel) send the request again.
      errBox.hidden = true;
      app.client.ready().then((r) => { if (r.ok && seq === store.get("requested")) requestCompute(); });
    } else {
      // Python's InputError has a code; a protocol or internal error only its English message
      errBox.textContent = t("err.could_not_compute", { detail: e.code ? renderMessage(e, { withField: true }) : (e.message || t("err.unknown")) });
      app.lastComputeError = e;
      errBox.hidden = false;
    }
    syncForm(app.controls, store.get("inputs"), app.serverErrors);
    if (seq === store.get("requested")) $("results").dataset.state = "error";
    markStale();
    return;
  }
  errBox.hidden = true;
  app.serverErrors = {};
  syncForm(app.controls, store.get("inputs"), app.serverErrors);
  if (seq === store.get("requested") || !store.get("savedValues")) store.set({ savedValues: values });   // -> URL, localStorage
  app.result = reply.result;
  app.resultRequest = request;
  store.set({ resultSeq: seq });
  app.computeMs = reply.ms;
  await render(seq);
}

// The control a Python InputError belongs to. Python names the request field it checked
// (error.field); when the user's newest edit is a different control that the message names
// ("... raise tensor_parallel or gpu_memory_utilization ..."), the message goes there: it is
// the value just changed that made the request invalid (a utilization too low for the
// weights is reported by Python under "model").
function errorParam(e) {
  const named = paramForField(e.field);
  const text = `${e.message || ""} ${e.problem || ""}`;
  for (const key of store.get("edit").keys) {
    if (named && key === named.key) return named;
    const p = paramForField(key);
    if (p && p.key === key && text.includes(key)) return p;
  }
  return named;
}

// ---------------------------------------------------------------- rendering

// The numbers a result shows (headline, mini bar, occupancy, warnings): a full render and a
// drag render both draw them.
function renderNumbers(r) {
  renderResults($("results"), r);
  renderResults($("mini"), r);
  renderOccupancy($("occupancy-bar"), $("occupancy-legend"), r.occupancy);
  const warnings = r.warning_details || [];
  renderMessages($("warnings"), warnings);
  $("warnings-card").hidden = warnings.length === 0;
}

async function render(seq) {
  const t0 = performance.now();
  const r = app.result;
  renderNumbers(r);
  renderPanels(r);
  markStale();
  $("results").dataset.state = seq === store.get("requested") ? "ready" : "computing";
  const t1 = performance.now();
  releasePlotly();   // the first numbers are on screen: Plotly may load now
  await drawVisible();
  if (app.fleet) await app.fleet.render(r, { theme: theme(), plotly: app.plotly });
  const t2 = performance.now();
  if (app.traceTab) app.traceTab.refresh();
  app.timings.numbersMs = t1 - t0;
  app.timings.chartMs = t2 - t1;
  app.renderCount++;
  store.set({ renderedSeq: Math.max(store.get("renderedSeq"), seq) });
  // first numbers on screen, and the first chart (bench/bench_page_load.py --page index.html
  // reads the first; --expr window.__kvcalcFirstChartMs the second)
  if (window.__kvcalcFirstResultMs === undefined) window.__kvcalcFirstResultMs = t1;
  if (window.__kvcalcFirstChartMs === undefined && app.plotly) window.__kvcalcFirstChartMs = t2;
  document.dispatchEvent(new CustomEvent("kvcalc:rendered", { detail: { seq, count: app.renderCount } }));
}

// Plotly (1.5 MB of script, parsed and run on this thread) loads once the first numbers are
// on screen (or the worker failed), not while the worker starts: on a 2-core machine its
// parse competed with Pyodide's start-up for the CPU. Until then the charts wait (drawFigure
// and the panels skip them without app.plotly); drawCharts draws them when it arrives.
let releasePlotly = () => {};
const plotlyGate = new Promise((resolve) => { releasePlotly = resolve; });

// The charts of the result on screen, drawn when Plotly arrives after it: the visible tab's,
// the model card's, the recommender's and the fleet's.
async function drawCharts() {
  if (!app.result || !app.plotly) return;
  await drawVisible();
  if (app.modelPanel) app.modelPanel.render();
  renderRecommender($("recommender-card"), app.result, { plotly: app.plotly, theme: theme() });
  if (app.fleet) await app.fleet.render(app.result, { theme: theme(), plotly: app.plotly });
  if (window.__kvcalcFirstChartMs === undefined) window.__kvcalcFirstChartMs = performance.now();
}

// A preview's render: the numbers (exactly a full compute's) and the visible chart, nothing else.
async function renderPreview(seq) {
  const t0 = performance.now();
  const r = app.preview.result;
  // the chart's width read before the numbers are written: after, reading it forces a layout
  // of the whole page (about 5 ms a drag render)
  const chart = $(`chart-${store.get("tab")}`);
  const width = chart ? chart.clientWidth : 0;
  renderNumbers(r);
  const t1 = performance.now();
  // setup A's curve does not change with B's inputs: the last full result's stays on
  await drawFigure(store.get("tab"), r.figures && app.result && app.result.compare ? { ...r, compare: app.result.compare } : r, seq,
                   { preview: true, width });
  const t2 = performance.now();
  app.timings.numbersMs = t1 - t0;
  app.timings.chartMs = t2 - t1;
  app.previewCount++;
  store.set({ previewSeq: Math.max(store.get("previewSeq"), seq) });
  if (app.idleTimer && seq === store.get("requested")) armIdleTimer();
  document.dispatchEvent(new CustomEvent("kvcalc:preview", { detail: { seq, count: app.previewCount } }));
}

// The issue-9 panels: how the number is computed, compare, recommender, scenario help.
function renderPanels(r) {
  renderExplain($("explain-body"), r);
  renderCompare($("compare-card"), r);
  $("clear-a").hidden = !store.get("compareA");
  renderRecommender($("recommender-card"), r, { plotly: app.plotly, theme: theme() });
  renderScenarioHelp($("form"), store.get("inputs").values.scenario);
}

// -> the store's subscriber: the URL, then the compute with A
function setCompareA(values) {
  store.set({ compareA: values ? { ...values } : null });
}

async function drawVisible() {
  if (!app.result) return;
  await drawFigure(store.get("tab"), app.result, store.get("resultSeq"));
}

async function drawFigure(name, result, seq, { preview = false, width = null } = {}) {
  if (!app.plotly || !(name in FIGURES)) return;
  const div = $(`chart-${name}`);
  const rowOrder = preview && div.layout && div.layout.meta ? div.layout.meta.tornado_rows : null;   // (tornado: rows stay put)
  const fig = addCompareTrace(name, figureFor(name, store.get("inputs"), result, { theme: theme(), width: width ?? div.clientWidth, sim: app.sim, preview, rowOrder }),
                              result, theme());
  div.dataset.draw = await drawFigureTo(app.plotly, div, fig, { preview, config: PLOT_CONFIG });   // "moved" | "drawn"
  div.dataset.rendered = String(seq);
}

// ---------------------------------------------------------------- tabs

// -> the store's subscribers: the URL, then showTab
function selectTab(name, { focus = false } = {}) {
  store.set({ tab: TABS.includes(name) ? name : "curve" });
  if (focus) document.querySelector(`[role="tab"][data-tab="${store.get("tab")}"]`).focus();
}

// The tab's subscriber (store key tab): its button and panel, then its figure, computed when
// the result lacks it (not at start-up: the first compute asks for it), else drawn.
function showTab(name, { compute = true } = {}) {
  for (const b of document.querySelectorAll('[role="tab"]')) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", on ? "true" : "false");
    b.tabIndex = on ? 0 : -1;
  }
  for (const p of document.querySelectorAll('[role="tabpanel"]')) p.hidden = p.dataset.panel !== name;
  if (name === "trace") mountTrace();
  const figs = app.result && app.result.figures;
  if (name in FIGURES && name !== "curve" && !(figs && figs[name])) { if (compute) requestCompute(); }
  else drawVisible().then(() => { if (app.plotly && name in FIGURES) app.plotly.Plots.resize($(`chart-${name}`)); });
}

function wireTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const b of tabs) {
    b.addEventListener("click", () => selectTab(b.dataset.tab));
    b.addEventListener("keydown", (ev) => {
      const i = tabs.indexOf(b);
      let j = null;
      if (ev.key === "ArrowRight") j = (i + 1) % tabs.length;
      else if (ev.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
      else if (ev.key === "Home") j = 0;
      else if (ev.key === "End") j = tabs.length - 1;
      if (j !== null) {
        ev.preventDefault();
        selectTab(tabs[j].dataset.tab, { focus: true });
      }
    });
  }
}

async function mountTrace() {
  if (app.traceTab || !app.plotly) return;
  const { mountTraceTab } = await import("./js/trace-tab.js");
  if (app.traceTab) return;
  app.traceTab = mountTraceTab($("trace-root"), {
    client: app.client,
    plotly: app.plotly,
    store,                                  // its options: store key "trace" (in the page's URL)
    urlNotices: traceFromUrl.notices,
    onResult: (res) => renderFitButton($("trace-fit-bar"), res, (patch) => { setState(patch); selectTab("curve"); }),
    getMemoryContext: () => (app.result && app.result.kv_bytes_per_token ? {
      kv_bytes_per_token: app.result.kv_bytes_per_token,
      kv_capacity_tokens: app.result.kv_capacity_tokens,
      model: app.result.model_id, gpu: app.result.gpu_id, tensor_parallel: app.result.tensor_parallel,
    } : null),
  });
}

// ---------------------------------------------------------------- simulate

async function runSimulation() {
  const picks = simulationCapacities();
  if (!picks || hasErrors(store.get("inputs"))) return;
  const token = ++app.simToken;
  const btn = $("simulate");
  const bar = $("sim-progress");
  const status = $("sim-status");
  btn.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  setText(status, "sim.running");
  const request = buildSimulateRequest(store.get("inputs").values, picks);
  app.lastSimRequest = request;
  const reply = await app.client.simulate(request, { onProgress: (f) => { if (token === app.simToken) bar.value = f; } });
  bar.hidden = true;
  markStale();
  if (token !== app.simToken) return;
  if (reply.status !== "ok") {
    const e = reply.error || {};
    setText(status, "sim.failed", { detail: e.code ? renderMessage(e, { withField: true }) : (e.message || t("err.unknown")) });
    return;
  }
  app.sim = reply.result;
  setText(status, "sim.done", { points: reply.result.points.length, conversations: reply.result.n_conversations,
                                seed: String(reply.result.seed) });
  if (store.get("tab") !== "curve") selectTab("curve");
  else await drawVisible();
  document.dispatchEvent(new CustomEvent("kvcalc:simulated", { detail: { points: reply.result.points.length } }));
}

// ---------------------------------------------------------------- language

// Puts a loaded catalogue in force and re-translates everything on screen from what the page
// already holds (state, last result, simulated points): no recompute.
function applyCatalogue(cat) {
  setCatalogue(cat);
  document.documentElement.lang = cat.lang;
  $("lang").value = cat.lang;
  translate(document);
  app.catalogueApplied = true;
  if (app.plotly) plotlyLocale(app.plotly);   // Plotly's toolbar in the same language
  store.set({ lang: cat.lang });               // -> the URL and localStorage
}

async function setLang(next) {
  if (!LANGS.includes(next) || next === store.get("lang")) return;
  const token = (app.langToken = (app.langToken || 0) + 1);
  const cat = await loadCatalogue(next);
  if (token !== app.langToken) return;
  applyCatalogue(cat);
  if (app.controls) syncForm(app.controls, store.get("inputs"), app.serverErrors);
  if (app.result) {
    renderResults($("results"), app.result);
    renderResults($("mini"), app.result);
    renderOccupancy($("occupancy-bar"), $("occupancy-legend"), app.result.occupancy);
    renderMessages($("warnings"), app.result.warning_details || []);
    renderPanels(app.result);
  }
  if (!$("compute-error").hidden && app.lastComputeError) {
    const e = app.lastComputeError;
    $("compute-error").textContent = t("err.could_not_compute", { detail: e.code ? renderMessage(e, { withField: true }) : (e.message || t("err.unknown")) });
  }
  if (app.traceTab && typeof app.traceTab.relabel === "function") app.traceTab.relabel();
  if (app.fleet) await app.fleet.relabel();
  await drawVisible();
  document.dispatchEvent(new CustomEvent("kvcalc:lang", { detail: { lang: next } }));
}

// ---------------------------------------------------------------- start-up

async function loadPresets() {
  const get = async (name) => {
    const r = await fetch(new URL(`presets/${name}.json`, location.href));
    if (!r.ok) throw new Error(`presets/${name}.json: HTTP ${r.status}`);
    return r.json();
  };
  const [m, g] = await Promise.all([get("models"), get("gpus")]);
  return { models: m.models || {}, gpus: g.gpus || {} };
}

function showNotices(notices) {
  const box = $("url-notice");
  if (!notices.length) { box.hidden = true; return; }
  box.querySelector("ul").replaceChildren(...notices.map((n) => setText(el("li"), n.key, n.params)));
  box.hidden = false;
}

async function main() {
  // ?runtime= takes only auto/local/cdn; anything else (a URL, a path) is refused, said so,
  // and removed from the address bar, as is a valid word (a shared link never carries it).
  // (js/boot.js read it and started the worker with it before this module graph loaded)
  const runtimeParam = bootRuntimeParam;
  stripRuntimeParam();
  installA11y(document);   // slider keys, aria-valuetext, tooltips (js/a11y.js)
  app.client = attachClient({ onProgress, onReady, onFatal });
  // where Plotly comes from is resolved now; its script loads after the first numbers (plotlyGate)
  const plotlyReady = Promise.all([resolveRuntime({ baseURL: location.href, choice: runtimeParam.choice }), plotlyGate])
    .then(([rt]) => loadPlotly(rt))
    .then((P) => { app.plotly = P; if (app.catalogueApplied) plotlyLocale(P); })
    .catch((err) => {
      app.plotlyError = String(err.message || err);
      for (const c of document.querySelectorAll(".chart")) setText(c, "chart.unavailable", { detail: app.plotlyError });
    });

  // the catalogue loads while the worker starts and the presets load
  const catalogue = loadCatalogue(pickLang({ search: location.search, storage: browserStorage(),
                                             languages: navigator.languages }));
  let presets;
  try {
    presets = await loadPresets();
  } catch (err) {
    applyCatalogue(await catalogue);
    app.presetsError = { key: "status.presets_error", params: { detail: err.message } };
    setStatus("failed", app.presetsError.key, app.presetsError.params);
    const msg = setText(el("p", { class: "error", role: "alert", id: "presets-error" }), app.presetsError.key,
                        app.presetsError.params);
    $("form").replaceChildren(msg);
    return;
  }
  applyCatalogue(await catalogue);
  const built = buildForm($("form"), presets, (patch, mode) => setState(patch, { mode }));
  app.controls = built.controls;
  app.options = built.options;

  const search = location.search;
  const fromUrl = fromQuery(search, defaultValues(), app.options);
  let values = fromUrl.values;
  const stored = fromUrl.present ? null : loadLocal(defaultValues(), app.options);
  if (stored) values = stored;
  const langParam = new URLSearchParams(search).get(LANG_QUERY);
  showNotices([...(runtimeParam.refused ? [{ key: "notice.runtime_refused" }] : []),
               ...(langParam !== null && !LANGS.includes(langParam) ? [{ key: "notice.bad_lang", params: { text: langParam.slice(0, 60) } }] : []),
               ...fromUrl.notices]);
  // The tab: from the link, else (when the inputs come from localStorage) the saved one.
  const urlTab = new URLSearchParams(search).get("tab");
  const tab = urlTab ?? (stored ? loadLocalTab() : null);
  store.set({ inputs: applyPatch(initialState(values), {}, app.options), compareA: compareFromSearch(search, app.options),
              tab: TABS.includes(tab) ? tab : "curve" });
  syncForm(app.controls, store.get("inputs"), {});
  renderScenarioHelp($("form"), store.get("inputs").values.scenario);
  // From here on a change of the state asks for what it changes (after the URL is written).
  store.subscribe((changed, s, before) => {
    if (touches(changed, "inputs", "edit")) inputsChanged(s, before);
    if (touches(changed, "compareA")) {
      $("clear-a").hidden = !s.compareA;
      requestCompute();
    }
    if (touches(changed, "tab")) showTab(s.tab);
  });
  $("pin-a").addEventListener("click", () => setCompareA(store.get("savedValues") || store.get("inputs").values));
  $("clear-a").addEventListener("click", () => setCompareA(null));
  mountExport($("export-bar"), app);
  // the Fleet results: open with a link or stored inputs that set a fleet; opening asks Python again
  app.fleet = mountFleetPanel($("fleet-section"), $("fleet-root"), { onToggle: (open) => {
    if (open && !(app.result && app.result.fleet_figures)) requestCompute();
    else if (open) app.fleet.render(app.result, { theme: theme(), plotly: app.plotly });
  } });
  if (fleetActive(store.get("inputs").values)) app.fleet.open();
  app.modelPanel = mountModelPanel(app, { setState, presetIds: Object.keys(presets.models), presets });

  $("url-notice").querySelector(".dismiss").addEventListener("click", () => { $("url-notice").hidden = true; });
  $("reset").addEventListener("click", () => {
    clearLocal();
    app.sim = null;
    app.simToken++;
    $("sim-status").textContent = "";
    delete $("sim-status").dataset.i18n;
    setState({}, { base: initialState(defaultValues()) });
  });
  $("share").addEventListener("click", async () => {
    // The address bar holds the last inputs Python accepted (see saveState).
    const partial = isStale() && store.get("savedValues") && !sameValues(store.get("savedValues"), store.get("inputs").values);
    try {
      await navigator.clipboard.writeText(location.href);
      setText($("share"), partial ? "ui.link_copied_partial" : "ui.link_copied");
    } catch {
      setText($("share"), "ui.copy_address_bar");
    }
    setTimeout(() => { setText($("share"), "ui.copy_link"); }, 2000);
  });
  $("simulate").addEventListener("click", runSimulation);
  $("lang").addEventListener("change", () => setLang($("lang").value));
  $("simulate").disabled = true;
  $("form").addEventListener("submit", (ev) => ev.preventDefault());
  wireTabs();

  showTab(store.get("tab"), { compute: false });
  requestCompute();
  await plotlyReady;
  await drawCharts();
  if (store.get("tab") === "trace") mountTrace();
}

main();
