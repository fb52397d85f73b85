// The page's two languages. Every visible string comes from a catalogue, i18n/<lang>.json: a
// flat {key: template} object whose templates name their parameters in braces
// ("{field}: got {value}"). Python's messages arrive as {code, params} and are rendered from
// the "msg.<code>" entries (see renderMessage); tests/test_i18n.py checks both catalogues hold
// the same keys, that every key the page or Python uses exists and that none is unused.
//
// The DOM carries its keys, so a language switch re-translates in place, with no recompute:
//   data-i18n="key"                 textContent = t(key, data-i18n-params as JSON)
//   data-i18n-attr="title=k1;aria-label=k2"   attributes
//   data-i18n-template="key"        a sentence around live elements: the template's {slot}s
//                                   are the children marked data-slot="slot" (results, numbers)
// setText(node, key, params) writes and marks a node in one step.

import { browserStorage } from "./storage.js";

export const LANGS = ["en", "zh-CN"];
export const DEFAULT_LANG = "en";
export const LANG_QUERY = "lang";
export const LANG_STORAGE_KEY = "kvcalc:lang";

const current = { lang: DEFAULT_LANG, messages: {}, missing: new Set(), loaded: false };

// The language of a visit: ?lang= first, then the remembered choice, then the browser's
// languages (any zh* -> zh-CN, en* -> en), else English.

export function pickLang({ search = "", storage = null, languages = [] } = {}) {
  const q = new URLSearchParams(search).get(LANG_QUERY);
  if (LANGS.includes(q)) return q;
  let stored = null;
  try { stored = storage ? storage.getItem(LANG_STORAGE_KEY) : null; } catch { /* private mode */ }
  if (LANGS.includes(stored)) return stored;
  for (const l of languages || []) {
    const s = String(l).toLowerCase();
    if (s.startsWith("zh")) return "zh-CN";
    if (s.startsWith("en")) return "en";
  }
  return DEFAULT_LANG;
}

export function rememberLang(lang, storage = browserStorage()) {
  try { storage.setItem(LANG_STORAGE_KEY, lang); } catch { /* the URL still carries it */ }
}

export function catalogueURL(lang) {
  return new URL(`../i18n/${lang}.json`, import.meta.url).href;
}

// {lang, messages}; never rejects (an unreadable catalogue leaves the keys visible and says so
// in the console).
export async function loadCatalogue(lang) {
  if (!LANGS.includes(lang)) lang = DEFAULT_LANG;
  try {
    const r = await fetch(catalogueURL(lang));
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const doc = await r.json();
    return { lang, messages: doc.messages || {} };
  } catch (err) {
    console.error(`kvcalc: could not read the ${lang} catalogue: ${err.message}`);
    return { lang, messages: {} };
  }
}

export function setCatalogue({ lang, messages }) {
  current.lang = lang;
  current.messages = messages;
  current.missing.clear();
  current.loaded = true;
}

export const lang = () => current.lang;
export const has = (key) => Object.prototype.hasOwnProperty.call(current.messages, key);

// A parameter as text: numbers in the locale's digits (3 significant digits, separators),
// lists joined, strings as they are.
function paramText(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    const digits = a >= 100 ? 0 : a >= 1 ? 2 : 3;
    const opts = a !== 0 && a < 1 ? { maximumSignificantDigits: 3 } : { maximumFractionDigits: digits };
    return new Intl.NumberFormat(current.lang, opts).format(v);
  }
  if (Array.isArray(v)) return v.map(paramText).join(", ");
  if (typeof v === "object" && typeof v.key === "string") return t(v.key, v.params || {});   // a nested message
  return String(v);
}

// The template with its parameters filled in. A key missing from the catalogue shows as the
// key itself (and once in the console): a test keeps that from shipping.
export function t(key, params = {}) {
  const tpl = current.messages[key];
  if (tpl === undefined) {
    if (!current.missing.has(key)) { current.missing.add(key); console.error(`kvcalc: no "${key}" in the ${current.lang} catalogue`); }
    return key;
  }
  return tpl.replace(/\{([A-Za-z0-9_]+)\}/g, (m, name) => (name in params ? paramText(params[name]) : m));
}

// The template split at its {slots}: [text, slotName, text, slotName, ..., text].
export function templateParts(key) {
  return t(key).split(/\{([A-Za-z0-9_]+)\}/);
}

// A {key, params} message (the page's own problems and notices) as text.
export const tm = (m) => (m && typeof m === "object" ? t(m.key, m.params || {}) : String(m ?? ""));

export function setText(node, key, params = null) {
  node.dataset.i18n = key;
  if (params && Object.keys(params).length) node.dataset.i18nParams = JSON.stringify(params);
  else delete node.dataset.i18nParams;
  // before the first catalogue arrives the node keeps its text; translate() fills it then
  if (current.loaded) node.textContent = t(key, params || {});
  return node;
}

// An attribute from the catalogue; params (one object per node, shared by its attributes) go
// to data-i18n-args.
export function setAttr(node, attr, key, params = null) {
  const pairs = (node.dataset.i18nAttr || "").split(";").filter((s) => s && !s.startsWith(`${attr}=`));
  pairs.push(`${attr}=${key}`);
  node.dataset.i18nAttr = pairs.join(";");
  if (params) node.dataset.i18nArgs = JSON.stringify(params);
  node.setAttribute(attr, t(key, params || {}));
  return node;
}

function fillTemplate(node) {
  const slots = new Map([...node.querySelectorAll(":scope > [data-slot]")].map((c) => [c.dataset.slot, c]));
  const parts = templateParts(node.dataset.i18nTemplate);
  const children = parts.map((part, i) => (i % 2 ? (slots.get(part) || document.createTextNode(`{${part}}`))
                                                  : document.createTextNode(part)));
  node.replaceChildren(...children);
}

// Re-translate every marked node under root (the whole page on a language switch).
export function translate(root = document) {
  const all = (sel) => [...(root.matches && root.matches(sel) ? [root] : []), ...root.querySelectorAll(sel)];
  for (const node of all("[data-i18n]")) {
    let params = {};
    try { params = node.dataset.i18nParams ? JSON.parse(node.dataset.i18nParams) : {}; } catch { /* keep {} */ }
    node.textContent = t(node.dataset.i18n, params);
  }
  for (const node of all("[data-i18n-attr]")) {
    let params = {};
    try { params = node.dataset.i18nArgs ? JSON.parse(node.dataset.i18nArgs) : {}; } catch { /* keep {} */ }
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split("=");
      if (attr && key) node.setAttribute(attr.trim(), t(key.trim(), params));
    }
  }
  for (const node of all("[data-i18n-template]")) fillTemplate(node);
}

// ---------------------------------------------------------------- Python's messages

// A range from Python's params (lo, hi, lo_open, hi_open) in interval notation: "[1, 64]",
// "(0, ∞)"; null without bounds.
export function rangeText(p) {
  const has = (x) => typeof x === "number";
  if (!has(p.lo) && !has(p.hi)) return null;
  const left = has(p.lo) ? `${p.lo_open ? "(" : "["}${paramText(p.lo)}` : "(−∞";
  const right = has(p.hi) ? `${paramText(p.hi)}${p.hi_open ? ")" : "]"}` : "∞)";
  return `${left}, ${right}`;
}

// A Python parameter as text by its name's unit suffix (the project's naming rule):
// *_hit_rate, *_fraction and mfu are fractions shown as percent; *_gib and *_gib_per_gpu GiB;
// *_s seconds; anything else a plain number or string.
export function paramByName(name, v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return paramText(v);
  const fixed = (x, d) => new Intl.NumberFormat(current.lang, { minimumFractionDigits: d, maximumFractionDigits: d }).format(x);
  if (/(_hit_rate|_fraction)$|^mfu$/.test(name)) return t("unit.pct", { x: fixed(v * 100, 1) });
  if (/_gib(_per_gpu)?$/.test(name)) return t("unit.gib", { x: fixed(v, 2) });
  if (/_s$/.test(name)) return t("unit.s", { x: paramText(v) });
  return paramText(v);
}

// {code, params} from Python -> text in the current language. A template with parameters is
// the whole message; a plain one (an InputError's problem: "not a number") is followed by the
// value received and the allowed range or choices. withField prefixes the field path.
export function renderMessage(detail, { withField = false, fieldLabel = null } = {}) {
  if (!detail || typeof detail !== "object") return "";
  const code = detail.code || "invalid";
  const params = { ...(detail.params || {}) };
  const key = has(`msg.${code}`) ? `msg.${code}` : "msg.invalid";
  const tpl = current.messages[key] || "";
  let text;
  if (/\{[A-Za-z0-9_]+\}/.test(tpl)) {
    text = t(key, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, paramByName(k, v)])));
  } else {
    text = t(key);
    if (detail.value_detail && typeof detail.value_detail === "object" && detail.value_detail.code) {
      text = t("err.detail", { problem: text, detail: renderMessage(detail.value_detail) });   // the value is a text with its twin
    } else if ("value" in params && params.value !== null && params.value !== undefined) {
      text = t("err.got", { problem: text, value: typeof params.value === "string" ? params.value : paramText(params.value) });
    }
    const range = rangeText(params);
    if (range) text = t("err.allowed", { text, allowed: range });
    else if (Array.isArray(params.choices)) text = t("err.allowed", { text, allowed: params.choices.join(", ") });
  }
  const field = fieldLabel || params.field;
  return withField && field ? t("err.at_field", { field, text }) : text;
}
