// The trace tab's result cards (DOM from js/ui.js's el(), numbers from js/format.js, text
// from the catalogues). Python's texts arrive as {code, params, message} and are rendered
// from msg.<code>; untrusted text (file names, ids echoed from the file) only reaches the DOM
// through textContent.

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, renderMessage } from "./i18n.js";
import { ROUTING_LABEL } from "./trace-options.js";

const HIT_MODEL_KEYS = { refined: "hitmodel.refined", che: "hitmodel.che", closed: "hitmodel.closed", seed: "hitmodel.seed" };

// A Python message twin {code, params, message} in the page's language; "–" without one.
export const pyText = (m) => (m && typeof m === "object" && m.code ? renderMessage(m) : fmt.DASH);

export const bytesText = (n) => (n === null || n === undefined ? fmt.DASH
  : n >= 1048576 ? t("unit.mib", { x: fmt.fixed(n / 1048576, 1) }) : t("unit.kib", { x: fmt.fixed(n / 1024, 1) }));

// A value cell the tests can find: data-result="trace.<path>", data-value = the raw number.
// An error's field "line N" (a bad trace line) in the page's language; null for other fields.
export const lineLabel = (e) => (e && /^line \d+$/.test(e.field || "") && e.params && typeof e.params.line === "number"
  ? t("kvt.line", { line: fmt.int(e.params.line) }) : null);

export function resultCell(path, value, text) {
  const data = { result: `trace.${path}` };
  if (value !== null && value !== undefined) data.value = String(value);
  return el("span", { class: "kvt-value", data, text });
}

const row = (labelKey, ...value) => [el("dt", { text: t(labelKey) }), el("dd", {}, ...value)];
const big = (labelText, cell, ...notes) => el("div", {},
  el("div", { class: "kvt-note", text: labelText }), el("div", { class: "kvt-big" }, cell), ...notes);

export function headline(res) {
  const op = res.operating_point;
  const c = res.curve;
  const tokens = (x) => fmt.withUnit(x, "unit.tokens", fmt.int);
  return el("div", { class: "kvt-card kvt-headline" },
    big(t("kvt.ideal_token"), resultCell("ideal_token_hit_rate", res.ideal_token_hit_rate, fmt.pct(res.ideal_token_hit_rate))),
    big(t("kvt.ideal_block"), resultCell("ideal_block_hit_rate", res.ideal_block_hit_rate, fmt.pct(res.ideal_block_hit_rate))),
    big(t("kvt.saturation"),
      resultCell("curve.saturation_capacity_blocks", c.saturation_capacity_blocks, fmt.withUnit(c.saturation_capacity_blocks, "unit.blocks", fmt.int)),
      el("div", { class: "kvt-note" }, resultCell("curve.saturation_capacity_tokens", c.saturation_capacity_tokens, tokens(c.saturation_capacity_tokens)),
        c.saturation_capacity_gib !== undefined ? t("kvt.equals", { x: fmt.gib(c.saturation_capacity_gib) }) : "")),
    op ? big(op.capacity_gib !== null ? t("kvt.at_calc_gib", { tokens: tokens(op.capacity_tokens), gib: fmt.gib(op.capacity_gib) })
                                      : t("kvt.at_calc", { tokens: tokens(op.capacity_tokens) }),
      resultCell("operating_point.token_hit_rate", op.token_hit_rate, fmt.pct(op.token_hit_rate)),
      el("div", { class: "kvt-note" }, t("kvt.block_prefix"),
        resultCell("operating_point.block_hit_rate", op.block_hit_rate, fmt.pct(op.block_hit_rate)),
        op.model_token_hit_rate !== undefined ? [t("kvt.model_sep"),
          resultCell("operating_point.model_token_hit_rate", op.model_token_hit_rate, fmt.pct(op.model_token_hit_rate))] : ""),
      beyondNote(op))
      : null);
}

// "this capacity is at or above where every reuse of the trace hits" (Python's note on the row).
export function beyondNote(r) {
  return r && r.beyond_trace ? el("div", { class: "kvt-note kvt-beyond", data: { result: "trace.operating_point.beyond_trace" },
                                           text: pyText(r.note_detail) }) : null;
}

export function modelNote(res) {
  const m = res.model_curve;
  if (!m) return null;
  if (!m.available) return el("p", { class: "kvt-note", text: pyText(m.message_detail) });
  return el("div", {},
    el("p", { class: "kvt-note", text: t("kvt.model_note", { model: HIT_MODEL_KEYS[m.model] ? t(HIT_MODEL_KEYS[m.model]) : m.model }) }),
    // where the model's curve starts (Python's boundary: the requests in flight, or one request)
    m.domain_detail ? el("p", { class: "kvt-note", data: { result: "trace.model_curve.domain", value: String(m.valid_from_capacity_tokens) },
                                text: pyText(m.domain_detail) }) : null);
}

// Exact or sampled: the rate, the references kept, the error estimate and why.
export function samplingCard(res) {
  const s = res.sampling;
  if (!s) return null;
  const sampled = s.mode === "sampled";
  return el("div", { class: "kvt-card", data: { role: "sampling" } },
    el("h3", { text: t(sampled ? "kvt.sampling_sampled" : "kvt.sampling_exact") }),
    el("dl", {},
      row("kvt.row.sampling_rate", resultCell("sampling.rate", s.rate, fmt.pct(s.rate, s.rate < 0.01 ? 3 : 1))),
      sampled ? row("kvt.row.sampled_refs", resultCell("sampling.sampled_references", s.sampled_references, fmt.int(s.sampled_references))) : null,
      sampled ? row("kvt.row.error_bound", resultCell("sampling.error_bound_pp", s.error_bound_pp,
        t("kvt.pp", { x: fmt.fixed(s.error_bound_pp, 2) })), " ", t("kvt.error_mean", { x: fmt.fixed(s.error_mean_pp, 2) })) : null,
      row("kvt.row.sampling_why", el("span", { data: { result: "trace.sampling.why" }, text: pyText(s.why_detail) })),
      sampled && s.warning_detail ? row("kvt.row.sampling_warning", pyText(s.warning_detail)) : null));
}

// The fleet: K instances under a routing policy, and exclusive tiers.
export function fleetCard(res) {
  const f = res.fleet;
  if (!f) return null;
  const tiers = f.tiers || [];
  return el("div", { class: "kvt-card", data: { role: "fleet" } },
    el("h3", { text: t("kvt.fleet_title", { k: fmt.int(f.instances), routing: t(ROUTING_LABEL(f.routing)) }) }),
    el("dl", {},
      row("kvt.row.routing_key", pyText(f.routing_key_detail)),
      row("kvt.row.instances_used", resultCell("fleet.instances_used", f.instances_used, fmt.int(f.instances_used))),
      row("kvt.row.busiest", resultCell("fleet.busiest_instance_request_share", f.busiest_instance_request_share,
        fmt.pct(f.busiest_instance_request_share)))),
    tiers.length ? el("table", { class: "kvt-tiers" },
      el("thead", {}, el("tr", {}, ...["kvt.tier.name", "kvt.tier.capacity", "kvt.tier.token_hit", "kvt.tier.read"]
        .map((k) => el("th", { text: t(k) })))),
      el("tbody", {}, ...tiers.map((r, i) => el("tr", {},
        el("td", { text: r.name }),
        el("td", { text: fmt.withUnit(r.capacity_tokens, "unit.tokens", fmt.int) }),
        el("td", {}, resultCell(`fleet.tiers.${i}.token_hit_rate`, r.token_hit_rate, fmt.pct(r.token_hit_rate))),
        el("td", { text: r.read_s_per_request !== undefined ? fmt.seconds(r.read_s_per_request) : fmt.DASH }))))) : null,
    el("p", { class: "kvt-note", text: pyText(f.note_detail) }));
}

export function detectionCard(res, sourceName) {
  const d = res.detection;
  const reasons = Object.entries(d.bad_lines_by_reason || {});
  return el("div", { class: "kvt-card", data: { role: "detection" } },
    el("h3", { text: t("kvt.detected") }),
    el("dl", {},
      row("kvt.row.file", resultCell("source", null, sourceName)),
      row("kvt.row.format", resultCell("detection.format", d.format, t(`kvt.fmt.${d.format}`)), " ", pyText(d.format_source_detail)),
      row("kvt.row.block_size", resultCell("detection.block_size_tokens", d.block_size_tokens,
        fmt.withUnit(d.block_size_tokens, "unit.tokens", fmt.int)), " ", pyText(d.block_size_source_detail)),
      row("kvt.row.chained", resultCell("detection.ids_prefix_chained", d.ids_prefix_chained,
        t(d.ids_prefix_chained ? "kvt.yes" : "kvt.no")), " ", pyText(d.chaining_detail)),
      row("kvt.row.requests", resultCell("detection.n_requests", d.n_requests, fmt.int(d.n_requests)),
        d.truncated ? t("kvt.truncated") : ""),
      row("kvt.row.blocks", d.n_blocks_unique === null || d.n_blocks_unique === undefined
        ? fmt.int(d.n_blocks_total) : t("kvt.blocks_distinct", { total: fmt.int(d.n_blocks_total), unique: fmt.int(d.n_blocks_unique) })),
      row("kvt.row.read", bytesText(d.bytes_read)),
      d.stopped ? row("kvt.row.stopped", el("span", { data: { result: "trace.detection.stopped.line", value: String(d.stopped.line) },
        text: d.stopped.detail ? renderMessage(d.stopped.detail, { withField: true, fieldLabel: lineLabel(d.stopped.detail) }) : fmt.DASH })) : null,
      row("kvt.row.skipped", resultCell("detection.bad_lines_skipped", d.bad_lines_skipped, fmt.int(d.bad_lines_skipped)),
        reasons.length ? el("ul", {}, ...reasons.map(([reason, n]) =>
          el("li", {}, t("kvt.reason_count", { reason: pyText({ code: `trace_bad_${reason}`, params: {} }), n: fmt.int(n) }),
            firstBad(d, reason)))) : "")));
}

// " (first: line N: what is wrong)" for a reason of bad lines, in the page's language.
function firstBad(d, reason) {
  const f = d.bad_lines_first_detail && d.bad_lines_first_detail[reason];
  return f ? t("kvt.first", { line: fmt.int(f.line), detail: renderMessage(f.detail) }) : "";
}

function quantiles(q, withTokens, digits = 0) {
  if (!q) return fmt.DASH;
  const f = (x) => (digits ? fmt.fixed(x, digits) : fmt.int(x));
  return t(withTokens ? "kvt.quantiles_tokens" : "kvt.quantiles",
           { mean: f(q.mean), p50: f(q.p50), p90: f(q.p90), p99: f(q.p99), max: f(q.max) });
}

export function statsCard(res) {
  const s = res.stats;
  const fit = res.fit;
  const ses = s.sessions || null;
  return el("div", { class: "kvt-card", data: { role: "stats" } },
    el("h3", { text: t("kvt.statistics") }),
    el("dl", {},
      row("kvt.row.duration", fmt.seconds(s.duration_s)),
      row("kvt.row.arrival_rate", resultCell("stats.arrival_rate_per_s", s.arrival_rate_per_s,
        t("kvt.requests_per_s", { x: fmt.num(s.arrival_rate_per_s) }))),
      ses ? row("kvt.row.sessions", t("kvt.sessions_value", { n: fmt.int(ses.n_sessions), rate: fmt.num(ses.conversation_rate_per_s) })) : null,
      ses ? row("kvt.row.requests_per_session", quantiles(ses.requests_per_session, false, 2)) : null,
      row("kvt.row.input_length", quantiles(s.input_tokens, true)),
      row("kvt.row.output_length", quantiles(s.output_tokens, true)),
      s.shared_prefix_token_share !== undefined ? row("kvt.row.shared_prefix", resultCell("stats.shared_prefix_token_share",
        s.shared_prefix_token_share, fmt.pct(s.shared_prefix_token_share)), t("kvt.of_prompt")) : null,
      s.system_prompt_tokens !== undefined ? row("kvt.row.system_prompt", fmt.withUnit(s.system_prompt_tokens, "unit.tokens", fmt.int)) : null,
      ses ? row("kvt.row.session_rule", pyText(ses.source_detail)) : null),
    fit && fit.note_details && fit.note_details.length ? el("details", {},
      el("summary", { text: t("kvt.fit") }),
      el("ul", {}, ...fit.note_details.map((n) => el("li", { text: pyText(n) })))) : null);
}

export function gapsNote(res) {
  const g = res.stats.reuse_gap_s;
  if (!g) return null;
  // no reuse at the same timestamp: not "0 of n ... are not shown"
  return el("p", { class: "kvt-note", text: g.n_zero ? t("kvt.reuse_note", { zero: fmt.int(g.n_zero), n: fmt.int(g.n) })
                                                     : t("kvt.reuse_note_all", { n: fmt.int(g.n) }) });
}
