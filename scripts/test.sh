#!/usr/bin/env bash
# The README's second command: lint, format check and the test suite (slow checks excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
if [ -z "${SAUNETV2_DATA:-}" ] && [ -d ../shared/data ]; then
    export SAUNETV2_DATA="$(cd ../shared/data && pwd)"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest -m "not slow" "$@"
