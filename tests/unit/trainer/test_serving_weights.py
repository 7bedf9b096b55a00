"""The serving dtype of a run's final model: ``auto`` follows the dtype the model declares; a saved folder
(single file or sharded with an index) is rewritten in that dtype, integer tensors untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from maskdpo.trainer.serving_weights import convert_saved_model, serving_dtype


def _model_folder(path: Path, declared: str | None, shards: int = 1) -> Path:
    path.mkdir()
    config: dict[str, object] = {"model_type": "llama"}
    if declared:
        config["torch_dtype"] = declared
    (path / "config.json").write_text(json.dumps(config))
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors" if shards > 1 else "model.safetensors"
        save_file({f"w{i}": torch.randn(4, 4), f"ids{i}": torch.arange(3)}, str(path / name))
        weight_map.update({f"w{i}": name, f"ids{i}": name})
    if shards > 1:
        (path / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": shards * (64 + 24)}, "weight_map": weight_map}))
    return path


@pytest.mark.parametrize(("declared", "expected"), [("bfloat16", "bfloat16"), ("float32", "float32"),
                                                    (None, "float32"), ("float16", "float16")])
def test_auto_follows_the_declared_dtype(tmp_path: Path, declared: str | None, expected: str) -> None:
    assert serving_dtype("auto", _model_folder(tmp_path / "m", declared)) == expected


def test_a_named_dtype_is_used_and_an_unknown_one_refused(tmp_path: Path) -> None:
    model = _model_folder(tmp_path / "m", "bfloat16")
    assert serving_dtype("float32", model) == "float32"
    with pytest.raises(ValueError, match="serving dtype 'int8'"):
        serving_dtype("int8", model)


def test_convert_a_sharded_folder(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m", "float32", shards=2)
    originals = {k: v.clone() for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    convert_saved_model(folder, "bfloat16")
    converted = {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    assert converted["w0"].dtype == torch.bfloat16 and torch.equal(converted["w1"], originals["w1"].bfloat16())
    assert converted["ids0"].dtype == torch.int64 and torch.equal(converted["ids1"], originals["ids1"])
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == "bfloat16" and "torch_dtype" not in config
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 2 * (16 * 2 + 3 * 8)
    assert not list(folder.glob("*.tmp"))
