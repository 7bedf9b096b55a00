#!/usr/bin/env bash
# Mask-DPO on a GPU: bf16 training steps, step time and peak GPU memory next to TRL's vanilla DPO step.
#
# Usage (from anywhere, on a machine with torch, transformers, peft, accelerate and a CUDA GPU):
#     scripts/gpu_trainer_check.sh [WHEEL_DIR]
# If `import trl` (or `import datasets`) fails, every wheel in WHEEL_DIR is installed with --no-deps into a
# temporary folder (nothing is installed system-wide; scripts/gpu_env.sh). maskdpo need not be installed:
# maskdpo.trainer is imported from this checkout. The model is built here (seeded Llama, no downloads).
# Takes 1-3 min.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh "${1:-}"

if "$PY" -c "import pytest" 2>/dev/null; then
  timeout 180 "$PY" -m pytest tests/gpu/test_maskdpo_gpu.py -q -p no:cacheprovider -o addopts="" || exit 1
else
  echo "pytest not available: skipping tests/gpu/test_maskdpo_gpu.py"
fi

# step time and peak memory: small model (same as the CPU bench) and a larger one; --control times a second
# TRL trainer too, so the DPO-vs-DPO ratio shows how much of a difference the machine alone makes
FIGURES="^(device|--|TRL|Mask|ratio|data path)"
timeout 150 "$PY" bench/bench_train_step.py --bf16 --hidden 256 --layers 4 --batch 4 --iters 100 --control 2>&1 | grep -E "$FIGURES"
timeout 240 "$PY" bench/bench_train_step.py --bf16 --hidden 1024 --layers 12 --batch 8 --iters 100 --control 2>&1 | grep -E "$FIGURES"
