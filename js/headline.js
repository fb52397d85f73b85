// "How the number is computed": the legacy (seed) formula and the Che approximation with the
// user's own values substituted (Python's result.explain: every value is the one the model
// used), the assumptions and the validity range. JavaScript formats and places the numbers.

import { el } from "./ui.js";
import * as fmt from "./format.js";
import { t, setText } from "./i18n.js";

const ASSUMPTIONS = ["res.explain.assume_arrivals", "res.explain.assume_gaps", "res.explain.assume_prefix",
                     "res.explain.assume_lru", "res.explain.assume_one_instance"];
const VALIDITY = ["res.explain.valid_errors", "res.explain.valid_range", "res.explain.valid_overload"];

const line = (key, params, cls = "formula") => setText(el("p", { class: cls }), key, params);

function valueRow(labelKey, value, resultKey) {
  return el("div", {}, setText(el("dt"), labelKey),
            el("dd", { "data-result": resultKey, "data-format": "pct", "data-value": String(value), text: fmt.pct(value) }));
}

export function renderExplain(root, result) {
  const e = result && result.explain;
  if (!e) { root.replaceChildren(); return; }
  const s = e.seed;
  const parts = [
    line("res.explain.headline", { model: t(`hitmodel.${result.hit_model}`), hit: fmt.pct(result.token_hit_rate) }, "lead"),
    el("dl", { class: "kv" },
       valueRow("res.seed", result.seed_token_hit_rate, "seed_token_hit_rate"),
       ...(result.che_token_hit_rate !== undefined ? [valueRow("res.che", result.che_token_hit_rate, "che_token_hit_rate")] : [])),
  ];
  if (e.che) {
    const c = e.che;
    parts.push(setText(el("h4"), "res.che"),
               line("res.explain.che_formula"),
               line("res.explain.che_t", { t: fmt.seconds(c.characteristic_time_s) }),
               line("res.explain.che_p", { t: fmt.seconds(c.characteristic_time_s), gap: fmt.seconds(c.gap_mean_s),
                                           p: fmt.pct(c.gap_within_t_probability) }),
               line("res.explain.che_result", { shared: fmt.pct(c.shared_prompt_share), p: fmt.pct(c.gap_within_t_probability),
                                                own: fmt.pct(c.own_history_share), hit: fmt.pct(c.token_hit_rate) }));
  } else {
    parts.push(setText(el("h4"), "res.che"), line("res.explain.che_fifo", null, "muted small"));
  }
  parts.push(setText(el("h4"), "res.seed"),
             line("res.explain.seed_formula"),
             line("res.explain.seed_active", { rate: fmt.num(s.conversation_rate_per_s), turns: fmt.num(s.turns_mean),
                                               gap: fmt.seconds(s.gap_mean_s), active: fmt.num(s.active_conversations) }),
             line("res.explain.seed_cached", { capacity: fmt.int(s.capacity_tokens), turns: fmt.num(s.turns_mean),
                                               tokens: fmt.num(s.tokens_per_turn), cached: fmt.num(s.cached_conversations) }),
             line("res.explain.seed_result", { turns: fmt.num(s.turns_mean), cached: fmt.num(s.cached_conversations),
                                               active: fmt.num(s.active_conversations), hit: fmt.pct(s.token_hit_rate) }),
             line("res.seed_help", { points: fmt.fixed(e.validation.seed.mean_error_pp, 0) }, "muted small"));
  const v = e.validation;
  const pp = (x) => fmt.fixed(x, 2);
  parts.push(setText(el("h4"), "res.explain.assumptions"),
             el("ul", { class: "explain-list" }, ASSUMPTIONS.map((k) => setText(el("li"), k))),
             setText(el("h4"), "res.explain.validity"),
             el("ul", { class: "explain-list" }, VALIDITY.map((k) => setText(el("li"), k, {
               points: fmt.int(v.points), refined_mean: pp(v.refined.mean_error_pp), refined_max: pp(v.refined.max_error_pp),
               che_mean: pp(v.che.mean_error_pp), che_max: pp(v.che.max_error_pp),
               seed_mean: pp(v.seed.mean_error_pp), seed_max: pp(v.seed.max_error_pp),
               turns_min: fmt.num(v.grid.turns_mean_min), turns_max: fmt.num(v.grid.turns_mean_max),
               gap_min: fmt.seconds(v.grid.gap_mean_s_min), gap_max: fmt.seconds(v.grid.gap_mean_s_max),
               rate_min: fmt.num(v.grid.conversation_rate_per_s_min), rate_max: fmt.num(v.grid.conversation_rate_per_s_max),
               block_min: fmt.int(v.grid.block_size_tokens_min), block_max: fmt.int(v.grid.block_size_tokens_max),
               pressure_min: fmt.num(v.grid.pressure_gaps_min), pressure_max: fmt.num(v.grid.pressure_gaps_max) }))));
  root.replaceChildren(...parts);
}
