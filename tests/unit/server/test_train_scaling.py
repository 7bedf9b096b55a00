"""How TRAIN is spread over Ray Train workers: each worker's resources from the trainer placement, when a
round trains on Ray Train at all, and how a round's pairs per step split over processes and micro-batches
(the Ray Train runs themselves: tests/integration/trainer/test_ray_train.py)."""

from __future__ import annotations

import pytest

from maskdpo.server.rounds.phase_train import per_process_batch
from maskdpo.server.rounds.workers import Workers
from maskdpo.server.workers import placement
from maskdpo.server.workers.placement import GIB, Placement
from maskdpo.server.workers.ray_train import TrainScaling


def test_each_worker_gets_the_trainer_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "cluster_gpus", lambda: 8.0)
    scaling = TrainScaling(4, Placement(2.0, None, 40.0, {"maskdpo-trainer": 1}))
    assert scaling.resources_per_worker() == {"CPU": 2.0, "GPU": 1.0, "memory": 40.0 * GIB, "maskdpo-trainer": 1}
    config = scaling.scaling_config()
    assert config.num_workers == 4 and config.use_gpu and config.resources_per_worker["GPU"] == 1.0


def test_cpu_workers_ask_for_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "cluster_gpus", lambda: 0.0)
    config = TrainScaling(2, Placement(1.0)).scaling_config()
    assert config.resources_per_worker == {"CPU": 1.0} and not config.use_gpu
    with pytest.raises(ValueError, match="at least one worker"):
        TrainScaling(0, Placement())


def test_ray_train_only_for_several_workers_or_fsdp() -> None:
    assert Workers(on_ray=True).scaling() is None
    assert Workers(on_ray=True, trainer_workers=2).scaling() == TrainScaling(2, Placement())
    assert Workers(on_ray=True).scaling(fsdp=True) == TrainScaling(1, Placement())


@pytest.mark.parametrize(("pairs", "processes", "accumulation", "each"),
                         [(8, 1, 1, 8), (8, 2, 1, 4), (8, 2, 2, 2), (5, 2, 1, 3), (1, 4, 2, 1)])
def test_pairs_per_step_split_over_processes_and_micro_batches(pairs: int, processes: int, accumulation: int,
                                                               each: int) -> None:
    assert per_process_batch(pairs, processes, accumulation) == each
