// The Fleet inputs (issue 7): rows of the one parameter table (js/params.js spreads them in),
// and the fleet part of compute()'s request. Keys are request key paths ("cluster.instances",
// "tiers[0].capacity_gib"), so Python's errors land at their box and a link carries them by
// the same name. Tier rows take their valid range from the tiers[] rows of Python's limits
// table (row field `limit`) and the list of tiers with their sliders' ends from its PAGE_TIERS
// (js/limits.js). The GPU-side defaults stay Python's: an empty bandwidth box sends
// nothing (the GPU preset's host link for the CPU tier, a stated NVMe figure for the SSD).
//
// A fleet at its defaults (one instance, affinity, no tier, no price) adds nothing to the
// request, so the single-instance request is unchanged.

import { PAGE_TIERS } from "./limits.js";

export const FLEET_GROUP = { id: "fleet" };

export const ROUTINGS = ["affinity", "random", "round_robin", "pooled"];
// tiers[i] is Python's PAGE_TIERS[i] (py/kvcalc/limits.py): CPU DRAM, then SSD
export const TIER_NAMES = PAGE_TIERS.map((tier) => tier.name);

const tierCapacityKey = (i) => `tiers[${i}].capacity_gib`;
const tierReadKey = (i) => `tiers[${i}].read_gb_per_s`;
const hasTier = (v, i) => v[tierCapacityKey(i)] !== null && v[tierCapacityKey(i)] !== undefined;
const anyTier = (v) => TIER_NAMES.some((_, i) => hasTier(v, i));

// The two rows of one tier: its capacity (slider) and its read bandwidth (a box; empty = Python's default).
const tierRows = (tier, i) => [
  { key: tierCapacityKey(i), group: "fleet", kind: "number", limit: "tiers[].capacity_gib",
    default: null, optional: true, placeholder: "ui.no_tier",
    min: tier.capacity_gib_slider[0], max: tier.capacity_gib_slider[1], scale: "log" },
  { key: tierReadKey(i), group: "fleet", kind: "number", limit: "tiers[].read_gb_per_s",
    default: null, optional: true, placeholder: "ui.tier_default_bandwidth", slider: false,
    min: tier.read_gb_per_s_slider[0], max: tier.read_gb_per_s_slider[1], scale: "log", when: (v) => hasTier(v, i) },
];

export const FLEET_PARAMS = [
  { key: "cluster.instances", group: "fleet", kind: "number",
    default: 1, min: 1, max: 256, step: 1, scale: "log" },
  { key: "cluster.routing", group: "fleet", kind: "select", default: "affinity", options: ROUTINGS },
  ...PAGE_TIERS.flatMap(tierRows),
  { key: "tier_mode", group: "fleet", kind: "select", default: "exclusive", options: ["exclusive", "inclusive"],
    when: anyTier },
  { key: "price_per_gpu_hour", group: "fleet", kind: "number",
    default: null, optional: true, placeholder: "ui.no_price", slider: false, min: 0.1, max: 100, scale: "log" },
];

// Rows the generic request builder leaves to fleetRequest (their request shape is not a plain path).
export const FLEET_KEYS = new Set(FLEET_PARAMS.map((p) => p.key));

const set = (v) => v !== null && v !== undefined;

// True when the fleet inputs differ from one instance with no tier and no price.
export function fleetActive(values) {
  return values["cluster.instances"] !== 1 || values["cluster.routing"] !== "affinity" || anyTier(values)
    || set(values.price_per_gpu_hour);
}

// The fleet keys of compute()'s request: {} at the defaults. With the "fleet" figure asked for
// (the Fleet results are open), also the sizing table and the recommendations (sizing: {}).
export function fleetRequest(values, figures = []) {
  const req = {};
  const K = values["cluster.instances"];
  const routing = values["cluster.routing"];
  if ((set(K) && K !== 1) || (set(routing) && routing !== "affinity")) {
    req.cluster = { instances: K ?? 1, routing: routing ?? "affinity" };
  }
  const tiers = [];
  TIER_NAMES.forEach((name, i) => {
    const gib = values[tierCapacityKey(i)];
    if (!set(gib)) return;
    const tier = { name, capacity_gib: gib };
    if (set(values[tierReadKey(i)])) tier.read_gb_per_s = values[tierReadKey(i)];
    tiers.push(tier);
  });
  if (tiers.length) {
    req.tiers = tiers;
    if (set(values.tier_mode) && values.tier_mode !== "exclusive") req.tier_mode = values.tier_mode;
  }
  if (set(values.price_per_gpu_hour)) req.price_per_gpu_hour = values.price_per_gpu_hour;
  if (figures.includes("fleet")) req.sizing = {};
  return req;
}
