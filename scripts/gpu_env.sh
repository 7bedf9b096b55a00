# Sourced by the GPU check scripts (scripts/gpu_*_check.sh) on a machine with torch, transformers, peft,
# accelerate and a GPU but not this project: run from the repository root, with an optional wheel folder
#     source scripts/gpu_env.sh [WHEEL_DIR]
# It sets PY (python3, or $PYTHON), makes maskdpo.trainer importable from this checkout (trainer/ holds the
# maskdpo namespace package; the root holds tests/ and bench/), and, if `import trl` or `import datasets`
# fails, installs every wheel in WHEEL_DIR with --no-deps into a temporary folder (nothing system-wide).
PY="${PYTHON:-python3}"
GPU_ENV_WORK="$(mktemp -d)"
trap 'rm -rf "$GPU_ENV_WORK"' EXIT
export PYTHONPATH="$GPU_ENV_WORK/site:$PWD/trainer:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! "$PY" -c "import trl, datasets" 2>/dev/null; then
  if [ -z "${1:-}" ] || ! ls "$1"/*.whl >/dev/null 2>&1; then
    echo "trl or datasets is missing and no wheel folder was given (usage: $0 WHEEL_DIR)" >&2
    exit 2
  fi
  "$PY" -m pip install --quiet --no-deps --no-index --target "$GPU_ENV_WORK/site" "$1"/*.whl
fi
for mod in torch transformers accelerate peft datasets trl; do
  "$PY" -c "import $mod" 2>/dev/null || { echo "missing python package: $mod" >&2; exit 2; }
done
"$PY" -c "import torch, transformers, trl; print('torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
