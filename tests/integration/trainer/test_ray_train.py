"""TRAIN on a Ray Train worker group (real Ray, CPU workers, gloo): two workers give the loss curve and final
weights of one process with the same global batch, report their steps, stop within a step of a cancel and
resume from their last checkpoint; FSDP, which accelerate applies to GPU processes only, is refused on CPU
workers instead of running unsharded (tests/gpu/test_ray_train_gpu.py runs it on GPUs).

Tolerance. Data parallelism changes only the order of float32 sums: each worker's loss is the mean over its
half of the batch and the gradients are averaged by an all-reduce, where one process takes the mean over
the whole batch. Measured on the tiny model (4 Adam steps at lr 1e-3, weights moving up to 4e-3): the loss
curves agree to the last printed digit and the weights to 4e-6 (2 of 133,440 above 1e-6). Adam divides
each gradient by its running magnitude, so a rounding difference in a tiny gradient can move its weight by
up to a good fraction of lr per step; the bound 1e-4 (a tenth of one step) leaves room for that and is 40x
smaller than what the run moves the weights (a wrong batch split or a lost gradient moves them by ~lr).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from maskdpo.server.workers.placement import Placement
from maskdpo.server.workers.ray_train import TrainScaling
from maskdpo.server.workers.trainer_actor import create_trainer_actor
from maskdpo.trainer.run import run_training
from tests.helpers.ray_train_runs import losses, max_weight_diff, on_ray_train, short_options
from tests.helpers.training import wait_for_step

LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-4
CPU_WORKER = Placement(1.0, 0.0)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, num_cpus=2)  # never join a cluster already running
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_process(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: 4 steps of 4 pairs in this process, without Ray."""
    tmp = tmp_path_factory.mktemp("one-process")
    run_training(short_options(tiny_model_dir, tmp, "run"))
    return tmp / "run"


def test_two_workers_train_like_one_process(ray_cluster: Any, tiny_model_dir: Path, one_process: Path,
                                            tmp_path: Path) -> None:
    options = short_options(tiny_model_dir, tmp_path, "two", batch_size=2)  # 2 workers x 2 pairs: the same batch
    summary, events, placed = on_ray_train(options, 2, CPU_WORKER)
    assert (summary["processes"], summary["sharded"], summary["steps"]) == (2, False, 4)
    assert placed and placed[0].startswith("2 of 2 Ray Train worker(s) on node(s)")
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4]  # one worker reports, in order
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    two, reference = losses(tmp_path / "two"), losses(one_process)
    assert len(two) == 4  # one line per step: only the main worker writes
    assert two == pytest.approx(reference, abs=LOSS_TOLERANCE)
    assert reference[-1] < reference[0] - 0.3  # the runs did learn
    assert max_weight_diff(tmp_path / "two" / "final", one_process / "final") < WEIGHT_TOLERANCE


def test_fsdp_on_cpu_workers_is_refused_not_run_unsharded(ray_cluster: Any, tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    with pytest.raises(Exception, match="fsdp needs GPU processes") as info:
        on_ray_train(short_options(tiny_model_dir, tmp_path, "fsdp", fsdp=True), 1, CPU_WORKER)
    assert "MULTI_CPU" in str(info.value)
    assert not (tmp_path / "fsdp" / "final").exists()


def test_two_workers_cancel_within_a_step_and_resume_from_the_last_checkpoint(
    ray_cluster: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    eight = {"steps": 8, "save_steps": 2, "keep_checkpoints": 2}
    run_training(short_options(tiny_model_dir, tmp_path, "uninterrupted", **eight))
    # precomputed reference log-probs: every worker reads them from the run folder's dataset files
    options = short_options(tiny_model_dir, tmp_path, "two", batch_size=2, resume=True, precompute_ref=True, **eight)
    actor = create_trainer_actor(options, scaling=TrainScaling(2, CPU_WORKER))
    running = actor.train.remote()
    wait_for_step(lambda: ray_cluster.get(actor.events.remote(0)), 3)
    ray_cluster.get(actor.cancel.remote())
    cancelled = ray_cluster.get(running, timeout=300)
    kinds = [e["kind"] for e in ray_cluster.get(actor.events.remote(0))]
    after_cancel = kinds[kinds.index("cancel_requested"):]
    assert cancelled["cancelled"] and cancelled["final_dir"] is None and after_cancel.count("step") <= 1
    ray_cluster.kill(actor)
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "two" / "checkpoints").glob("checkpoint-*"))
    assert saved and saved[-1] <= cancelled["steps"]

    summary, events, _ = on_ray_train(options, 2, CPU_WORKER)
    begin = next(e for e in events if e["kind"] == "train_begin")
    assert begin["step"] == saved[-1] and summary["steps"] == 8 and not summary["cancelled"]
    checkpoints = sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-6", "checkpoint-8"]  # keep_checkpoints=2
    diff = max_weight_diff(tmp_path / "two" / "final", tmp_path / "uninterrupted" / "final")
    assert diff < WEIGHT_TOLERANCE
    assert all(t.dtype == torch.float32 for t in load_file(str(tmp_path / "two" / "final" / "model.safetensors")).values())
