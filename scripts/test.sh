#!/usr/bin/env bash
# The README's second command: lint and format check (library and notebooks), the import contracts
# (ARCHITECTURE.md), the test suite (slow checks excluded), then nbval on the executed notebooks (each is re-executed; cells marked NBVAL_CHECK_OUTPUT must
# reproduce their committed output). The browser check of the site is tests/test_site.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
if [ -z "${SAUNETV2_DATA:-}" ] && [ -d ../shared/data ]; then
    export SAUNETV2_DATA="$(cd ../shared/data && pwd)"
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
bash scripts/lint_imports.sh
# Both pytest runs use pytest-xdist: one worker per core (SAUNETV2_TEST_WORKERS overrides; 0 runs
# in this process). Much of a test's time is single-threaded (tracing, subprocesses, Python), so a
# second worker fills the other core. loadscope keeps a module's tests, and a notebook's cells, on
# one worker, in order.
workers="${SAUNETV2_TEST_WORKERS:-auto}"
.venv/bin/pytest -n "$workers" --dist loadscope -m "not slow" --durations=15 "$@"
# Re-executed notebooks write their figures here, never over the committed figures/.
export SAUNETV2_FIGURES_DIR="$PWD/build/nbval/figures"
.venv/bin/pytest -n "$workers" --dist loadscope --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider notebooks/
