#!/usr/bin/env bash
# Create .venv and install filmclean with its training, evaluation and test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU build of PyTorch first: a bare "torch" requirement would pull several GB of CUDA packages.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[train,eval,test]"  # restoring alone needs only: pip install .
