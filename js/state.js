// Page state: parsing and checking what the user typed, the URL and localStorage, and the
// request sent to Python. Pure functions (no DOM), driven by the table in js/params.js.
//
// The state is {values, raw, errors}:
//   values  the last valid value of every parameter ({key: number | string | null})
//   raw     what is in each control now, as typed (kept when invalid)
//   errors  {key: {key, params}} for the controls whose text is not valid: a catalogue key
//           and its parameters (js/i18n.js renders it in the page's language)
// Only valid values reach the URL, localStorage and compute().

import { PARAMS, PARAM_BY_KEY, CUSTOM_MODEL, MANUAL_MODEL, HF_MODEL, defaultValues,
         TRACE_PARAMS, TRACE_PARAM_BY_NAME, TRACE_PREFIX, traceDefaults } from "./params.js";
import { checkDepth } from "./worker-protocol.js";
import { browserStorage } from "./storage.js";
import { FLEET_KEYS, fleetRequest } from "./fleet-params.js";

export const STORAGE_KEY = "kvcalc:v1";
// Query-string names that are not parameters but are understood: the tab, and runtime
// (read once at start-up by js/runtime-source.js: only auto/local/cdn; never written back).
// "a": setup A of a comparison, itself a query string of parameters (js/compare.js).
export const NON_PARAM_QUERY = ["runtime", "tab", "lang", "a"];
// The trace tab's options (?trace.<key path>=, rows TRACE_PARAMS of js/params.js): not calculator
// parameters; the page keeps them in its store (key "trace") and writes them into its links.
export const TRACE_QUERY_PREFIX = TRACE_PREFIX;
// Saved with the values in localStorage (not a parameter key).
const STORED_TAB = "$tab";

function fmtLimit(x) {
  return Math.abs(x) >= 1e5 ? x.toExponential().replace("e+", "e") : String(x);
}

const problem = (key, params = {}) => ({ key, params });

// text -> {value} or {error}. Selects check membership; numbers check finiteness and limits.
export function parseValue(param, text, options = null) {
  const s = text === null || text === undefined ? "" : String(text).trim();
  if (param.kind === "json") {
    const v = String(text ?? "");
    if (param.maxLength && v.length > param.maxLength) return { error: problem("state.text_too_long", { max: param.maxLength }) };
    return { value: v };
  }
  if (param.kind === "text") return parseText(param, s);
  if (param.kind === "bool") {                       // a check box: its value, or a link's text
    if (s === "true" || s === "1") return { value: true };
    if (s === "false" || s === "0") return { value: false };
    return { error: problem("state.not_a_choice", { text: s }) };
  }
  if (param.words && param.words.includes(s)) return { value: s };   // a number row's words ("auto")
  if (param.kind === "select") {
    const allowed = options || (Array.isArray(param.options) ? param.options.map((o) => String(o)) : null);
    if (allowed && !allowed.includes(s)) return { error: problem("state.not_a_choice", { text: s }) };
    return { value: param.numeric ? Number(s) : s };
  }
  if (s === "") {
    if (param.optional) return { value: null };
    return { error: problem("state.enter_number") };
  }
  // Number("") is 0 and Number("0x10") is 16: accept plain decimal notation only.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return { error: problem("state.not_a_number", { text: s }) };
  const x = Number(s);
  if (!Number.isFinite(x)) return { error: problem("state.not_finite") };
  if (param.loOpen ? !(x > param.lo) : !(x >= param.lo)) {
    const bound = `${param.loOpen ? ">" : "≥"} ${fmtLimit(param.lo)}`;
    if (x < 0 && param.lo >= 0) return { error: problem("state.negative", { bound }) };
    if (x === 0) return { error: problem("state.zero", { bound: `> ${fmtLimit(param.lo)}` }) };
    return { error: problem("state.below", { bound }) };
  }
  if (param.hiOpen ? !(x < param.hi) : x > param.hi) {
    return { error: problem(param.hiOpen ? "state.below" : "state.too_large",
                            param.hiOpen ? { bound: `< ${fmtLimit(param.hi)}` } : { hi: fmtLimit(param.hi) }) };
  }
  if (param.integer && !Number.isInteger(x)) return { error: problem("state.not_whole") };
  return { value: x };
}

// ---------------------------------------------------------------- one-line text fields

// A Hugging Face repo id, "owner/name": letters, digits, "-", "_", "." (no "--" or "..", not
// starting or ending with "-" or "."), at most 96 characters each side (the Hub's own rule).
// Only a text matching this reaches fetch() (js/hf-fetch.js): no "/", "?", "#", "%" or ".."
// can change the URL the page asks for.
const HF_PART = "[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?";
export const HF_REPO_ID = new RegExp(`^(?!.*(?:--|\\.\\.))${HF_PART}/${HF_PART}$`);
export const isHfRepoId = (s) => typeof s === "string" && HF_REPO_ID.test(s);

// A layer pattern typed by hand: "local*5, global" -> ["local" x5, "global"]; kinds global,
// local, linear (kvcalc.architecture: repeated over the layers from layer 0). null if malformed.
export const LAYER_PATTERN_MAX = 1024;
export function parseLayerPattern(text) {
  const s = String(text ?? "").trim();
  if (!s) return null;
  const out = [];
  for (const item of s.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(global|local|linear)(?:\*([0-9]{1,4}))?$/i.exec(item);
    if (!m) return null;
    const n = m[2] === undefined ? 1 : Number(m[2]);
    if (n < 1 || out.length + n > LAYER_PATTERN_MAX) return null;
    for (let i = 0; i < n; i++) out.push(m[1].toLowerCase());
  }
  return out.length ? out : null;
}

function parseText(param, s) {
  if (param.maxLength && s.length > param.maxLength) return { error: problem("state.text_too_long", { max: param.maxLength }) };
  if (s === "") return param.optional ? { value: param.default === null ? null : "" } : { value: "" };
  if (param.key === "model.hf_id" && !isHfRepoId(s)) return { error: problem("state.hf_id_invalid", { text: s }) };
  if (param.key.endsWith(".layer_pattern") && !parseLayerPattern(s)) return { error: problem("state.pattern_invalid", { text: s }) };
  return { value: s };
}

// A value as the text of its control and of the query string.
export function valueToText(param, value) {
  if (value === null || value === undefined) return "";
  return String(value);
}

export function initialState(values = defaultValues()) {
  const raw = {};
  for (const p of PARAMS) raw[p.key] = valueToText(p, values[p.key]);
  return { values: { ...values }, raw, errors: {} };
}

// Apply {key: text} from the controls. Returns a new state; never throws.
export function applyPatch(state, patch, selectOptions = {}) {
  const values = { ...state.values };
  const raw = { ...state.raw };
  const errors = { ...state.errors };
  for (const [key, text] of Object.entries(patch)) {
    const p = PARAM_BY_KEY.get(key);
    if (!p) continue;
    raw[key] = text === null || text === undefined ? "" : String(text);
    const r = parseValue(p, text, selectOptions[key]);
    if ("error" in r) errors[key] = r.error;
    else {
      delete errors[key];
      values[key] = r.value;
    }
  }
  // A custom model needs a parseable config.json: checked here so the message sits at the textarea.
  const jsonKey = "model.hf_config";
  if (values.model === CUSTOM_MODEL) {
    const parsed = parseConfigJson(raw[jsonKey]);
    if (parsed.error) errors[jsonKey] = parsed.error;
    else if (errors[jsonKey] !== undefined) delete errors[jsonKey];
  } else {
    delete errors[jsonKey];
  }
  // By Hugging Face id: a preset id is the preset; another id needs its fetched config.json
  // (js/hf-fetch.js fills HF_CONFIGS, or HF_STATUS with why it could not).
  const idKey = "model.hf_id";
  if (values.model === HF_MODEL) {
    const checked = parseValue(PARAM_BY_KEY.get(idKey), raw[idKey]);   // what a fetch said is re-read each time
    if ("error" in checked) errors[idKey] = checked.error;
    else delete errors[idKey];
  }
  if (values.model === HF_MODEL && errors[idKey] === undefined) {
    const id = values[idKey];
    const presets = selectOptions.model || [];
    if (!id) errors[idKey] = problem("state.hf_id_empty");
    else if (!presets.includes(id) && !HF_CONFIGS.has(id)) errors[idKey] = HF_STATUS.get(id) ?? problem("state.hf_fetching", { id });
  }
  return { values, raw, errors };
}

// config.json objects fetched from the Hub by repo id, and why a fetch failed ({key, params}).
// Written by js/hf-fetch.js; read by applyPatch and buildRequest.
export const HF_CONFIGS = new Map();
export const HF_STATUS = new Map();

// A real config.json is a few kB and nests 2-3 levels (text_config, rope_scaling, ...).
export const CONFIG_JSON_MAX_CHARS = 1_000_000;
export const CONFIG_JSON_MAX_DEPTH = 32;

export function parseConfigJson(text) {
  const s = String(text ?? "").trim();
  if (!s) return { error: problem("state.config_empty") };
  if (s.length > CONFIG_JSON_MAX_CHARS) {
    return { error: problem("state.config_too_long", { chars: s.length, max: CONFIG_JSON_MAX_CHARS }) };
  }
  let obj;
  try {
    obj = JSON.parse(s);
  } catch (err) {
    return { error: problem("state.config_not_json", { detail: err.message }) };
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return { error: problem("state.config_not_object") };
  const bad = checkDepth(obj, { maxDepth: CONFIG_JSON_MAX_DEPTH });
  if (bad) {
    return { error: problem("state.config_too_deep", { field: bad.field, max: CONFIG_JSON_MAX_DEPTH }) };
  }
  return { value: obj };
}

export function isRelevant(param, values) {
  return !param.when || param.when(values);
}

export function hasErrors(state) {
  return PARAMS.some((p) => state.errors[p.key] !== undefined && isRelevant(p, state.values));
}

function setPath(obj, path, value) {
  const parts = path.split(".");
  let o = obj;
  for (const part of parts.slice(0, -1)) o = (o[part] ??= {});
  o[parts.at(-1)] = value;
}

// The request for kvcalc.api.compute(): every relevant, non-empty parameter at its key path.
export function buildRequest(values, figures = ["curve"]) {
  const req = {};
  for (const p of PARAMS) {
    if (p.request === false || p.key === "model.hf_config" || FLEET_KEYS.has(p.key) || !isRelevant(p, values)) continue;
    const v = values[p.key];
    if (v === null || v === undefined) continue;
    if (p.key === "model" && v === CUSTOM_MODEL) {
      const parsed = parseConfigJson(values["model.hf_config"]);
      req.model = { hf_config: parsed.value ?? {} };
      continue;
    }
    if (p.key === "model" && v === MANUAL_MODEL) {
      req.model = { architecture: {} };   // the model.architecture.* rows below fill it
      continue;
    }
    if (p.key === "model" && v === HF_MODEL) {
      const id = values["model.hf_id"];
      req.model = HF_CONFIGS.has(id) ? { hf_config: HF_CONFIGS.get(id), name: id } : id;
      continue;
    }
    if (v === "" || (v === "auto" && (p.key === "weight_dtype" || p.key === "model.architecture.attention"))) continue;
    if (p.key.endsWith(".layer_pattern")) {
      setPath(req, p.key, parseLayerPattern(v));
      continue;
    }
    setPath(req, p.key, v);
  }
  Object.assign(req, fleetRequest(values, figures));   // the fleet's keys (js/fleet-params.js)
  req.workload ??= {};
  req.figures = [...figures];
  return req;
}

// The request for kvcalc.api.simulate(): the compute request at the given capacities.
export function buildSimulateRequest(values, capacitiesTokens) {
  const req = buildRequest(values, []);
  delete req.figures;
  req.simulation = { n_conversations: values["simulation.n_conversations"], capacities_tokens: capacitiesTokens };
  return req;
}

// ---------------------------------------------------------------- URL and localStorage

// Every parameter, by its key path; the seed included, so a shared link reproduces a run.
export function toQuery(values, keep = {}) {
  const q = new URLSearchParams();
  for (const p of PARAMS) {
    if (p.share === false) continue;                               // the pasted engine log
    if (!isRelevant(p, values) && p.kind === "json") continue;   // no stale config text in links
    // fields of another model source (a hand-entered architecture, a repo id) stay out of links
    if (!isRelevant(p, values) && (p.group === "architecture" || p.key === "model.hf_id" || values[p.key] === null)) continue;
    q.set(p.key, valueToText(p, values[p.key]));
  }
  for (const [k, v] of Object.entries(keep)) if (v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

// Query string -> {values, notices, present}: unknown names and invalid values are ignored
// (defaults kept) and listed in notices as {key, params} (catalogue key and its parameters).
export function fromQuery(search, base = defaultValues(), selectOptions = {}) {
  const q = new URLSearchParams(search);
  const values = { ...base };
  const notices = [];
  let present = false;
  for (const [name, text] of q) {
    if (NON_PARAM_QUERY.includes(name) || name.startsWith(TRACE_QUERY_PREFIX)) continue;
    const p = PARAM_BY_KEY.get(name);
    if (!p) {
      notices.push(problem("notice.unknown_param", { name: short(name) }));
      continue;
    }
    present = true;
    const r = parseValue(p, text, selectOptions[name]);
    if ("error" in r) notices.push(problem("notice.bad_value", { name: short(name), text: short(text), reason: r.error }));
    else values[name] = r.value;
  }
  return { values, notices, present };
}

// ---------------------------------------------------------------- the trace tab's options

// The trace options in a query string: {values, notices}, by the same parsing and notices as the
// calculator's parameters; an older name (?trace.instances=) is read as its row. Bad ones keep
// the default.
export function traceFromQuery(search, base = traceDefaults()) {
  const q = new URLSearchParams(search);
  const values = { ...base };
  const notices = [];
  for (const [name, text] of q) {
    if (!name.startsWith(TRACE_QUERY_PREFIX)) continue;
    const p = TRACE_PARAM_BY_NAME.get(name);
    if (!p) {
      notices.push(problem("notice.unknown_param", { name: short(name) }));
      continue;
    }
    const r = parseValue(p, text);
    if ("error" in r) notices.push(problem("notice.bad_value", { name: short(name), text: short(text), reason: r.error }));
    else values[p.key] = r.value;
  }
  return { values, notices };
}

// The trace options that differ from their defaults, as query entries {key: text}.
export function traceToQuery(values) {
  const out = {};
  for (const p of TRACE_PARAMS) {
    const v = values[p.key];
    if (v !== undefined && v !== p.default) out[p.key] = valueToText(p, v);
  }
  return out;
}

// search with its trace.* entries (older names too) replaced by the options' (others kept in order).
export function withTraceInQuery(search, values) {
  const q = new URLSearchParams(search);
  for (const name of [...q.keys()]) if (name.startsWith(TRACE_QUERY_PREFIX)) q.delete(name);
  for (const [k, v] of Object.entries(traceToQuery(values))) q.set(k, v);
  return q.toString();
}

function short(s) {
  const t = String(s);
  return t.length > 60 ? t.slice(0, 57) + "…" : t;
}

// values: the last values Python accepted; tab: the open chart tab (kept across reloads).
export function saveLocal(values, storage = browserStorage(), tab = null) {
  try {
    const stored = { ...values };
    for (const p of PARAMS) if (p.share === false) delete stored[p.key];
    if (tab) stored[STORED_TAB] = tab;
    storage.setItem(STORAGE_KEY, JSON.stringify(stored));
  } catch { /* private mode or full: the URL still holds the state */ }
}

// The tab saved with the values, or null (the caller checks it is a known tab).
export function loadLocalTab(storage = browserStorage()) {
  try {
    const stored = JSON.parse(storage.getItem(STORAGE_KEY) || "null");
    const tab = stored && typeof stored === "object" ? stored[STORED_TAB] : null;
    return typeof tab === "string" ? tab : null;
  } catch {
    return null;
  }
}

// Stored values, each checked like URL values (a stale or tampered entry falls back).
export function loadLocal(base = defaultValues(), selectOptions = {}, storage = browserStorage()) {
  let stored;
  try {
    stored = JSON.parse(storage.getItem(STORAGE_KEY) || "null");
  } catch {
    return null;
  }
  if (!stored || typeof stored !== "object") return null;
  const values = { ...base };
  for (const p of PARAMS) {
    if (!(p.key in stored)) continue;
    const r = parseValue(p, stored[p.key] === null ? "" : String(stored[p.key]), selectOptions[p.key]);
    if (!("error" in r)) values[p.key] = r.value;
  }
  return values;
}

export function clearLocal(storage = browserStorage()) {
  try { storage.removeItem(STORAGE_KEY); } catch { /* ignore */ }
}

// The parameter an error from Python belongs to: the longest key that prefixes error.field.
export function paramForField(field) {
  if (!field || typeof field !== "string") return null;
  let best = null;
  for (const p of PARAMS) {
    if ((field === p.key || field.startsWith(p.key + ".") || field.startsWith(p.key + "["))
        && (!best || p.key.length > best.key.length)) best = p;
  }
  return best;
}
