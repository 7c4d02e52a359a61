#!/usr/bin/env bash
# Open the notebooks in JupyterLab with the library's environment (.venv, its python3 kernel)
# and the data root of the README (../shared/data unless SAUNETV2_DATA is set).
#   bash scripts/lab.sh                 # then open the printed http://127.0.0.1:8888/lab?token=... link
#   bash scripts/lab.sh --port 8899     # any other JupyterLab option
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/jupyter ]; then
    bash scripts/setup.sh
fi
export TF_CPP_MIN_LOG_LEVEL=2
source scripts/_data_root.sh
ROOT_FLAG=()
if [ "$(id -u)" = 0 ]; then
    ROOT_FLAG=(--allow-root)  # containers and CI run as root
fi
exec .venv/bin/jupyter lab --notebook-dir=notebooks --no-browser --ip=127.0.0.1 "${ROOT_FLAG[@]}" "$@"
