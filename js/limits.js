// Python's one table of limits as the page reads it (py/kvcalc/limits.json, written by
// `python -m kvcalc limits --json` from py/kvcalc/limits.py): LIMITS (key path -> row: lo, hi,
// open ends, integer, page_integer, default, page_default), CHOICES (key path -> {choices,
// default} of the trace tab's selects and check boxes) and PAGE_TIERS (the Fleet inputs' tier
// rows). If the file cannot be read the page still works: the boxes accept anything, no tier
// rows are offered, and Python's errors are shown at the field.

export const LIMITS_URL = new URL("../py/kvcalc/limits.json", import.meta.url).href;

const DOC = await fetch(LIMITS_URL)
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
  .catch((err) => { console.error(`kvcalc: could not read the limits table ${LIMITS_URL}: ${err.message}`); return {}; });

export const LIMITS = DOC.limits || {};
export const CHOICES = DOC.choices || {};
export const PAGE_TIERS = Array.isArray(DOC.page_tiers) ? DOC.page_tiers : [];

// The page's value of a row's default (its page_default when the page differs from the API), or null.
export function pageDefault(key) {
  const lim = LIMITS[key];
  if (!lim) return null;
  return lim.page_default ?? lim.default ?? null;
}
