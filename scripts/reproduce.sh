#!/usr/bin/env bash
# The README's first command: set everything up, then run the main job.
#   scripts/reproduce.sh [quick|full]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
export SAUNETV2_DATA="${SAUNETV2_DATA:-$(cd .. && pwd)/shared/data}"
if [ ! -d "$SAUNETV2_DATA" ]; then
    echo "note: $SAUNETV2_DATA does not exist; the companion falls back to its synthetic DRIVE" >&2
    unset SAUNETV2_DATA
fi
.venv/bin/saunetv2 reproduce --profile "${1:-quick}"
