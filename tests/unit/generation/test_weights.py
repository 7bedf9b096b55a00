"""Checkpoint checks: architecture, tensor names and shapes, truncated files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from maskdpo.server.generation.errors import CheckpointError
from maskdpo.server.generation.weights import check_adapter, check_compatible, tensor_shapes

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


def make_adapter(folder: Path, targets: object, modules_to_save: object = None, rank: int = 4) -> Path:
    folder.mkdir()
    config = {"r": rank, "target_modules": targets, "modules_to_save": modules_to_save, "peft_type": "LORA"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file({"a.lora_A.weight": torch.zeros(rank, 4)}, str(folder / "adapter_model.safetensors"))
    return folder


def test_adapter_on_the_decoder_projections_passes(tmp_path: Path) -> None:
    check_adapter(make_adapter(tmp_path / "a", ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"]), 8)
    check_adapter(make_adapter(tmp_path / "b", "o_proj"), 8)


@pytest.mark.parametrize(
    ("targets", "saved", "named"),
    [(["model.layers.0.self_attn.q_proj", "lm_head"], None, "lm_head"), (["q_proj"], ["embed_tokens"], "embed_tokens")],
)
def test_adapter_on_the_head_or_embeddings_is_refused_by_name(
    tmp_path: Path, targets: object, saved: object, named: str
) -> None:
    with pytest.raises(CheckpointError, match=f"adapts {named}; the engine serves adapters on q_proj"):
        check_adapter(make_adapter(tmp_path / "a", targets, saved), 8)


def test_adapter_rank_beyond_the_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"rank 16; the engine serves ranks 1\.\.8"):
        check_adapter(make_adapter(tmp_path / "a", ["q_proj"], rank=16), 8)
