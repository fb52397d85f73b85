// The page's side of the compute worker.
//
//   const client = createClient({onProgress, onReady, onFatal});
//   const r = await client.compute(request);
//   // r.status: "ok" (r.result), "error" (r.error: {field, message, kind, ...}),
//   //           or "superseded" (a newer compute replaced this one before it was sent)
//
// At most one compute is in flight. While it runs, only the newest further compute is kept
// (older pending ones resolve as superseded), so dragging a slider never queues stale work.
// simulate() and call() are not superseded. Promises always resolve (errors in-band).
// call(fn, args, {buffers: [ArrayBuffer]}) moves large binary inputs (a trace file) to the
// worker without a string copy: args refer to them as {"$buffer": index}.
// Every promise settles, whatever happens: a request nested too deeply to post (see
// checkDepth) or one that postMessage cannot clone resolves at once as an error and never
// leaves the client busy.
// runtime: only "auto" | "local" | "cdn"; anything else is replaced by "auto".
// When the worker dies or start-up fails, onFatal({message, stage, retry}) is called and
// outstanding requests resolve with error.kind "crash"/"fatal"; retry() starts a new worker.

import { MSG, WORKER_URL, DEFAULT_STALL_MS, MAX_MESSAGE_DEPTH, checkDepth } from "./worker-protocol.js";
import { runtimeChoiceFromLocation, RUNTIME_CHOICES } from "./runtime-source.js";

export const FILE_PROTOCOL_MESSAGE =
  "kvcalc cannot run from a file:// URL (browsers block module workers there). " +
  "Serve the folder over HTTP: python scripts/serve.py, then open http://127.0.0.1:8000/";

export function createClient({
  onProgress = () => {},
  onReady = () => {},
  onFatal = () => {},
  runtime = runtimeChoiceFromLocation(),
  workerURL = WORKER_URL,
  stallMs = DEFAULT_STALL_MS,
} = {}) {
  if (!RUNTIME_CHOICES.includes(runtime)) runtime = "auto";
  let worker = null;
  let nextId = 1;
  let status = "starting";         // starting | ready | failed
  let readyInfo = null;
  let readyWaiters = [];
  const outstanding = new Map();   // id -> {resolve, onProgress, isCompute}
  let computeInFlight = false;
  let pendingCompute = null;       // {request, resolve}
  let silenceTimer = null;

  function settleAll(error) {
    for (const [id, entry] of outstanding) entry.resolve({ status: "error", id, error });
    outstanding.clear();
    if (pendingCompute) pendingCompute.resolve({ status: "error", error });
    pendingCompute = null;
    computeInFlight = false;
  }

  function fatal(message, stage = null, kind = "fatal") {
    if (status === "failed") return;
    status = "failed";
    clearTimeout(silenceTimer);
    const error = { field: null, kind, message };
    settleAll(error);
    for (const w of readyWaiters) w({ ok: false, error });
    readyWaiters = [];
    if (worker) worker.terminate();
    worker = null;
    onFatal({ message, stage, kind, retry });
  }

  // Backs up the worker's own watchdog: catches a worker that never says anything at all.
  function armSilenceTimer() {
    clearTimeout(silenceTimer);
    if (status !== "starting") return;
    silenceTimer = setTimeout(() => fatal(
      `the compute worker sent nothing for ${Math.round((stallMs + 5000) / 1000)} s while starting`,
      null), stallMs + 5000);
  }

  function onMessage(event) {
    const msg = event.data;
    armSilenceTimer();
    switch (msg.type) {
      case MSG.PROGRESS:
        if (msg.id !== undefined) {
          const entry = outstanding.get(msg.id);
          if (entry && entry.onProgress) entry.onProgress(msg.fraction, msg.detail);
        } else {
          onProgress({ stage: msg.stage, fraction: msg.fraction, detail: msg.detail });
        }
        break;
      case MSG.READY:
        status = "ready";
        clearTimeout(silenceTimer);
        readyInfo = msg;
        for (const w of readyWaiters) w({ ok: true, info: msg });
        readyWaiters = [];
        onReady(msg);
        break;
      case MSG.FATAL:
        fatal(msg.message, msg.stage);
        break;
      case MSG.REPLY: {
        const entry = outstanding.get(msg.id);
        if (!entry) break;
        outstanding.delete(msg.id);
        entry.resolve(msg.ok
          ? { status: "ok", id: msg.id, result: msg.result, ms: msg.ms }
          : { status: "error", id: msg.id, error: msg.error });
        if (entry.isCompute) releaseCompute();
        break;
      }
      default:
        break;
    }
  }

  function startWorker() {
    status = "starting";
    readyInfo = null;
    if (globalThis.location && globalThis.location.protocol === "file:") {
      queueMicrotask(() => fatal(FILE_PROTOCOL_MESSAGE, null));
      return;
    }
    try {
      worker = new Worker(workerURL, { type: "module", name: "kvcalc-compute" });
    } catch (err) {
      queueMicrotask(() => fatal(`cannot start the compute worker: ${err.message || err}`));
      return;
    }
    worker.onmessage = onMessage;
    worker.onerror = (event) => {
      event.preventDefault();
      const detail = event.message || "the worker script failed to load or threw";
      fatal(`the compute worker crashed: ${detail}`, null, "crash");
    };
    worker.onmessageerror = () => fatal("the compute worker sent an unreadable message", null, "crash");
    worker.postMessage({ type: MSG.INIT, config: { runtime, stallMs } });
    armSilenceTimer();
  }

  // The request (or call args) of msg, refused before postMessage when it is too deep to clone.
  function refusal(msg) {
    const payload = msg.type === MSG.CALL ? msg.args : msg.request;
    const bad = checkDepth(payload);
    if (!bad) return null;
    const where = bad.field || "the request";
    return {
      field: bad.field || null, kind: "input", value: null, problem: bad.problem,
      message: bad.problem === "nested too deeply"
        ? `nested too deeply at ${where} (more than ${MAX_MESSAGE_DEPTH} levels): not sent to Python`
        : `${where}: too many values to send to Python`,
    };
  }

  function send(msg, { onProgress: progressCb, isCompute = false, transfer = [] } = {}) {
    return new Promise((resolve) => {
      if (status === "failed") {
        resolve({ status: "error", error: { field: null, kind: "fatal", message: "the compute worker is not running; retry()" } });
        return;
      }
      const refused = refusal(msg);
      if (refused) {
        resolve({ status: "error", error: refused });
        if (isCompute) releaseCompute();
        return;
      }
      const id = nextId++;
      outstanding.set(id, { resolve, onProgress: progressCb, isCompute });
      try {
        worker.postMessage({ ...msg, id }, transfer);
      } catch (err) {
        // DataCloneError, a stack overflow in the clone, a detached buffer: answer in-band.
        outstanding.delete(id);
        resolve({ status: "error", id, error: {
          field: null, kind: "input", message: `the request could not be sent to the worker: ${err && err.message ? err.message : err}`,
        } });
        if (isCompute) releaseCompute();
      }
    });
  }

  // Sends one compute; when it settles, the newest pending one (if any) goes next. Never
  // leaves computeInFlight set after its promise has settled.
  function sendCompute({ request, resolve }) {
    computeInFlight = true;
    send({ type: MSG.COMPUTE, request }, { isCompute: true }).then(resolve);
  }

  function releaseCompute() {
    computeInFlight = false;
    if (pendingCompute && status !== "failed") {
      const next = pendingCompute;
      pendingCompute = null;
      sendCompute(next);
    }
  }

  function compute(request) {
    return new Promise((resolve) => {
      if (status === "failed") {
        resolve({ status: "error", error: { field: null, kind: "fatal", message: "the compute worker is not running; retry()" } });
        return;
      }
      if (!computeInFlight) {
        sendCompute({ request, resolve });
        return;
      }
      if (pendingCompute) pendingCompute.resolve({ status: "superseded" });
      pendingCompute = { request, resolve };
    });
  }

  function simulate(request, { onProgress: progressCb } = {}) {
    return send({ type: MSG.SIMULATE, request }, { onProgress: progressCb });
  }

  // buffers: ArrayBuffers moved (transferred, not copied) to the worker; they arrive in
  // Python as bytes wherever args hold {"$buffer": i}. The caller's buffers are detached.
  // files: File objects (handles, cloned without their bytes) that Python reads by slices
  // wherever args hold {"$file": i} (a trace of any size in bounded memory).
  function call(fn, args = [], { onProgress: progressCb, buffers, files } = {}) {
    if (files && files.length) {
      return send({ type: MSG.CALL, fn, args, files, ...(buffers && buffers.length ? { buffers } : {}) },
                  { onProgress: progressCb, transfer: buffers || [] });
    }
    if (buffers && buffers.length) {
      return send({ type: MSG.CALL, fn, args, buffers },
                  { onProgress: progressCb, transfer: buffers });
    }
    return send({ type: MSG.CALL, fn, args }, { onProgress: progressCb });
  }

  // Resolves {ok: true, info} once ready, or {ok: false, error} if start-up fails.
  function ready() {
    if (status === "ready") return Promise.resolve({ ok: true, info: readyInfo });
    if (status === "failed") return Promise.resolve({ ok: false, error: { kind: "fatal", message: "not running" } });
    return new Promise((resolve) => readyWaiters.push(resolve));
  }

  function terminate() {
    clearTimeout(silenceTimer);
    if (worker) worker.terminate();
    worker = null;
    settleAll({ field: null, kind: "crash", message: "the compute worker was stopped" });
    status = "failed";
  }

  function retry() {
    terminate();
    startWorker();
  }

  startWorker();
  return {
    compute, simulate, call, ready, retry, terminate,
    get status() { return status; },
    get info() { return readyInfo; },
    get busy() { return computeInFlight; },
  };
}
