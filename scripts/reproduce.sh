#!/usr/bin/env bash
# The README's first command: set everything up, then run the main job.
#   scripts/reproduce.sh [quick|full]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
source scripts/_data_root.sh
.venv/bin/saunetv2 reproduce --profile "${1:-quick}"
