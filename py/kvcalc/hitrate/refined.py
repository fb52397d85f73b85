"""The refined LRU/TTL model (default): Normal fluctuations of the evicting volume, partial-chain hits.

The volume V(g) of blocks touched by others during a gap g is Normal with
Campbell's mean and variance; a chain of B_k blocks keeps clamp(C_b - V(G), 0, B_k)
blocks (LRU, tail-first freeing), averaged over G by equal-probability quantile
nodes (MODEL.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import InputError
from ..special import norm_cdf, norm_pdf
from ..workload import CacheConfig, Workload
from .gaps import gap_quantile
from .occupancy import (characteristic_time_s, occupancy_blocks, occupancy_variance_blocks2,
                        shared_prompt_hit_blocks, shared_prompt_presence)
from .structure import HitInputs, Structure, structure

__all__ = ["REFINED_GAP_NODES", "normal_positive_part_mean", "refined_own_hits", "refined_token_hit_rate_fn",
           "refined_hit_rates"]

#: Quadrature nodes over the gap distribution in the refined model.
REFINED_GAP_NODES = 96
#: Largest number of (point x node x turn) cells evaluated at once (memory cap).
_REFINED_CHUNK_CELLS = 2_000_000


def normal_positive_part_mean(c, m, s):
    """E[(c - V)+] for V ~ Normal(m, s^2) (s may be 0)."""
    d = c - m
    s_safe = np.where(s > 0, s, 1.0)
    z = d / s_safe
    smooth = d * norm_cdf(z) + s_safe * norm_pdf(z)
    return np.where(s > 0, smooth, np.maximum(d, 0.0))


def _gap_nodes(distribution: str, nodes: int) -> np.ndarray:
    """Equal-probability quantile levels representing the gap G."""
    if distribution == "deterministic":
        return np.array([0.5])
    return (np.arange(nodes) + 0.5) / nodes


def _node_moments(sub: Structure, q, tau, sigma, ttl):
    """Gap g at each node, and the Normal mean/sd of V(g) there (capacity-free)."""
    g = gap_quantile(q, tau, sub.gap_distribution, sigma)
    m = occupancy_blocks(sub, g)
    s = np.sqrt(np.maximum(occupancy_variance_blocks2(sub, g), 0.0))
    alive = (g < ttl).astype(float)                                                        # TTL expiry
    return m, s, alive


def _own_hits_from_moments(c, m, s, alive, B, wk):
    """(E[surviving own blocks], P(>= 1 survives)) summed over turns with weights wk.

    Shapes: c (n, 1) capacity in blocks; m, s, alive (n, nodes); B, wk (n, K).
    E clamp(c - V, 0, B_k) = E(c - V)+ - E(c - B_k - V)+ ; only the second term
    needs the k axis. "At least one block" is clamp(., 0, 1) for every B_k >= 1.
    """
    pos0 = normal_positive_part_mean(c, m, s)                                                # (n, nodes)
    pos1 = normal_positive_part_mean(c - 1.0, m, s)
    posB = normal_positive_part_mean(c[..., None] - B[:, None, :], m[..., None], s[..., None])
    # difference per cell (not of sums): pos0 and posB are both ~c when c is huge
    surv = (np.clip(pos0[..., None] - posB, 0.0, B[:, None, :]) * wk[:, None, :]).sum(-1)  # (n, nodes)
    any_weight = (wk * (B >= 1)).sum(-1)[:, None]
    return (surv * alive).mean(-1), ((pos0 - pos1) * any_weight * alive).mean(-1)


def refined_own_hits(st: Structure, ttl_s, nodes: int):
    """Per point: (sum_k P(N>k) E[surviving own blocks], sum_k P(N>k) P(>=1 survives)).

    The gap G is represented by ``nodes`` equal-probability quantile nodes; each
    node carries the Normal mean/variance of V(G) at that gap.
    """
    q = _gap_nodes(st.gap_distribution, nodes)
    flat = int(np.prod(st.shape)) if st.shape else 1
    K = st.B.shape[-1]
    tau = st.tau.reshape(flat)
    sig = st.sigma.reshape(flat)
    blocks_out = np.empty(flat)
    any_out = np.empty(flat)
    ttl = np.broadcast_to(np.asarray(ttl_s, float), st.shape).reshape(flat)
    chunk = max(1, _REFINED_CHUNK_CELLS // (q.size * K))
    sub_fields = ("lam", "tau", "sigma", "S", "Cb", "Ps", "EN", "A1", "A2", "A1sq", "A2sq",
                  "pin_mean", "pin_var")
    flat_fields = {f: getattr(st, f).reshape(flat) for f in sub_fields}
    w_ret = st.w_ret.reshape(flat, K)
    B = st.B.reshape(flat, K)
    for start in range(0, flat, chunk):
        sl = slice(start, start + chunk)
        sub = Structure(shape=(min(chunk, flat - start), 1), b=st.b, gap_distribution=st.gap_distribution,
                        ttl_s=st.ttl_s,
                        denom_tokens=None, returning_any=None, w_ret=None, B=None,
                        **{f: flat_fields[f][sl][:, None] for f in sub_fields})
        m, s, alive = _node_moments(sub, q[None, :], tau[sl][:, None], sig[sl][:, None], ttl[sl][:, None])
        blocks_out[sl], any_out[sl] = _own_hits_from_moments(sub.Cb, m, s, alive, B[sl], w_ret[sl])
    return blocks_out.reshape(st.shape), any_out.reshape(st.shape)


def refined_token_hit_rate_fn(w: Workload, c: CacheConfig, nodes: int = REFINED_GAP_NODES):
    """cap_tokens -> refined token hit rate, for one scalar workload (used by the inverse).

    The node moments of V(g) do not depend on the capacity, so they are computed
    once; each call then costs one (nodes x K) normal term and a Newton solve for T.
    """
    st = structure(w, dataclasses.replace(c, capacity_tokens=1.0))
    if st.shape:
        raise InputError("workload", "array", "scalar inputs for the inverse", "not a scalar")
    q = _gap_nodes(st.gap_distribution, nodes)
    ttl = c.ttl_s if c.eviction == "ttl" else math.inf
    sub = dataclasses.replace(st, shape=(1, 1), **{f: np.reshape(getattr(st, f), (1, 1)) for f in (
        "lam", "tau", "sigma", "S", "Cb", "Ps", "EN", "A1", "A2", "A1sq", "A2sq", "pin_mean", "pin_var")})
    m, s, alive = _node_moments(sub, q[None, :], sub.tau, sub.sigma, ttl)
    B = st.B.reshape(1, -1)
    wk = st.w_ret.reshape(1, -1)

    known_T = {}  # capacity blocks -> T, to warm-start Newton from a smaller capacity

    def token_hit(cap_tokens: float) -> float:
        cb = math.floor(cap_tokens / st.b)
        st_c = dataclasses.replace(st, Cb=np.asarray(float(cb)))
        below = [t for k, t in known_T.items() if k <= cb and math.isfinite(t)]
        T, overload = characteristic_time_s(st_c, start_s=max(below, default=0.0))
        known_T[cb] = float(T)
        hs = float(np.where(st.Ps > 0, shared_prompt_presence(st, min(float(T), ttl)), 1.0))
        own, _ = _own_hits_from_moments(np.array([[float(cb)]]), m, s, alive, B, wk)
        shared = float(shared_prompt_hit_blocks(st_c, hs))
        tok = (shared * st.b * float(st.EN) + st.b * float(own[0])) / float(st.denom_tokens)
        return min(max(tok, 0.0), 1.0)

    return token_hit




def refined_hit_rates(x: HitInputs):
    """(token hit rate, request hit rate, h_s) of the refined model under LRU or TTL.

    Own blocks hang off the shared prefix, but under LRU and TTL an own chain that
    survived implies the prefix did: the conversation's previous turn touched the
    shared prompt as recently as its own blocks, and vLLM frees a chain tail-first.
    So h_s weighs only the shared blocks' own hits, not the own-history hits.
    """
    st = x.st
    own_blocks, own_any = refined_own_hits(st, x.ttl_s, x.nodes)
    tok = (shared_prompt_hit_blocks(st, x.hs) * st.b * st.EN + st.b * own_blocks) / st.denom_tokens
    req = own_any / st.EN
    return tok, req, x.hs
