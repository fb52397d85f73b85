"""The one validation error of the package.

Every bad input raises :class:`InputError`, naming the field (its request key
path), the value received and the allowed range, so the page can put the
message next to the right control and the CLI can print it.
"""

from __future__ import annotations

import math

__all__ = ["InputError", "require_number", "require_choice", "require_int", "require_limit", "CODES"]

#: Stable message codes (the page may render them from a catalogue; the English
#: message stays in every error). problem text -> code for errors raised without one.
CODES = ("out_of_range", "not_a_number", "not_finite", "not_an_integer", "not_an_object", "not_a_list",
         "not_a_string", "unknown_key", "unknown_value", "missing", "too_deep", "too_large",
         "invalid_json", "inconsistent", "not_applicable", "weights_do_not_fit", "heads_do_not_split",
         "internal_error", "invalid")
_PROBLEM_CODES = {
    "out of range": "out_of_range", "not a number": "not_a_number", "not a number (NaN)": "not_a_number",
    "not finite": "not_finite", "not an integer": "not_an_integer", "not an object": "not_an_object",
    "unknown key": "unknown_key", "unknown value": "unknown_value", "unknown dtype": "unknown_value",
    "unknown preset": "unknown_value", "unknown model": "unknown_value", "unknown figure": "unknown_value",
    "unknown parameter": "unknown_value", "unknown attention kind": "unknown_value",
    "missing": "missing", "missing field": "missing", "missing or invalid": "missing",
    "not a count": "not_an_integer", "not a positive integer": "not_an_integer",
    "not a positive number": "out_of_range", "bad list": "not_a_list", "not a list": "not_a_list",
    "heads do not split evenly": "inconsistent", "not applicable": "not_applicable",
    "wrong length": "inconsistent", "too deep": "too_deep", "too large": "too_large",
    "invalid JSON": "invalid_json", "not a string": "not_a_string",
}


def _plain_value(value):
    """The value as JSON can carry it (repr for anything else, and for NaN/inf and huge ints)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value if not isinstance(value, str) else value[:200]
    if isinstance(value, int):
        return value if abs(value) < 2**53 else _short_repr(value, 200)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return _short_repr(value, 200)


def _short_repr(value, n: int) -> str:
    try:
        if isinstance(value, (dict, list, tuple)) and len(value) > 20:
            shown = f"<{type(value).__name__} of {len(value)} items>"
        else:
            shown = repr(value)
    except (RecursionError, ValueError):  # deeply nested, or an int too long for repr
        shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= n else shown[:n - 3] + "..."


class InputError(ValueError):
    """A request field is missing, malformed or out of range.

    ``code`` is a stable identifier of the problem (see :data:`CODES`) and
    ``params`` the values a catalogue message needs (field, value, lo, hi,
    choices, ...); ``str(exc)`` is the English message.
    """

    def __init__(self, field: str, value: object, allowed: str, problem: str | None = None,
                 code: str | None = None, params: dict | None = None, value_detail: dict | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.problem = problem or "out of range"
        self.code = code or _PROBLEM_CODES.get(self.problem, "invalid")
        self.params = dict(params or {})
        self.value_detail = value_detail   # optional {code, params, message} twin of a value that is a text
        super().__init__(f"{field}: {self.problem}: got {_short_repr(value, 80)}; allowed: {allowed}")

    def to_dict(self) -> dict:
        value = _plain_value(self.value)
        params = {"field": self.field, "value": value}
        for k, v in self.params.items():
            params[k] = _plain_value(v) if not isinstance(v, (list, tuple)) else [_plain_value(x) for x in v]
        out = {"field": self.field, "value": value, "allowed": self.allowed,
               "problem": self.problem, "code": self.code, "params": params, "message": str(self)}
        if self.value_detail is not None:
            out["value_detail"] = self.value_detail
        return out


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
    x = None
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:  # an int beyond float range (10**400)
            x = None
    # the common case first: the range's text and params are written only for an error
    if x is not None and not math.isnan(x) and (allow_inf or not math.isinf(x)) \
            and not (x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi)):
        return x
    allowed = _range_text(lo, hi, lo_open, hi_open)
    params = {"lo": lo if math.isfinite(lo) else None, "hi": hi if math.isfinite(hi) else None,
              "lo_open": lo_open, "hi_open": hi_open}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(field, value, f"a number in {allowed}", "not a number", params=params)
    if x is None:  # an int beyond float range
        raise InputError(field, value, allowed, "out of range", params=params)
    if math.isnan(x):
        raise InputError(field, value, f"a number in {allowed}", "not a number (NaN)", params=params)
    if math.isinf(x) and not allow_inf:
        raise InputError(field, value, f"a finite number in {allowed}", "not finite", params=params)
    raise InputError(field, value, allowed, params=params)


def require_int(field: str, value: object, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; floats with an integral value are accepted."""
    x = require_number(field, value, lo, hi)
    if x != int(x):
        raise InputError(field, value, f"an integer in [{lo}, {hi}]", "not an integer",
                         params={"lo": lo, "hi": hi})
    return int(x)


def require_choice(field: str, value: object, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(field, value, "one of " + ", ".join(sorted(choices)), "unknown value",
                         params={"choices": sorted(choices)})
    return value


def require_limit(field: str, value: object, lim) -> float | int:
    """``value`` checked against a :class:`kvcalc.limits.Limit` (an int for integer fields).

    Above the top of an architecture row the problem says "larger than any real model".
    """
    try:
        x = require_number(field, value, lim.lo, lim.hi, lim.lo_open, lim.hi_open)
    except InputError as exc:
        if getattr(lim, "arch", False) and exc.code == "out_of_range" and not isinstance(value, bool):
            try:
                above = float(value) > lim.hi
            except OverflowError:
                above = value > 0
            if above:
                raise InputError(field, value, lim.range_text(), "larger than any real model",
                                 code="out_of_range", params={"lo": lim.lo, "hi": lim.hi}) from None
        raise
    if lim.integer:
        if x != int(x):
            raise InputError(field, value, lim.range_text(), "not an integer",
                             params={"lo": lim.lo, "hi": lim.hi})
        return int(x)
    return x
