// The compute worker's logic, as a factory that takes `post` (postMessage), so it can be
// driven without a page. worker.js only wires it to `self`. Message shapes: worker-protocol.js.
//
// Start-up stages, each reported as event:progress {stage, fraction[, detail]}:
//   runtime: pick the source (local runtime/ if present, else the pinned CDN; never a URL
//            from outside), download Pyodide's five files with byte progress (detail),
//            check each against runtime.json's sha384, import the checked pyodide.asm.js and
//            pyodide.mjs from blob: URLs, loadPyodide with the checked wasm, stdlib and lock
//            file answered from memory (the lock file's sha256s then check the wheels);
//   numpy:   loadPackage numpy from the same source's lock file and wheels, import it;
//   core:    write kvcalc's .py files and the presets into the FS (fetched in parallel with
//            the runtime stage, after its downloads are asked for), mirroring the repo layout
//            so the core finds Path(kvcalc.__file__).parents[2] / "presets", and beside them
//            the compiled modules of py/pyc-cpython-312.json when present (scripts/build_pyc.py),
//            then import kvcalc.api.
// Measured (bench/bench_page_load.py --loaders, headless Chromium, medians after numpy):
// fetch + write the files + import kvcalc.api 118 ms; micropip + a wheel + import 420 ms.

import { MSG, DEFAULT_STALL_MS, errorReply } from "./worker-protocol.js";
import { resolveRuntime, fetchVerified, RUNTIME_CHOICES } from "./runtime-source.js";

const HOME = "/home/pyodide";
const PY_ROOT = `${HOME}/py`;
const BRIDGE_FILE = "js/kvcalc_bridge.py";
const MANIFEST = "py/kvcalc/MANIFEST.json";
// kvcalc compiled for Pyodide's Python (scripts/build_pyc.py; absent unless built): optional
const PYC_BUNDLE = "py/pyc-cpython-312.json";
const PROGRESS_MIN_STEP = 0.01;

const firstLine = (m) => String(m).trim().split("\n")[0];
const lastLine = (m) => String(m).trim().split("\n").slice(-1)[0];

export function createWorkerRuntime(post, config = {}) {
  const env = {
    baseURL: config.baseURL,                       // absolute URL of the repo root (required)
    fetchFn: config.fetch || ((...a) => fetch(...a)),
    importModule: config.importModule || ((url) => import(/* @vite-ignore */ url)),
    now: config.now || (() => performance.now()),
    setTimer: config.setTimeout || ((f, ms) => setTimeout(f, ms)),
    clearTimer: config.clearTimeout || ((t) => clearTimeout(t)),
    scope: config.scope || globalThis,              // whose fetch Pyodide uses
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
  let pycWritten = 0;           // compiled modules written beside their sources (scripts/build_pyc.py)
  const queue = [];             // requests that arrived before ready
  const timings = {};
  // Start-up steps as epoch ms (performance.timeOrigin + now), so the page and the bench can
  // put them on one time line with the page's own (bench/bench_page_load.py --breakdown).
  const marks = {};
  const epoch = () => (globalThis.performance ? performance.timeOrigin + performance.now() : Date.now());
  const stamp = (name) => { marks[name] = Math.round(epoch()); };

  // Download telemetry for the watchdog and the status line: every chunk counts as progress,
  // so a slow but moving download never trips the watchdog; a stopped one is reported with
  // the bytes and the rate so far (not as a MIME problem).
  const dl = { files: new Map(), startedAt: 0, lastPostAt: 0, fraction: 0, activity: "starting" };

  function downloadSummary() {
    let received = 0;
    let total = 0;
    let waiting = null;
    for (const [name, f] of dl.files) {
      received += f.received;
      total += f.total || f.received;
      if (!f.done && (!waiting || f.total - f.received > waiting.total - waiting.received)) waiting = { name, ...f };
    }
    const seconds = dl.startedAt ? Math.max((env.now() - dl.startedAt) / 1000, 1e-3) : 0;
    return {
      received_bytes: received,
      total_bytes: total,
      elapsed_s: Math.round(seconds * 10) / 10,
      rate_bytes_per_s: seconds ? Math.round(received / seconds) : 0,
      file: waiting ? waiting.name : null,               // the unfinished file with most to go
      file_received_bytes: waiting ? waiting.received : 0,
      file_total_bytes: waiting ? waiting.total : 0,
    };
  }

  function armWatchdog() {
    if (watchdog !== null) env.clearTimer(watchdog);
    watchdog = env.setTimer(() => {
      const secs = Math.round(stallMs / 1000);
      let what = dl.activity;
      let hint = "reload the page to try again";
      const d = downloadSummary();
      if (d.file) {
        const mb = (b) => (b / 1e6).toFixed(1);
        what = `downloading ${d.file} from ${resolved ? resolved.indexURL : "the runtime host"} ` +
               `(${mb(d.file_received_bytes)} of ${d.file_total_bytes ? mb(d.file_total_bytes) : "?"} MB so far, ` +
               `${Math.round(d.rate_bytes_per_s / 1000)} kB/s on average)`;
        hint = "the connection is too slow or has stopped: check the network (firewall, proxy, " +
               "ad blocker) and press Retry";
      }
      fail(`start-up stalled in stage "${stage}": no progress for ${secs} s while ${what}; ${hint}`);
    }, stallMs);
  }

  function progress(name, fraction, detail) {
    if (state !== "starting") return;
    stage = name;
    const msg = { type: MSG.PROGRESS, stage: name, fraction };
    if (detail) msg.detail = detail;
    post(msg);
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

  // kvcalc's files: the manifest, then every file in parallel; and the pyc bundle, decoded
  // here (while the runtime still loads). Starts once the runtime's downloads are asked for.
  async function fetchCore() {
    const pycPromise = fetchPyc();
    const manifest = JSON.parse(await fetchText(MANIFEST));
    const files = await Promise.all(manifest.files.map(async (p) => [p, await fetchText(p)]));
    const out = { files, bridge: await fetchText(BRIDGE_FILE), pyc: await pycPromise };
    stamp("core_fetched");
    return out;
  }

  // {cache_tag, files: [[path below HOME of the .py, pyc bytes]]}, or null when there is no
  // usable bundle (not built, unreadable): then Python compiles the sources, as it always may.
  async function fetchPyc() {
    try {
      const resp = await env.fetchFn(new URL(PYC_BUNDLE, env.baseURL));
      if (!resp.ok) return null;
      const doc = await resp.json();
      if (!doc || typeof doc.cache_tag !== "string" || !doc.files || typeof doc.files !== "object") return null;
      const files = Object.entries(doc.files).map(([path, b64]) => {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return [path, bytes];
      });
      return { cache_tag: doc.cache_tag, files };
    } catch {
      return null;
    }
  }

  // Pyodide's files, each downloaded in parallel and checked against runtime.json's sha384
  // before anything uses it. The wasm's Content-Type is checked from the response headers:
  // a server that sends it as something else is misconfigured and is named as such.
  // Returns {file: {name: Promise of its checked bytes}, all: Promise of {name: bytes},
  // started: resolves once every download is asked for}, so each file can be used as soon
  // as its own check passes (rejections are handled by `all`).
  function fetchRuntimeFiles() {
    dl.startedAt = env.now();
    dl.activity = `downloading the Python runtime from ${resolved.indexURL}`;
    const names = resolved.config.pyodide.files;
    for (const name of names) dl.files.set(name, { received: 0, total: 0, done: false });
    const onBytes = (name) => (received, total) => {
      const f = dl.files.get(name);
      f.received = received;
      f.total = total;
      armWatchdog();                       // bytes moving = progress
      const t = env.now();
      if (t - dl.lastPostAt >= 250) {
        dl.lastPostAt = t;
        const d = downloadSummary();
        // the total grows as each response's Content-Length arrives: never step back
        const frac = d.total_bytes ? d.received_bytes / d.total_bytes : 0;
        dl.fraction = Math.max(dl.fraction, 0.05 + 0.6 * frac);
        progress("runtime", dl.fraction, d);
      }
    };
    const wasmCheck = (resp, type) => {
      if (!type.startsWith("application/wasm")) {
        throw new Error(`${resp.url || resolved.indexURL + "pyodide.asm.wasm"} is served with ` +
          `Content-Type "${type || "(none)"}", not application/wasm: the web server is ` +
          "misconfigured. Serve the page with python scripts/serve.py (GitHub Pages and the " +
          "CDN send the right type).");
      }
    };
    const file = {};
    const get = (name) => {
      const url = new URL(name, resolved.indexURL).href;
      file[name] = fetchVerified(url, resolved.integrity[url], {
        fetchFn: env.fetchFn, onBytes: onBytes(name),
        check: name === "pyodide.asm.wasm" ? wasmCheck : undefined,
      }).then(({ bytes }) => {
        dl.files.get(name).done = true;
        return bytes;
      });
      file[name].catch(() => {});          // reported through `all`
    };
    // The loader's two scripts first, on their own: pyodide.asm.js (1.3 MB) then arrives
    // before the wasm (10 MB) instead of sharing the bandwidth with it to the end, and is
    // parsed while the rest downloads. The rest starts when it is in (or has failed).
    const first = names.filter((n) => n === "pyodide.mjs" || n === "pyodide.asm.js");
    for (const name of first) get(name);
    const rest = names.filter((n) => !first.includes(n));
    const restStarted = Promise.allSettled(first.map((n) => file[n])).then(() => { for (const name of rest) get(name); });
    const all = restStarted.then(() => Promise.all(names.map((name) => file[name]))).then((list) => {
      dl.activity = "starting the Python runtime";
      stamp("runtime_files_checked");
      return Object.fromEntries(names.map((name, i) => [name, list[i]]));
    });
    all.catch(() => {});                   // awaited in start()
    return { file, all, started: restStarted };
  }

  const TYPES = {
    "pyodide.asm.wasm": "application/wasm",
    "python_stdlib.zip": "application/zip",
    "pyodide-lock.json": "application/json",
  };

  // Pyodide fetches the wasm, the standard library and the lock file itself with fetch():
  // answer those URLs from the checked bytes (once each file's check has passed; a failed
  // check rejects), pass everything else through. Removed once loadPyodide returns.
  // (Pyodide 0.27.7's loader has no option to hand it the wasm bytes.)
  // files: {name: Promise of checked bytes}.
  function serveCheckedFiles(files) {
    const scope = env.scope;
    const table = new Map();
    for (const [name, type] of Object.entries(TYPES)) {
      table.set(new URL(name, resolved.indexURL).href, { bytes: files[name], type });
    }
    const original = scope.fetch;
    scope.fetch = function checkedFetch(input, init) {
      let href = null;
      try {
        href = new URL(typeof input === "string" || input instanceof URL ? String(input) : input.url,
                       env.baseURL).href;
      } catch { /* not a URL we serve */ }
      const hit = href && table.get(href);
      if (hit) {
        return Promise.resolve(hit.bytes).then((bytes) => new Response(bytes, { status: 200, headers: { "Content-Type": hit.type } }));
      }
      return original.call(scope, input, init);
    };
    return () => { scope.fetch = original; table.clear(); };
  }

  // Imports checked JavaScript from a blob: URL, so the bytes run are the bytes hashed.
  async function importChecked(bytes) {
    const url = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
    try {
      return await env.importModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function numpyFailure(detail) {
    const where = resolved ? resolved.indexURL : "the runtime host";
    return new Error(`could not load the numpy package from ${where}` +
      (detail ? ` (${detail})` : "") + ". Check the connection and press Retry; if it keeps " +
      "failing, the site's runtime files are incomplete (tell the site's maintainer).");
  }

  async function start(initConfig = {}) {
    if (state !== "idle") return;
    state = "starting";
    stallMs = initConfig.stallMs || config.stallMs || DEFAULT_STALL_MS;
    const t0 = env.now();
    let tStage = t0;
    const mark = (name) => { const t = env.now(); timings[name] = Math.round(t - tStage); tStage = t; };
    stamp("start");
    try {
      progress("runtime", 0);
      const choice = initConfig.runtime || config.runtime || "auto";
      if (!RUNTIME_CHOICES.includes(choice)) {
        throw new Error(`the runtime source ${JSON.stringify(String(choice).slice(0, 80))} is not ` +
                        `accepted (only ${RUNTIME_CHOICES.join(", ")}): kvcalc runs only its own pinned runtime`);
      }
      resolved = await resolveRuntime({ baseURL: env.baseURL, choice, fetchFn: env.fetchFn });
      stamp("resolved");
      progress("runtime", 0.05);
      // Each file is used as soon as its own check passes: pyodide.asm.js is parsed while the
      // wasm still downloads, and loadPyodide starts at once, its wasm, standard library and
      // lock file answered from checked bytes as each arrives (a bare start overlaps these
      // steps the same way). Any failed download or check fails the stage through `all`.
      const downloads = fetchRuntimeFiles();
      // kvcalc's ~80 files only once the runtime's downloads are asked for: a server on
      // HTTP/1.1 gets 6 connections per host, and these are needed only after numpy
      const corePromise = fetchCore();
      corePromise.catch(() => {});   // handled when awaited in the core stage
      // one file's bytes, or the first failure among all files
      const checked = (name) => Promise.race([downloads.file[name], downloads.all.then(() => downloads.file[name])]);
      // pyodide.asm.js first: it defines globalThis._createPyodideModule, and loadPyodide
      // then does not load it again from indexURL.
      await importChecked(await checked("pyodide.asm.js"));
      const { loadPyodide } = await importChecked(await checked("pyodide.mjs"));
      if (state !== "starting") return;
      stamp("loader_imported");
      const allChecked = downloads.all.then((files) => {
        progress("runtime", (dl.fraction = Math.max(dl.fraction, 0.7)));
        return files;
      });
      await downloads.started;   // every file asked for (the wasm, stdlib and lock file after the loader's)
      const restoreFetch = serveCheckedFiles(downloads.file);
      try {
        [pyodide] = await Promise.all([
          loadPyodide({
            indexURL: resolved.indexURL,
            stdout: (s) => console.log("[py]", s),
            stderr: (s) => console.warn("[py]", s),
          }),
          allChecked,   // rejects at once when a file fails (the loader would wait for ever)
        ]);
      } finally {
        restoreFetch();
      }
      if (state !== "starting") return;
      stamp("pyodide_loaded");
      mark("runtime");
      progress("runtime", 1);

      progress("numpy", 0);
      dl.activity = `loading numpy from ${resolved.indexURL}`;
      const packages = resolved.config.pyodide.load;
      let loaded = 0;
      const packageErrors = [];
      try {
        await pyodide.loadPackage(packages, {
          messageCallback: (m) => { if (/^Loaded /.test(m)) progress("numpy", 0.7 * (++loaded) / packages.length); },
          errorCallback: (m) => { packageErrors.push(String(m)); console.warn("[pyodide]", m); },
          checkIntegrity: true,
        });
      } catch (err) {
        throw numpyFailure(firstLine(err && err.message ? err.message : err));
      }
      if (state !== "starting") return;
      const missing = packages.filter((p) => !(p in (pyodide.loadedPackages || {})));
      if (missing.length) throw numpyFailure(packageErrors.map(firstLine).join("; ") || `${missing.join(", ")} not loaded`);
      progress("numpy", 0.7);
      stamp("numpy_loaded");
      try {
        pyodide.pyimport("numpy").destroy();  // the first import costs ~0.35 s: pay it here
      } catch (err) {
        throw numpyFailure(lastLine(err && err.message ? err.message : err));
      }
      stamp("numpy_imported");
      mark("numpy");
      progress("numpy", 1);

      progress("core", 0);
      dl.activity = "loading kvcalc's Python files";
      const core = await corePromise;
      if (state !== "starting") return;
      writeCore(core);
      stamp("core_written");
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
      stamp("api_imported");
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
        marks,
        pyc: pycWritten,
      });
      for (const msg of queue.splice(0)) handle(msg);
    } catch (err) {
      fail(`${stage} stage failed: ${err && err.message ? err.message : err}`);
    }
  }

  function writeCore({ files, bridge, pyc }) {
    const FS = pyodide.FS;
    for (const [rel, text] of files) {
      const path = `${HOME}/${rel}`;
      FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
      FS.writeFile(path, text);
    }
    FS.mkdirTree(PY_ROOT);
    FS.writeFile(`${PY_ROOT}/kvcalc_bridge.py`, bridge);
    const sys = pyodide.pyimport("sys");
    // The pycs go where Python looks for them (<dir>/__pycache__/<name>.<tag>.pyc), only for
    // sources written above and only when built for this Python. They are checked-hash pycs:
    // Python uses one only when it matches its .py, else compiles that .py itself.
    const impl = sys.implementation;
    const tag = impl.cache_tag;
    impl.destroy();
    pycWritten = 0;
    if (pyc && pyc.cache_tag === tag) {
      const written = new Set([...files.map(([rel]) => rel), "py/kvcalc_bridge.py"]);
      for (const [rel, bytes] of pyc.files) {
        if (!written.has(rel) || !rel.endsWith(".py")) continue;
        const cut = rel.lastIndexOf("/");
        const dir = `${HOME}/${rel.slice(0, cut)}/__pycache__`;
        FS.mkdirTree(dir);
        FS.writeFile(`${dir}/${rel.slice(cut + 1, -3)}.${tag}.pyc`, bytes);
        pycWritten++;
      }
    }
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
    let files;                  // call only: Files read by slices where args say {"$file": i}
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
      if (msg.files !== undefined) {
        // Files (Blob handles, not their bytes) read by slices when Python asks: memory holds
        // one chunk, not the file (FileReaderSync: synchronous, workers only).
        if (!Array.isArray(msg.files) || !msg.files.every((f) => f instanceof Blob)
            || typeof FileReaderSync === "undefined") {
          post(errorReply(id, "protocol", "call: files must be an array of Files (in a worker)"));
          return;
        }
        files = msg.files.map((f) => ({
          size: f.size, name: f.name || "file",
          read: (offset, n) => new FileReaderSync().readAsArrayBuffer(f.slice(offset, offset + n)),
        }));
      }
    }
    let last = -1;
    let lastDetailAt = 0;
    // detail: a JSON string of a reading status (bytes read, requests/s), at most 4 posts a second
    // (JSON.parse of a small string per chunk: negligible next to parsing the chunk)
    const onProgress = (fraction, detail) => {
      const f = Number(fraction);
      if (typeof detail === "string") {      // the last one (fraction 1) always goes out
        const now = env.now();
        let d = null;
        try { d = JSON.parse(detail); } catch { return; }
        if (now - lastDetailAt < 250 && !(d && d.fraction >= 1)) return;
        lastDetailAt = now;
        post({ type: MSG.PROGRESS, id, fraction: f, detail: d });
        return;
      }
      if (f >= 1 || f - last >= PROGRESS_MIN_STEP) {
        last = f;
        post({ type: MSG.PROGRESS, id, fraction: f });
      }
    };
    const t = env.now();
    let text;
    try {
      const argsJson = JSON.stringify(args);
      text = files ? bridgeCall(fn, argsJson, onProgress, buffers ?? null, files)
        : buffers ? bridgeCall(fn, argsJson, onProgress, buffers)
        : bridgeCall(fn, argsJson, onProgress);
    } catch (err) {
      // The bridge catches Python exceptions; reaching here means Pyodide itself failed
      // (or the arguments could not be serialised).
      const message = String(err && err.message ? err.message : err);
      post(errorReply(id, "internal", message));
      if (/fatal error/i.test(message)) fail(`Pyodide failed: ${message}`);
      return;
    }
    let reply;
    try {
      reply = JSON.parse(text);
    } catch (err) {
      post(errorReply(id, "internal", `unreadable reply from Python: ${err.message}`));
      return;
    }
    reply.id = id;
    reply.type = MSG.REPLY;
    reply.ms = Math.round((env.now() - t) * 10) / 10;
    try {
      post(reply);
    } catch (err) {
      post(errorReply(id, "internal", `the result could not be sent to the page: ${err.message}`));
    }
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
    if (state === "ready") {
      try {
        run(msg);
      } catch (err) {   // exactly one reply per request, whatever happens
        post(errorReply(msg.id, "internal", String(err && err.message ? err.message : err)));
      }
    }
    else if (state === "failed") post(errorReply(msg.id, "fatal", "the Python runtime did not start"));
    else queue.push(msg);
  }

  return {
    handle,
    start,
    get state() { return state; },
  };
}
