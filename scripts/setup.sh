#!/usr/bin/env bash
# Install runyard into ./.venv. Usage: scripts/setup.sh [all|dev]
#   all  the package with every optional backend (default)
#   dev  that plus the test and lint tools, and the system packages the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
export UV_PYTHON_DOWNLOADS=never
PY="${PYTHON:-python3}"
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check uv
fi
[ -x .venv/bin/python ] || "$PY" -m uv venv -q .venv
if command -v npm >/dev/null 2>&1; then  # the dashboard (web/), built into the package
  (cd web && CI=true npm ci --no-audit --no-fund --loglevel=error </dev/null && npm run -s build </dev/null)
fi
"$PY" -m uv pip install -q --compile-bytecode --python .venv/bin/python -e ".[$extras]"
.venv/bin/python -m compileall -q src >/dev/null
if [ "$extras" = dev ]; then
  bash scripts/system-deps.sh
fi
