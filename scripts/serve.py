#!/usr/bin/env python3
"""Serve the repository root as a static site on 127.0.0.1, the way the page needs it.

    python scripts/serve.py [--port 8000] [--cors] [--no-build]

Then open http://127.0.0.1:8000/ . The page cannot work from file:// (module workers need
an http origin), and MIME types matter: Pyodide hangs without an error when .wasm is not
application/wasm, and .mjs served as text/plain fails to import. Builds runtime/ first
(scripts/build_runtime.sh) when it is missing, so the page runs offline from the local copy.

Also importable: ``make_server(root, port=0, cors=False)`` for tests (port 0 = a free port).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MIME = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".py": "text/x-python; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}
    cors = False
    quiet = False

    def end_headers(self) -> None:
        # Always revalidate: a stale app.js or worker.js after an edit costs more than a 304.
        self.send_header("Cache-Control", "no-cache")
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # CORS preflight (not needed for simple GETs, but harmless)
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that closes a connection early (aborted fetch, closed tab) is not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def make_server(root: Path | str = ROOT, port: int = 0, cors: bool = False,
                quiet: bool = True, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """A ready, not yet serving, static server for ``root``; ``server.server_port`` is the port."""
    handler = type("KvcalcHandler", (Handler,), {"cors": cors, "quiet": quiet})
    return _Server((host, port), functools.partial(handler, directory=str(root)))


def serve_in_thread(**kwargs) -> http.server.ThreadingHTTPServer:
    """Start ``make_server(**kwargs)`` on a daemon thread; call ``.shutdown()`` to stop."""
    server = make_server(**kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ensure_runtime() -> None:
    if not (ROOT / "runtime" / "pyodide.mjs").is_file():
        print("runtime/ is missing: building it (scripts/build_runtime.sh)", flush=True)
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_runtime.sh")])
        if proc.returncode != 0:
            print("build failed: the page will load Pyodide and Plotly from the CDN instead",
                  file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Serve kvcalc's static page on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--root", default=str(ROOT), help="directory to serve (default: the repo)")
    ap.add_argument("--cors", action="store_true", help="send Access-Control-Allow-Origin: *")
    ap.add_argument("--no-build", action="store_true", help="do not build runtime/ when missing")
    ap.add_argument("--quiet", action="store_true", help="no request log")
    args = ap.parse_args(argv)
    if not args.no_build:
        ensure_runtime()
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_manifest  # keeps py/kvcalc/MANIFEST.json listing every module the worker loads
    if Path(args.root).resolve() == ROOT and gen_manifest.write():
        print("updated py/kvcalc/MANIFEST.json (commit it: GitHub Pages needs it)")
    server = make_server(args.root, args.port, cors=args.cors, quiet=args.quiet)
    print(f"serving {args.root} at http://127.0.0.1:{server.server_port}/  (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
