#!/usr/bin/env bash
# Set up (if needed), make the sample reel and restore it with the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
[ -f samples/sample_reel.mov ] || python scripts/make_sample_reel.py samples/sample_reel.mov
filmclean restore samples/sample_reel.mov -o samples/sample_reel_restored.mkv \
    --mask-out samples/sample_reel_mask.mkv --force "$@"
