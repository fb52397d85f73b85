// DOM building and updating for the page: the form generated from js/params.js, result
// fields filled from kvcalc's result by their data-result path, the start-up status.
// Untrusted text (URL values, pasted config.json, Python's error messages that echo input)
// only ever reaches the DOM through textContent or attributes, never as HTML.

import { GROUPS, PARAMS, CUSTOM_MODEL, MANUAL_MODEL, HF_MODEL } from "./params.js";
import { isRelevant } from "./state.js";
import * as fmt from "./format.js";
import { t, has, lang, setText, setAttr, tm, renderMessage } from "./i18n.js";
import { setValueText } from "./a11y.js";

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const idFor = (key) => "in-" + key.replace(/[^a-zA-Z0-9_-]/g, "-");

// ---------------------------------------------------------------- slider <-> value

// A log slider's position is log10 of the value, with step "any" (a snapped position would turn
// a keyboard step to 5 into 5.01); its keys are js/a11y.js's (1-2-5 steps, decades).
function sliderRange(p) {
  if (p.scale === "log") return { min: Math.log10(p.min), max: Math.log10(p.max), step: "any" };
  return { min: p.min, max: p.max, step: p.step ?? (p.max - p.min) / 200 };
}
function sliderToValue(p, pos) {
  const x = p.scale === "log" ? 10 ** Number(pos) : Number(pos);
  return fmt.sliderText(x, p.integer);
}
function valueToSlider(p, x) {
  if (p.scale === "log") return x > 0 ? Math.log10(x) : Math.log10(p.min);
  return x;
}

// ---------------------------------------------------------------- the form

// Labels, units and help of a parameter row: catalogue keys param.<key>.label|unit|help.
export const paramKey = (p, part) => `param.${p.key}.${part}`;
export const hasUnit = (p) => has(paramKey(p, "unit"));

function helpButton(p, describedId) {
  const b = el("button", { type: "button", class: "help", "aria-describedby": describedId, tabindex: "0" }, "?");
  setAttr(b, "aria-label", "ui.about", { label: { key: paramKey(p, "label") } });
  return setAttr(b, "data-tip", paramKey(p, "help"));
}

function selectOptions(p, presets) {
  if (p.options === "presets:models") {
    const opts = Object.entries(presets.models || {}).map(([id, m]) => [id, m.name || id]);
    opts.push([HF_MODEL, { key: "opt.model.hf" }], [MANUAL_MODEL, { key: "opt.model.manual" }],
              [CUSTOM_MODEL, { key: `opt.model.${CUSTOM_MODEL}` }]);
    return opts;
  }
  if (p.options === "presets:gpus") return Object.entries(presets.gpus || {}).map(([id, g]) => [id, g.name || id]);
  // fixed lists: the value's catalogue text (numbers are shown as they are)
  return p.options.map((v) => [v, p.numeric ? String(v) : { key: `opt.${p.key}.${v}` }]);
}

// Builds one fieldset per group into `root`; onInput({key: text}, mode) on every edit (mode:
// "drag" while a slider moves, "release" when it is let go, else undefined).
// Returns {controls: Map(key -> {box, slider, msg, field}), options: {key: [allowed values]}}.
export function buildForm(root, presets, onInput) {
  const controls = new Map();
  const options = {};
  for (const g of GROUPS) {
    const fs = el("fieldset", { class: `group group-${g.id}`, "data-group": g.id },
                  setText(el("legend"), `group.${g.id}`));
    for (const p of PARAMS.filter((q) => q.group === g.id)) {
      const id = idFor(p.key);
      const helpId = id + "-help";
      const msg = el("div", { class: "msg", id: id + "-msg", role: "status", "aria-live": "polite" });
      const label = el("label", { for: id }, setText(el("span"), paramKey(p, "label")),
                       hasUnit(p) ? setText(el("span", { class: "unit" }), "ui.unit_brackets", { unit: { key: paramKey(p, "unit") } }) : null);
      const help = setText(el("span", { class: "visually-hidden", id: helpId }), paramKey(p, "help"));
      const head = el("div", { class: "field-head" }, label, helpButton(p, helpId), help);
      let box;
      let slider = null;
      if (p.kind === "select") {
        const opts = selectOptions(p, presets);
        options[p.key] = opts.map((o) => String(o[0]));
        box = el("select", { id, "data-param": p.key, "aria-describedby": `${helpId} ${id}-msg` },
                 opts.map(([v, text]) => (typeof text === "object" ? setText(el("option", { value: String(v) }), text.key)
                                                                  : el("option", { value: String(v), text }))));
        box.addEventListener("change", () => onInput({ [p.key]: box.value }));
      } else if (p.kind === "json") {
        box = el("textarea", { id, "data-param": p.key, rows: "6", spellcheck: "false",
                               placeholder: p.key === "model.hf_config" ? "{ \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, … }" : null,
                               "aria-describedby": `${helpId} ${id}-msg` });   // JSON: the same in every language
        if (p.key === "engine_log") setAttr(box, "placeholder", "ui.engine_log_placeholder");
        box.addEventListener("input", () => onInput({ [p.key]: box.value }));
      } else if (p.kind === "text") {
        box = el("input", { id, type: "text", autocomplete: "off", spellcheck: "false", "data-param": p.key,
                            class: "text", maxlength: p.maxLength ? String(p.maxLength) : null,
                            "aria-describedby": `${helpId} ${id}-msg` });
        if (p.key === "model.hf_id") setAttr(box, "placeholder", "ui.hf_id_placeholder");
        else if (p.key.endsWith(".layer_pattern")) setAttr(box, "placeholder", "ui.layer_pattern_placeholder");
        box.addEventListener("input", () => onInput({ [p.key]: box.value }));
      } else {
        box = el("input", { id, type: "text", inputmode: "decimal", autocomplete: "off", spellcheck: "false",
                            "data-param": p.key, "data-role": "box", class: "num",
                            "aria-describedby": `${helpId} ${id}-msg` });
        if (p.optional) setAttr(box, "placeholder", p.placeholder ?? "ui.from_memory");
        box.addEventListener("input", () => onInput({ [p.key]: box.value }));
        if (p.slider !== false) {
          const r = sliderRange(p);
          slider = el("input", { type: "range", min: r.min, max: r.max, step: r.step,
                                 "data-param": p.key, "data-role": "slider", "data-scale": p.scale,
                                 "data-integer": p.integer ? "true" : "false",
                                 "data-unit-key": hasUnit(p) ? paramKey(p, "unit") : null,
                                 tabindex: "0" });
          setAttr(slider, "aria-label", p.scale === "log" ? "ui.slider_log" : "ui.slider",
                  { label: { key: paramKey(p, "label") } });
          // moving: "drag" (a preview); released (also after a keyboard step): "release"
          for (const [type, mode] of [["input", "drag"], ["change", "release"]]) {
            slider.addEventListener(type, () => {
              const text = sliderToValue(p, slider.value);
              box.value = text;
              onInput({ [p.key]: text }, mode);
            });
          }
        }
      }
      const row = el("div", { class: `control-row${slider ? " with-slider" : ""}` }, slider, box);
      const field = el("div", { class: `field field-${p.kind}`, "data-field": p.key }, head, row, msg);
      fs.append(field);
      controls.set(p.key, { box, slider, msg, field, param: p });
    }
    root.append(fs);
  }
  return { controls, options };
}

// Puts the state into the controls: raw text (never overwriting the control being typed in),
// slider positions from valid values, inline messages, disabled irrelevant fields. Messages are
// {key, params} (the page's checks) or {text} (Python's, rendered by the caller); both are
// re-rendered on a language switch by calling this again.
export function syncForm(controls, state, serverErrors = {}) {
  let fieldsChanged = false;
  for (const [key, c] of controls) {
    const p = c.param;
    const raw = state.raw[key] ?? "";
    if (document.activeElement !== c.box && c.box.value !== raw) c.box.value = raw;
    const v = state.values[key];
    if (c.slider && document.activeElement !== c.slider && typeof v === "number") {
      c.slider.value = String(valueToSlider(p, v));
    }
    // (a drag sends this at every input: only what changed is written; the slider's spoken
    // value again only for a new value or language)
    if (c.slider) {
      const said = `${lang()}|${typeof v === "number" ? v : c.slider.value}`;
      if (VALUE_TEXT.get(c.slider) !== said) {
        setValueText(c.slider, typeof v === "number" ? v : undefined);
        VALUE_TEXT.set(c.slider, said);
      }
    }
    const relevant = isRelevant(p, state.values);
    const hidden = !relevant && (p.kind === "json" || p.kind === "text" || p.when !== undefined);
    if (c.field.hidden !== hidden) {
      c.field.hidden = hidden;
      fieldsChanged = true;
    }
    const m = relevant ? (state.errors[key] ?? serverErrors[key] ?? null) : null;
    const message = m ? (typeof m.render === "function" ? m.render() : tm(m)) : "";
    if (c.msg.textContent !== message) c.msg.textContent = message;
    c.field.classList.toggle("invalid", Boolean(message));
    const invalid = message ? "true" : "false";
    if (c.box.getAttribute("aria-invalid") !== invalid) c.box.setAttribute("aria-invalid", invalid);
  }
  // a group whose every field is hidden (the hand-entry group for a preset model) is hidden too
  if (!fieldsChanged && FORM_SYNCED.has(controls)) return;
  FORM_SYNCED.add(controls);
  for (const fs of new Set([...controls.values()].map((c) => c.field.closest("fieldset")))) {
    if (fs) fs.hidden = [...fs.querySelectorAll(":scope > .field")].every((f) => f.hidden);
  }
}
const VALUE_TEXT = new WeakMap();   // slider -> "lang|value" of its aria-valuetext
const FORM_SYNCED = new WeakSet();  // controls whose groups' visibility is up to date

// ---------------------------------------------------------------- results

export function getPath(obj, path) {
  let o = obj;
  for (const part of path.split(".")) {
    if (o === null || o === undefined) return undefined;
    o = o[part];
  }
  return o;
}

const FORMATS = {
  pct: fmt.pct,
  int: fmt.int,
  num: fmt.num,
  gib: fmt.gib,
  fixed2: (x) => fmt.fixed(x, 2),
  seconds: fmt.seconds,
  text: (x) => (x === null || x === undefined ? fmt.DASH : String(x)),
  // a Python message {code, params, message}: rendered from the catalogue (msg.<code>)
  message: (x) => (x && typeof x === "object" ? renderMessage(x) : fmt.DASH),
  hit_model: (x) => (typeof x === "string" ? t(`hitmodel.${x}`) : fmt.DASH),
};

// Fills every [data-result] under root from result (data-format picks the formatter; the raw
// number goes to data-value for tests). Rows marked data-hide-empty vanish without a value.
export function renderResults(root, result) {
  const empty = new Map();   // [data-hide-empty] element -> has an empty data-result inside
  for (const node of root.querySelectorAll("[data-result]")) {
    const v = getPath(result, node.dataset.result);
    const f = FORMATS[node.dataset.format || "num"] || fmt.num;
    // only what changed is written (a drag render writes these at every input)
    const text = f(v);
    if (node.textContent !== text) node.textContent = text;
    if (typeof v === "number") {
      const value = String(v);
      if (node.dataset.value !== value) node.dataset.value = value;
    } else if (node.dataset.value !== undefined) delete node.dataset.value;
    const row = node.closest("[data-hide-empty]");
    if (row) empty.set(row, (empty.get(row) || false) || v === null || v === undefined || v === "");
    if (node.hasAttribute("data-hide-empty")) {
      const hidden = v === null || v === undefined || v === "";
      if (node.hidden !== hidden) node.hidden = hidden;
    }
  }
  for (const [row, isEmpty] of empty) if (row.hidden !== isEmpty) row.hidden = isEmpty;
}

// The occupancy bar: one segment per part, sized by flex-grow = its block count (no
// arithmetic in JS: the browser shares the width out in proportion).
export function renderOccupancy(bar, legend, occ) {
  const parts = ["pinned", "system_prompt", "returning", "finished", "free"];   // labels: occ.<part>
  const segs = [];
  const items = [];
  for (const k of occ ? parts : []) {
    const blocks = occ[`${k}_blocks`];
    if (blocks === null || blocks === undefined) continue;
    const frac = occ[`${k}_fraction`];
    const label = t(`occ.${k}`);
    const seg = el("span", { class: `seg seg-${k}`, title: t("occ.title", { label, blocks: fmt.int(blocks) }) });
    seg.style.flexGrow = String(blocks);
    segs.push(seg);
    items.push(el("li", {}, el("span", { class: `swatch seg-${k}` }), t("occ.legend", { label }),
                  el("b", { "data-result": `occupancy.${k}_${frac === undefined ? "blocks" : "fraction"}`,
                            text: frac === undefined ? fmt.withUnit(blocks, "unit.blocks", fmt.int) : fmt.pct(frac) })));
  }
  // the same bar and legend as on screen (a drag render at every input): nothing is replaced
  const same = (a, b) => a.length === b.length && a.every((x, i) => x.isEqualNode(b[i]));
  if (!same(segs, [...bar.children])) bar.replaceChildren(...segs);
  if (!same(items, [...legend.children])) legend.replaceChildren(...items);
}

// Python's warnings ({code, params, message} each) rendered from the catalogue.
export function renderMessages(ul, details) {
  const items = details.map((d) => el("li", { "data-code": d.code, text: renderMessage(d) }));
  if (items.length !== ul.children.length || !items.every((x, i) => x.isEqualNode(ul.children[i]))) ul.replaceChildren(...items);
}
