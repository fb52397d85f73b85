"""The one validation error of the package.

Every bad input raises :class:`InputError`, naming the field (its request key
path), the value received and the allowed range, so the page can put the
message next to the right control and the CLI can print it.
"""

from __future__ import annotations

import math

__all__ = ["InputError", "require_number", "require_choice", "require_int"]


class InputError(ValueError):
    """A request field is missing, malformed or out of range."""

    def __init__(self, field: str, value: object, allowed: str, problem: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.problem = problem or "out of range"
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {self.problem}: got {shown}; allowed: {allowed}")

    def to_dict(self) -> dict:
        value = self.value
        if not isinstance(value, (int, float, str, bool)) or value is None:
            value = repr(value)[:200]
        elif isinstance(value, float) and not math.isfinite(value):
            value = repr(value)
        return {"field": self.field, "value": value, "allowed": self.allowed,
                "problem": self.problem, "message": str(self)}


def _range_text(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    def fmt(x: float) -> str:
        if x == math.inf:
            return "inf"
        if x == -math.inf:
            return "-inf"
        return f"{x:g}"
    return f"{left}{fmt(lo)}, {fmt(hi)}{right}"


def require_number(field: str, value: object, lo: float = -math.inf, hi: float = math.inf,
                   lo_open: bool = False, hi_open: bool = False,
                   allow_inf: bool = False) -> float:
    """Return ``value`` as a finite float inside the range, or raise InputError.

    Booleans and strings are refused: the request is JSON, and a number typed
    as text is a client bug worth naming.
    """
    allowed = _range_text(lo, hi, lo_open, hi_open)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(field, value, f"a number in {allowed}", "not a number")
    x = float(value)
    if math.isnan(x):
        raise InputError(field, value, f"a number in {allowed}", "not a number (NaN)")
    if math.isinf(x) and not allow_inf:
        raise InputError(field, value, f"a finite number in {allowed}", "not finite")
    if x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi):
        raise InputError(field, value, allowed)
    return x


def require_int(field: str, value: object, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; floats with an integral value are accepted."""
    x = require_number(field, value, lo, hi)
    if x != int(x):
        raise InputError(field, value, f"an integer in [{lo}, {hi}]", "not an integer")
    return int(x)


def require_choice(field: str, value: object, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(field, value, "one of " + ", ".join(sorted(choices)), "unknown value")
    return value
