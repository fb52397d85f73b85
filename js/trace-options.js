// The trace tab's request (kvcalc.trace.api.trace_analyze) from its options. Pure functions, no DOM.
//
// The options are rows of the page's one parameter table (TRACE_PARAMS in js/params.js: keys
// "trace." + the request's key path, ranges, choices and defaults from Python's table of limits);
// js/state.js parses them (parseValue), reads and writes them in links (traceFromQuery,
// traceToQuery, withTraceInQuery) like every other parameter. Python checks every value again and
// its errors name the field.

import { TRACE_PARAMS } from "./params.js";
import { pageDefault } from "./limits.js";
import { t } from "./i18n.js";
import * as fmt from "./format.js";

// "auto" samples above this many MiB of text here: the row's page_default in Python's table
// (the CLI's default is larger: a tab's wasm heap is smaller than the CLI's memory); null when
// the table is not read (Python's own default then)
export const PAGE_AUTO_SAMPLE_ABOVE_MIB = pageDefault("trace.sampling_auto_above_mib");

export const ROUTING_LABEL = (routing) => `kvt.routing.${routing}`;

// The text of a sampling choice: a word ("auto", "exact") or a rate ("sampled at 1 %").
export function samplingText(v) {
  if (v === "auto") return t("kvt.sampling.auto", { mib: fmt.int(PAGE_AUTO_SAMPLE_ABOVE_MIB) });
  if (v === "exact") return t("kvt.sampling.exact");
  const x = Number(v);
  return t("kvt.sampling.rate", { pct: fmt.pct(x, x < 0.01 ? 2 : 0) });
}

const set = (v) => v !== null && v !== undefined;

// The request's option keys from the values ({row key: value}) and the calculator's memory
// context ({kv_bytes_per_token, kv_capacity_tokens} or null). Rows go to their request key
// path; the fleet (cluster, tiers) only when asked for: one instance and no tier send nothing.
export function requestFrom(values, ctx) {
  const req = { model_curve: true };
  for (const p of TRACE_PARAMS) {
    if (p.request.startsWith("cluster.") || p.request.startsWith("tiers[")) continue;
    if (set(values[p.key])) req[p.request] = values[p.key];
  }
  if (PAGE_AUTO_SAMPLE_ABOVE_MIB !== null) req.sampling_auto_above_mib = PAGE_AUTO_SAMPLE_ABOVE_MIB;
  if (ctx && ctx.kv_bytes_per_token) req.kv_bytes_per_token = ctx.kv_bytes_per_token;
  if (ctx && ctx.kv_capacity_tokens) req.operating_capacity_tokens = ctx.kv_capacity_tokens;
  const instances = values["trace.cluster.instances"];
  const cpuGib = values["trace.tiers[1].capacity_gib"];
  if (instances > 1 || set(cpuGib)) req.cluster = { instances, routing: values["trace.cluster.routing"] };
  if (set(cpuGib) && ctx && ctx.kv_capacity_tokens) {
    req.tiers = [{ name: "gpu", capacity_tokens: ctx.kv_capacity_tokens }, { name: "cpu", capacity_gib: cpuGib }];
  }
  return req;
}
