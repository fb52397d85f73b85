// The one parameter table. Every input of the page is a row here; the form controls
// (js/ui.js), the inline validation, the URL and localStorage state (js/state.js) and the
// request sent to Python (buildRequest in js/state.js) are all generated from it.
//
// Row fields
//   key      the request key path ("workload.gap_mean_s"); also the control's data-param and
//            the query-string name
//   group    the fieldset it sits in
//   label, unit, help (plain-words tooltip)
//   kind     "number" (slider + number box, or a box alone with slider: false), "select",
//            "json" (the pasted config.json textarea)
//   default  the value of a fresh page; null for optional fields (nothing sent)
//   min, max, step, scale ("linear" | "log")   the slider's range (the box may go beyond it)
//   lo, hi, loOpen, hiOpen, integer            what is valid: NOT written here, filled in at load
//                                              from Python's one table of limits
//                                              (py/kvcalc/limits.json, generated from
//                                              py/kvcalc/limits.py); Python validates again and
//                                              its errors are shown at the field they name
//   uiInteger  page-only: the slider and box take whole numbers though Python accepts
//            fractional values (token counts are means)
//   optional empty box = not sent (Python picks its default)
//   when     (values) => bool: sent and enabled only then (e.g. TTL only for eviction=ttl)
//   request  false: page state but not part of compute()'s request (simulation settings)
//   options  for selects: [[value, label], ...]; "presets:models" / "presets:gpus" are filled
//            from presets/*.json at start-up

export const GROUPS = [
  { id: "hardware", label: "Model & hardware" },
  { id: "traffic", label: "Traffic" },
  { id: "cache", label: "Cache" },
  { id: "advanced", label: "Advanced" },
];

export const CUSTOM_MODEL = "custom";

export const PARAMS = [
  // ---------------------------------------------------------------- model & hardware
  { key: "model", group: "hardware", kind: "select", label: "Model", unit: "",
    default: "meta-llama/Llama-3.1-8B", options: "presets:models",
    help: "The LLM being served. Its layer count, KV heads and head size set how many bytes one token of context occupies. Pick \"paste config.json\" to use any Hugging Face model." },
  { key: "model.hf_config", group: "hardware", kind: "json", label: "config.json", unit: "",
    default: "", when: (v) => v.model === CUSTOM_MODEL,
    help: "Paste the model's config.json from Hugging Face (the whole file). Only the architecture fields are read; nothing is uploaded." },
  { key: "gpu", group: "hardware", kind: "select", label: "GPU", unit: "",
    default: "h100-sxm-80gb", options: "presets:gpus",
    help: "The accelerator. Its memory, minus the weights and a runtime reserve, is the KV cache budget." },
  { key: "tensor_parallel", group: "hardware", kind: "number", label: "Tensor parallel", unit: "GPUs",
    default: 1, min: 1, max: 64, step: 1, scale: "log",
    help: "GPUs per model instance. Weights and KV heads are split across them, so each GPU holds a share of every token." },
  { key: "gpu_memory_utilization", group: "hardware", kind: "number", label: "GPU memory utilization",
    unit: "fraction", default: 0.9, min: 0.3, max: 0.99, step: 0.01, scale: "linear",
    help: "Share of GPU memory the server may use (vLLM's --gpu-memory-utilization), 0.9 = 90 %." },
  { key: "kv_cache_dtype", group: "hardware", kind: "select", label: "KV cache dtype", unit: "",
    default: "auto",
    options: [["auto", "auto (model dtype)"], ["bf16", "bf16 (16 bit)"], ["fp16", "fp16 (16 bit)"],
              ["fp8", "fp8 (8 bit)"], ["int8", "int8 (8 bit)"], ["fp4", "fp4 (4 bit)"]],
    help: "Number format of the cached keys and values. fp8 halves the bytes per token, so twice as many tokens fit." },

  // ---------------------------------------------------------------- traffic
  { key: "workload.conversation_rate_per_s", group: "traffic", kind: "number", label: "New conversations",
    unit: "per s", default: 1, min: 0.01, max: 1000, scale: "log",
    help: "How many new chat conversations start each second across this model instance." },
  { key: "workload.turns_mean", group: "traffic", kind: "number", label: "Turns per conversation",
    unit: "turns (mean)", default: 5, min: 1, max: 100, scale: "log",
    help: "Average number of user messages in a conversation. Every turn after the first can reuse the cached history." },
  { key: "workload.turns_distribution", group: "traffic", kind: "select", label: "Turns distribution", unit: "",
    default: "geometric", options: [["geometric", "geometric (varied)"], ["fixed", "fixed"]],
    help: "Whether conversation lengths vary (geometric, like real chat logs) or all have the mean length." },
  { key: "workload.gap_mean_s", group: "traffic", kind: "number", label: "Think time between turns",
    unit: "s (mean)", default: 60, min: 1, max: 10000, scale: "log",
    help: "Average time between the model's answer and the user's next message. Longer gaps give the cache more time to evict the conversation." },
  { key: "workload.gap_distribution", group: "traffic", kind: "select", label: "Think time distribution", unit: "",
    default: "exponential",
    options: [["exponential", "exponential"], ["deterministic", "fixed"], ["lognormal", "lognormal"]],
    help: "How think times vary around their mean." },
  { key: "workload.gap_lognormal_sigma", group: "traffic", kind: "number", label: "Lognormal sigma",
    unit: "", default: 1, min: 0.05, max: 3, step: 0.05, scale: "linear",
    when: (v) => v["workload.gap_distribution"] === "lognormal",
    help: "Spread of the lognormal think time (sigma of the log). Larger = more very short and very long gaps." },
  { key: "workload.user_tokens_per_turn", group: "traffic", kind: "number", label: "User tokens per turn",
    unit: "tokens", default: 200, min: 1, max: 100000, scale: "log", uiInteger: true,
    help: "Tokens in each new user message (new input the cache cannot have)." },
  { key: "workload.output_tokens_per_turn", group: "traffic", kind: "number", label: "Output tokens per turn",
    unit: "tokens", default: 300, min: 1, max: 100000, scale: "log", uiInteger: true,
    help: "Tokens the model writes per answer. They become part of the history the next turn reuses." },
  { key: "workload.system_prompt_tokens", group: "traffic", kind: "number", label: "Shared system prompt",
    unit: "tokens", default: 1000, min: 1, max: 100000, scale: "log", uiInteger: true,
    help: "Tokens of a system prompt shared by every conversation. It stays cached and is a hit for every request." },
  { key: "workload.service_time_s", group: "traffic", kind: "number", label: "Time per request",
    unit: "s", default: 2, min: 0.1, max: 100, scale: "log",
    help: "How long one request holds its KV blocks while it is being answered (prefill + decode)." },

  // ---------------------------------------------------------------- cache
  { key: "cache.block_size_tokens", group: "cache", kind: "select", label: "Block size", unit: "tokens",
    default: 16, numeric: true,
    options: [[1, "1"], [8, "8"], [16, "16"], [32, "32"], [64, "64"], [128, "128"], [256, "256"]],
    help: "Tokens per KV block (vLLM's --block-size). Only whole blocks are shared, so the tail of a prompt is never a hit." },
  { key: "cache.eviction", group: "cache", kind: "select", label: "Eviction", unit: "", default: "lru",
    options: [["lru", "LRU (least recently used)"], ["fifo", "FIFO"], ["ttl", "TTL (time to live)"],
              ["lfu", "LFU (shown as LRU)"]],
    help: "Which cached blocks go first when the cache is full. vLLM and SGLang use LRU." },
  { key: "cache.ttl_s", group: "cache", kind: "number", label: "TTL", unit: "s", default: 300,
    min: 1, max: 100000, scale: "log",
    when: (v) => v["cache.eviction"] === "ttl",
    help: "With TTL eviction, a block is dropped this long after its last use." },
  { key: "cache.capacity_tokens", group: "cache", kind: "number", label: "Capacity override", unit: "tokens",
    default: null, optional: true, slider: false, uiInteger: true,
    help: "Leave empty to derive the cache size from the model and GPU. Enter a number of tokens to use that instead (e.g. the \"GPU KV cache size\" vLLM logs)." },

  // ---------------------------------------------------------------- advanced
  { key: "hit_model", group: "advanced", kind: "select", label: "Hit-rate model", unit: "", default: "refined",
    options: [["refined", "refined (default)"], ["che", "Che approximation"], ["closed", "closed form"],
              ["seed", "seed (legacy) formula"]],
    help: "The formula behind the headline. refined is checked against the simulator; seed is the legacy formula, kept for comparison." },
  { key: "target_token_hit_rate", group: "advanced", kind: "number", label: "Target token hit rate",
    unit: "fraction", default: 0.8, min: 0.05, max: 0.99, step: 0.01, scale: "linear",
    help: "The hit rate you want; the page tells you how much KV memory per GPU reaches it. 0.8 = 80 %." },
  { key: "tornado_change_fraction", group: "advanced", kind: "number", label: "Tornado change",
    unit: "fraction (±)", default: 0.2, min: 0.05, max: 0.9, step: 0.05, scale: "linear",
    help: "How far each input is moved up and down in the tornado chart, 0.2 = ±20 %." },
  { key: "seed", group: "advanced", kind: "number", label: "Simulator seed", unit: "", default: 1,
    slider: false,
    help: "Random seed of the simulator. The same seed and inputs give the same simulated points." },
  { key: "simulation.n_conversations", group: "advanced", kind: "number", label: "Simulated conversations",
    unit: "", default: 4000, min: 500, max: 5000, step: 1, scale: "log",
    request: false,
    help: "Conversations per simulated point. More = tighter error bars, slower." },
];

// ---------------------------------------------------------------- valid ranges from Python

// The table written by `python -m kvcalc limits --json`. If it cannot be read the page
// still works: the boxes accept anything and Python's errors are shown at the field.
export const LIMITS_URL = new URL("../py/kvcalc/limits.json", import.meta.url).href;
export const LIMITS = await fetch(LIMITS_URL)
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .then((doc) => doc.limits || {})
  .catch((err) => { console.error(`kvcalc: could not read the limits table ${LIMITS_URL}: ${err.message}`); return {}; });

for (const p of PARAMS) {
  const lim = LIMITS[p.key];
  if (!lim || p.kind !== "number") continue;
  p.lo = lim.lo;
  p.hi = lim.hi === null ? Infinity : lim.hi;
  p.loOpen = lim.lo_open;
  p.hiOpen = lim.hi_open;
  p.integer = lim.integer || p.uiInteger === true;
}

export const PARAM_BY_KEY = new Map(PARAMS.map((p) => [p.key, p]));

// Defaults as a plain {key: value} object.
export function defaultValues() {
  return Object.fromEntries(PARAMS.map((p) => [p.key, p.default]));
}
