#!/usr/bin/env bash
# Mask-DPO on a GPU: bf16 training steps, step time and peak GPU memory next to TRL's vanilla DPO step.
#
# Usage (from anywhere, on a machine with torch, transformers, peft, accelerate and a CUDA GPU):
#     scripts/gpu_trainer_check.sh [WHEEL_DIR]
# If `import trl` (or `import datasets`) fails, every wheel in WHEEL_DIR is installed with --no-deps into a
# temporary folder (nothing is installed system-wide). maskdpo need not be installed: maskdpo.trainer is
# mapped onto this checkout's trainer/. The model is built here (seeded Llama, no downloads). Takes 1-3 min.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS="${1:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/site/maskdpo"
touch "$WORK/site/maskdpo/__init__.py"
ln -s "$PWD/trainer" "$WORK/site/maskdpo/trainer"
export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! "$PY" -c "import trl, datasets" 2>/dev/null; then
  if [ -z "$WHEELS" ] || ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "trl or datasets is missing and no wheel folder was given (usage: $0 WHEEL_DIR)" >&2
    exit 2
  fi
  "$PY" -m pip install --quiet --no-deps --no-index --target "$WORK/site" "$WHEELS"/*.whl
fi
for mod in torch transformers accelerate datasets trl; do
  "$PY" -c "import $mod" 2>/dev/null || { echo "missing python package: $mod" >&2; exit 2; }
done
"$PY" -c "import torch, transformers, trl; print('torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| gpu', torch.cuda.get_device_name())"

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
