"""Checkpoint checks: architecture, tensor names and shapes, truncated files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from maskdpo.server.generation.errors import CheckpointError
from maskdpo.server.generation.weights import check_compatible, tensor_shapes

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4, "vocab_size": 8}


def make(folder: Path, shapes: dict[str, tuple[int, ...]], **config: object) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**CONFIG, **config}))
    save_file({name: torch.zeros(shape) for name, shape in shapes.items()}, str(folder / "model.safetensors"))
    return folder


SHAPES = {"embed.weight": (8, 4), "norm.weight": (4,)}


def test_same_architecture_passes(tmp_path: Path) -> None:
    served = make(tmp_path / "a", SHAPES)
    candidate = make(tmp_path / "b", SHAPES)
    check_compatible(candidate, served)
    assert tensor_shapes(candidate) == SHAPES


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    served = make(tmp_path / "a", SHAPES)
    candidate = make(tmp_path / "b", {"embed.weight": (8, 4), "norm.weight": (5,)})
    with pytest.raises(CheckpointError, match=r"norm\.weight has shape \[5\]"):
        check_compatible(candidate, served)


def test_missing_tensor_and_config_mismatch(tmp_path: Path) -> None:
    served = make(tmp_path / "a", SHAPES)
    with pytest.raises(CheckpointError, match="missing"):
        check_compatible(make(tmp_path / "b", {"embed.weight": (8, 4)}), served)
    with pytest.raises(CheckpointError, match="hidden_size"):
        check_compatible(make(tmp_path / "c", SHAPES, hidden_size=8), served)


def test_truncated_and_absent_files(tmp_path: Path) -> None:
    served = make(tmp_path / "a", SHAPES)
    broken = make(tmp_path / "b", SHAPES)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) - 16])
    with pytest.raises(CheckpointError, match="truncated"):
        check_compatible(broken, served)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        check_compatible(broken, served)
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        check_compatible(tmp_path / "a" / "..", served)
    with pytest.raises(CheckpointError, match="not a folder"):
        check_compatible(tmp_path / "nowhere", served)
