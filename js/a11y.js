// Keyboard, screen-reader and touch behaviour shared by every control of the page, installed
// once for the whole document (installA11y) so that sections added later inherit it:
//
// * Range sliders. A slider marked data-scale="log" (its position is log10 of the value) moves
//   by 1-2-5 steps on the arrow keys (…, 20, 50, 100, 200, …: the ticks of the page's log
//   axes) and by a decade on Page Up/Down; a slider marked data-integer="true" whose range
//   holds at most INTEGER_STEP_MAX_COUNT whole values moves by 1 (tensor parallel: 1, 2, 3,
//   …). Linear sliders keep the browser's own steps (their step attribute). The key moves
//   the slider and fires its "input" event, so the owner's handler (js/ui.js) writes the value
//   to its box as for a drag. The step sizes are page behaviour; the values a slider can take
//   (its min and max) come from js/params.js and Python's limits.
// * aria-valuetext: the slider's value in words with its unit ("60 s (mean)", "1 GPUs"), from
//   the catalogue (data-unit-key names the unit's key), so a screen reader does not read the
//   log10 position. setValueText(slider) after a programmatic move; a language switch
//   (the kvcalc:lang event) refreshes every slider.
// * Tooltips: any element with data-tip (a help "?" button) shows its text in one floating box
//   on hover, keyboard focus and tap; the box is placed inside the viewport (below the element,
//   above it when there is no room, shifted sideways to fit) and outside every scrolling panel,
//   so nothing cuts it off; Escape closes it. The text is also in the element's accessible
//   description (aria-describedby), so the box itself is hidden from screen readers.
// * Plotly's toolbar in the page's language: plotlyLocale(Plotly) registers a locale built from
//   the catalogue (chart.modebar.*) and makes it every chart's default (Plotly.setPlotConfig).

import { t, lang, has } from "./i18n.js";
import * as fmt from "./format.js";

// ---------------------------------------------------------------- slider steps (pure)

export const INTEGER_STEP_MAX_COUNT = 100;
const MANTISSAS = [1, 2, 5];
const TOL = 1e-9;

const tidy = (x) => Number(x.toPrecision(12));

// The 1-2-5 value next to x: above it (dir > 0) or below it (dir < 0).
export function next125(x, dir) {
  const e = Math.floor(Math.log10(x));
  const cands = [];
  for (let k = e - 1; k <= e + 1; k++) for (const m of MANTISSAS) cands.push(tidy(m * 10 ** k));
  if (dir > 0) return cands.find((c) => c > x * (1 + TOL));
  return cands.reverse().find((c) => c < x * (1 - TOL));
}

// The value a key takes a slider to, or null when the key is not ours (the browser's own
// behaviour stays) or the slider is already at that end.
//   s: {min, max, scale: "log" | "linear", integer}   (values, not positions)
export function stepTarget(s, x, key) {
  const log = s.scale === "log";
  const byOne = s.integer && s.max - s.min <= INTEGER_STEP_MAX_COUNT;
  if (!log && !byOne) return null;
  const up = key === "ArrowUp" || key === "ArrowRight" || key === "PageUp";
  const page = key === "PageUp" || key === "PageDown";
  let y;
  if (key === "Home") y = s.min;
  else if (key === "End") y = s.max;
  else if (!["ArrowUp", "ArrowRight", "ArrowDown", "ArrowLeft", "PageUp", "PageDown"].includes(key)) return null;
  else if (page) y = log ? tidy(up ? x * 10 : x / 10) : x + (up ? 10 : -10);
  else if (byOne) y = Math.round(x) + (up ? 1 : -1);
  else y = next125(x, up ? 1 : -1);
  if (y === undefined || !Number.isFinite(y)) return null;
  y = Math.min(s.max, Math.max(s.min, y));
  if (s.integer) y = Math.min(s.max, Math.max(s.min, Math.round(y)));
  if (key !== "Home" && key !== "End" && (up ? y <= x * (1 + TOL) : y >= x * (1 - TOL))) return null;
  return y;
}

// ---------------------------------------------------------------- sliders in the DOM

const isLog = (slider) => slider.dataset.scale === "log";
const posToValue = (slider, pos) => (isLog(slider) ? 10 ** Number(pos) : Number(pos));
const valueToPos = (slider, x) => (isLog(slider) ? Math.log10(x) : x);

function sliderSpec(slider) {
  return { min: posToValue(slider, slider.min), max: posToValue(slider, slider.max),
           scale: isLog(slider) ? "log" : "linear", integer: slider.dataset.integer === "true" };
}

// The slider's value (not its position), tidied to 12 digits (10 ** log10(50) is 50.00000000000001).
export function sliderValue(slider) {
  const x = tidy(posToValue(slider, slider.value));
  return slider.dataset.integer === "true" ? Math.round(x) : x;
}

// aria-valuetext: "<value> <unit>" in the page's language.
export function setValueText(slider, x = sliderValue(slider)) {
  const num = fmt.num(x);
  const unitKey = slider.dataset.unitKey;
  slider.setAttribute("aria-valuetext", unitKey && has(unitKey) ? t("ui.slider_value", { value: num, unit: t(unitKey) }) : num);
}

function onSliderKey(ev) {
  const slider = ev.target;
  if (!(slider instanceof HTMLInputElement) || slider.type !== "range" || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const y = stepTarget(sliderSpec(slider), sliderValue(slider), ev.key);
  if (y === null) {
    // ours but at the end: swallow the key (the browser would move a log slider by its tiny step)
    if (isLog(slider) && /^(Arrow|Page)/.test(ev.key)) ev.preventDefault();
    return;
  }
  ev.preventDefault();
  slider.value = String(valueToPos(slider, y));
  setValueText(slider, y);
  slider.dispatchEvent(new Event("input", { bubbles: true }));
  slider.dispatchEvent(new Event("change", { bubbles: true }));
}

// ---------------------------------------------------------------- tooltips

const TIP_MARGIN_PX = 8;
const TIP_GAP_PX = 6;
const HIDE_DELAY_MS = 120;

function tooltips(doc) {
  const tip = doc.createElement("div");
  tip.className = "tooltip";
  tip.id = "tooltip";
  tip.setAttribute("aria-hidden", "true");   // the same text is each owner's aria-describedby
  tip.hidden = true;
  doc.body.append(tip);
  let owner = null;
  let hideTimer = 0;

  function place() {
    if (!owner) return;
    const view = doc.documentElement;
    const vw = view.clientWidth;
    const vh = view.clientHeight;
    const r = owner.getBoundingClientRect();
    tip.style.maxWidth = `${Math.max(0, Math.min(288, vw - 2 * TIP_MARGIN_PX))}px`;
    tip.style.left = "0px";
    tip.style.top = "0px";
    const w = tip.offsetWidth;
    const h = tip.offsetHeight;
    let left = r.left + r.width / 2 - w / 2;
    left = Math.max(TIP_MARGIN_PX, Math.min(left, vw - TIP_MARGIN_PX - w));
    let top = r.bottom + TIP_GAP_PX;
    if (top + h > vh - TIP_MARGIN_PX && r.top - TIP_GAP_PX - h >= TIP_MARGIN_PX) top = r.top - TIP_GAP_PX - h;
    top = Math.max(TIP_MARGIN_PX, Math.min(top, vh - TIP_MARGIN_PX - h));
    tip.style.left = `${Math.round(left)}px`;
    tip.style.top = `${Math.round(top)}px`;
  }
  function show(el) {
    clearTimeout(hideTimer);
    const text = el.getAttribute("data-tip");
    if (!text) return;
    owner = el;
    tip.textContent = text;   // an attribute's text, never HTML
    tip.hidden = false;
    place();
  }
  function hide() {
    clearTimeout(hideTimer);
    owner = null;
    tip.hidden = true;
  }
  const later = () => { clearTimeout(hideTimer); hideTimer = setTimeout(hide, HIDE_DELAY_MS); };
  const tipOf = (node) => (node instanceof Element ? node.closest("[data-tip]") : null);

  doc.addEventListener("mouseover", (ev) => {
    if (tip.contains(ev.target)) { clearTimeout(hideTimer); return; }   // the box itself is hoverable
    const el = tipOf(ev.target);
    if (el) show(el);
  });
  doc.addEventListener("mouseout", (ev) => {
    const from = tipOf(ev.target) || (tip.contains(ev.target) ? tip : null);
    if (from && !(ev.relatedTarget && (from.contains(ev.relatedTarget) || tip.contains(ev.relatedTarget)))) {
      if (doc.activeElement !== owner) later();
    }
  });
  doc.addEventListener("focusin", (ev) => { const el = tipOf(ev.target); if (el) show(el); else if (owner) hide(); });
  doc.addEventListener("focusout", (ev) => { if (ev.target === owner) later(); });
  doc.addEventListener("click", (ev) => { const el = tipOf(ev.target); if (el) show(el); else if (owner && !tip.contains(ev.target)) hide(); });
  doc.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && owner) { hide(); } }, true);
  // the box is fixed to the viewport: follow the owner when something scrolls, close when it leaves
  doc.addEventListener("scroll", () => {
    if (!owner) return;
    const r = owner.getBoundingClientRect();
    if (r.bottom < 0 || r.top > doc.documentElement.clientHeight || !owner.isConnected) hide();
    else place();
  }, true);
  globalThis.addEventListener("resize", () => place());
  // a language switch rewrites data-tip while the box is open
  doc.addEventListener("kvcalc:lang", () => { if (owner) show(owner); });
  return { show, hide, element: tip };
}

// ---------------------------------------------------------------- Plotly's toolbar

// Plotly's English strings (the cartesian bundle's modebar and notifications) -> catalogue keys.
const PLOTLY_STRINGS = {
  "Autoscale": "chart.modebar.autoscale",
  "Box Select": "chart.modebar.box_select",
  "Compare data on hover": "chart.modebar.compare",
  "Download plot as a PNG": "chart.modebar.download_png",
  "Download plot": "chart.modebar.download",
  "Lasso Select": "chart.modebar.lasso",
  "Pan": "chart.modebar.pan",
  "Reset axes": "chart.modebar.reset_axes",
  "Show closest data on hover": "chart.modebar.closest",
  "Toggle Spike Lines": "chart.modebar.spikelines",
  "Zoom": "chart.modebar.zoom",
  "Zoom in": "chart.modebar.zoom_in",
  "Zoom out": "chart.modebar.zoom_out",
  "Double-click to zoom back out": "chart.modebar.double_click_zoom",
  "Double-click on legend to isolate one trace": "chart.modebar.double_click_legend",
  "Preparing image - this may take a few seconds": "chart.modebar.preparing_image",
  "Image download succeeded": "chart.modebar.image_done",
};

// Registers the current language's dictionary with Plotly and makes it every chart's default
// locale. Charts drawn before keep their toolbar until they are drawn again (Plotly.react
// with a changed config replots).
export function plotlyLocale(Plotly) {
  if (!Plotly || typeof Plotly.register !== "function") return null;
  const name = `kvcalc-${lang()}`;
  const dictionary = Object.fromEntries(Object.entries(PLOTLY_STRINGS).map(([en, key]) => [en, t(key)]));
  Plotly.register({ moduleType: "locale", name, dictionary, format: {} });
  if (typeof Plotly.setPlotConfig === "function") Plotly.setPlotConfig({ locale: name });
  return name;
}

// ---------------------------------------------------------------- installation

let installed = null;

// Once per document: slider keys and value texts, tooltips. Returns {tooltip}.
export function installA11y(doc = document) {
  if (installed) return installed;
  doc.addEventListener("keydown", (ev) => { if (ev.target && ev.target.type === "range") onSliderKey(ev); });
  doc.addEventListener("input", (ev) => {
    const s = ev.target;
    if (s instanceof HTMLInputElement && s.type === "range") setValueText(s);
  });
  doc.addEventListener("kvcalc:lang", () => {
    for (const s of doc.querySelectorAll('input[type="range"]')) setValueText(s);
  });
  installed = { tooltip: tooltips(doc) };
  return installed;
}
