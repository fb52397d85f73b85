#!/usr/bin/env bash
# Build the local runtime copy in runtime/ (Pyodide + wheels + Plotly) from npm and the
# vendored wheels, with versions from runtime.json. Idempotent: returns at once when
# runtime/ is up to date. Options: --force (rebuild), --quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/build_runtime.py "$@"
