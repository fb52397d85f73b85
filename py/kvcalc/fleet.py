"""Replicas, routing and lower KV tiers: validated inputs and the analytic model.

MODEL.md, "Replicas, tiers, policies". A fleet is K instances, each with the
capacity C of one cache (``CacheConfig.capacity_tokens``), behind a router:

* ``affinity`` (session-sticky or prefix-aware): every turn of a conversation
  goes to the same instance, so each instance is one cache seeing lambda/K;
* ``pooled`` (one shared store, as Mooncake Store or a shared LMCache): one
  cache of K*C holding one copy of the shared prompt, seeing lambda;
* ``random`` and ``round_robin``: a turn lands on an instance its conversation
  last visited m turns ago, with probability (1/K)(1-1/K)^(m-1), and reuses the
  chain left there then (a partial prefix: the turns since are missing), aged
  by the m gaps and m-1 services in between. A round-robin balancer rotates
  over the interleaved requests of many conversations, so between two turns of
  one conversation the rotation advances by a large random count: for the
  conversation the instance is uniform, as under ``random`` (the simulator runs
  the literal rotation and is the check of this).

Lower tiers (CPU DRAM, SSD) sit below each instance's GPU cache (or below the
pooled store, scaled by K): ``exclusive`` (demote on evict, promote on hit)
makes one LRU stack of the summed capacity, so tier j's hits are
H(C1+..+Cj) - H(C1+..+C(j-1)); ``inclusive`` (write-through: every block also
lives in each lower tier) reaches the largest tier's hit rate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError, require_choice, require_int, require_number
from .hitrate import gap_sum_cdf, hit_rates, structure
from .hitrate.gaps import _ERLANG_EXACT_MAX
from .special import norm_cdf, norm_pdf
from .workload import CacheConfig, Workload

__all__ = ["ROUTINGS", "TIER_MODES", "TierConfig", "FleetConfig", "fleet_hit_rates", "scattered_hit_rates",
           "stack_capacities_tokens", "hit_rate_vs_instances", "tier_split_vs_capacity"]

ROUTINGS = ("affinity", "random", "round_robin", "pooled")
TIER_MODES = ("exclusive", "inclusive")


@dataclass(frozen=True)
class TierConfig:
    """A KV tier below GPU memory, per instance (shared when routing is pooled).

    capacity_tokens: tokens of KV it holds; read_gb_per_s: read bandwidth
    towards the GPU in GB/s (1e9 bytes per second).
    """

    name: str = "cpu"
    capacity_tokens: float = 0.0
    read_gb_per_s: float = 25.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InputError("tiers.name", self.name, "a non-empty string", "not a name")
        object.__setattr__(self, "capacity_tokens",
                           require_number("tiers.capacity_tokens", self.capacity_tokens, 0.0, 1e13))
        object.__setattr__(self, "read_gb_per_s",
                           require_number("tiers.read_gb_per_s", self.read_gb_per_s, 0.0, 1e5, lo_open=True))


@dataclass(frozen=True)
class FleetConfig:
    """K instances behind a router, each with optional lower tiers (GPU excluded)."""

    instances: int = 1
    routing: str = "affinity"
    tiers: tuple = ()
    tier_mode: str = "exclusive"

    def __post_init__(self):
        object.__setattr__(self, "instances", require_int("cluster.instances", self.instances, 1, 100_000))
        require_choice("cluster.routing", self.routing, ROUTINGS)
        require_choice("tier_mode", self.tier_mode, TIER_MODES)
        tiers = tuple(self.tiers)
        if len(tiers) > 4:
            raise InputError("tiers", len(tiers), "at most 4 tiers below GPU memory", "too many")
        for t in tiers:
            if not isinstance(t, TierConfig):
                raise InputError("tiers", t, "TierConfig entries", "wrong type")
        object.__setattr__(self, "tiers", tiers)

    @property
    def pooled(self) -> bool:
        return self.routing == "pooled"


# --------------------------------------------------------------------------
# The analytic model of a fleet
# --------------------------------------------------------------------------

#: Age grid of the scattered (random / round-robin) model: log-spaced points.
SCATTER_AGE_POINTS = 320
#: Turns beyond which fewer than this share of conversations go are dropped.
_TAIL = 1e-7


def _scalar_inputs(w: Workload, c: CacheConfig):
    for name in ("conversation_rate_per_s", "turns_mean", "gap_mean_s", "gap_lognormal_sigma",
                 "user_tokens_per_turn", "output_tokens_per_turn", "system_prompt_tokens", "service_time_s"):
        if np.ndim(getattr(w, name)) != 0:
            raise InputError(f"workload.{name}", getattr(w, name), "a single number for a fleet", "an array")
    if np.ndim(c.capacity_tokens) != 0:
        raise InputError("cache.capacity_tokens", c.capacity_tokens, "a single number for a fleet", "an array")


def scattered_hit_rates(w: Workload, c: CacheConfig, instances: int) -> dict:
    """Refined model of one of K instances when each turn goes to a uniform instance.

    Turn k lands where its conversation last was m turns ago with probability
    p_m = (1/K) (1 - 1/K)^(m-1) (m < k; never before: probability
    (1 - 1/K)^(k-1)), and finds the chain B_{k-m} it left there, aged A_m =
    G_1 + .. + G_m + (m-1) S. That chain keeps clamp(C_b - V(A_m), 0, B_{k-m})
    blocks, V(g) the blocks others touched there within g: Normal with
    Campbell's moments on this instance (1/K of every request, each chain held
    until its conversation next visits this instance, or for good):

        E V(g) = Ps + pin/K + (lambda/K) [sum_m a1_m E min(A_m, g) + a2 g]
        a1_m = p_m sum_i P(N >= i+m) B_i,   a2 = sum_i B_i sum_{n>=i} P(N=n) r^(n-i)

    (r = 1 - 1/K; B_i^2 in place of B_i for the variance). K = 1 gives the
    refined single-cache model with its gap quadrature replaced by an age grid.
    Scalar inputs; LRU or TTL eviction.
    """
    _scalar_inputs(w, c)
    if c.eviction not in ("lru", "ttl"):
        raise InputError("cache.eviction", c.eviction, "lru or ttl with random or round-robin routing",
                         "not modelled")
    key = (tuple(sorted(w.to_dict().items())), int(instances), int(c.block_size_tokens),
           float(c.ttl_s) if c.eviction == "ttl" else math.inf)
    g = _scatter_geometry(key)
    return _scattered_at(g, float(c.capacity_tokens))


@functools.lru_cache(maxsize=64)
def _scatter_geometry(key) -> dict:
    """Everything of the scattered model that does not depend on the capacity (memoised:
    the age distributions of m-turn reuse cost most, and sweeps over memory reuse them)."""
    items, K, block, ttl = key
    w = Workload(**dict(items))
    c = CacheConfig(capacity_tokens=1.0, block_size_tokens=block,
                    eviction="ttl" if math.isfinite(ttl) else "lru", ttl_s=ttl)
    st = structure(w, c)
    b = st.b
    lam, tau, sigma, S = float(st.lam), float(st.tau), float(st.sigma), float(st.S)
    Cb, Ps, EN = float(st.Cb), float(st.Ps), float(st.EN)
    gt_all = st.w_ret                                        # P(N > k)
    n_turns = int(max(2, min(gt_all.size, np.searchsorted(-gt_all, -_TAIL) + 2)))
    gt = gt_all[:n_turns]
    ge = np.concatenate([[1.0], gt[:-1]])                    # P(N >= k)
    pmf = ge - gt
    B = st.B[:n_turns]
    r = 1.0 - 1.0 / K
    M = n_turns - 1                                          # m = 1..M
    m = np.arange(1, M + 1, dtype=float)
    p_m = (1.0 / K) * r ** (m - 1.0)
    # reuse from m turns back needs a turn m+1 and lands with p_m: drop m where both are negligible
    keep_m = p_m * ge[1:M + 1] >= _TAIL * 1e-2
    M = int(max(1, np.flatnonzero(keep_m)[-1] + 1)) if keep_m.any() else 1
    m = m[:M]
    p_m = p_m[:M]
    # c_mi = P(N >= i+m) p_m for chain i (turn i = 1..n_turns-1) reused m turns later
    i_idx = np.arange(n_turns - 1)
    ge_pad = np.concatenate([ge, np.zeros(n_turns + 1)])
    c_mi = ge_pad[i_idx[None, :] + m[:, None].astype(int)] * p_m[:, None]      # (M, I)
    Bi = B[:n_turns - 1]
    a1 = c_mi @ Bi
    a1sq = c_mi @ (Bi * Bi)
    # sum_{n>=i} P(N=n) r^(n-i), for every i
    n_idx = np.arange(n_turns)
    expo = n_idx[None, :] - n_idx[:, None]
    nolater = np.where(expo >= 0, pmf[None, :] * np.power(r, np.maximum(expo, 0)), 0.0).sum(1)
    a2 = float((B * nolater).sum())
    a2sq = float((B * B * nolater).sum())
    # age grid and the distribution of A_m on it
    if st.gap_distribution == "deterministic":
        ages = m * tau + (m - 1.0) * S
        mass = np.eye(M)
        edges = np.concatenate([[0.0], ages])
        surv_int = np.minimum(ages[None, :], ages[:, None])   # E min(A_m, x_j) = min(a_m, x_j)
        emin = surv_int                                        # (M, X)
    else:
        hi = (M + 5.0) * (tau + S) * (60.0 if st.gap_distribution == "lognormal" else 12.0)
        edges = np.concatenate([[0.0], np.geomspace(1e-4 * min(tau, tau + S), hi, SCATTER_AGE_POINTS)])
        mm = np.broadcast_to(m[:, None], (M, edges.size))
        xx = np.broadcast_to(edges[None, :], (M, edges.size)) - (mm - 1.0) * S
        if st.gap_distribution == "exponential":
            F = _erlang_cdf_rows(np.maximum(xx, 0.0), tau)
        else:
            F = gap_sum_cdf(mm.ravel(), np.maximum(xx, 0.0).ravel(), tau, st.gap_distribution, sigma)
        F = np.where(xx > 0, F.reshape(M, edges.size), 0.0)
        mass = np.diff(F, axis=1)                                      # (M, X) cell masses
        ages = np.sqrt(edges[1:] * np.maximum(edges[:-1], edges[1] * 1e-3))   # log midpoints
        surv = 1.0 - F
        cum = np.concatenate([np.zeros((M, 1)), np.cumsum(0.5 * (surv[:, 1:] + surv[:, :-1]) * np.diff(edges), 1)], 1)
        # E min(A_m, age) at each cell's midpoint: the integral to the left edge plus the half cell
        emin = cum[:, :-1] + surv[:, :-1] * (ages - edges[:-1])
    lam_k = lam / K
    with np.errstate(over="ignore", invalid="ignore"):
        hs = -np.expm1(-lam_k * EN * (st.ttl_s + S)) if Ps > 0 else 1.0
    shared_occ = Ps * hs
    mean_v = shared_occ + float(st.pin_mean) / K + lam_k * (a1 @ emin + a2 * ages)
    var_v = (float(st.pin_var) / K + Ps * Ps * hs * (1.0 - hs)
             + lam_k * (a1sq @ emin + a2sq * ages))
    alive = (ages < st.ttl_s).astype(float)
    return {"b": b, "Ps": Ps, "EN": EN, "hs": hs, "idle": math.exp(-lam_k * EN * S),
            "mean_v": mean_v, "sd_v": np.sqrt(np.maximum(var_v, 0.0)), "Bi": Bi, "c_mi": c_mi,
            "W": (mass * alive[None, :]).T @ c_mi, "denom": float(st.denom_tokens),
            "o0": shared_occ + float(st.pin_mean) / K}


def _erlang_cdf_rows(x: np.ndarray, tau: float) -> np.ndarray:
    """P(G_1 + .. + G_m <= x[m-1, j]) for exponential gaps of mean tau, row m-1 = m gaps.

    The same Erlang sum as hitrate.gaps.gap_sum_cdf (Poisson terms by recurrence from
    e^-y, exact for m <= 40, Wilson-Hilferty's approximation beyond), arranged for the
    scattered model's (M, X) age grid: row r needs the terms i < r + 1, so the recurrence
    runs over the rows still needing it (a shrinking slice) instead of masking the whole
    matrix at every step: about a third of the work."""
    y = np.maximum(x, 1e-300) / tau
    M = y.shape[0]
    exact = min(M, _ERLANG_EXACT_MAX)
    out = np.empty_like(y)
    term = np.exp(-y[:exact])
    acc = term.copy()
    for i in range(1, exact):
        term[i:] *= y[i:exact] / i
        acc[i:] += term[i:]
    out[:exact] = 1.0 - acc
    if M > exact:
        mb = np.arange(exact + 1, M + 1, dtype=float)[:, None]
        v = 1.0 / (9.0 * mb)
        out[exact:] = norm_cdf((np.cbrt(y[exact:] / mb) - (1.0 - v)) / np.sqrt(v))
    return np.clip(out, 0.0, 1.0)


#: |z| beyond which E[(c - V)+] is its limit (d or 0) to within s * phi(8.5) ~ 1.5e-16 s.
_TAIL_Z = 8.5


def _positive_part_banded(c, m, s):
    """E[(c - V)+] for V ~ Normal(m, s^2), the same as hitrate.refined.normal_positive_part_mean, with
    the normal CDF and density evaluated only where |z| < 8.5: beyond, the value is d = c - m
    or 0 to 1e-16 relative. Most (age, chain) cells of the scattered model sit in a tail (the
    chain long gone, or surely kept), so this costs a fraction of the full evaluation."""
    d = np.asarray(c - m, dtype=float)
    s_full = np.broadcast_to(np.asarray(s, dtype=float), d.shape)
    z = d / np.where(s_full > 0, s_full, 1.0)
    out = np.where(z > 0, d, 0.0)
    band = (np.abs(z) < _TAIL_Z) & (s_full > 0)
    if band.any():
        zb, sb = z[band], s_full[band]
        out[band] = d[band] * norm_cdf(zb) + sb * norm_pdf(zb)
    return out


def _scattered_at(g: dict, capacity_tokens: float) -> dict:
    b, Ps, EN, hs, Bi, c_mi, W = g["b"], g["Ps"], g["EN"], g["hs"], g["Bi"], g["c_mi"], g["W"]
    Cb = math.floor(capacity_tokens / b)
    mean_v, sd_v = g["mean_v"], g["sd_v"]
    pos0 = _positive_part_banded(Cb, mean_v, sd_v)                          # (X,)
    pos1 = _positive_part_banded(Cb - 1.0, mean_v, sd_v)
    posB = _positive_part_banded(Cb - Bi[None, :], mean_v[:, None], sd_v[:, None])   # (X, I)
    keep = np.clip(pos0[:, None] - posB, 0.0, Bi[None, :])                 # (X, I)
    own_blocks = float((keep * W).sum())
    own_any = float((((pos0 - pos1)[:, None] * (Bi >= 1)[None, :]) * W).sum())
    idle = g["idle"]
    shared_blocks = hs * (Ps if Cb >= Ps else Ps * (1.0 - idle) + Cb * idle)
    denom = g["denom"]
    # An own chain found on the instance implies its shared prefix is there too (touched
    # at the same visit, freed after it): h_s weighs the shared blocks only (hitrate/refined.py).
    tok = (shared_blocks * b * EN + b * own_blocks) / denom
    req = own_any / EN
    # infinite capacity: every chain left on the chosen instance is found whole
    ceil_own = float((c_mi @ Bi).sum())
    o0 = g["o0"]
    return {
        "token_hit_rate": float(np.clip(tok, 0.0, 1.0)), "request_hit_rate": float(np.clip(req, 0.0, 1.0)),
        "ideal_token_hit_rate": float((Ps * b * EN + b * ceil_own) / denom),
        "ideal_request_hit_rate": float(((c_mi * (Bi >= 1)[None, :]).sum()) / EN),
        "overload": bool(o0 > Cb),
        "overload_ends_at_capacity_tokens": float((math.floor(o0) + 1.0) * b),
        "mean_turns": EN, "prompt_tokens_per_conversation": denom,
    }


def _per_instance_hits(w: Workload, c: CacheConfig, fleet: FleetConfig, caps_tokens: np.ndarray, model: str):
    """Total token/request hit rates of the fleet at per-instance capacities ``caps_tokens``."""
    K = fleet.instances
    if fleet.routing == "pooled":
        cc = dataclasses.replace(c, capacity_tokens=caps_tokens * K)
        r = hit_rates(w, cc, model)
    elif K == 1 or fleet.routing == "affinity":
        wk = dataclasses.replace(w, conversation_rate_per_s=w.conversation_rate_per_s / K)
        r = hit_rates(wk, dataclasses.replace(c, capacity_tokens=caps_tokens), model)
    else:
        rows = [scattered_hit_rates(w, dataclasses.replace(c, capacity_tokens=float(x)), K) for x in caps_tokens]
        return {k: np.array([row[k] for row in rows]) for k in rows[0]}
    return r


def stack_capacities_tokens(gpu_tokens: float, tiers, mode: str, pinned_tokens: float = 0.0) -> np.ndarray:
    """Capacity of the cache made of the GPU and the tiers above tier j, for j = 0..n.

    Exclusive: one LRU stack of the summed capacity, so the GPU and the first j
    tiers behave as one cache of C + C1 + .. + Cj. Inclusive (write-through):
    each lower tier is an LRU copy of every freed chain, so the union of the
    first j tiers is about the largest of them; a lower tier holds no running
    request's blocks (the GPU's ``pinned_tokens``), so tier j acts as a cache
    of Cj + pinned_tokens in the GPU's terms: max(C, C1 + pin, .., Cj + pin).
    """
    caps = [float(gpu_tokens)]
    for t in tiers:
        caps.append(caps[-1] + t.capacity_tokens if mode == "exclusive"
                    else max(caps[-1], t.capacity_tokens + pinned_tokens))
    return np.array(caps)


def fleet_hit_rates(w: Workload, c: CacheConfig, fleet: FleetConfig, model: str = "refined") -> dict:
    """Hit rates of a fleet (K instances, routing, lower tiers): scalar inputs.

    ``token_hit_rate`` is the total over tiers; ``tier_token_hit_rates`` lists
    the GPU first, then each tier (summing to the total): tier j's share is
    H(stack through j) - H(stack through j-1) (see :func:`stack_capacities_tokens`).
    ``random_routing_ceiling``: the share of the own-history request hits an
    infinite cache keeps when turns land on uniform instances (L/(L+K-1) for
    geometric turns; 1 under affinity or pooled).
    """
    if not isinstance(fleet, FleetConfig):
        raise InputError("fleet", fleet, "a FleetConfig", "wrong type")
    _scalar_inputs(w, c)
    pinned_tokens = 0.0
    if fleet.tier_mode == "inclusive" and fleet.tiers:
        share = 1.0 / fleet.instances   # pooled: tiers are K x C_j, pinned blocks are the fleet's
        st = structure(w, c)
        pinned_tokens = float(st.pin_mean) * share * st.b
    caps = stack_capacities_tokens(float(c.capacity_tokens), fleet.tiers, fleet.tier_mode, pinned_tokens)
    r = _per_instance_hits(w, c, fleet, caps, model)
    tok = np.maximum.accumulate(np.asarray(r["token_hit_rate"], float).reshape(-1))
    req = np.asarray(r["request_hit_rate"], float).reshape(-1)
    tiers = np.diff(np.concatenate([[0.0], tok]))
    out = {
        "token_hit_rate": float(tok[-1]),
        "request_hit_rate": float(req[-1]),
        "gpu_token_hit_rate": float(tok[0]),
        "tier_token_hit_rates": [float(x) for x in tiers],
        "ideal_token_hit_rate": float(np.asarray(r["ideal_token_hit_rate"]).reshape(-1)[0]),
        "ideal_request_hit_rate": float(np.asarray(r["ideal_request_hit_rate"]).reshape(-1)[0]),
        "overload": bool(np.asarray(r["overload"]).reshape(-1)[0]),
        "overload_ends_at_capacity_tokens": float(np.asarray(r["overload_ends_at_capacity_tokens"]).reshape(-1)[0])
        / (fleet.instances if fleet.routing == "pooled" else 1),
        "instances": fleet.instances, "routing": fleet.routing,
    }
    if fleet.routing in ("random", "round_robin") and fleet.instances > 1:
        single = hit_rates(w, dataclasses.replace(c, capacity_tokens=1e13), "che")
        own = float(single["ideal_request_hit_rate"])
        # one-turn conversations have no own history to lose: the ceiling is 1 then
        out["random_routing_ceiling"] = out["ideal_request_hit_rate"] / own if own > 0 else 1.0
    else:
        out["random_routing_ceiling"] = 1.0
    return out


#: Instance counts of the hit-rate-vs-K figure.
FIGURE_INSTANCES = (1, 2, 4, 8, 16, 32)


def hit_rate_vs_instances(w: Workload, c: CacheConfig, fleet: FleetConfig, model: str = "che",
                          instances=FIGURE_INSTANCES) -> dict:
    """Token hit rate against K for each routing, each instance with capacity C and the
    fleet's tiers (the page's "hit rate vs K" chart), and the random-routing ceiling."""
    ks = [int(k) for k in instances]
    out = {"instances": ks, "routing": {}, "random_routing_ceiling": []}
    for routing in ROUTINGS:
        if routing == "round_robin":   # the same model as random (module docstring)
            out["routing"][routing] = list(out["routing"]["random"])
            continue
        row = []
        for k in ks:
            row.append(fleet_hit_rates(w, c, dataclasses.replace(fleet, instances=k, routing=routing),
                                       model)["token_hit_rate"])
        out["routing"][routing] = row
    L = float(w.turns_mean)
    geometric = w.turns_distribution == "geometric"
    out["random_routing_ceiling"] = [L / (L + k - 1.0) if geometric else None for k in ks]
    return out


def tier_split_vs_capacity(w: Workload, c: CacheConfig, fleet: FleetConfig, capacities_tokens,
                           model: str = "che") -> dict:
    """Per-tier token hit rates along GPU capacities per instance (tiers fixed): the page's
    "tier split along the memory curve". Affinity/pooled routing only (vectorised)."""
    caps = np.asarray(capacities_tokens, dtype=float)
    if fleet.routing in ("random", "round_robin") and fleet.instances > 1:
        rows = [fleet_hit_rates(w, dataclasses.replace(c, capacity_tokens=float(x)), fleet, model)["tier_token_hit_rates"]
                for x in caps]
        split = np.array(rows).T
    else:
        pinned = 0.0
        if fleet.tier_mode == "inclusive" and fleet.tiers:
            st = structure(w, c)
            pinned = float(st.pin_mean) / fleet.instances * st.b
        stack = np.array([stack_capacities_tokens(x, fleet.tiers, fleet.tier_mode, pinned) for x in caps])  # (n, j)
        r = _per_instance_hits(w, c, fleet, stack.ravel(), model)
        tok = np.maximum.accumulate(np.asarray(r["token_hit_rate"], float).reshape(stack.shape), axis=1)
        split = np.diff(np.concatenate([np.zeros((caps.size, 1)), tok], axis=1), axis=1).T
    names = ["gpu"] + [t.name for t in fleet.tiers]
    return {"capacity_tokens": caps.tolist(),
            "tiers": [{"name": n, "token_hit_rate": [float(v) for v in row]} for n, row in zip(names, split)]}
