"""``generator_dtype = auto``: the checkpoint's declared dtype where the hardware computes it, else float32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.server.generation.dtype import (
    cpu_flags,
    cpu_has_native_bfloat16,
    declared_dtype,
    normalise,
    resolve,
)
from maskdpo.server.settings import ServerSettings


def model(tmp_path: Path, config: dict[str, object] | None) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("config", "declared"),
    [
        ({"dtype": "bfloat16"}, "bfloat16"),
        ({"torch_dtype": "float16"}, "float16"),  # the key before transformers 5
        ({"torch_dtype": "torch.bfloat16"}, "bfloat16"),
        ({"dtype": "float32"}, "float32"),
        ({}, "float32"),
        ({"dtype": "int8"}, "float32"),
        (None, "float32"),  # no config at all
    ],
)
def test_declared_dtype(tmp_path: Path, config: dict[str, object] | None, declared: str) -> None:
    assert declared_dtype(model(tmp_path, config)) == declared


@pytest.mark.parametrize(
    ("declared", "gpu", "gpu_bf16", "cpu_bf16", "expected"),
    [
        ("bfloat16", False, False, True, "bfloat16"),  # AMX / AVX512-BF16 CPU
        ("bfloat16", False, False, False, "float32"),  # CPU without native bfloat16
        ("bfloat16", True, True, False, "bfloat16"),
        ("bfloat16", True, False, False, "float16"),  # pre-Ampere GPU
        ("float16", False, False, True, "float32"),
        ("float16", True, True, False, "float16"),
        ("float32", False, False, True, "float32"),  # never narrowed, even where bfloat16 is fast
        ("float32", True, True, False, "float32"),
    ],
)
def test_auto_resolution(
    tmp_path: Path, declared: str, gpu: bool, gpu_bf16: bool, cpu_bf16: bool, expected: str
) -> None:
    folder = model(tmp_path, {"dtype": declared})
    assert resolve("auto", folder, gpu=gpu, gpu_bfloat16=gpu_bf16, cpu_bfloat16=cpu_bf16) == expected


def test_a_named_dtype_is_used_as_given(tmp_path: Path) -> None:
    folder = model(tmp_path, {"dtype": "bfloat16"})
    assert resolve("float32", folder, gpu=False, gpu_bfloat16=False, cpu_bfloat16=True) == "float32"
    assert resolve("bf16", folder, gpu=False, gpu_bfloat16=False, cpu_bfloat16=False) == "bfloat16"


def test_cpu_flags_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_has_native_bfloat16(cpu_flags(x86))
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve\n")
    assert cpu_flags(arm) == {"fp", "asimd", "sve"} and not cpu_has_native_bfloat16(cpu_flags(arm))
    assert cpu_flags(tmp_path / "absent") == set()


def test_settings_accept_aliases_and_name_the_choices() -> None:
    assert ServerSettings().generator_dtype == "auto"
    assert ServerSettings(generator_dtype="BF16").generator_dtype == "bfloat16"
    assert normalise("float") == "float32"
    with pytest.raises(ValueError, match="not one of auto, float32, bfloat16, float16"):
        ServerSettings(generator_dtype="int8")
