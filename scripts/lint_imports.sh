#!/usr/bin/env bash
# The import-linter contracts of pyproject.toml (the house's layers, ARCHITECTURE.md) on the
# library without its tests: tests sit beside their modules and may import anything, so they are
# left out of a copy of the package that the linter reads instead of the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
copy=build/import-lint
rm -rf "$copy" && mkdir -p "$copy"
find saunetv2_lib -name '*.py' ! -name '*_test.py' ! -name conftest.py -print0 |
    xargs -0 -I{} cp --parents {} "$copy"
cd "$copy"  # the linter puts the working directory first on sys.path
../../.venv/bin/lint-imports ../../pyproject.toml "$@"
