#!/usr/bin/env bash
# Everything a fresh Debian machine needs for kvcalc's tests (run as root, or with sudo):
#   Chromium from apt (only if /usr/bin/chromium is missing), a CJK font (only if fontconfig
#   knows none: the Chinese page and its screenshots need one), Node's npm (only if missing;
#   build_runtime uses `npm pack`), the package with its test extra (pytest, hypothesis,
#   playwright; never `playwright install`: the browser is Debian's), runtime/, and the
#   test-only npm tools of package-lock.json (axe-core for tests/browser/test_a11y.py) in
#   node_modules/ with `npm ci` (exact versions, integrity-checked; never served by the page).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium fonts-liberation)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
{ command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null | head -1)" ]; } || need_apt+=(fonts-noto-cjk)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

python3 -m pip install --quiet -e ".[test]"
bash scripts/build_runtime.sh
# npm ci reinstalls from the lockfile; skipped when node_modules already holds that lockfile's tree
if ! cmp -s package-lock.json node_modules/.package-lock.json.kvcalc 2>/dev/null; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock.json.kvcalc
fi
echo "setup done: python3 -m pytest -m browser tests/browser   (browser tests)"
