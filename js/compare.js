// Compare A and B: pin the current setup as A, change inputs (B is the page as it is), see the
// headline numbers of both with their differences and both curves on one chart. Python
// computes A (request key compare_with) and the differences (result.compare); A lives in the
// shared URL as ?a=<A's own query string>, so a reload or a shared link shows both.

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, setText } from "./i18n.js";
import { toQuery, fromQuery, buildRequest, HF_CONFIGS } from "./state.js";
import { defaultValues, HF_MODEL } from "./params.js";
import { THEMES } from "./figures.js";

export const COMPARE_QUERY = "a";

// result.compare keys -> [label key, formatter of a value, formatter of a difference]
const signed = (f) => (x) => (x === null || x === undefined ? fmt.DASH : (x > 0 ? "+" : "") + f(x));
// rate rows: B - A in percentage points, as Python sends it (result.compare.difference_pct_points)
const ppDiff = (x) => t("res.cmp.pp", { x: fmt.fixed(x, 1) });
const ROWS = {
  token_hit_rate: ["res.token_hit_rate", fmt.pct, signed(ppDiff)],
  ideal_token_hit_rate: ["res.ideal", fmt.pct, signed(ppDiff)],
  request_hit_rate: ["res.request_hit_rate", fmt.pct, signed(ppDiff)],
  cache_capacity_tokens: ["res.cache_capacity", (x) => fmt.withUnit(x, "unit.tokens", fmt.int), signed((x) => fmt.withUnit(x, "unit.tokens", fmt.int))],
  cache_capacity_gib: ["res.cmp.cache_gib", fmt.gib, signed(fmt.gib)],
  "inverse.kv_gib_per_gpu": ["res.cmp.target_gib", fmt.gib, signed(fmt.gib)],
  "benefit.prefill_speedup": ["res.prefill_speedup", (x) => fmt.withUnit(x, "unit.times", (y) => fmt.fixed(y, 2)),
                              signed((x) => fmt.withUnit(x, "unit.times", (y) => fmt.fixed(y, 2)))],
  "benefit.prefill_ttft_with_cache_s": ["res.prefill_with_cache", fmt.seconds, signed(fmt.seconds)],
};

// Setup A's values from the address bar (?a=...), or null.
export function compareFromSearch(search, options = {}) {
  const text = new URLSearchParams(search).get(COMPARE_QUERY);
  if (!text) return null;
  return fromQuery(text, defaultValues(), options).values;
}

export const compareQuery = (valuesA) => (valuesA ? toQuery(valuesA) : null);

// The compute request with setup A attached (no figures: A's curve comes with the comparison).
export function withCompare(request, valuesA) {
  if (!valuesA) return request;
  // A Hugging Face model of A whose config.json is not fetched yet cannot be computed: B alone
  if (valuesA.model === HF_MODEL && !HF_CONFIGS.has(valuesA["model.hf_id"])) return request;
  const a = buildRequest(valuesA, []);
  delete a.figures;
  delete a.engine_log;   // never shared, and not a key of compare_with
  return { ...request, compare_with: a };
}

export function renderCompare(card, result) {
  const cmp = result && result.compare;
  const table = card.querySelector("table");
  const body = card.querySelector("tbody");
  card.querySelector("#compare-empty").hidden = Boolean(cmp);
  table.hidden = !cmp;
  if (!cmp) { body.replaceChildren(); return; }
  body.replaceChildren(...cmp.keys.filter((k) => k in ROWS).map((k) => {
    const [label, f, d] = ROWS[k];
    const cell = (which, value, g) => el("td", { "data-cmp": `${which}:${k}`, ...(typeof value === "number" ? { "data-value": String(value) } : {}),
                                                 text: g(value) });
    return el("tr", {}, setText(el("th", { scope: "row" }), label),
              cell("a", cmp.a[k], f), cell("b", cmp.b[k], f), cell("d", k in (cmp.difference_pct_points || {}) ? cmp.difference_pct_points[k] : cmp.difference[k], d));
  }));
}

// A's curve on the hit-rate-vs-memory chart (same axis as B's: GiB when Python gave it).
export function addCompareTrace(name, fig, result, themeName) {
  const c = result && result.compare && result.compare.a_curve;
  if (name !== "curve" || !c || !c.token_hit_rate) return fig;
  const useGib = fig.data.length && fig.data[0].x && result.figures && result.figures.curve
    && Array.isArray(result.figures.curve.capacity_gib) && Array.isArray(c.capacity_gib);
  const theme = THEMES[themeName] || THEMES.light;
  fig.data.push({ type: "scatter", mode: "lines", name: t("res.cmp.curve_a"), x: useGib ? c.capacity_gib : c.capacity_tokens,
                  y: c.token_hit_rate, line: { color: theme.target, dash: "dash", width: 2 } });
  return fig;
}
