"""A stand-in kvcalc.api for the protocol tests (served in place of py/kvcalc/api.py).

It exercises every path of the worker's protocol and does not depend on the real core,
so these tests keep passing while the core changes.
"""

import numpy as np

from kvcalc.errors import InputError

__all__ = ["compute", "simulate", "echo", "boom", "not_json"]


def compute(request: dict) -> dict:
    if "bad" in request:
        raise InputError("bad", request["bad"], "nothing", "not allowed")
    x = np.asarray(request.get("x", [0.0]), dtype=float)
    return {"echo": request, "sum": float(x.sum()), "mean": np.float64(x.mean())}


def simulate(request: dict, progress=None) -> dict:
    steps = int(request.get("steps", 10))
    for i in range(steps):
        if progress is not None:
            progress((i + 1) / steps)
    return {"steps": steps}


def echo(*args):
    return list(args)


def boom():
    raise ZeroDivisionError("stub failure")


def not_json():
    return {"x": float("nan")}


def _private():
    return "never callable"
