// A model by Hugging Face id: the repo's public config.json fetched in the browser.
//
// Only an id that matches the Hub's repo-id grammar (isHfRepoId in js/state.js) is ever put
// into a URL, and only into https://huggingface.co/<owner>/<name>/resolve/main/config.json
// (each part URI-encoded as well); the CSP's connect-src names https://huggingface.co and
// nothing else outside this origin. Python parses the config (kvcalc.hfconfig, with its
// quantization_config) like a pasted one. No network: the message points to the paste and
// hand-entry paths, and the page keeps the last result.
//
// Results go to HF_CONFIGS / HF_STATUS (js/state.js); then onDone() re-checks the state.

import { HF_CONFIGS, HF_STATUS, isHfRepoId, parseConfigJson, CONFIG_JSON_MAX_CHARS } from "./state.js";
import { HF_MODEL } from "./params.js";

export const HUB_ORIGIN = "https://huggingface.co";
export const FETCH_TIMEOUT_MS = 15000;

export function configUrl(id) {
  if (!isHfRepoId(id)) throw new Error("not a Hugging Face repo id");
  const [owner, name] = id.split("/");
  return `${HUB_ORIGIN}/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/resolve/main/config.json`;
}

const fail = (key, params = {}) => ({ ok: false, status: { key, params } });

// id -> {ok: true, config} | {ok: false, status: {key, params}} (catalogue key of the reason).
export async function fetchConfig(id, { fetchFn = fetch, timeoutMs = FETCH_TIMEOUT_MS } = {}) {
  if (!isHfRepoId(id)) return fail("state.hf_id_invalid", { text: String(id).slice(0, 60) });
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let resp;
  try {
    resp = await fetchFn(configUrl(id), { credentials: "omit", redirect: "follow", signal: ctrl.signal,
                                          headers: { Accept: "application/json" } });
  } catch (err) {
    clearTimeout(timer);
    return fail(ctrl.signal.aborted ? "state.hf_timeout" : "state.hf_offline", { id });
  }
  try {
    // the Hub says which in X-Error-Code when it exposes it (RepoNotFound, GatedRepo, ...)
    const code = resp.headers.get("x-error-code") || "";
    if (resp.status === 401 || resp.status === 403) {
      return fail(code === "RepoNotFound" ? "state.hf_missing" : "state.hf_gated", { id });
    }
    if (resp.status === 404) return fail(code === "EntryNotFound" ? "state.hf_no_config" : "state.hf_missing", { id });
    if (!resp.ok) return fail("state.hf_http", { id, status: String(resp.status) });
    const declared = Number(resp.headers.get("content-length"));
    if (Number.isFinite(declared) && declared > CONFIG_JSON_MAX_CHARS) {
      return fail("state.hf_too_large", { id, max: CONFIG_JSON_MAX_CHARS });
    }
    const text = await resp.text();
    if (text.length > CONFIG_JSON_MAX_CHARS) return fail("state.hf_too_large", { id, max: CONFIG_JSON_MAX_CHARS });
    const parsed = parseConfigJson(text);
    if (parsed.error) return fail("state.hf_not_json", { id });
    return { ok: true, config: parsed.value };
  } catch (err) {
    return fail(ctrl.signal.aborted ? "state.hf_timeout" : "state.hf_offline", { id });
  } finally {
    clearTimeout(timer);
  }
}

// Watches the state: when the model is "by Hugging Face id" and the id is valid, not a preset
// and neither fetched nor failed yet, fetches it (once per id at a time), then calls onDone().
// getState() -> the page state; getOthers() -> more sets of values whose model the page needs
// (setup A of a comparison, js/compare.js: A computes once its config is here);
// presetIds: the model presets (never fetched).
export function createHfFetcher({ getState, getOthers = () => [], onDone, presetIds = [], fetchFn = fetch } = {}) {
  const inFlight = new Set();
  const start = (id) => {
    if (!isHfRepoId(id) || presetIds.includes(id) || HF_CONFIGS.has(id) || HF_STATUS.has(id) || inFlight.has(id)) return;
    inFlight.add(id);
    fetchConfig(id, { fetchFn }).then((r) => {
      inFlight.delete(id);
      if (r.ok) HF_CONFIGS.set(id, r.config);
      else HF_STATUS.set(id, r.status);
      onDone(id, r);
    });
  };
  return {
    inFlight,
    check() {
      const st = getState();
      for (const values of [st && st.values, ...getOthers()]) {
        if (values && values.model === HF_MODEL) start(values["model.hf_id"]);
      }
    },
    // forget a failure so the next check tries again (the "fetch again" button)
    forget(id) {
      HF_STATUS.delete(id);
    },
  };
}
