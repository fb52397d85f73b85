// Where Pyodide and Plotly come from. Versions and CDN URLs are pinned in runtime.json only.
// The local copy in runtime/ (built by scripts/build_runtime.sh; absent on GitHub Pages)
// wins when present: offline use, tests, corporate firewalls. Otherwise the pinned CDN.
// Used by the worker (Pyodide) and by the page (Plotly), so both pick the same source.

const LOCAL_DIR = "runtime/";

export async function loadRuntimeConfig(baseURL, fetchFn = fetch) {
  const url = new URL("runtime.json", baseURL);
  const resp = await fetchFn(url);
  if (!resp.ok) throw new Error(`cannot load ${url}: HTTP ${resp.status}`);
  return resp.json();
}

// A HEAD request for runtime/pyodide.mjs: 200 means the local copy is there.
export async function localRuntimeAvailable(baseURL, fetchFn = fetch) {
  try {
    const resp = await fetchFn(new URL(LOCAL_DIR + "pyodide.mjs", baseURL), {
      method: "HEAD", cache: "no-store",
    });
    return resp.ok;
  } catch {
    return false;
  }
}

// choice: "auto" (local if present, else CDN), "local", "cdn", or an absolute URL of a
// directory holding the Pyodide runtime files (ending in "/").
// Returns {source, indexURL, plotlyURL, plotlyIntegrity, config}; all URLs absolute.
export async function resolveRuntime({ baseURL, choice = "auto", fetchFn = fetch, config } = {}) {
  const base = new URL(".", baseURL).href;
  const [cfg, hasLocal] = await Promise.all([
    config ? Promise.resolve(config) : loadRuntimeConfig(base, fetchFn),
    choice === "auto" ? localRuntimeAvailable(base, fetchFn) : Promise.resolve(choice === "local"),
  ]);
  const local = new URL(LOCAL_DIR, base).href;
  let source;
  let indexURL;
  if (choice !== "auto" && choice !== "local" && choice !== "cdn") {
    source = "custom";
    indexURL = new URL(choice.endsWith("/") ? choice : choice + "/", base).href;
  } else if (hasLocal) {
    source = "local";
    indexURL = local;
  } else {
    source = "cdn";
    indexURL = cfg.pyodide.cdn;
  }
  const plotly = cfg.plotly;
  return {
    source,
    indexURL,
    plotlyURL: source === "cdn" ? plotly.cdn : new URL(plotly.file, source === "custom" ? indexURL : local).href,
    plotlyIntegrity: plotly.integrity,
    config: cfg,
  };
}

// The runtime choice from the page's query string (?runtime=cdn|local|<url>), default auto.
export function runtimeChoiceFromLocation(loc = globalThis.location) {
  try {
    return new URL(loc.href).searchParams.get("runtime") || "auto";
  } catch {
    return "auto";
  }
}

// Page only: add Plotly's <script> (with Subresource Integrity) and resolve to window.Plotly.
export function loadPlotly(resolved, doc = document) {
  if (globalThis.Plotly) return Promise.resolve(globalThis.Plotly);
  return new Promise((resolve, reject) => {
    const s = doc.createElement("script");
    s.src = resolved.plotlyURL;
    s.integrity = resolved.plotlyIntegrity;
    s.crossOrigin = "anonymous";
    s.onload = () => (globalThis.Plotly ? resolve(globalThis.Plotly)
      : reject(new Error(`${resolved.plotlyURL} loaded but defined no Plotly`)));
    s.onerror = () => reject(new Error(`cannot load Plotly from ${resolved.plotlyURL}`));
    doc.head.appendChild(s);
  });
}
