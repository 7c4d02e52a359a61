#!/usr/bin/env bash
# Create .venv/ in the repository root and install the pinned stack and the library (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -r requirements.txt 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip check
