#!/usr/bin/env bash
# Create .venv/ in the repository root and install the pinned stack and the library (idempotent).
# One line per step on the terminal; pip's full output goes to build/logs/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
LOG=build/logs/setup.log
mkdir -p "$(dirname "$LOG")"
: > "$LOG"
step() {
    local what="$1"
    shift
    printf 'setup: %s ... ' "$what"
    if "$@" >>"$LOG" 2>&1; then
        echo "ok"
    else
        echo "FAILED (see $LOG)"
        tail -n 20 "$LOG" >&2
        exit 1
    fi
}
if [ ! -x .venv/bin/python ]; then
    step "create .venv with $("$PYTHON" --version 2>&1)" "$PYTHON" -m venv .venv
fi
step "upgrade pip" .venv/bin/python -m pip install --upgrade pip
step "install requirements.txt" .venv/bin/python -m pip install -r requirements.txt
step "install saunetv2_lib (editable)" .venv/bin/python -m pip install --no-deps -e .
step "check dependencies (pip check)" .venv/bin/python -m pip check
