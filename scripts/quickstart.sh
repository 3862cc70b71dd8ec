#!/usr/bin/env bash
# Install runyard and run the quickstart job on the embedded default store (./.runyard).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
.venv/bin/python examples/quickstart.py
