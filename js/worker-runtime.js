// The compute worker's logic, as a factory that takes `post` (postMessage), so it can be
// driven without a page. worker.js only wires it to `self`. Message shapes: worker-protocol.js.
//
// Start-up stages, each reported as event:progress {stage, fraction}:
//   runtime: pick the source (local runtime/ if present, else the pinned CDN), import
//            pyodide.mjs, loadPyodide;
//   numpy:   loadPackage numpy from the same source's lock file and wheels, import it;
//   core:    write kvcalc's .py files and the presets into the FS (fetched in parallel with
//            the runtime stage), mirroring the repo layout so the core finds
//            Path(kvcalc.__file__).parents[2] / "presets", then import kvcalc.api.
// Measured (bench/bench_page_load.py --loaders, headless Chromium, medians after numpy):
// fetch + write the files + import kvcalc.api 118 ms; micropip + a wheel + import 420 ms.

import { MSG, DEFAULT_STALL_MS, errorReply } from "./worker-protocol.js";
import { resolveRuntime } from "./runtime-source.js";

const HOME = "/home/pyodide";
const PY_ROOT = `${HOME}/py`;
const BRIDGE_FILE = "js/kvcalc_bridge.py";
const MANIFEST = "py/kvcalc/MANIFEST.json";
const PROGRESS_MIN_STEP = 0.01;

export function createWorkerRuntime(post, config = {}) {
  const env = {
    baseURL: config.baseURL,                       // absolute URL of the repo root (required)
    fetchFn: config.fetch || ((...a) => fetch(...a)),
    importModule: config.importModule || ((url) => import(/* @vite-ignore */ url)),
    now: config.now || (() => performance.now()),
    setTimer: config.setTimeout || ((f, ms) => setTimeout(f, ms)),
    clearTimer: config.clearTimeout || ((t) => clearTimeout(t)),
  };
  if (!env.baseURL) throw new Error("createWorkerRuntime: config.baseURL is required");

  let state = "idle";           // idle -> starting -> ready | failed
  let stage = null;
  let watchdog = null;
  let stallMs = DEFAULT_STALL_MS;
  let pyodide = null;
  let bridge = null;            // persistent PyProxy of the kvcalc_bridge module
  let bridgeCall = null;        // and of its call()
  let resolved = null;
  const queue = [];             // requests that arrived before ready
  const timings = {};

  function armWatchdog() {
    if (watchdog !== null) env.clearTimer(watchdog);
    watchdog = env.setTimer(() => {
      const hint = resolved && resolved.source === "cdn"
        ? `check that ${resolved.indexURL} is reachable (network, firewall, ad blocker)`
        : "check that the server sends .wasm as application/wasm and .mjs as text/javascript " +
          "(python scripts/serve.py does)";
      fail(`start-up stalled in stage "${stage}": no progress for ${Math.round(stallMs / 1000)} s; ${hint}`);
    }, stallMs);
  }

  function progress(name, fraction) {
    if (state !== "starting") return;
    stage = name;
    post({ type: MSG.PROGRESS, stage: name, fraction });
    armWatchdog();
  }

  function fail(message) {
    if (state === "failed") return;
    state = "failed";
    if (watchdog !== null) env.clearTimer(watchdog);
    post({ type: MSG.FATAL, stage, message });
    for (const msg of queue.splice(0)) {
      post(errorReply(msg.id, "fatal", `the Python runtime did not start: ${message}`));
    }
  }

  async function fetchText(rel) {
    const url = new URL(rel, env.baseURL);
    const resp = await env.fetchFn(url);
    if (!resp.ok) throw new Error(`cannot load ${url}: HTTP ${resp.status}`);
    return resp.text();
  }

  // kvcalc's files: the manifest, then every file in parallel. Starts at t=0.
  async function fetchCore() {
    const manifest = JSON.parse(await fetchText(MANIFEST));
    const files = await Promise.all(manifest.files.map(async (p) => [p, await fetchText(p)]));
    return { files, bridge: await fetchText(BRIDGE_FILE) };
  }

  // Fails fast on the one misconfiguration that otherwise hangs Pyodide with no error.
  async function checkWasmMime(indexURL) {
    try {
      const resp = await env.fetchFn(new URL("pyodide.asm.wasm", indexURL), { method: "HEAD" });
      const type = resp.headers.get("content-type") || "";
      if (resp.ok && !type.startsWith("application/wasm")) {
        fail(`${indexURL}pyodide.asm.wasm is served as "${type}", not application/wasm: ` +
             "Pyodide cannot start. Serve the page with python scripts/serve.py.");
      }
    } catch { /* the real load reports network errors */ }
  }

  async function start(initConfig = {}) {
    if (state !== "idle") return;
    state = "starting";
    stallMs = initConfig.stallMs || config.stallMs || DEFAULT_STALL_MS;
    const t0 = env.now();
    let tStage = t0;
    const mark = (name) => { const t = env.now(); timings[name] = Math.round(t - tStage); tStage = t; };
    try {
      progress("runtime", 0);
      const corePromise = fetchCore();
      corePromise.catch(() => {});   // handled when awaited in the core stage
      resolved = await resolveRuntime({
        baseURL: env.baseURL, choice: initConfig.runtime || config.runtime || "auto",
        fetchFn: env.fetchFn,
      });
      checkWasmMime(resolved.indexURL);
      progress("runtime", 0.1);
      const { loadPyodide } = await env.importModule(resolved.indexURL + "pyodide.mjs");
      if (state !== "starting") return;
      progress("runtime", 0.2);
      pyodide = await loadPyodide({
        indexURL: resolved.indexURL,
        stdout: (s) => console.log("[py]", s),
        stderr: (s) => console.warn("[py]", s),
      });
      if (state !== "starting") return;
      mark("runtime");
      progress("runtime", 1);

      progress("numpy", 0);
      const packages = resolved.config.pyodide.load;
      let loaded = 0;
      await pyodide.loadPackage(packages, {
        messageCallback: (m) => { if (/^Loaded /.test(m)) progress("numpy", 0.7 * (++loaded) / packages.length); },
        errorCallback: (m) => console.warn("[pyodide]", m),
        checkIntegrity: true,
      });
      if (state !== "starting") return;
      progress("numpy", 0.7);
      pyodide.pyimport("numpy").destroy();  // the first import costs ~0.35 s: pay it here
      mark("numpy");
      progress("numpy", 1);

      progress("core", 0);
      const core = await corePromise;
      if (state !== "starting") return;
      writeCore(core);
      progress("core", 0.3);
      // Kept for the worker's lifetime: attribute proxies are borrowed from the module's.
      bridge = pyodide.pyimport("kvcalc_bridge");
      bridgeCall = bridge.call;
      const endpointsProxy = bridge.endpoints;
      let endpoints = [];
      let apiError = null;
      try {
        const list = endpointsProxy();
        endpoints = list.toJs();
        list.destroy();
      } catch (err) {
        apiError = String(err.message || err).trim().split("\n").slice(-1)[0];
        // A missing api module is a stage of development; anything else is a broken core.
        if (!/No module named 'kvcalc\.api'/.test(String(err.message))) {
          endpointsProxy.destroy();
          throw new Error(`importing kvcalc.api failed: ${String(err.message || err).trim()}`);
        }
      }
      endpointsProxy.destroy();
      mark("core");
      progress("core", 1);

      state = "ready";
      env.clearTimer(watchdog);
      timings.total = Math.round(env.now() - t0);
      post({
        type: MSG.READY,
        source: resolved.source,
        indexURL: resolved.indexURL,
        versions: versions(),
        endpoints,
        apiError,
        timings,
      });
      for (const msg of queue.splice(0)) run(msg);
    } catch (err) {
      fail(`${stage} stage failed: ${err && err.message ? err.message : err}`);
    }
  }

  function writeCore({ files, bridge }) {
    const FS = pyodide.FS;
    for (const [rel, text] of files) {
      const path = `${HOME}/${rel}`;
      FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
      FS.writeFile(path, text);
    }
    FS.mkdirTree(PY_ROOT);
    FS.writeFile(`${PY_ROOT}/kvcalc_bridge.py`, bridge);
    const sys = pyodide.pyimport("sys");
    const path = sys.path;
    if (!path.__contains__(PY_ROOT)) path.insert(0, PY_ROOT);
    path.destroy();
    sys.destroy();
    const importlib = pyodide.pyimport("importlib");
    importlib.invalidate_caches();
    importlib.destroy();
  }

  function versions() {
    const out = { pyodide: pyodide.version };
    for (const [key, mod] of [["numpy", "numpy"], ["kvcalc", "kvcalc"]]) {
      try {
        const m = pyodide.pyimport(mod);
        out[key] = m.__version__;
        m.destroy();
      } catch { out[key] = null; }
    }
    const sys = pyodide.pyimport("sys");
    out.python = sys.version.split(" ")[0];
    sys.destroy();
    return out;
  }

  // One request -> exactly one reply. Python runs synchronously; progress posts go out
  // while it runs, throttled to 1 % steps.
  function run(msg) {
    const { id, type } = msg;
    let fn;
    let args;
    let buffers;                // call only: ArrayBuffers -> bytes where args say {"$buffer": i}
    if (type === MSG.COMPUTE || type === MSG.SIMULATE) {
      fn = type;
      args = [msg.request];
    } else if (type === MSG.CALL) {
      fn = msg.fn;
      args = msg.args === undefined ? [] : msg.args;
      if (typeof fn !== "string" || !Array.isArray(args)) {
        post(errorReply(id, "protocol", "call needs {fn: string, args: array}"));
        return;
      }
      if (msg.buffers !== undefined) {
        if (!Array.isArray(msg.buffers) || !msg.buffers.every((b) => b instanceof ArrayBuffer)) {
          post(errorReply(id, "protocol", "call: buffers must be an array of ArrayBuffers"));
          return;
        }
        buffers = msg.buffers.map((b) => new Uint8Array(b));
      }
    }
    let last = -1;
    const onProgress = (fraction) => {
      const f = Number(fraction);
      if (f >= 1 || f - last >= PROGRESS_MIN_STEP) {
        last = f;
        post({ type: MSG.PROGRESS, id, fraction: f });
      }
    };
    const t = env.now();
    let text;
    try {
      text = buffers ? bridgeCall(fn, JSON.stringify(args), onProgress, buffers)
                     : bridgeCall(fn, JSON.stringify(args), onProgress);
    } catch (err) {
      // The bridge catches Python exceptions; reaching here means Pyodide itself failed.
      const message = String(err && err.message ? err.message : err);
      post(errorReply(id, "internal", message));
      if (/fatal error/i.test(message)) fail(`Pyodide failed: ${message}`);
      return;
    }
    const reply = JSON.parse(text);
    reply.id = id;
    reply.type = MSG.REPLY;
    reply.ms = Math.round((env.now() - t) * 10) / 10;
    post(reply);
  }

  function handle(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === MSG.INIT) {
      start(msg.config || {});
      return;
    }
    if (![MSG.COMPUTE, MSG.SIMULATE, MSG.CALL].includes(msg.type)) {
      post(errorReply(msg.id ?? null, "protocol", `unknown message type ${JSON.stringify(msg.type)}`));
      return;
    }
    if (state === "ready") run(msg);
    else if (state === "failed") post(errorReply(msg.id, "fatal", "the Python runtime did not start"));
    else queue.push(msg);
  }

  return {
    handle,
    start,
    get state() { return state; },
  };
}
