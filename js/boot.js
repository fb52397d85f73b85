// Starts the compute worker as soon as the page is parsed, before app.js's module graph
// (about 25 files) has loaded: index.html runs this module first (its own <script>, with a
// graph of three small files), and app.js imports the same instance and attaches its
// handlers. Start-up events that arrive before app.js attaches are kept and replayed in order.
// Measured (bench/bench_page_load.py --breakdown, busy 2-core machine): the page created
// the worker 540-950 ms after navigation when app.js did it, against about 100 ms for a
// bare Pyodide page.

import { createClient } from "./client.js";
import { readRuntimeParam } from "./runtime-source.js";

// ?runtime= as the page was opened (app.js removes it from the address bar, and says so
// when a value was refused): only auto/local/cdn ever reach the worker.
export const runtimeParam = readRuntimeParam();

const early = [];        // [handler name, argument] before attach()
let handlers = null;
const relay = (name) => (arg) => {
  if (handlers) handlers[name](arg);
  else early.push([name, arg]);
};

export const client = createClient({
  onProgress: relay("onProgress"),
  onReady: relay("onReady"),
  onFatal: relay("onFatal"),
  runtime: runtimeParam.choice,
});

// app.js: {onProgress, onReady, onFatal}; the events so far are replayed at once.
export function attachClient(h) {
  handlers = h;
  for (const [name, arg] of early.splice(0)) h[name](arg);
  return client;
}
