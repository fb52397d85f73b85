// The page: one path  setState(patch) -> save URL + localStorage -> compute -> render.
// Python (kvcalc.api in a Web Worker, through js/client.js) computes every number; this file
// wires the controls, the worker and the drawing together. window.__kvcalc exposes the
// state for the browser tests and bench/bench_slider.py.

import { createClient } from "./js/client.js";
import { resolveRuntime, runtimeChoiceFromLocation, loadPlotly } from "./js/runtime-source.js";
import { PARAMS, defaultValues } from "./js/params.js";
import {
  applyPatch, initialState, hasErrors, buildRequest, buildSimulateRequest, toQuery, fromQuery,
  saveLocal, loadLocal, clearLocal, paramForField,
} from "./js/state.js";
import { buildForm, syncForm, renderResults, renderOccupancy, renderList, el } from "./js/ui.js";
import { figureFor, FIGURES, PLOT_CONFIG } from "./js/figures.js";

const $ = (id) => document.getElementById(id);
const TABS = ["curve", "sweeps", "tornado", "heatmap", "trace"];
const SIM_POINTS = 6;
const STAGE_LABEL = { runtime: "Python runtime", numpy: "numpy", core: "kvcalc" };

const app = {
  state: null,
  options: {},            // select key -> allowed values (presets included)
  controls: null,
  result: null,           // the last good compute() result
  resultRequest: null,
  resultSeq: 0,
  requested: 0,           // sequence number of the newest compute asked for
  lastRequest: null,
  serverErrors: {},       // {param key: message} from Python's InputError
  sim: null,              // simulate() result shown on the curve
  simToken: 0,
  tab: "curve",
  plotly: null,
  plotlyError: null,
  client: null,
  traceTab: null,
  renderCount: 0,
  renderedSeq: 0,
  timings: {},            // last compute: roundTripMs (incl. Python), numbersMs, chartMs         // newest compute whose numbers and chart are on screen
  ready: false,
};
window.__kvcalc = app;

// ---------------------------------------------------------------- theme

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
const theme = () => (darkQuery.matches ? "dark" : "light");
darkQuery.addEventListener("change", () => drawVisible());

// ---------------------------------------------------------------- worker status

function setStatus(state, text) {
  const box = $("status");
  box.dataset.state = state;
  $("status-text").textContent = text;
}

function onProgress({ stage, fraction }) {
  const node = document.querySelector(`#status .stage[data-stage="${stage}"] progress`);
  if (node) node.value = fraction;
  for (const s of document.querySelectorAll("#status .stage")) s.classList.toggle("active", s.dataset.stage === stage);
  setStatus("starting", `Starting: ${STAGE_LABEL[stage] || stage}…`);
}

function onReady(info) {
  app.ready = true;
  for (const p of document.querySelectorAll("#status progress")) p.value = 1;
  const v = info.versions || {};
  const secs = info.timings && typeof info.timings.total === "number" ? ` in ${(info.timings.total / 1000).toFixed(1)} s` : "";
  setStatus("ready", `Ready${secs}`);
  markStale();
  $("versions").textContent = `Python ${v.python ?? "?"}, Pyodide ${v.pyodide ?? "?"}, numpy ${v.numpy ?? "?"}, kvcalc ${v.kvcalc ?? "?"} (${info.source} runtime).`;
}

function onFatal({ message, retry }) {
  app.ready = false;
  const stalled = /stall/i.test(message);
  setStatus("failed", (stalled ? "The Python runtime stopped loading. " : "The Python runtime failed. ") + message);
  const btn = $("retry");
  btn.hidden = false;
  btn.onclick = () => {
    btn.hidden = true;
    for (const p of document.querySelectorAll("#status progress")) p.value = 0;
    setStatus("starting", "Retrying…");
    retry();
    requestCompute();
  };
  markStale();
}

// ---------------------------------------------------------------- state

function visibleFigures() {
  return ["curve", ...(["sweeps", "tornado", "heatmap"].includes(app.tab) ? [app.tab] : [])];
}

function saveState() {
  const here = new URL(location.href).searchParams;
  const keep = { runtime: here.get("runtime"), tab: app.tab === "curve" ? null : app.tab };
  const query = toQuery(app.state.values, keep);
  history.replaceState(null, "", `${location.pathname}?${query}`);
  saveLocal(app.state.values);
}

// The one way anything changes.
function setState(patch) {
  const before = app.state.values;
  app.state = applyPatch(app.state, patch, app.options);
  app.serverErrors = {};
  const changed = Object.keys(patch).some((k) => before[k] !== app.state.values[k]);
  if (changed && app.sim) {
    app.sim = null;
    app.simToken++;
    $("sim-status").textContent = "inputs changed: simulate again to compare";
  }
  syncForm(app.controls, app.state, app.serverErrors);
  if (hasErrors(app.state)) {
    markStale();
    return;
  }
  saveState();
  requestCompute();
}

function isStale() {
  return hasErrors(app.state) || Object.keys(app.serverErrors).length > 0 || $("compute-error").hidden === false;
}

function markStale() {
  const stale = isStale() && app.result !== null;
  $("results").classList.toggle("stale", stale);
  $("results").dataset.stale = stale ? "true" : "false";
  $("stale").hidden = !stale;
  $("simulate").disabled = !app.result || hasErrors(app.state) || !app.ready;
}

async function requestCompute() {
  if (hasErrors(app.state)) return;
  const seq = ++app.requested;
  const request = buildRequest(app.state.values, visibleFigures());
  app.lastRequest = request;
  $("results").dataset.state = "computing";
  const tSent = performance.now();
  const reply = await app.client.compute(request);
  if (reply.status === "superseded") return;
  app.timings.roundTripMs = performance.now() - tSent;
  if (seq < app.resultSeq) return;
  const errBox = $("compute-error");
  if (reply.status === "error") {
    const e = reply.error || {};
    const p = e.kind === "input" ? paramForField(e.field) : null;
    if (p) {
      app.serverErrors = { [p.key]: e.message || e.problem || "not accepted" };
      errBox.hidden = true;
    } else if (e.kind === "crash" || e.kind === "fatal") {
      // The worker died or never started: the status bar says so. After a restart (retry,
      // or the trace tab's cancel) send the request again.
      errBox.hidden = true;
      app.client.ready().then((r) => { if (r.ok && seq === app.requested) requestCompute(); });
    } else {
      errBox.textContent = `Could not compute: ${e.message || "unknown error"}`;
      errBox.hidden = false;
    }
    syncForm(app.controls, app.state, app.serverErrors);
    if (seq === app.requested) $("results").dataset.state = "error";
    markStale();
    return;
  }
  errBox.hidden = true;
  app.serverErrors = {};
  syncForm(app.controls, app.state, app.serverErrors);
  app.result = reply.result;
  app.resultRequest = request;
  app.resultSeq = seq;
  app.computeMs = reply.ms;
  await render(seq);
}

// ---------------------------------------------------------------- rendering

async function render(seq) {
  const t0 = performance.now();
  const r = app.result;
  renderResults($("results"), r);
  renderResults($("mini"), r);
  renderOccupancy($("occupancy-bar"), $("occupancy-legend"), r.occupancy);
  const warnings = [...(r.warnings || [])];
  renderList($("warnings"), warnings);
  $("warnings-card").hidden = warnings.length === 0;
  markStale();
  $("results").dataset.state = seq === app.requested ? "ready" : "computing";
  const t1 = performance.now();
  await drawVisible();
  const t2 = performance.now();
  if (app.traceTab) app.traceTab.refresh();
  app.timings.numbersMs = t1 - t0;
  app.timings.chartMs = t2 - t1;
  app.renderCount++;
  app.renderedSeq = Math.max(app.renderedSeq, seq);
  // first numbers on screen, and the first chart (bench/bench_page_load.py --page index.html
  // reads the first; --expr window.__kvcalcFirstChartMs the second)
  if (window.__kvcalcFirstResultMs === undefined) window.__kvcalcFirstResultMs = t1;
  if (window.__kvcalcFirstChartMs === undefined && app.plotly) window.__kvcalcFirstChartMs = t2;
  document.dispatchEvent(new CustomEvent("kvcalc:rendered", { detail: { seq, count: app.renderCount } }));
}

async function drawVisible() {
  if (!app.plotly || !app.result) return;
  const name = app.tab;
  if (!(name in FIGURES)) return;
  const div = $(`chart-${name}`);
  const fig = figureFor(name, app.state, app.result, { theme: theme(), width: div.clientWidth, sim: app.sim });
  await app.plotly.react(div, fig.data, fig.layout, PLOT_CONFIG);
  div.dataset.rendered = String(app.resultSeq);
}

// ---------------------------------------------------------------- tabs

function selectTab(name, { focus = false, save = true, compute = true } = {}) {
  if (!TABS.includes(name)) name = "curve";
  app.tab = name;
  for (const b of document.querySelectorAll('[role="tab"]')) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", on ? "true" : "false");
    b.tabIndex = on ? 0 : -1;
    if (on && focus) b.focus();
  }
  for (const p of document.querySelectorAll('[role="tabpanel"]')) p.hidden = p.dataset.panel !== name;
  if (name === "trace") mountTrace();
  if (save && app.state && !hasErrors(app.state)) saveState();
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
    getMemoryContext: () => (app.result && app.result.kv_bytes_per_token ? {
      kv_bytes_per_token: app.result.kv_bytes_per_token,
      kv_capacity_tokens: app.result.kv_capacity_tokens,
      model: app.result.model_id, gpu: app.result.gpu_id, tensor_parallel: app.result.tensor_parallel,
    } : null),
  });
}

// ---------------------------------------------------------------- simulate

async function runSimulation() {
  const curve = app.result && app.result.figures && app.result.figures.curve;
  if (!curve || hasErrors(app.state)) return;
  const caps = curve.capacity_tokens;
  const picks = [];
  for (let i = 0; i < SIM_POINTS; i++) picks.push(caps[Math.round((i * (caps.length - 1)) / (SIM_POINTS - 1))]);
  const token = ++app.simToken;
  const btn = $("simulate");
  const bar = $("sim-progress");
  const status = $("sim-status");
  btn.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  status.textContent = "simulating…";
  const request = buildSimulateRequest(app.state.values, picks);
  app.lastSimRequest = request;
  const reply = await app.client.simulate(request, { onProgress: (f) => { if (token === app.simToken) bar.value = f; } });
  bar.hidden = true;
  markStale();
  if (token !== app.simToken) return;
  if (reply.status !== "ok") {
    status.textContent = `simulation failed: ${(reply.error && reply.error.message) || "unknown error"}`;
    return;
  }
  app.sim = reply.result;
  status.textContent = `${reply.result.points.length} points, ${reply.result.n_conversations} conversations each, seed ${reply.result.seed}`;
  if (app.tab !== "curve") selectTab("curve");
  else await drawVisible();
  document.dispatchEvent(new CustomEvent("kvcalc:simulated", { detail: { points: reply.result.points.length } }));
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
  box.querySelector("ul").replaceChildren(...notices.map((n) => el("li", { text: n })));
  box.hidden = false;
}

async function main() {
  app.client = createClient({ onProgress, onReady, onFatal, runtime: runtimeChoiceFromLocation() });
  const plotlyReady = resolveRuntime({ baseURL: location.href, choice: runtimeChoiceFromLocation() })
    .then((rt) => loadPlotly(rt))
    .then((P) => { app.plotly = P; })
    .catch((err) => {
      app.plotlyError = String(err.message || err);
      for (const c of document.querySelectorAll(".chart")) c.textContent = `Charts unavailable: ${app.plotlyError}`;
    });

  let presets;
  try {
    presets = await loadPresets();
  } catch (err) {
    setStatus("failed", `Cannot load the presets: ${err.message}`);
    return;
  }
  const built = buildForm($("form"), presets, (patch) => setState(patch));
  app.controls = built.controls;
  app.options = built.options;

  const search = location.search;
  const fromUrl = fromQuery(search, defaultValues(), app.options);
  let values = fromUrl.values;
  if (!fromUrl.present) values = loadLocal(defaultValues(), app.options) || values;
  showNotices(fromUrl.notices);
  app.state = applyPatch(initialState(values), {}, app.options);
  syncForm(app.controls, app.state, {});

  $("url-notice").querySelector(".dismiss").addEventListener("click", () => { $("url-notice").hidden = true; });
  $("reset").addEventListener("click", () => {
    clearLocal();
    app.state = initialState(defaultValues());
    app.sim = null;
    app.simToken++;
    $("sim-status").textContent = "";
    setState({});
  });
  $("share").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      $("share").textContent = "Link copied";
    } catch {
      $("share").textContent = "Copy the address bar";
    }
    setTimeout(() => { $("share").textContent = "Copy link"; }, 2000);
  });
  $("simulate").addEventListener("click", runSimulation);
  $("simulate").disabled = true;
  $("form").addEventListener("submit", (ev) => ev.preventDefault());
  wireTabs();

  const tab = new URLSearchParams(search).get("tab");
  selectTab(TABS.includes(tab) ? tab : "curve", { save: false, compute: false });
  if (!hasErrors(app.state)) saveState();
  requestCompute();
  await plotlyReady;
  if (app.result) await drawVisible();
  if (app.tab === "trace") mountTrace();
}

main();
