"""TRAIN on Ray Train GPU workers (skipped without CUDA, Ray or TRL): FSDP over every visible GPU (up to 4)
gives the loss curve and final weights of one process with the same global batch, bf16 mixed precision
trains on them, and the workers' processes are nccl-connected.

Not run where the lent GPU machines lack Ray (docs/gpu-checks.md); users' GPU nodes have it. The CPU
counterpart, with the reasoning behind the tolerances, is tests/integration/trainer/test_ray_train.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

LOSS_TOLERANCE = 1e-4  # GPU kernels may sum in another order from run to run
WEIGHT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def gpu_ray() -> Iterator[int]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("trl")
    gpus = next(n for n in (4, 2, 1) if n <= torch.cuda.device_count())
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, num_gpus=gpus, num_cpus=gpus + 1)
    yield gpus
    ray.shutdown()


def test_fsdp_on_gpu_workers_trains_like_one_process(gpu_ray: int, tmp_path: Path) -> None:
    from maskdpo.server.workers.placement import Placement
    from maskdpo.trainer.run import run_training
    from tests.helpers.ray_train_runs import losses, max_weight_diff, on_ray_train, short_options
    from tests.helpers.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "model", seed=0)
    run_training(short_options(model, tmp_path, "one"))  # this process, one GPU
    options = short_options(model, tmp_path, "fsdp", batch_size=4 // gpu_ray, fsdp=True)
    summary, _, placed = on_ray_train(options, gpu_ray, Placement(1.0, 1.0))
    assert (summary["processes"], summary["sharded"], summary["steps"]) == (gpu_ray, True, 4), placed
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), abs=LOSS_TOLERANCE)
    assert max_weight_diff(tmp_path / "fsdp" / "final", tmp_path / "one" / "final") < WEIGHT_TOLERANCE

    bf16 = short_options(model, tmp_path, "bf16", batch_size=4 // gpu_ray, bf16=True, fsdp=True)
    summary, _, _ = on_ray_train(bf16, gpu_ray, Placement(1.0, 1.0))
    curve: list[Any] = losses(tmp_path / "bf16")
    assert summary["sharded"] and len(curve) == 4 and curve[-1] < curve[0]
