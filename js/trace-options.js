// The trace tab's options: one table behind the controls, the URL (?trace.<name>=...) and the
// request sent to Python (kvcalc.trace.api.trace_analyze). Pure functions, no DOM.
//
// Numeric ranges come from Python's table of limits (py/kvcalc/limits.json, rows "trace.*",
// read by js/params.js); Python checks every value again and its errors name the field.

import { LIMITS, pageDefault } from "./limits.js";
import { TRACE_QUERY_PREFIX as QUERY_PREFIX } from "./state.js";

export { QUERY_PREFIX };
export const FORMATS = ["auto", "mooncake", "bailian", "generic"];   // texts: kvt.fmt.<name>
export const ROUTINGS = ["affinity", "random", "round_robin", "pooled"];
export const ROUTING_LABELS = { affinity: "kvt.routing.affinity", random: "kvt.routing.random",
                                round_robin: "kvt.routing.round_robin", pooled: "kvt.routing.pooled" };
export const SAMPLING_LABELS = { auto: "kvt.sampling.auto", exact: "kvt.sampling.exact" };   // rates: "{x} %"
// Sampling choices of the select; any other rate in (0, 1] may come from the URL.
export const SAMPLING_CHOICES = ["auto", "exact", "0.1", "0.01", "0.001"];

// name: the control's name and the query name after "trace."; limit: row of py/kvcalc/limits.py,
// whose default a number option takes (none: null, Python's "auto" or "no tier")
const number = (name, limit) => ({ name, kind: "number", limit, default: pageDefault(limit) });
export const OPTIONS = [
  { name: "format", kind: "select", choices: FORMATS, default: "auto" },
  number("block_size_tokens", "trace.block_size_tokens"),
  number("warmup_fraction", "trace.warmup_fraction"),
  { name: "full_blocks_only", kind: "bool", default: true },
  { name: "skip_bad_lines", kind: "bool", default: false },
  { name: "keep_partial", kind: "bool", default: false },
  { name: "sampling", kind: "sampling", limit: "trace.sampling", default: "auto" },
  number("instances", "trace.cluster.instances"),
  { name: "routing", kind: "select", choices: ROUTINGS, default: "affinity" },
  number("cpu_tier_gib", "trace.tiers[].capacity_gib"),
];
export const OPTION_BY_NAME = new Map(OPTIONS.map((o) => [o.name, o]));

// "auto" samples above this many MiB of text here: the row's page_default in Python's table
// (the CLI's default is larger: a tab's wasm heap is smaller than the CLI's memory); null when
// the table is not read (Python's own default then)
export const PAGE_AUTO_SAMPLE_ABOVE_MIB = pageDefault("trace.sampling_auto_above_mib");

export const defaults = () => Object.fromEntries(OPTIONS.map((o) => [o.name, o.default]));

function inLimit(limit, x) {
  const lim = LIMITS[limit];
  if (!lim) return true;                          // no table: Python checks
  if (lim.integer && !Number.isInteger(x)) return false;
  if (lim.lo_open ? !(x > lim.lo) : !(x >= lim.lo)) return false;
  if (lim.hi !== null && (lim.hi_open ? !(x < lim.hi) : !(x <= lim.hi))) return false;
  return true;
}

export function limitText(limit) {
  const lim = LIMITS[limit];
  if (!lim) return "";
  return `${lim.lo_open ? "(" : "["}${lim.lo}, ${lim.hi === null ? "∞" : lim.hi}${lim.hi_open ? ")" : "]"}`;
}

// text -> {value} | {error: {key, params}} (catalogue key of the problem)
export function parseOption(opt, text) {
  const s = text === null || text === undefined ? "" : String(text).trim();
  if (opt.kind === "bool") {
    if (s === "true" || s === "1") return { value: true };
    if (s === "false" || s === "0") return { value: false };
    return { error: { key: "kvt.opt_error.bool", params: { text: s } } };
  }
  if (opt.kind === "select") {
    return opt.choices.includes(s) ? { value: s } : { error: { key: "kvt.opt_error.choice", params: { text: s } } };
  }
  if (opt.kind === "sampling" && (s === "auto" || s === "exact")) return { value: s };
  if (s === "" && opt.default === null) return { value: null };
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) {
    return { error: { key: "kvt.opt_error.number", params: { text: s } } };
  }
  const x = Number(s);
  if (!inLimit(opt.limit, x)) return { error: { key: "kvt.opt_error.range", params: { text: s, range: limitText(opt.limit) } } };
  return { value: x };
}

export const optionText = (v) => (v === null || v === undefined ? "" : String(v));

// The options in a query string: {values, notices} (bad ones keep the default, listed in notices)
export function optionsFromQuery(search, base = defaults()) {
  const q = new URLSearchParams(search);
  const values = { ...base };
  const notices = [];
  for (const [name, text] of q) {
    if (!name.startsWith(QUERY_PREFIX)) continue;
    const opt = OPTION_BY_NAME.get(name.slice(QUERY_PREFIX.length));
    if (!opt) { notices.push({ key: "kvt.url_unknown", params: { name: name.slice(0, 60) } }); continue; }
    const r = parseOption(opt, text);
    if ("error" in r) notices.push({ key: "kvt.url_bad", params: { name, text: String(text).slice(0, 60) } });
    else values[opt.name] = r.value;
  }
  return { values, notices };
}

// The options that differ from their defaults, as query entries {"trace.<name>": text}.
export function optionsToQuery(values) {
  const out = {};
  for (const o of OPTIONS) {
    const v = values[o.name];
    if (v !== undefined && v !== o.default) out[QUERY_PREFIX + o.name] = optionText(v);
  }
  return out;
}

// search with its trace.* entries replaced by the options' (other entries kept in order).
export function withOptionsInQuery(search, values) {
  const q = new URLSearchParams(search);
  for (const name of [...q.keys()]) if (name.startsWith(QUERY_PREFIX)) q.delete(name);
  for (const [k, v] of Object.entries(optionsToQuery(values))) q.set(k, v);
  return q.toString();
}

// The request's option keys (kvcalc.trace.api) from the values and the calculator's memory
// context ({kv_bytes_per_token, kv_capacity_tokens} or null).
export function requestFrom(values, ctx) {
  const req = {
    format: values.format,
    full_blocks_only: values.full_blocks_only,
    skip_bad_lines: values.skip_bad_lines,
    keep_partial: values.keep_partial,
    sampling: values.sampling === "auto" || values.sampling === "exact" ? values.sampling : Number(values.sampling),
    model_curve: true,
  };
  if (PAGE_AUTO_SAMPLE_ABOVE_MIB !== null) req.sampling_auto_above_mib = PAGE_AUTO_SAMPLE_ABOVE_MIB;
  if (values.block_size_tokens !== null) req.block_size_tokens = values.block_size_tokens;
  if (values.warmup_fraction !== null) req.warmup_fraction = values.warmup_fraction;
  if (ctx && ctx.kv_bytes_per_token) req.kv_bytes_per_token = ctx.kv_bytes_per_token;
  if (ctx && ctx.kv_capacity_tokens) req.operating_capacity_tokens = ctx.kv_capacity_tokens;
  const fleet = values.instances > 1 || values.cpu_tier_gib !== null;
  if (fleet) req.cluster = { instances: values.instances, routing: values.routing };
  if (values.cpu_tier_gib !== null && ctx && ctx.kv_capacity_tokens) {
    req.tiers = [{ name: "gpu", capacity_tokens: ctx.kv_capacity_tokens },
                 { name: "cpu", capacity_gib: values.cpu_tier_gib }];
  }
  return req;
}
