#!/usr/bin/env bash
# Set up (if needed), make the sample reel and restore it with the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
[ -f samples/sample_reel.mov ] || python scripts/make_sample_reel.py samples/sample_reel.mov
MODEL=()
if [ ! -f models/default.onnx ] && [ ! -f models/default.safetensors ]; then
    # No default model has passed its acceptance bar yet (models/README.md): show the pipeline with
    # the first trained candidate instead, and say so.
    echo "demo: no default model is shipped yet; using the unshipped candidate train/checkpoints/maskguided-v0.safetensors" >&2
    MODEL=(--model train/checkpoints/maskguided-v0.safetensors)
fi
filmclean restore samples/sample_reel.mov -o samples/sample_reel_restored.mkv \
    --mask-out samples/sample_reel_mask.mkv --force "${MODEL[@]}" "$@"
