"""The Che / TTL approximation under LRU or TTL: a turn hits its whole chain iff its gap is shorter than T.

T is the characteristic time where the mean occupancy O(T) equals C_b
(kvcalc.hitrate.occupancy). Fast: the charts' sweeps use it.
"""

from __future__ import annotations

from .gaps import gap_cdf
from .occupancy import shared_prompt_hit_blocks
from .structure import HitInputs

__all__ = ["che_hit_rates"]


def che_hit_rates(x: HitInputs):
    """(token hit rate, request hit rate, h_s): own chains hit with probability h = F_G(T)."""
    st = x.st
    h = gap_cdf(x.T_eff, st.tau, st.gap_distribution, st.sigma)
    tok = (shared_prompt_hit_blocks(st, x.hs) * st.b * st.EN + h * st.b * st.A1) / st.denom_tokens
    req = h * st.returning_any / st.EN
    return tok, req, x.hs
