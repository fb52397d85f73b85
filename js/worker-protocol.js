// The messages between the page (js/client.js) and the compute worker (worker.js).
// A small discriminated union on `type`; every request carries an `id` and gets exactly
// one `reply` with the same id. Errors travel in-band (ok: false), never as exceptions.
//
// page -> worker
//   {type: "init", config: {runtime?: "auto"|"local"|"cdn", stallMs?}}   (nothing else: never a URL)
//   {id, type: "compute",  request}            -> kvcalc.api.compute(request)
//   {id, type: "simulate", request}            -> kvcalc.api.simulate(request[, progress])
//   {id, type: "call", fn, args: [...]}        -> kvcalc.api.<fn>(*args), fn whitelisted by
//                                                 kvcalc.api.ENDPOINTS or __all__
// worker -> page
//   {type: "event:progress", stage: "runtime"|"numpy"|"core", fraction,    start-up
//    detail?: {received_bytes, total_bytes, elapsed_s, rate_bytes_per_s, file}}  (downloads)
//   {type: "event:progress", id, fraction}                                 a request's progress
//   {type: "event:ready", source: "local"|"cdn", indexURL, versions, endpoints,
//                         apiError, timings: {<stage>: ms, total: ms},
//                         marks: {<start-up step>: epoch ms},   (time line for the bench)
//                         pyc: number of compiled modules written (scripts/build_pyc.py)}
//   {type: "event:fatal", stage, message}                                  start-up failed
//   {id, type: "reply", ok: true, result, ms}
//   {id, type: "reply", ok: false, error: {field, message, kind, ...}}
// Requests are checked by the client before postMessage (checkDepth): a structure nested
// deeper than MAX_MESSAGE_DEPTH overflows the stack of the structured clone (a pasted
// config.json like {"a":{"a":...}} 5000 deep), so it is refused with kind "input" naming the
// field where the nesting goes too deep.
// error.kind: "input" (kvcalc.errors.InputError: also value, allowed, problem),
//             "internal" (a bug: also traceback), "protocol" (bad message or unknown fn),
//             "fatal" (the runtime never started), "crash" (the worker died; client only).

export const MSG = Object.freeze({
  INIT: "init",
  COMPUTE: "compute",
  SIMULATE: "simulate",
  CALL: "call",
  REPLY: "reply",
  PROGRESS: "event:progress",
  READY: "event:ready",
  FATAL: "event:fatal",
});

export const DEFAULT_STALL_MS = 20000;

export function errorReply(id, kind, message, extra = {}) {
  return { id, type: MSG.REPLY, ok: false, error: { field: null, message, kind, ...extra } };
}

// Where the worker script lives, relative to this module (js/ -> repo root).
export const WORKER_URL = new URL("../worker.js", import.meta.url);

// Deeper than any real request (a config.json nests 2-3 levels, a request 4-5).
export const MAX_MESSAGE_DEPTH = 64;
export const MAX_MESSAGE_NODES = 1_000_000;

// Walks value without recursion. Returns null when it is within the limits, else
// {field, depth, nodes}: field is the dotted key path (first MAX_PATH_KEYS keys) to where the
// nesting exceeds maxDepth ("model.hf_config.text_config.text_config…").
const MAX_PATH_KEYS = 6;
export function checkDepth(value, { maxDepth = MAX_MESSAGE_DEPTH, maxNodes = MAX_MESSAGE_NODES } = {}) {
  const stack = [[value, 0, []]];
  let nodes = 0;
  while (stack.length) {
    const [v, depth, path] = stack.pop();
    if (v === null || typeof v !== "object" || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) continue;
    if (++nodes > maxNodes) return { field: path.join("."), depth, nodes, problem: "too many values" };
    if (depth >= maxDepth) {
      const shown = path.slice(0, MAX_PATH_KEYS).join(".") + (path.length > MAX_PATH_KEYS ? "…" : "");
      return { field: shown, depth, nodes, problem: "nested too deeply" };
    }
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    for (const [k, x] of entries) {
      if (x !== null && typeof x === "object") {
        stack.push([x, depth + 1, path.length < MAX_PATH_KEYS + 1 ? [...path, k] : path]);
      }
    }
  }
  return null;
}
