"""The dtype a run's final model is saved in, and the conversion of a saved model folder to it.

Training keeps float32 master weights, also under bf16 mixed precision, and resumable checkpoints stay
float32. The final model is what a generator serves: ``auto`` saves it in the dtype the starting model's
config declares (bfloat16 for SmolLM2 and Llama, float32 for the toy-world model), so a bfloat16 model
comes back in bfloat16 -- half the bytes to write, copy and load, and what its engine computes in -- while a
float32 model is never narrowed. A named dtype is used as given. LoRA adapters are left as trained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVING_DTYPES = ("auto", "float32", "bfloat16", "float16")


def serving_dtype(choice: str, model: Path) -> str:
    """The dtype to save the final model in: ``choice``, or for ``auto`` the one ``model`` declares
    (float32 when it declares none or one outside :data:`SERVING_DTYPES`)."""
    if choice not in SERVING_DTYPES:
        raise ValueError(f"serving dtype {choice!r} is not one of {', '.join(SERVING_DTYPES)}")
    if choice != "auto":
        return choice
    from transformers import AutoConfig

    declared = getattr(AutoConfig.from_pretrained(str(model)), "dtype", None)
    name = str(declared).removeprefix("torch.") if declared is not None else "float32"
    return name if name in SERVING_DTYPES[1:] else "float32"


def convert_saved_model(folder: Path, dtype: str) -> None:
    """Rewrite the floating-point tensors of every ``*.safetensors`` file in ``folder`` as ``dtype`` (one file
    at a time) and record ``dtype`` in its ``config.json`` (and the new byte size in a shard index)."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(path))
        converted = {k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()}
        tmp = path.with_name(path.name + ".tmp")  # the loaded tensors may still map the old file
        save_file(converted, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
        total += sum(v.numel() * v.element_size() for v in converted.values())

    def declare(config: dict[str, Any]) -> None:
        config.pop("torch_dtype", None)
        config["dtype"] = dtype

    def resize(index: dict[str, Any]) -> None:
        index.setdefault("metadata", {})["total_size"] = total

    _update_json(folder / "config.json", declare)
    _update_json(folder / "model.safetensors.index.json", resize)


def _update_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    if path.exists():
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
