"""The registry of hit-rate models and :func:`hit_rates`, the one function callers use.

Each model is a function ``<model>_hit_rates(HitInputs) -> (token hit rate,
request hit rate, h_s)`` in its own module; :func:`hit_rates` computes what they
share (the per-turn structure, T, h_s, the ideal, the occupancy) and adds theirs.

* ``refined`` (default, :mod:`.refined`), ``che`` (:mod:`.che`): LRU and TTL;
  under eviction "fifo" both give way to the FIFO model (:mod:`.fifo`).
* ``seed`` (:mod:`.seed`): the legacy formula, whatever the eviction.
* ``closed`` (:mod:`.closed`): a whole answer of its own (no per-turn structure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError
from ..workload import CacheConfig, Workload
from .che import che_hit_rates
from .closed import closed_hit_rates
from .fifo import fifo_hit_rates
from .occupancy import (characteristic_time_s, occupancy_parts_blocks, overload_ends_at_capacity_tokens,
                        shared_prompt_presence)
from .refined import REFINED_GAP_NODES, refined_hit_rates
from .seed import seed_hit_rates
from .structure import HitInputs, structure

__all__ = ["HitModel", "MODELS", "HIT_MODELS", "EVICTION_MODELS", "hit_rates"]


@dataclass(frozen=True)
class HitModel:
    """One entry of the registry: either ``rates`` (on the shared structure) or ``whole`` (answers alone)."""

    rates: Callable | None = None
    whole: Callable | None = None
    #: whether a model of :data:`EVICTION_MODELS` replaces it under that eviction policy
    follows_eviction: bool = True


#: hit_model -> its model
MODELS: dict[str, HitModel] = {
    "refined": HitModel(rates=refined_hit_rates),
    "che": HitModel(rates=che_hit_rates),
    "closed": HitModel(whole=closed_hit_rates),
    "seed": HitModel(rates=seed_hit_rates, follows_eviction=False),
}
HIT_MODELS = tuple(MODELS)
#: eviction policy -> the model that replaces the LRU/TTL models under it
EVICTION_MODELS: dict[str, Callable] = {"fifo": fifo_hit_rates}


def _rates_of(entry: HitModel, c: CacheConfig) -> Callable:
    if entry.follows_eviction and c.eviction in EVICTION_MODELS:
        return EVICTION_MODELS[c.eviction]
    return entry.rates


def hit_rates(w: Workload, c: CacheConfig, model: str = "refined", nodes: int = REFINED_GAP_NODES,
              also: tuple = ()) -> dict:
    """Token and request hit rates, ideal ceiling, T and occupancy (arrays broadcast).

    Returns numpy arrays (or floats) under the keys token_hit_rate,
    request_hit_rate, ideal_token_hit_rate, ideal_request_hit_rate,
    characteristic_time_s, overload, occupancy_*_blocks.
    ``also``: more models of the registry on the same structure and T (each the
    ``token_hit_rate`` its own call would give), under ``<model>_token_hit_rate``;
    a model without them (``closed``, or one answering alone) gets none.
    """
    entry = MODELS.get(model) if isinstance(model, str) else None
    if entry is None:
        raise InputError("hit_model", model, "one of " + ", ".join(HIT_MODELS), "unknown model")
    if entry.whole is not None:
        return entry.whole(w, c)
    st = structure(w, c)
    T, overload = characteristic_time_s(st)
    ttl = c.ttl_s if c.eviction == "ttl" else math.inf
    T_eff = np.minimum(T, ttl)
    b = st.b
    hs = np.where(st.Ps > 0, shared_prompt_presence(st, T_eff), 1.0)
    ideal_tok = (st.Ps * b * st.EN + b * st.A1) / st.denom_tokens
    ideal_req = st.returning_any / st.EN
    inputs = HitInputs(w=w, c=c, st=st, T_eff=T_eff, hs=hs, ttl_s=ttl, nodes=nodes)
    tok, req, hs = _rates_of(entry, c)(inputs)
    parts = occupancy_parts_blocks(st, T_eff)
    # Overload (the in-flight working set alone exceeds the cache) is no cliff:
    # requests wait or are preempted, the blocks running requests hold stay
    # cached, so the shared prompt (held by almost every running request) keeps
    # hitting and chains still hit whenever the working set dips below the
    # capacity (the refined model's Normal V carries that). T = 0 there.
    tok = np.clip(tok, 0.0, 1.0)
    req = np.clip(req, 0.0, 1.0)
    out = {
        "token_hit_rate": tok, "request_hit_rate": req,
        "ideal_token_hit_rate": ideal_tok, "ideal_request_hit_rate": ideal_req,
        "characteristic_time_s": T_eff, "overload": overload,
        "system_prompt_presence": hs,
        "mean_turns": st.EN, "prompt_tokens_per_conversation": st.denom_tokens,
        "capacity_blocks": st.Cb,
        "overload_ends_at_capacity_tokens": overload_ends_at_capacity_tokens(st),
    }
    for name, v in parts.items():
        out[f"occupancy_{name}_blocks"] = np.minimum(v, st.Cb)
    for other in also:
        extra = MODELS.get(other)
        if extra is not None and extra.rates is not None:
            out[f"{other}_token_hit_rate"] = np.clip(_rates_of(extra, c)(inputs)[0], 0.0, 1.0)
    return out
