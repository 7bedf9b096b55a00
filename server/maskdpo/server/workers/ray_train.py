"""Training on a Ray Train worker group: N processes in a placement group, ``torch.distributed`` set up by
Ray (nccl on GPUs, gloo on CPUs), each running :func:`maskdpo.trainer.run.run_training` on the same options;
transformers and accelerate inside pick the process group up (DDP, or FSDP when the options ask: GPU
workers only, see ``TrainOptions.fsdp``).

A Trainer actor drives it (:class:`maskdpo.server.workers.trainer_actor.TrainerActor` given a
:class:`TrainScaling`), and its event log and cancel flag serve the workers too -- the *hub*: every worker
reports its node when it starts (so the actor can tell a group that never got its resources), rank 0 sends
the run's events one call at a time (so they stay in order) and reads the cancel flag after every optimizer
step; the run broadcasts that answer, so every worker stops after the same step. ``TorchTrainer.fit`` returns
rank 0's :class:`~maskdpo.trainer.run.TrainResult`. Ray Train does not restart failed workers here
(``max_failures=0``): the round retries the phase, which resumes from the run's last checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskdpo.server.workers.placement import Placement, node_id
from maskdpo.trainer.run import Push, TrainOptions, TrainResult, run_training

STORAGE = "ray_train"
"""Ray Train's own folder (its run state) inside the run folder."""


@dataclass(frozen=True)
class TrainScaling:
    """How many Ray Train workers, each with which resources."""

    workers: int
    per_worker: Placement

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"Ray Train needs at least one worker, got {self.workers}")

    def resources_per_worker(self, auto_gpus: float = 1.0) -> dict[str, float]:
        """``ScalingConfig.resources_per_worker``: CPUs, GPUs (unset: one on GPU clusters), memory, custom."""
        options = self.per_worker.ray_options(auto_gpus)
        resources: dict[str, float] = {"CPU": float(options["num_cpus"])}
        if options["num_gpus"]:
            resources["GPU"] = float(options["num_gpus"])
        if "memory" in options:
            resources["memory"] = float(options["memory"])
        resources.update(options.get("resources", {}))
        return resources

    def scaling_config(self) -> Any:
        from ray.train import ScalingConfig

        resources = self.resources_per_worker()
        return ScalingConfig(
            num_workers=self.workers, use_gpu=resources.get("GPU", 0) > 0, resources_per_worker=resources
        )

    def describe(self) -> str:
        return f"{self.workers} Ray Train worker(s) with {self.resources_per_worker()} each"


def train_loop(config: dict[str, Any]) -> TrainResult | None:
    """What every Ray Train worker runs (``config``: ``options``, ``hub``); rank 0 returns the result."""
    import ray
    import ray.train

    options: TrainOptions = config["options"]
    hub, push = config["hub"], config.get("push")
    rank = ray.train.get_context().get_world_rank()
    ray.get(hub.worker_started.remote(rank, node_id()))

    def emit(event: dict[str, Any]) -> None:
        ray.get(hub.emit.remote(event))

    def should_cancel() -> bool:
        return bool(ray.get(hub.cancel_requested.remote()))

    result = run_training(options, emit, should_cancel, push)  # events and cancel checks: rank 0 only
    return result if rank == 0 else None


def fit(options: TrainOptions, scaling: TrainScaling, hub: Any, push: Push | None = None) -> TrainResult:
    """Run ``options`` on ``scaling.workers`` Ray Train workers reporting to ``hub`` (each calls ``push``
    with the final weights, see ``run_training``); rank 0's result."""
    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    # Ray Train sends every print of a worker to its logger, even one a library captures to read back
    # (dill disassembles functions to stdout when datasets fingerprints them): thousands of lines a run
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")  # passed on to the controller and workers
    # workers start in a folder of Ray's own: every path they get is absolute
    absolute = dataclasses.replace(
        options, data=Path(options.data).resolve(), model=Path(options.model).resolve(),
        out=Path(options.out).resolve(),
    )
    # Ray Train 2.60 hands rank 0's return value back in Result.return_value; its annotations predate that
    loop: Any = train_loop
    trainer = TorchTrainer(
        loop,
        train_loop_config={"options": absolute, "hub": hub, "push": push},
        scaling_config=scaling.scaling_config(),
        run_config=RunConfig(
            name=STORAGE, storage_path=str(absolute.out), failure_config=FailureConfig(max_failures=0)
        ),
    )
    done: Any = trainer.fit()
    result: TrainResult = done.return_value
    return result
