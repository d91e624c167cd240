#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, install what is missing, check PyTorch CUDA (float32
# and float16), ONNX Runtime CUDA and, where installed, TensorRT against the CPU result on the
# shipped models, and print 1080p and 4K frames per second, model alone and end to end
# (benchmarks/gpu_check.py says what each line means). Takes a few minutes; meant to stay under 8.
#
#   bash benchmarks/gpu_check.sh                   # installs from PyPI what is missing
#   bash benchmarks/gpu_check.sh --wheels DIR      # offline: install from wheels in DIR
#   bash benchmarks/gpu_check.sh --cpu             # no GPU: the same checks on the CPU, small sizes
#   OUT=DIR bash benchmarks/gpu_check.sh           # also keep the figures in DIR/gpu_check.json
#
# It uses the Python that holds PyTorch ($PYTHON, default python3) and never installs ONNX Runtime's
# CPU and GPU packages side by side: the CPU package is replaced by onnxruntime-gpu when one is
# needed. The project runs from this checkout (PYTHONPATH), so nothing of it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=""
CPU=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS=$2; shift 2 ;;
        --cpu) CPU=1; shift ;;
        *) echo "gpu_check.sh: unknown option $1 (--wheels DIR, --cpu)" >&2; exit 2 ;;
    esac
done
started=$(date +%s)

pip_install() {  # pip_install PACKAGE...: from $WHEELS when given, else from the package index
    if [ -n "$WHEELS" ]; then
        "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@"
    else
        "$PY" -m pip install -q "$@"
    fi
}

if [ "$CPU" = 0 ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check.sh: no NVIDIA GPU here (nvidia-smi not found); --cpu checks the script on the CPU" >&2
        exit 2
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        echo "installing PyTorch with CUDA"
        pip_install torch
    fi
    if ! "$PY" -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" 2>/dev/null; then
        echo "installing onnxruntime-gpu (in place of onnxruntime)"
        "$PY" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1 || true
        pip_install onnxruntime-gpu || echo "onnxruntime-gpu could not be installed: the ONNX Runtime CUDA rows are skipped"
    fi
fi
# the runtime's own needs (torch and ONNX Runtime are handled above)
missing=$("$PY" - <<'EOF'
import importlib.util
need = {"av": "av", "click": "click", "rich": "rich", "safetensors": "safetensors", "cv2": "opencv-python-headless",
        "tifffile": "tifffile", "onnx": "onnx", "numpy": "numpy"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
    echo "installing: $missing"
    # shellcheck disable=SC2086
    pip_install $missing
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
json=()
if [ -n "${OUT:-}" ]; then
    json=(--json "$OUT/gpu_check.json")
fi
status=0
if [ "$CPU" = 1 ]; then
    "$PY" benchmarks/gpu_check.py --device cpu --sizes 256 --repeat 1 --frames 3 "${json[@]}" || status=$?
else
    "$PY" benchmarks/gpu_check.py --device cuda --sizes 1080p,4K --repeat 10 --frames 48 --temporal "${json[@]}" || status=$?
fi
echo "gpu_check.sh: $(( $(date +%s) - started )) s, exit status $status"
exit $status
