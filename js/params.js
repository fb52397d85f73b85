// The one parameter table. Every input of the page is a row here; the form controls
// (js/ui.js), the inline validation, the URL and localStorage state (js/state.js) and the
// request sent to Python (buildRequest in js/state.js) are all generated from it.
//
// Row fields
//   key      the request key path ("workload.gap_mean_s"); also the control's data-param and
//            the query-string name
//   group    the fieldset it sits in
//   label, unit, help: not here; from the page's catalogues (i18n/<lang>.json) under
//            param.<key>.label, param.<key>.unit (rows with a unit), param.<key>.help
//   kind     "number" (slider + number box, or a box alone with slider: false), "select",
//            "json" (a textarea: the pasted config.json, the engine log), "text" (one line of
//            text checked by js/state.js: a Hugging Face repo id, a layer pattern, a name)
//   share    false: not in links or localStorage (the pasted engine log)
//   default  the value of a fresh page; null for optional fields (nothing sent)
//   min, max, step, scale ("linear" | "log")   the slider's range (the box may go beyond it)
//   lo, hi, loOpen, hiOpen, integer            what is valid: NOT written here, filled in at load
//                                              from Python's one table of limits
//                                              (py/kvcalc/limits.json, generated from
//                                              py/kvcalc/limits.py); Python validates again and
//                                              its errors are shown at the field they name;
//                                              integer also where the table says page_integer
//                                              (the box takes whole numbers though Python accepts
//                                              fractions: token counts are means)
//   optional empty box = not sent (Python picks its default); placeholder: its catalogue key (default "ui.from_memory")
//   limit    the limits-table row when it is not the key (list fields: "tiers[].read_gb_per_s")
//   when     (values) => bool: sent and enabled only then (e.g. TTL only for eviction=ttl)
//   request  false: page state but not part of compute()'s request (simulation settings)
//   options  for selects: [value, ...], shown as opt.<key>.<value> from the catalogues (numeric
//            rows show the number); "presets:models" / "presets:gpus" are filled from
//            presets/*.json at start-up (model and GPU names are not translated)
//
// The trace tab's options are rows of this table too (TRACE_PARAMS, group "trace"; not in the
// calculator's form): key "trace." + the trace request's key path (kvcalc.trace.api), also their
// query-string name (?trace.cluster.instances=4); ranges from the trace.* rows of Python's
// table, the choices and defaults of their selects and check boxes from its `choices`. Their own
// fields: kind "bool" (a check box), label (catalogue key), labels (option -> catalogue key),
// words (texts a number row also takes: sampling "auto" / "exact"), aliases (older query names
// still read: ?trace.instances=), request (their request key path).

import { FLEET_GROUP, FLEET_PARAMS } from "./fleet-params.js";
import { LIMITS, LIMITS_URL, CHOICES, pageDefault } from "./limits.js";

export const GROUPS = [
  { id: "hardware" },   // legend: group.<id> in the catalogues
  { id: "architecture" },   // the model typed by hand (model = "manual"; js/model-panel.js)
  { id: "traffic" },
  { id: "cache" },
  FLEET_GROUP,          // instances, routing, CPU/SSD tiers, price (js/fleet-params.js)
  { id: "engine" },     // the engine's own view: paste its start-up log (js/model-panel.js shows the comparison)
  { id: "advanced" },
];

export const CUSTOM_MODEL = "custom";
export const MANUAL_MODEL = "manual";   // typed by hand: the "architecture" group (kvcalc.architecture)
export const HF_MODEL = "hf";           // by Hugging Face id: config.json fetched (js/hf-fetch.js)
const manual = (v) => v.model === MANUAL_MODEL;

export const PARAMS = [
  // ---------------------------------------------------------------- model & hardware
  { key: "model", group: "hardware", kind: "select",
    default: "meta-llama/Llama-3.1-8B", options: "presets:models" },
  { key: "model.hf_config", group: "hardware", kind: "json",
    default: "", when: (v) => v.model === CUSTOM_MODEL },
  { key: "model.hf_id", group: "hardware", kind: "text", request: false, maxLength: 200,
    default: "", when: (v) => v.model === HF_MODEL },
  { key: "gpu", group: "hardware", kind: "select",
    default: "h100-sxm-80gb", options: "presets:gpus" },
  { key: "tensor_parallel", group: "hardware", kind: "number",
    default: 1, min: 1, max: 64, step: 1, scale: "log" },
  { key: "gpu_memory_utilization", group: "hardware", kind: "number",
    default: 0.9, min: 0.3, max: 0.99, step: 0.01, scale: "linear" },
  { key: "kv_cache_dtype", group: "hardware", kind: "select",
    default: "auto",
    options: ["auto", "bf16", "fp16", "fp8", "int8", "fp4"] },
  // "auto": the checkpoint's own format (its quantization_config), nothing sent
  { key: "weight_dtype", group: "hardware", kind: "select", default: "auto",
    options: ["auto", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4", "nvfp4"] },
  { key: "weight_group_size", placeholder: "ui.ph_group_128", group: "hardware", kind: "number", default: null, optional: true,
    slider: false, when: (v) => v.weight_dtype === "int4" },
  { key: "context_tokens", placeholder: "ui.ph_mean_context", group: "hardware", kind: "number", default: null, optional: true,
    min: 256, max: 1048576, scale: "log" },
  { key: "runtime_reserve_gib", placeholder: "ui.ph_estimate", group: "hardware", kind: "number", default: null, optional: true,
    slider: false },

  // ---------------------------------------------------------------- model typed by hand
  // Defaults: Llama-3.1-8B's own numbers (its config.json), so the form starts from a real model.
  { key: "model.architecture.name", group: "architecture", kind: "text", default: "", optional: true,
    maxLength: 200, when: manual },
  { key: "model.architecture.num_layers", group: "architecture", kind: "number", default: 32,
    slider: false, when: manual },
  { key: "model.architecture.hidden_size", group: "architecture", kind: "number", default: 4096,
    slider: false, when: manual },
  { key: "model.architecture.num_attention_heads", group: "architecture", kind: "number", default: 32,
    slider: false, when: manual },
  { key: "model.architecture.attention", group: "architecture", kind: "select", default: "auto",
    options: ["auto", "mha", "gqa", "mqa", "mla"], when: manual },
  { key: "model.architecture.num_kv_heads", placeholder: "ui.ph_equal_heads", group: "architecture", kind: "number", default: 8,
    optional: true, slider: false, when: (v) => manual(v) && v["model.architecture.attention"] !== "mla" },
  { key: "model.architecture.head_dim", placeholder: "ui.ph_hidden_over_heads", group: "architecture", kind: "number", default: null,
    optional: true, slider: false, when: manual },
  { key: "model.architecture.kv_lora_rank", group: "architecture", kind: "number", default: 512,
    slider: false, when: (v) => manual(v) && v["model.architecture.attention"] === "mla" },
  { key: "model.architecture.qk_rope_head_dim", group: "architecture", kind: "number", default: 64,
    slider: false, when: (v) => manual(v) && v["model.architecture.attention"] === "mla" },
  { key: "model.architecture.layer_pattern", group: "architecture", kind: "text", default: "",
    optional: true, maxLength: 400, when: manual },
  { key: "model.architecture.window_tokens", placeholder: "ui.ph_none", group: "architecture", kind: "number", default: null,
    optional: true, slider: false, when: manual },
  { key: "model.architecture.linear_state_bytes_per_layer", placeholder: "ui.ph_none", group: "architecture", kind: "number",
    default: null, optional: true, slider: false, when: manual },
  { key: "model.architecture.params_total", group: "architecture", kind: "number", default: 8.03e9,
    slider: false, when: manual },
  { key: "model.architecture.params_active", placeholder: "ui.ph_equal_params", group: "architecture", kind: "number", default: null,
    optional: true, slider: false, when: manual },
  { key: "model.architecture.vocab_size", placeholder: "ui.ph_none", group: "architecture", kind: "number", default: 128256,
    optional: true, slider: false, when: manual },
  { key: "model.architecture.max_position_embeddings", placeholder: "ui.ph_none", group: "architecture", kind: "number",
    default: 131072, optional: true, slider: false, when: manual },

  // ---------------------------------------------------------------- traffic
  // scenario: picking one fills the traffic inputs with its preset (js/scenarios.js, from
  // py/kvcalc/scenarios.json); Python takes it as request key "scenario" (kvcalc.scenarios)
  { key: "scenario", group: "traffic", kind: "select", default: "chat",
    options: ["chat", "coding_agent", "rag", "recommender"] },
  { key: "recommender.candidates", group: "traffic", kind: "number",
    default: 100, min: 1, max: 10000, scale: "log", when: (v) => v.scenario === "recommender" },
  { key: "recommender.user_tokens", group: "traffic", kind: "number",
    default: 2000, min: 10, max: 100000, scale: "log", when: (v) => v.scenario === "recommender" },
  { key: "recommender.item_tokens", group: "traffic", kind: "number",
    default: 64, min: 1, max: 10000, scale: "log", when: (v) => v.scenario === "recommender" },
  { key: "workload.conversation_rate_per_s", group: "traffic", kind: "number",
    default: 1, min: 0.01, max: 1000, scale: "log" },
  { key: "workload.turns_mean", group: "traffic", kind: "number",
    default: 5, min: 1, max: 100, scale: "log" },
  { key: "workload.turns_distribution", group: "traffic", kind: "select",
    default: "geometric", options: ["geometric", "fixed"] },
  { key: "workload.gap_mean_s", group: "traffic", kind: "number",
    default: 60, min: 1, max: 10000, scale: "log" },
  { key: "workload.gap_distribution", group: "traffic", kind: "select",
    default: "exponential",
    options: ["exponential", "deterministic", "lognormal"] },
  { key: "workload.gap_lognormal_sigma", group: "traffic", kind: "number",
    default: 1, min: 0.05, max: 3, step: 0.05, scale: "linear",
    when: (v) => v["workload.gap_distribution"] === "lognormal" },
  { key: "workload.user_tokens_per_turn", group: "traffic", kind: "number",
    default: 200, min: 1, max: 100000, scale: "log" },
  { key: "workload.output_tokens_per_turn", group: "traffic", kind: "number",
    default: 300, min: 1, max: 100000, scale: "log" },
  { key: "workload.system_prompt_tokens", group: "traffic", kind: "number",
    default: 1000, min: 1, max: 100000, scale: "log" },
  { key: "workload.service_time_s", group: "traffic", kind: "number",
    default: 2, min: 0.1, max: 100, scale: "log" },

  // ---------------------------------------------------------------- cache
  { key: "cache.block_size_tokens", group: "cache", kind: "select",
    default: 16, numeric: true,
    options: [1, 8, 16, 32, 64, 128, 256] },
  { key: "cache.eviction", group: "cache", kind: "select", default: "lru",
    options: ["lru", "fifo", "ttl", "lfu"] },
  { key: "cache.ttl_s", group: "cache", kind: "number", default: 300,
    min: 1, max: 100000, scale: "log",
    when: (v) => v["cache.eviction"] === "ttl" },
  { key: "cache.capacity_tokens", group: "cache", kind: "number",
    default: null, optional: true, slider: false },

  // ---------------------------------------------------------------- fleet (js/fleet-params.js)
  ...FLEET_PARAMS,

  // ---------------------------------------------------------------- advanced
  { key: "hit_model", group: "advanced", kind: "select", default: "refined",
    options: ["refined", "che", "closed", "seed"] },
  { key: "target_token_hit_rate", group: "advanced", kind: "number",
    default: 0.8, min: 0.05, max: 0.99, step: 0.01, scale: "linear" },
  { key: "tornado_change_fraction", group: "advanced", kind: "number",
    default: 0.2, min: 0.05, max: 0.9, step: 0.05, scale: "linear" },
  // the pasted engine start-up log (kvcalc.enginelog): sent, never shared in links
  { key: "engine_log", group: "engine", kind: "json", default: "", share: false, maxLength: 2000000 },
  { key: "seed", group: "advanced", kind: "number", default: 1,
    slider: false },
  { key: "simulation.n_conversations", group: "advanced", kind: "number",
    default: 4000, min: 500, max: 5000, step: 1, scale: "log",
    request: false },
];

// ---------------------------------------------------------------- the trace tab's options

export const TRACE_GROUP = "trace";
export const TRACE_PREFIX = "trace.";
// A select or check box of Python's choices table: its choices and default from there.
const choice = (key) => ({ options: CHOICES[key] ? [...CHOICES[key].choices] : [],
                           default: CHOICES[key] ? CHOICES[key].default : null });
const traceRow = (row) => ({ group: TRACE_GROUP, request: row.key.slice(TRACE_PREFIX.length), ...row });
// option labels of the selects (catalogue keys); formats: kvt.fmt.<name>
const FORMAT_LABEL = (f) => `kvt.fmt.${f}`;
const ROUTING_LABEL = (r) => `kvt.routing.${r}`;
const labelsOf = (options, fn) => Object.fromEntries(options.map((o) => [o, fn(o)]));

export const TRACE_PARAMS = [
  { key: "trace.format", kind: "select", label: "kvt.format", ...choice("trace.format") },
  { key: "trace.block_size_tokens", kind: "number", label: "kvt.block_size", default: null, optional: true,
    placeholder: "kvt.fmt.auto", slider: false },
  { key: "trace.warmup_fraction", kind: "number", label: "kvt.warmup", default: pageDefault("trace.warmup_fraction"),
    slider: false },
  { key: "trace.full_blocks_only", kind: "bool", label: "kvt.full_blocks", ...choice("trace.full_blocks_only") },
  { key: "trace.skip_bad_lines", kind: "bool", label: "kvt.skip_bad", ...choice("trace.skip_bad_lines") },
  { key: "trace.keep_partial", kind: "bool", label: "kvt.opt.keep_partial", ...choice("trace.keep_partial") },
  // a word of Python's choices or a rate (its numeric row); the select offers these rates too,
  // and any other rate in the row's range may come from a link
  { key: "trace.sampling", kind: "number", label: "kvt.opt.sampling", words: choice("trace.sampling").options,
    default: choice("trace.sampling").default, options: [0.1, 0.01, 0.001], slider: false },
  { key: "trace.cluster.instances", kind: "number", label: "kvt.opt.instances",
    default: pageDefault("trace.cluster.instances"), slider: false, aliases: ["trace.instances"] },
  { key: "trace.cluster.routing", kind: "select", label: "kvt.opt.routing", aliases: ["trace.routing"],
    ...choice("trace.cluster.routing") },
  // the CPU tier below the GPU memory of the calculator (tiers[0], the gpu tier, is sent with it)
  { key: "trace.tiers[1].capacity_gib", limit: "trace.tiers[].capacity_gib", kind: "number",
    label: "kvt.opt.cpu_tier_gib", default: null, optional: true, placeholder: "kvt.opt.none", slider: false,
    aliases: ["trace.cpu_tier_gib"] },
].map(traceRow);
for (const p of TRACE_PARAMS) {
  if (p.key === "trace.format") p.labels = labelsOf(p.options, FORMAT_LABEL);
  if (p.key === "trace.cluster.routing") p.labels = labelsOf(p.options, ROUTING_LABEL);
}

// ---------------------------------------------------------------- valid ranges from Python

// The table written by `python -m kvcalc limits --json` (js/limits.js reads it).
export { LIMITS, LIMITS_URL };

for (const p of [...PARAMS, ...TRACE_PARAMS]) {
  const lim = LIMITS[p.limit ?? p.key];   // limit: a list field's row ("tiers[].capacity_gib")
  if (!lim || p.kind !== "number") continue;
  p.lo = lim.lo;
  p.hi = lim.hi === null ? Infinity : lim.hi;
  p.loOpen = lim.lo_open;
  p.hiOpen = lim.hi_open;
  p.integer = lim.integer || lim.page_integer === true;
}

export const PARAM_BY_KEY = new Map(PARAMS.map((p) => [p.key, p]));
// Every row of the table: the calculator's and the trace tab's.
export const ALL_PARAMS = [...PARAMS, ...TRACE_PARAMS];
export const TRACE_PARAM_BY_KEY = new Map(TRACE_PARAMS.map((p) => [p.key, p]));
// query-string name (the key or an older alias) -> trace row
export const TRACE_PARAM_BY_NAME = new Map(TRACE_PARAMS.flatMap((p) => [p.key, ...(p.aliases || [])].map((n) => [n, p])));

// Defaults as a plain {key: value} object.
export function defaultValues() {
  return Object.fromEntries(PARAMS.map((p) => [p.key, p.default]));
}

// The trace tab's defaults, {key: value}.
export function traceDefaults() {
  return Object.fromEntries(TRACE_PARAMS.map((p) => [p.key, p.default]));
}
