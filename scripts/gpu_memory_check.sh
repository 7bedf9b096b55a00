#!/usr/bin/env bash
# The memory plan against measured steps: peak GPU memory and step time of Mask-DPO and TRL's DPO on a
# Llama-3.1-8B-shaped model (random bf16 weights built on the GPU), LoRA r=8 and full bf16 with a precomputed
# reference, next to what the plan predicts; a Markdown section for docs/gpu-checks.md.
#
# Usage (from anywhere, on a machine with torch, transformers, peft, accelerate and a CUDA GPU):
#     scripts/gpu_memory_check.sh [WHEEL_DIR] [--out FILE.md] [--length 1024] [--pairs 2] [--steps 4]
# WHEEL_DIR: trl and datasets (with their dependencies) as wheels, installed into a temporary folder when
# `import trl` fails (scripts/gpu_env.sh). `--tiny` runs the small CPU version (tests). Takes 2-5 min on an
# H100 (four runs: each builds 8 B parameters on the GPU, then trains 5 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=""
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  WHEELS="$1"
  shift
fi
source scripts/gpu_env.sh "$WHEELS"
timeout 450 "$PY" scripts/gpu_memory_check.py "$@"
