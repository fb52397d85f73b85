// The compute worker (a module Web Worker): Pyodide + numpy + the kvcalc package.
// All logic is in js/worker-runtime.js; this file only wires it to the worker's global scope.
// The page talks to it through js/client.js; message shapes are in js/worker-protocol.js.
import { createWorkerRuntime } from "./js/worker-runtime.js";
// worker-runtime.js's own imports, named here too so they are fetched with it, not after it
import "./js/worker-protocol.js";
import "./js/runtime-source.js";

const runtime = createWorkerRuntime((msg, transfer) => self.postMessage(msg, transfer || []), {
  // The repo root, from this script's own URL, so the page may live anywhere below it.
  baseURL: new URL("./", import.meta.url).href,
});
self.onmessage = (event) => runtime.handle(event.data);
