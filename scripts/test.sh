#!/usr/bin/env bash
# Every test, on a fresh Debian machine too: installs what is missing (scripts/setup.sh:
# Chromium from apt, the package with pytest/hypothesis/playwright, the local Pyodide +
# Plotly runtime in runtime/), then runs the whole suite (core, simulator, trace, browser).
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m pytest -q "$@"
