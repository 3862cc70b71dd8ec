#!/usr/bin/env bash
# Install everything and run every check and test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export RAY_AUTH_MODE=disabled
# Debian keeps the PostgreSQL server binaries off PATH; the tests' server fixture needs them.
for bin in /usr/lib/postgresql/*/bin; do
  [ -d "$bin" ] && PATH="$PATH:$bin"
done
export PATH
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
.venv/bin/lint-imports
if command -v npm >/dev/null 2>&1; then (cd web && npm run -s typecheck </dev/null); fi  # the dashboard's TypeScript
# pytest exits 5 when it collected no test: with `set -e` that fails the run, as it must.
.venv/bin/pytest -n auto --dist loadgroup -p no:cacheprovider "$@"
