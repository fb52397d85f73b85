// Where Pyodide and Plotly come from, and the check that they are the pinned bytes.
// Versions, CDN URLs and digests are pinned in runtime.json only. The local copy in runtime/
// (built by scripts/build_runtime.sh; absent on GitHub Pages) wins when present: offline use,
// tests, corporate firewalls. Otherwise the pinned CDN. Used by the worker (Pyodide) and by
// the page (Plotly), so both pick the same source.
//
// Only our code runs: the source is one of the fixed words below, never a URL or a path
// (an old `?runtime=<url>` made the worker import another origin's pyodide.mjs), and every
// Pyodide file is downloaded, hashed and compared with runtime.json's sha384 before it is
// run (fetchVerified); Plotly's <script> carries Subresource Integrity. The local copy is
// checked the same way as the CDN's (same digests, one code path; it also catches a stale
// runtime/ build).

const LOCAL_DIR = "runtime/";

// The only values the runtime choice may take (page query string, client, worker init).
export const RUNTIME_CHOICES = Object.freeze(["auto", "local", "cdn"]);

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

// choice: "auto" (local if present, else CDN), "local" or "cdn". Anything else throws.
// Returns {source, indexURL, plotlyURL, plotlyIntegrity, integrity, config}; URLs absolute;
// integrity: {absolute URL of each Pyodide file: "sha384-..."}.
export async function resolveRuntime({ baseURL, choice = "auto", fetchFn = fetch, config } = {}) {
  if (!RUNTIME_CHOICES.includes(choice)) {
    throw new Error(`runtime source ${JSON.stringify(String(choice).slice(0, 80))} is not accepted ` +
                    `(only ${RUNTIME_CHOICES.join(", ")})`);
  }
  const base = new URL(".", baseURL).href;
  const [cfg, hasLocal] = await Promise.all([
    config ? Promise.resolve(config) : loadRuntimeConfig(base, fetchFn),
    choice === "auto" ? localRuntimeAvailable(base, fetchFn) : Promise.resolve(choice === "local"),
  ]);
  const local = new URL(LOCAL_DIR, base).href;
  const source = hasLocal ? "local" : "cdn";
  const indexURL = hasLocal ? local : cfg.pyodide.cdn;
  const integrity = {};
  for (const [name, sri] of Object.entries(cfg.pyodide.integrity || {})) {
    integrity[new URL(name, indexURL).href] = sri;
  }
  const plotly = cfg.plotly;
  return {
    source,
    indexURL,
    plotlyURL: source === "cdn" ? plotly.cdn : new URL(plotly.file, local).href,
    plotlyIntegrity: plotly.integrity,
    integrity,
    config: cfg,
  };
}

// The runtime choice from the page's query string: {choice, refused}. choice is one of
// RUNTIME_CHOICES (default auto); refused is true when a value was given but not accepted.
export function readRuntimeParam(loc = globalThis.location) {
  try {
    const v = new URL(loc.href).searchParams.get("runtime");
    if (v === null || v === "") return { choice: "auto", refused: false };
    if (RUNTIME_CHOICES.includes(v)) return { choice: v, refused: false };
    return { choice: "auto", refused: true };
  } catch {
    return { choice: "auto", refused: false };
  }
}

export function runtimeChoiceFromLocation(loc = globalThis.location) {
  return readRuntimeParam(loc).choice;
}

// ---------------------------------------------------------------- integrity

const SRI_ALGS = { sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" };

export async function sriOf(bytes, alg = "sha384") {
  const digest = await crypto.subtle.digest(SRI_ALGS[alg], bytes);
  let bin = "";
  for (const b of new Uint8Array(digest)) bin += String.fromCharCode(b);
  return `${alg}-${btoa(bin)}`;
}

export class IntegrityError extends Error {}

// Downloads url, reporting onBytes(received, total) per chunk, and returns
// {bytes: Uint8Array, contentType} only when the bytes hash to `expected` ("sha384-...").
export async function fetchVerified(url, expected, { fetchFn = fetch, onBytes = () => {}, check } = {}) {
  if (!expected) throw new IntegrityError(`${url}: no digest pinned in runtime.json; refusing to run it`);
  let resp;
  try {
    resp = await fetchFn(url, { cache: "no-cache", credentials: "omit" });
  } catch (err) {
    throw new Error(`cannot download ${url} (${err && err.message ? err.message : err}): check the ` +
                    "network connection, a firewall, proxy or ad blocker, then press Retry");
  }
  if (!resp.ok) throw new Error(`cannot download ${url}: HTTP ${resp.status}`);
  const contentType = resp.headers.get("content-type") || "";
  if (check) check(resp, contentType);
  const total = Number(resp.headers.get("content-length")) || 0;
  let bytes;
  if (resp.body && resp.body.getReader) {
    const reader = resp.body.getReader();
    const chunks = [];
    let received = 0;
    for (;;) {
      let step;
      try {
        step = await reader.read();
      } catch (err) {
        throw new Error(`the download of ${url} broke off after ${received} bytes ` +
                        `(${err && err.message ? err.message : err}): press Retry`);
      }
      const { done, value } = step;
      if (done) break;
      chunks.push(value);
      received += value.length;
      onBytes(received, total);
    }
    bytes = new Uint8Array(received);
    let at = 0;
    for (const c of chunks) { bytes.set(c, at); at += c.length; }
  } else {
    bytes = new Uint8Array(await resp.arrayBuffer());
    onBytes(bytes.length, total);
  }
  const [alg] = expected.split("-", 1);
  if (!(alg in SRI_ALGS)) throw new IntegrityError(`${url}: unknown digest ${expected}`);
  const got = await sriOf(bytes, alg);
  if (got !== expected) {
    throw new IntegrityError(
      `${url} failed the integrity check: its ${alg} is ${got}, runtime.json pins ${expected}. ` +
      "The file was changed on the server or in transit; kvcalc refuses to run it.");
  }
  return { bytes, contentType };
}

// ---------------------------------------------------------------- Plotly (page only)

// Add Plotly's <script> (with Subresource Integrity) and resolve to window.Plotly.
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
