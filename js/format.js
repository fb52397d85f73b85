// Number formatting for display. Formatting only: every number arrives from Python in the
// unit it is shown in (GiB, tokens, seconds, fractions shown as percent).

const cache = new Map();
function nf(min, max) {
  const k = `${min}:${max}`;
  if (!cache.has(k)) cache.set(k, new Intl.NumberFormat("en-US", { minimumFractionDigits: min, maximumFractionDigits: max }));
  return cache.get(k);
}

export const DASH = "–";
const missing = (x) => x === null || x === undefined || (typeof x === "number" && !Number.isFinite(x));

// A fraction in [0, 1] as a percentage with one decimal: 0.6359 -> "63.6 %".
export function pct(x, digits = 1) {
  if (missing(x)) return DASH;
  return `${(x * 100).toFixed(digits)} %`;
}

// Whole numbers with thousands separators: 450352 -> "450,352".
export function int(x) {
  if (missing(x)) return DASH;
  return nf(0, 0).format(x);
}

// Fixed decimals with separators: gib(54.9757) -> "54.98".
export function fixed(x, digits = 2) {
  if (missing(x)) return DASH;
  return nf(digits, digits).format(x);
}

export function gib(x) {
  return missing(x) ? DASH : `${fixed(x, 2)} GiB`;
}

// A quantity with sensible precision for its size: 3 significant digits, separators above 1000.
export function num(x) {
  if (missing(x)) return DASH;
  const a = Math.abs(x);
  if (a >= 1000) return nf(0, 0).format(x);
  if (a >= 100) return nf(0, 1).format(x);
  if (a >= 1) return nf(0, 2).format(x);
  if (a === 0) return "0";
  return Number(x.toPrecision(3)).toString();
}

export function seconds(x) {
  return missing(x) ? DASH : `${num(x)} s`;
}

export function withUnit(x, unit, f = num) {
  return missing(x) ? DASH : `${f(x)} ${unit}`;
}

// Slider value text: at most 3 significant digits, no separators (it goes back into a box).
export function sliderText(x, integer = false) {
  if (missing(x)) return "";
  if (integer) return String(Math.round(x));
  return String(Number(x.toPrecision(3)));
}
