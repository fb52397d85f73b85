// Number formatting for display. Formatting only: every number arrives from Python in the
// unit it is shown in (GiB, tokens, seconds, fractions shown as percent). Digits follow the
// page's language (Intl.NumberFormat); a number with its unit is a catalogue template
// ("unit.gib": "{x} GiB"), so units read naturally in each language.

import { lang, t } from "./i18n.js";

const cache = new Map();
function nf(min, max) {
  const k = `${lang()}:${min}:${max}`;
  if (!cache.has(k)) cache.set(k, new Intl.NumberFormat(lang(), { minimumFractionDigits: min, maximumFractionDigits: max }));
  return cache.get(k);
}

export const DASH = "–";
const missing = (x) => x === null || x === undefined || (typeof x === "number" && !Number.isFinite(x));

// A fraction in [0, 1] as a percentage with one decimal: 0.6359 -> "63.6 %" (en), "63.6%" (zh-CN).
export function pct(x, digits = 1) {
  if (missing(x)) return DASH;
  return t("unit.pct", { x: nf(digits, digits).format(x * 100) });
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
  return missing(x) ? DASH : t("unit.gib", { x: fixed(x, 2) });
}

// A quantity with sensible precision for its size: 3 significant digits, separators above 1000.
export function num(x) {
  if (missing(x)) return DASH;
  const a = Math.abs(x);
  if (a >= 1000) return nf(0, 0).format(x);
  if (a >= 100) return nf(0, 1).format(x);
  if (a >= 1) return nf(0, 2).format(x);
  if (a === 0) return nf(0, 0).format(0);
  return new Intl.NumberFormat(lang(), { maximumSignificantDigits: 3 }).format(x);
}

export function seconds(x) {
  return missing(x) ? DASH : t("unit.s", { x: num(x) });
}

// x with a unit key of the catalogue ("unit.tokens": "{x} tokens").
export function withUnit(x, unitKey, f = num) {
  return missing(x) ? DASH : t(unitKey, { x: f(x) });
}

// Slider value text: at most 3 significant digits, no separators (it goes back into a box).
export function sliderText(x, integer = false) {
  if (missing(x)) return "";
  if (integer) return String(Math.round(x));
  return String(Number(x.toPrecision(3)));
}
