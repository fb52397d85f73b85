"""The worker's side of the JS/Python boundary (runs inside Pyodide; plain CPython in tests).

The worker calls :func:`call` with a function name and a JSON string of positional
arguments and gets one JSON string back: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"field", "message", "kind", ...}}``. JSON strings both ways keep
proxies out of the payload (only the optional progress callback is a proxy, borrowed for
the duration of the call). Binary inputs (a trace file) come as ``buffers``, a list of
byte buffers (JS Uint8Arrays in Pyodide), and replace each ``{"$buffer": i}`` in the
arguments by ``bytes``; ``files`` (browser File objects, wrapped in the worker as
``{size, name, read(offset, n)}``) replace each ``{"$file": i}`` by a
``kvcalc.trace.reader.BlobSource`` read by slices (bounded memory). A function that takes
``status`` gets one that passes each status dict on as ``progress(fraction, json)``.
Only the functions kvcalc.api exposes can be called:
``kvcalc.api.ENDPOINTS`` when it defines it, else ``kvcalc.api.__all__``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import traceback

__all__ = ["call", "endpoints"]

_API = "kvcalc.api"


def _api():
    return importlib.import_module(_API)


def endpoints(api=None) -> list[str]:
    """The whitelist of callable names in kvcalc.api."""
    api = api if api is not None else _api()
    names = getattr(api, "ENDPOINTS", None)
    if names is None:
        names = getattr(api, "__all__", ())
    return sorted(n for n in names
                  if not n.startswith("_") and callable(getattr(api, n, None)))


def _json_default(obj):
    # numpy scalars and arrays: the core should return plain types, but don't fail on these.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _error(kind: str, message: str, **extra) -> str:
    return json.dumps({"ok": False, "error": {"field": None, "message": message, "kind": kind,
                                              **extra}}, default=repr)


def _accepts_progress(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _as_bytes(buf) -> bytes:
    if hasattr(buf, "to_bytes"):      # a JsProxy of a Uint8Array (Pyodide)
        return buf.to_bytes()
    return bytes(buf)


def _with_buffers(value, blobs: list):
    """``value`` with every ``{"$buffer": i}`` replaced by ``blobs[i]``."""
    if isinstance(value, dict):
        if set(value) == {"$buffer"}:
            i = value["$buffer"]
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(blobs):
                raise ValueError(f"{{'$buffer': {i!r}}} names no buffer (have {len(blobs)})")
            return blobs[i]
        return {k: _with_buffers(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_buffers(v, blobs) for v in value]
    return value


def _with_files(value, files: list):
    """``value`` with every ``{"$file": i}`` replaced by a BlobSource reading ``files[i]`` by slices."""
    if isinstance(value, dict):
        if set(value) == {"$file"}:
            i = value["$file"]
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(files):
                raise ValueError(f"{{'$file': {i!r}}} names no file (have {len(files)})")
            f = files[i]
            blob = importlib.import_module("kvcalc.trace.reader").BlobSource
            return blob(f.read, int(f.size), str(getattr(f, "name", "file")))
        return {k: _with_files(v, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_files(v, files) for v in value]
    return value


def _status_to_progress(progress):
    """A status(dict) callback passing each chunk's reading status on as progress(fraction, json)."""
    def status(d: dict) -> None:
        progress(d.get("fraction") or 0.0, json.dumps(d, default=repr))
    return status


def call(fn_name: str, args_json: str = "[]", progress=None, buffers=None, files=None) -> str:
    """Call ``kvcalc.api.<fn_name>(*json.loads(args_json))`` and return the reply as JSON.

    ``progress``, when given and the function takes a ``progress`` keyword, is passed on:
    a callable taking a fraction in [0, 1]. ``buffers``, when given, are byte buffers that
    replace the ``{"$buffer": i}`` placeholders in the arguments (as ``bytes``).
    """
    try:
        api = _api()
    except Exception as exc:  # the core failed to import: every call says why
        return _error("internal", f"kvcalc.api cannot be imported: {type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc()[-4000:])
    allowed = endpoints(api)
    if fn_name not in allowed:
        return _error("protocol", f"fn: unknown function {fn_name!r}; allowed: {', '.join(allowed)}",
                      field="fn", value=str(fn_name), allowed=allowed, problem="unknown function")
    try:
        args = json.loads(args_json)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        return _error("protocol", f"args: not JSON (or nested too deep): {type(exc).__name__}",
                      field="args")
    if not isinstance(args, list):
        return _error("protocol", "args: must be a JSON array of positional arguments",
                      field="args")
    if buffers is not None:
        try:
            args = _with_buffers(args, [_as_bytes(b) for b in buffers])
        except (TypeError, ValueError, RecursionError) as exc:
            return _error("protocol", f"buffers: {exc}", field="buffers")
    if files is not None:
        try:
            args = _with_files(args, list(files))
        except (TypeError, ValueError, AttributeError, RecursionError) as exc:
            return _error("protocol", f"files: {exc}", field="files")
    fn = getattr(api, fn_name)
    kwargs = {"progress": progress} if progress is not None and _accepts_progress(fn) else {}
    if kwargs and _accepts(fn, "status"):
        kwargs["status"] = _status_to_progress(progress)
    input_error = _input_error_class()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        if input_error is not None and isinstance(exc, input_error):
            return json.dumps({"ok": False, "error": {**exc.to_dict(), "kind": "input"}},
                              default=repr)
        return _error("internal", f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc()[-4000:])
    try:
        return json.dumps({"ok": True, "result": result}, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        return _error("internal", f"{fn_name} returned a result that is not JSON: {exc}")


def _input_error_class():
    try:
        return importlib.import_module("kvcalc.errors").InputError
    except Exception:
        return None
