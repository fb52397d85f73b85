// The messages between the page (js/client.js) and the compute worker (worker.js).
// A small discriminated union on `type`; every request carries an `id` and gets exactly
// one `reply` with the same id. Errors travel in-band (ok: false), never as exceptions.
//
// page -> worker
//   {type: "init", config: {runtime?: "auto"|"local"|"cdn"|<indexURL>, stallMs?}}
//   {id, type: "compute",  request}            -> kvcalc.api.compute(request)
//   {id, type: "simulate", request}            -> kvcalc.api.simulate(request[, progress])
//   {id, type: "call", fn, args: [...]}        -> kvcalc.api.<fn>(*args), fn whitelisted by
//                                                 kvcalc.api.ENDPOINTS or __all__
// worker -> page
//   {type: "event:progress", stage: "runtime"|"numpy"|"core", fraction}   start-up
//   {type: "event:progress", id, fraction}                                 a request's progress
//   {type: "event:ready", source: "local"|"cdn"|"custom", indexURL, versions, endpoints,
//                         apiError, timings: {<stage>: ms, total: ms}}
//   {type: "event:fatal", stage, message}                                  start-up failed
//   {id, type: "reply", ok: true, result, ms}
//   {id, type: "reply", ok: false, error: {field, message, kind, ...}}
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

export const STAGES = Object.freeze(["runtime", "numpy", "core"]);

export const REQUEST_TYPES = Object.freeze([MSG.COMPUTE, MSG.SIMULATE, MSG.CALL]);

export const DEFAULT_STALL_MS = 20000;

export function errorReply(id, kind, message, extra = {}) {
  return { id, type: MSG.REPLY, ok: false, error: { field: null, message, kind, ...extra } };
}

// Where the worker script lives, relative to this module (js/ -> repo root).
export const WORKER_URL = new URL("../worker.js", import.meta.url);
