"""The per-turn structure of a workload: the sums over turns every hit-rate model uses (MODEL.md).

Symbols follow ``shared/notes/MODEL.md``: lambda (conversation rate), N (turns,
mean L), G (gap, mean tau), u, o, a = u+o, P (system prompt tokens), b (block
size), S (service time), C_b (capacity in blocks), B_k (own full blocks after turn k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..workload import CacheConfig, Workload, turn_pmf, turn_support

__all__ = ["Structure", "structure", "HitInputs"]


@dataclass(frozen=True)
class Structure:
    """Per-turn sums of the workload, broadcast to one shape (no k axis).

    All block counts are in blocks of ``b`` tokens; token sums in tokens.
    """

    shape: tuple
    lam: np.ndarray            # conversations per s
    tau: np.ndarray            # mean gap, s
    sigma: np.ndarray          # lognormal shape
    S: np.ndarray              # service time, s
    b: int                     # block size, tokens
    Cb: np.ndarray             # capacity, blocks
    Ps: np.ndarray             # shared full blocks floor(P/b)
    EN: np.ndarray             # E[N]
    denom_tokens: np.ndarray   # sum_k P(N>=k) * prompt_k  (prompt tokens per conversation)
    A1: np.ndarray             # sum_k P(N>k) B_k
    A2: np.ndarray             # sum_k P(N=k) B_k
    A1sq: np.ndarray           # sum_k P(N>k) B_k^2
    A2sq: np.ndarray           # sum_k P(N=k) B_k^2
    pin_mean: np.ndarray       # lambda * S * sum_k P(N>=k) Bpin_k
    pin_var: np.ndarray        # lambda * S * sum_k P(N>=k) Bpin_k^2
    returning_any: np.ndarray  # sum_k P(N>k) [B_k >= 1]
    # per-turn arrays with a trailing k axis (k = 1..K), for the refined model
    w_ret: np.ndarray          # P(N>k)
    B: np.ndarray              # B_k
    gap_distribution: str
    ttl_s: float = math.inf    # idle expiry of cached blocks (inf: plain LRU)
    turns_distribution: str = "geometric"


def _turn_sums(L, u, o, P, b: int, distribution: str):
    """The per-turn sums (everything with a k axis), on the broadcast shape of L, u, o and P alone."""
    u = np.round(u)
    o = np.round(o)
    P = np.round(P)
    a = u + o
    K = turn_support(L, distribution)
    pmf = turn_pmf(L, distribution, K)                                 # P(N=k)
    ge = np.cumsum(pmf[..., ::-1], axis=-1)[..., ::-1]                 # P(N>=k)
    gt = ge - pmf                                                      # P(N>k)
    k = np.arange(1, K + 1, dtype=float)
    Pk = P[..., None]
    ak = a[..., None]
    Z = Pk + k * ak                                                    # tokens after turn k
    Ps = np.floor(P / b)
    B = np.floor(Z / b) - Ps[..., None]                                # own full blocks
    Bpin = np.ceil(Z / b) - Ps[..., None]                              # pinned while running
    prompt = Pk + (k - 1.0) * ak + u[..., None]
    return dict(
        Ps=Ps, EN=ge.sum(-1), denom_tokens=(ge * prompt).sum(-1),
        A1=(gt * B).sum(-1), A2=(pmf * B).sum(-1),
        A1sq=(gt * B * B).sum(-1), A2sq=(pmf * B * B).sum(-1),
        pin1=(ge * Bpin).sum(-1), pin2=(ge * Bpin * Bpin).sum(-1),
        returning_any=(gt * (B >= 1)).sum(-1), w_ret=gt, B=B)


def _unique_turn_sums(L, u, o, P, b: int, distribution: str):
    """_turn_sums once per distinct (L, u, o, P) (a sweep varies one input per row: most rows
    repeat the current values), then placed back on their shape; each element's sums are the
    same operations on the same numbers. The turn support K stays that of the largest L."""
    n = L.size
    if n <= 2:
        return _turn_sums(L, u, o, P, b, distribution)
    rows = np.stack([L.ravel(), u.ravel(), o.ravel(), P.ravel()], axis=-1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    if len(uniq) == n:
        return _turn_sums(L, u, o, P, b, distribution)
    inverse = np.asarray(inverse).reshape(-1)
    t = _turn_sums(uniq[:, 0], uniq[:, 1], uniq[:, 2], uniq[:, 3], b, distribution)
    # the support of the largest L (as on the full shape): it is among the distinct rows
    return {k: v[inverse].reshape(L.shape + v.shape[1:]) for k, v in t.items()}


def structure(w: Workload, c: CacheConfig) -> Structure:
    """Broadcast the inputs and compute the per-turn sums of MODEL.md.

    The sums over turns depend on the turns, the tokens per turn and the system prompt only:
    they are computed on those inputs' own broadcast shape (one row when a curve or a heatmap
    varies the capacity or the rate alone) and then broadcast, element for element the same
    numbers as on the full shape.
    """
    arrays = np.broadcast_arrays(
        np.asarray(w.conversation_rate_per_s, float), np.asarray(w.turns_mean, float),
        np.asarray(w.gap_mean_s, float), np.asarray(w.gap_lognormal_sigma, float),
        np.asarray(w.user_tokens_per_turn, float), np.asarray(w.output_tokens_per_turn, float),
        np.asarray(w.system_prompt_tokens, float), np.asarray(w.service_time_s, float),
        np.asarray(c.capacity_tokens, float))
    lam, tau, sigma, S, C = [np.array(x, dtype=float) for x in (arrays[0], arrays[2], arrays[3], arrays[7], arrays[8])]
    shape = lam.shape
    b = int(c.block_size_tokens)
    turn_in = np.broadcast_arrays(*(np.asarray(x, float) for x in (
        w.turns_mean, w.user_tokens_per_turn, w.output_tokens_per_turn, w.system_prompt_tokens)))
    L, u, o, P = [np.array(x, dtype=float) for x in turn_in]
    t = _unique_turn_sums(L, u, o, P, b, w.turns_distribution)
    if L.shape != shape:
        K = t["B"].shape[-1]
        t = {k: np.array(np.broadcast_to(v, shape + ((K,) if k in ("w_ret", "B") else ())))
             for k, v in t.items()}
    return Structure(
        shape=shape, lam=lam, tau=tau, sigma=sigma, S=S, b=b, Cb=np.floor(C / b), Ps=t["Ps"], EN=t["EN"],
        denom_tokens=t["denom_tokens"], A1=t["A1"], A2=t["A2"], A1sq=t["A1sq"], A2sq=t["A2sq"],
        pin_mean=lam * S * t["pin1"], pin_var=lam * S * t["pin2"],
        returning_any=t["returning_any"],
        w_ret=t["w_ret"], B=t["B"], gap_distribution=w.gap_distribution,
        ttl_s=float(c.ttl_s) if c.eviction == "ttl" else math.inf,
        turns_distribution=w.turns_distribution,
    )




@dataclass(frozen=True)
class HitInputs:
    """What a hit-rate model of the registry (kvcalc.hitrate.models) receives for one evaluation.

    ``T_eff`` is the characteristic time capped by the TTL, ``hs`` the shared
    prompt's presence h_s at ``T_eff`` (1 without a shared prompt), ``ttl_s`` the
    idle expiry (inf unless eviction is "ttl"), ``nodes`` the refined model's
    quadrature nodes over the gap.
    """

    w: Workload
    c: CacheConfig
    st: Structure
    T_eff: np.ndarray
    hs: np.ndarray
    ttl_s: float
    nodes: int
