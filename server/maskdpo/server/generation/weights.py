"""Checkpoint folders: read safetensors headers and check a candidate fits the served architecture.

Nothing here loads tensors; a header check is enough to refuse a missing, truncated or mis-shaped
checkpoint before the running engine is touched.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from maskdpo.server.generation.errors import CheckpointError

# Config fields that must agree for a checkpoint to be loadable into the running engine.
ARCHITECTURE_FIELDS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
)


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} is not a folder")
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} has no config.json") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder}: config.json is unreadable: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {folder}: config.json is not a JSON object")
    return config


def _header(path: Path) -> dict[str, Any]:
    """Parse one safetensors file's header and check the file holds every byte it declares."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ValueError(f"header length {length} exceeds the file size {size}")
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    if 8 + length + data_end > size:
        raise CheckpointError(f"{path}: truncated ({size} bytes, header declares {8 + length + data_end})")
    return header


def tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the folder's ``*.safetensors`` files."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"checkpoint {folder} has no *.safetensors file")
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        for name, info in _header(path).items():
            shapes[name] = tuple(int(d) for d in info["shape"])
    return shapes


def check_compatible(candidate: Path, served: Path) -> None:
    """Raise CheckpointError unless ``candidate`` has the served model's architecture and tensor shapes."""
    new_config, old_config = read_config(candidate), read_config(served)
    for key in ARCHITECTURE_FIELDS:
        if new_config.get(key) != old_config.get(key):
            raise CheckpointError(
                f"checkpoint {candidate}: config {key}={new_config.get(key)!r} differs from the served "
                f"model's {old_config.get(key)!r}"
            )
    new, old = tensor_shapes(candidate), tensor_shapes(served)
    missing = sorted(set(old) - set(new))
    extra = sorted(set(new) - set(old))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {candidate}: tensor names differ from the served model "
            f"(missing {missing[:5]}, unexpected {extra[:5]})"
        )
    for name, shape in new.items():
        if old[name] != shape:
            raise CheckpointError(
                f"checkpoint {candidate}: tensor {name} has shape {list(shape)}, served model {list(old[name])}"
            )


ADAPTER_CONFIG = "adapter_config.json"

ADAPTER_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The layers an engine serves LoRA adapters on: a decoder layer's projections, the set PEFT's
``target_modules="all-linear"`` (what the trainer uses) picks on Llama-family models. Never the output head
or the embeddings: vLLM's LoRA wrapper of the output head maps the log-probs of prompt tokens to the wrong
requests, and the engine died (``einsum(): subscript b ...``) whenever a probe was scored beside a running
generation."""


def is_adapter(folder: Path) -> bool:
    """True for a LoRA adapter folder (peft layout: ``adapter_config.json`` + adapter weights)."""
    return (folder / ADAPTER_CONFIG).is_file()


def check_adapter(folder: Path, max_rank: int) -> None:
    """Raise CheckpointError unless ``folder`` is a readable LoRA adapter an engine with ``max_rank`` serves."""
    if max_rank <= 0:
        raise CheckpointError(f"{folder} is a LoRA adapter, but this engine serves none: start it with "
                              "generator_max_lora_rank > 0")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"adapter {folder}: {ADAPTER_CONFIG} is unreadable: {exc}") from None
    rank = int(config.get("r", 0)) if isinstance(config, dict) else 0
    if not 0 < rank <= max_rank:
        raise CheckpointError(f"adapter {folder}: rank {rank}; the engine serves ranks 1..{max_rank}")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    outside = sorted({str(t).rsplit(".", 1)[-1] for t in targets} - set(ADAPTER_LAYERS))
    if outside or config.get("modules_to_save"):
        extra = outside + list(config.get("modules_to_save") or [])
        raise CheckpointError(f"adapter {folder} adapts {', '.join(map(str, extra))}; the engine serves adapters "
                              f"on {', '.join(ADAPTER_LAYERS)} only (peft target_modules=\"all-linear\")")
    tensor_shapes(folder)  # a missing or truncated adapter_model.safetensors is refused here
