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

const SAMPLE_BASE = new URL("../data/traces/mooncake/", import.meta.url);
const SAMPLES = [
  { id: "conversation", file: "conversation_trace.jsonl", label: "Mooncake conversation trace",
    hint: "12,031 requests, 1 h of a chat service" },
  { id: "synthetic", file: "synthetic_trace.jsonl", label: "Mooncake synthetic trace",
    hint: "3,993 requests" },
];
const MAX_FILE_BYTES = 512 * 1024 * 1024;
// Sent as max_bytes with every upload (issue 12): Python refuses a trace whose decompressed
// size exceeds it, so a small gzip of blank lines cannot run the worker out of memory.
const MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024;
const OPTION_DEBOUNCE_MS = 300;
const COLORS = { token: "#2f6fd6", block: "#e08a1e", model: "#2a9d5c", ceiling: "#8a8f98",
                 op: "#d6336c", gap: "#2f6fd6", turn: "#e08a1e" };
const AXES = {
  blocks: { key: "capacities_blocks", label: "cache capacity [blocks]", unit: "blocks" },
  tokens: { key: "capacity_tokens", label: "cache capacity [tokens]", unit: "tokens" },
  gib: { key: "capacity_gib", label: "cache capacity [GiB of KV]", unit: "GiB" },
};

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

const nf = (digits) => new Intl.NumberFormat("en-US", { maximumFractionDigits: digits });
const fmtInt = (x) => (x === null || x === undefined ? "–" : nf(0).format(x));
const fmtNum = (x, d = 2) => (x === null || x === undefined ? "–" : nf(d).format(x));
const fmtPct = (x, d = 1) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(d)} %`);
const fmtBytes = (n) => (n >= 1048576 ? `${fmtNum(n / 1048576, 1)} MiB` : `${fmtNum(n / 1024, 1)} KiB`);

// A value cell the tests can find: data-result="trace.<path>", data-value = the raw number.
function resultCell(path, value, text) {
  const data = { result: `trace.${path}` };
  if (value !== null && value !== undefined) data.value = String(value);
  return el("span", { class: "kvt-value", data, text });
}

function row(label, ...value) {
  return [el("dt", { text: label }), el("dd", {}, ...value)];
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
  const fileInput = el("input", { type: "file", accept: ".jsonl,.gz,.jsonl.gz,application/gzip,application/x-ndjson",
                                  "aria-label": "trace file (.jsonl or .jsonl.gz)" });
  const sampleButtons = SAMPLES.map((s) => el("button", {
    type: "button", title: s.hint, data: { sample: s.id },
    onclick: () => { source = { kind: "sample", id: s.id }; fileInput.value = ""; analyse(); },
  }, s.label));
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    source = { kind: "file", file };
    analyse();
  });

  const format = el("select", { name: "format" },
    ...["auto", "mooncake", "bailian", "generic"].map((f) => el("option", { value: f, text: f })));
  const blockSize = el("input", { type: "number", name: "block_size_tokens", min: "1", step: "1",
                                  placeholder: "auto" });
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
  const cancelButton = el("button", { type: "button", class: "kvt-cancel", onclick: () => cancel() }, "Cancel");
  const status = el("div", { class: "kvt-status" }, progress, statusText, cancelButton);
  progress.hidden = true;
  cancelButton.hidden = true;
  const errorBox = el("div", { class: "kvt-card kvt-error", role: "alert", data: { role: "trace-error" } });
  errorBox.hidden = true;

  const axisSelect = el("select", { name: "capacity_axis", "aria-label": "capacity axis" },
    ...Object.entries(AXES).map(([k, a]) => el("option", { value: k, text: a.unit })));
  const logAxis = el("input", { type: "checkbox", name: "log_capacity", checked: true });
  axisSelect.addEventListener("change", () => drawCurve());
  logAxis.addEventListener("change", () => drawCurve());
  const gibHint = el("span", { class: "kvt-note" });

  const results = el("div", { class: "kvt-results" });
  const curveDiv = el("div", { class: "kvt-plot", data: { figure: "trace-curve" } });
  const gapDiv = el("div", { class: "kvt-plot kvt-small", data: { figure: "trace-reuse-gap" } });

  root.replaceChildren(el("div", { class: "kvt" },
    el("div", { class: "kvt-card" },
      el("h3", { text: "Request trace" }),
      el("div", { class: "kvt-sources" },
        el("label", {}, "Your trace ", fileInput),
        el("span", { text: "or a sample:" }),
        ...sampleButtons),
      el("p", { class: "kvt-note" },
        "Your file is read in this browser tab and analysed by Python in a Web Worker; it is never uploaded. " +
        "Mooncake (.jsonl with hash_ids), Bailian and generic JSON-lines traces, optionally gzip-compressed."),
      el("p", { class: "kvt-note", data: { role: "sample-license" } },
        "Samples: request traces released with the Mooncake paper (FAST'25) by ",
        el("a", { href: "https://github.com/kvcache-ai/Mooncake", target: "_blank", rel: "noopener noreferrer",
                  text: "kvcache-ai/Mooncake" }),
        ", copied unchanged, licensed under the Apache License 2.0 (see data/traces/mooncake/README.md).")),
    el("div", { class: "kvt-card" },
      el("h3", { text: "Options" }),
      el("div", { class: "kvt-options" },
        el("label", {}, "format", format),
        el("label", {}, "block size [tokens]", blockSize),
        el("label", {}, "warm-up fraction", warmup),
        el("label", {}, fullBlocks, "full blocks only (vLLM)"),
        el("label", {}, skipBad, "skip bad lines"))),
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

  function setBusy(text, fraction = null) {
    root.dataset.state = "running";
    progress.hidden = false;
    cancelButton.hidden = false;
    if (fraction === null) progress.removeAttribute("value");   // indeterminate
    else progress.value = fraction;
    statusText.textContent = text;
    for (const b of sampleButtons) b.disabled = true;
  }

  function setIdle(text, state) {
    root.dataset.state = state;
    progress.hidden = true;
    cancelButton.hidden = true;
    statusText.textContent = text;
    for (const b of sampleButtons) b.disabled = false;
  }

  function showError(message, name = null) {
    errorBox.replaceChildren(el("strong", { text: name ? `Cannot analyse ${name}. ` : "Cannot analyse this trace. " }),
                             message);
    errorBox.hidden = false;
  }

  async function readSource(src) {
    if (src.kind === "file") {
      if (src.file.size > MAX_FILE_BYTES) {
        throw new Error(`${src.file.name}: ${fmtBytes(src.file.size)} is more than this page can analyse ` +
                        `(${fmtBytes(MAX_FILE_BYTES)}); use the command line: python -m kvcalc trace FILE`);
      }
      return { name: src.file.name, bytes: await src.file.arrayBuffer() };
    }
    const sample = SAMPLES.find((s) => s.id === src.id);
    const url = new URL(sample.file, SAMPLE_BASE);
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(`cannot load the sample ${sample.file}: HTTP ${resp.status}`);
    return { name: sample.label, bytes: await resp.arrayBuffer() };
  }

  async function analyse(src = source) {
    if (!src) return;
    source = src;
    if (running) { pending = true; return; }
    running = true;
    cancelled = false;
    errorBox.hidden = true;
    const t0 = performance.now();
    const t = { start: t0 };
    try {
      setBusy("reading the trace…");
      const { name, bytes } = await readSource(src);
      t.readMs = performance.now() - t0;
      t.bytes = bytes.byteLength;
      if (cancelled) return;
      const req = request();
      lastContextKey = contextKey(memoryContext());
      setBusy(`analysing ${name} (${fmtBytes(bytes.byteLength)}) in Python…`);
      const tCall = performance.now();
      inPython = true;
      const reply = await callTrace({ ...req, max_bytes: req.max_bytes ?? MAX_DECOMPRESSED_BYTES, text: { $buffer: 0 } }, {
        buffers: [bytes],
        onProgress: (f) => setBusy(`analysing ${name} in Python… ${Math.round(f * 100)} %`, f),
      });
      inPython = false;
      t.callMs = performance.now() - tCall;
      t.pythonMs = reply.ms;
      if (cancelled) return;
      if (reply.status !== "ok") {
        showError(describeError(reply.error), name);
        setIdle("", "error");
        return;
      }
      lastResult = reply.result;
      lastResult.sourceName = name;
      setBusy("drawing…");
      const tDraw = performance.now();
      render(lastResult);
      t.drawMs = performance.now() - tDraw;
      t.totalMs = performance.now() - t0;
      timings = t;
      setIdle(`${name}: analysed in ${fmtNum(t.totalMs / 1000, 2)} s ` +
              `(Python ${fmtNum((t.pythonMs || 0) / 1000, 2)} s)`, "done");
      root.dispatchEvent(new CustomEvent("kvcalc-trace:drawn", { detail: { timings: t } }));
      if (onResult) onResult(lastResult);
    } catch (err) {
      if (!cancelled) {
        showError(String(err && err.message ? err.message : err));
        setIdle("", "error");
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
    if (!error) return "unknown error";
    // InputError.message names the field (for a bad line: "line N: ...") and the bad value.
    let text = error.message || `${error.field}: ${error.problem}`;
    if (error.field && /^line \d+$/.test(error.field)) {
      if (format.value !== "auto") {
        text += `\nThe format is set to "${format.value}": try "auto".`;
      } else if (!skipBad.checked) {
        text += "\nTick \"skip bad lines\" to skip and count such lines instead.";
      }
    }
    return text;
  }

  async function cancel() {
    if (!running) return;
    cancelled = true;
    pending = false;
    if (!inPython) {                 // still reading the file: nothing runs in the worker
      setIdle("cancelled", "cancelled");
      return;
    }
    setBusy("cancelled: restarting the Python worker…");
    cancelButton.hidden = true;
    client.retry();                  // resolves the outstanding call at once (kind "crash")
    const r = await client.ready();
    if (!running) {
      setIdle(r.ok ? "cancelled" : `cancelled; the worker did not restart: ${r.error.message}`, "cancelled");
    }
  }

  // -- rendering

  function render(res) {
    results.replaceChildren(
      headline(res),
      el("div", { class: "kvt-card" },
        el("div", { class: "kvt-axis" },
          el("label", {}, "capacity axis ", axisSelect),
          el("label", {}, logAxis, "log scale"),
          gibHint),
        curveDiv,
        el("p", { class: "kvt-note", data: { result: "trace.counting_rule" }, text: `Counting rule: ${res.counting_rule}.` }),
        modelNote(res)),
      el("div", { class: "kvt-grid" }, detectionCard(res.detection), statsCard(res.stats, res.fit)),
      el("div", { class: "kvt-card" },
        el("h3", { text: "Reuse gaps" }),
        gapDiv,
        el("p", { class: "kvt-note" },
          `Time between two uses of the same block (log bins). ${fmtInt(res.stats.reuse_gap_s.n_zero)} of ` +
          `${fmtInt(res.stats.reuse_gap_s.n)} reuses have a gap of 0 (same timestamp) and are not shown.`)),
    );
    results.hidden = false;
    const hasGib = Array.isArray(res.curve.capacity_gib);
    axisSelect.querySelector("option[value=gib]").disabled = !hasGib;
    if (!hasGib && axisSelect.value === "gib") axisSelect.value = "blocks";
    gibHint.textContent = hasGib ? "" :
      "GiB and the operating point need a model and a GPU on the calculator tab.";
    drawCurve();
    drawGaps();
  }

  function headline(res) {
    const op = res.operating_point;
    return el("div", { class: "kvt-card kvt-headline" },
      el("div", {},
        el("div", { class: "kvt-note", text: "ideal token hit rate (infinite cache)" }),
        el("div", { class: "kvt-big" }, resultCell("ideal_token_hit_rate", res.ideal_token_hit_rate, fmtPct(res.ideal_token_hit_rate)))),
      el("div", {},
        el("div", { class: "kvt-note", text: "ideal block hit rate" }),
        el("div", { class: "kvt-big" }, resultCell("ideal_block_hit_rate", res.ideal_block_hit_rate, fmtPct(res.ideal_block_hit_rate)))),
      el("div", {},
        el("div", { class: "kvt-note", text: "capacity reaching the ceiling" }),
        el("div", { class: "kvt-big" },
          resultCell("curve.saturation_capacity_blocks", res.curve.saturation_capacity_blocks,
                     `${fmtInt(res.curve.saturation_capacity_blocks)} blocks`)),
        el("div", { class: "kvt-note" }, resultCell("curve.saturation_capacity_tokens", res.curve.saturation_capacity_tokens,
          `${fmtInt(res.curve.saturation_capacity_tokens)} tokens`),
          res.curve.saturation_capacity_gib !== undefined ? ` = ${fmtNum(res.curve.saturation_capacity_gib, 1)} GiB` : "")),
      op ? el("div", {},
        el("div", { class: "kvt-note" }, `at the calculator's cache (${fmtInt(op.capacity_tokens)} tokens` +
          (op.capacity_gib !== null ? `, ${fmtNum(op.capacity_gib, 1)} GiB)` : ")")),
        el("div", { class: "kvt-big" }, resultCell("operating_point.token_hit_rate", op.token_hit_rate, fmtPct(op.token_hit_rate))),
        el("div", { class: "kvt-note" }, "block ",
          resultCell("operating_point.block_hit_rate", op.block_hit_rate, fmtPct(op.block_hit_rate)),
          op.model_token_hit_rate !== undefined ? ["; model ",
            resultCell("operating_point.model_token_hit_rate", op.model_token_hit_rate, fmtPct(op.model_token_hit_rate))] : ""))
        : null);
  }

  function modelNote(res) {
    const m = res.model_curve;
    if (!m) return null;
    if (!m.available) return el("p", { class: "kvt-note", text: m.message });
    return el("p", { class: "kvt-note" },
      `Model: the analytic ${m.model === "che" ? "Che" : m.model} LRU model of the workload fitted to this trace ` +
      "(sessions, turns, gaps and lengths; see the statistics). The model pins in-flight requests, the trace replay does not.");
  }

  function detectionCard(d) {
    const reasons = Object.entries(d.bad_lines_by_reason || {});
    return el("div", { class: "kvt-card", data: { role: "detection" } },
      el("h3", { text: "Detected" }),
      el("dl", {},
        row("file", resultCell("source", null, lastResult.sourceName)),
        row("format", resultCell("detection.format", d.format, d.format), ` (${d.format_source})`),
        row("block size", resultCell("detection.block_size_tokens", d.block_size_tokens, `${fmtInt(d.block_size_tokens)} tokens`),
          ` (${d.block_size_source})`),
        row("chained ids", resultCell("detection.ids_prefix_chained", d.ids_prefix_chained, d.ids_prefix_chained ? "yes" : "no"),
          d.chaining ? ` (${d.chaining})` : ""),
        row("requests", resultCell("detection.n_requests", d.n_requests, fmtInt(d.n_requests)),
          d.truncated ? " (truncated: the rest was not read)" : ""),
        row("blocks", `${fmtInt(d.n_blocks_total)} (${fmtInt(d.n_blocks_unique)} distinct)`),
        row("read", fmtBytes(d.bytes_read)),
        row("skipped lines", resultCell("detection.bad_lines_skipped", d.bad_lines_skipped, fmtInt(d.bad_lines_skipped)),
          reasons.length ? el("ul", {}, ...reasons.map(([reason, n]) =>
            el("li", {}, `${reason.replace(/_/g, " ")}: ${fmtInt(n)}`,
              d.bad_lines_first && d.bad_lines_first[reason] ? ` (first: ${d.bad_lines_first[reason]})` : ""))) : ""),
      ));
  }

  function quantiles(q, unit, digits = 0) {
    return `mean ${fmtNum(q.mean, digits)}, p50 ${fmtNum(q.p50, digits)}, p90 ${fmtNum(q.p90, digits)}, ` +
           `p99 ${fmtNum(q.p99, digits)}, max ${fmtNum(q.max, digits)}${unit}`;
  }

  function statsCard(s, fit) {
    const ses = s.sessions || {};
    return el("div", { class: "kvt-card", data: { role: "stats" } },
      el("h3", { text: "Statistics" }),
      el("dl", {},
        row("duration", `${fmtNum(s.duration_s, 0)} s`),
        row("arrival rate", resultCell("stats.arrival_rate_per_s", s.arrival_rate_per_s, `${fmtNum(s.arrival_rate_per_s, 3)} requests/s`)),
        row("sessions", `${fmtInt(ses.n_sessions)} (${fmtNum(ses.conversation_rate_per_s, 3)}/s)`),
        row("requests per session", ses.requests_per_session ? quantiles(ses.requests_per_session, "", 2) : "–"),
        row("input length", quantiles(s.input_tokens, " tokens")),
        row("output length", quantiles(s.output_tokens, " tokens")),
        row("shared-prefix share", resultCell("stats.shared_prefix_token_share", s.shared_prefix_token_share,
          fmtPct(s.shared_prefix_token_share)), " of prompt tokens"),
        row("system prompt", `${fmtInt(s.system_prompt_tokens)} tokens`),
        row("session rule", ses.source || "–"),
      ),
      fit && fit.notes && fit.notes.length ? el("details", {},
        el("summary", { text: "workload fit" }),
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
    const axis = AXES[axisSelect.value] || AXES.blocks;
    const c = res.curve;
    const xs = c[axis.key];
    if (!xs) return;
    const logX = logAxis.checked;
    const keep = xs.map((x, i) => i).filter((i) => !logX || xs[i] > 0);
    const pick = (arr) => keep.map((i) => arr[i]);
    const x = pick(xs);
    const traces = [
      { name: "exact token hit rate (LRU replay)", x, y: pick(c.token_hit_rate), mode: "lines",
        line: { shape: "hv", color: COLORS.token, width: 2.5 } },
      { name: "exact block hit rate", x, y: pick(c.block_hit_rate), mode: "lines",
        line: { shape: "hv", color: COLORS.block, width: 1.5, dash: "dash" } },
    ];
    if (res.model_curve && res.model_curve.available) {
      traces.push({ name: "model of the fitted workload (token)", x, y: pick(res.model_curve.token_hit_rate),
                    mode: "lines", line: { color: COLORS.model, width: 2, dash: "dot" } });
    }
    if (x.length) {
      traces.push({ name: "infinite cache (ceiling)", x: [x[0], x[x.length - 1]],
                    y: [res.ideal_token_hit_rate, res.ideal_token_hit_rate], mode: "lines",
                    line: { color: COLORS.ceiling, width: 1.5, dash: "longdash" }, hoverinfo: "y" });
    }
    const op = res.operating_point;
    const opX = op ? { blocks: op.capacity_blocks, tokens: op.capacity_tokens, gib: op.capacity_gib }[axisSelect.value] : null;
    if (op && opX !== null && opX !== undefined && (!logX || opX > 0)) {
      traces.push({ name: "calculator's cache (operating point)", x: [opX], y: [op.token_hit_rate],
                    mode: "markers", marker: { color: COLORS.op, size: 11, symbol: "diamond" } });
    }
    const layout = baseLayout(axis.label, "hit rate", logX);
    layout.yaxis.tickformat = ".0%";
    layout.yaxis.range = [0, Math.min(1, Math.max(res.ideal_token_hit_rate, res.ideal_block_hit_rate) * 1.15 || 1)];
    layout.xaxis.autorange = true;
    Plotly.react(curveDiv, traces, layout, { displaylogo: false, responsive: true });
  }

  function drawGaps() {
    const res = lastResult;
    if (!res || !Plotly) return;
    const traces = [];
    for (const [key, name, color] of [["reuse_gap_s", "block reuse gap", COLORS.gap],
                                      ["turn_gap_s", "gap between turns of a session", COLORS.turn]]) {
      const h = res.stats[key];
      if (!h || !h.bin_edges || !h.counts || !h.counts.length) continue;
      // A step over the bin edges: no arithmetic on the numbers, exact bin boundaries.
      traces.push({ name, x: h.bin_edges, y: [...h.counts, h.counts[h.counts.length - 1]], mode: "lines",
                    line: { shape: "hv", color, width: 2 }, fill: key === "reuse_gap_s" ? "tozeroy" : "none" });
    }
    const layout = baseLayout("gap [s] (log bins)", "count", true);
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

  root.dataset.state = "idle";
  return {
    analyse: (src) => analyse(src),
    refresh,
    cancel,
    destroy,
    get result() { return lastResult; },
    get timings() { return timings; },
    get running() { return running; },
  };
}
