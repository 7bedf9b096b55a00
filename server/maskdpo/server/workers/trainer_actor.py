"""The Trainer Ray actor: one Mask-DPO / DPO training run, cancellable, reporting progress events.

The training itself is :func:`maskdpo.trainer.run.run_training`; this module only hosts it. ``train()``
blocks for the whole run while ``cancel()`` and ``events(after)`` answer from other threads (the actor is
threaded), so a round controller can poll progress and stop a run within one optimizer step. Events are
plain dicts numbered by ``seq`` (1, 2, ...); ``events(after=n)`` returns those with ``seq > n``.

Create it with :func:`create_trainer_actor`, which asks Ray for a GPU when the cluster has one. Given a
:class:`~maskdpo.server.workers.ray_train.TrainScaling`, the actor holds no resources itself and drives a Ray
Train worker group instead (:mod:`maskdpo.server.workers.ray_train`): the workers report to this actor
(``worker_started``, ``emit``, ``cancel_requested``), so the contract stays the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import ray

from maskdpo.server.workers.placement import Placement, node_id
from maskdpo.server.workers.ray_train import TrainScaling, fit
from maskdpo.trainer.run import Event, Push, TrainOptions, TrainResult, run_training

Runner = Callable[[TrainOptions, Callable[[Event], None], Callable[[], bool]], TrainResult]


class TrainingJob:
    """A training run with a cancel flag and a numbered event log; Ray-free so it can run in-process."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.state = "pending"

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append({"seq": len(self._events) + 1, **event})

    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def train(self, runner: Runner = run_training) -> dict[str, Any]:
        """Run to the end (or until cancelled); return a summary of the :class:`TrainResult`."""
        self.state = "running"
        try:
            result = runner(self.options, self.emit, self.cancel_requested)
        except Exception as exc:
            self.state = "failed"
            self.emit({"kind": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        self.state = "cancelled" if result.cancelled else "done"
        summary = asdict(result)
        summary["out"] = str(result.out)
        summary["final_dir"] = str(result.final_dir) if result.final_dir else None
        return summary

    def cancel(self) -> None:
        self._cancel.set()
        self.emit({"kind": "cancel_requested"})

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if e["seq"] > after]


@ray.remote
class TrainerActor:
    """Ray wrapper of :class:`TrainingJob` (threaded: ``cancel``/``events`` answer while ``train`` runs)."""

    def __init__(self, options: TrainOptions, scaling: TrainScaling | None = None,
                 push: Push | None = None) -> None:
        self._job = TrainingJob(options)
        self._scaling = scaling
        self._push = push
        self._nodes: dict[int, str] = {}
        self._placed = threading.Event()

    def train(self) -> dict[str, Any]:
        try:
            push = self._push
            if self._scaling is None:
                return self._job.train(lambda options, emit, cancel: run_training(options, emit, cancel, push))
            scaling, hub = self._scaling, ray.get_runtime_context().current_actor
            # the workers reach the job's emit and cancel flag through this actor (emit, cancel_requested)
            return self._job.train(lambda options, _emit, _cancel: fit(options, scaling, hub, push))
        finally:
            self._placed.set()  # a run that ended before its workers started answers where() at once

    def where(self, timeout_s: float) -> str | None:
        """Where the training runs, once it runs: this actor's node, or the workers' nodes when they have all
        started; None when they have not within ``timeout_s``."""
        if self._scaling is None:
            return f"node {node_id()}"
        if not self._placed.wait(timeout_s):
            return None
        nodes = sorted(set(self._nodes.values()))
        return f"{len(self._nodes)} of {self._scaling.workers} Ray Train worker(s) on node(s) {', '.join(nodes)}"

    def worker_started(self, rank: int, node: str) -> None:
        self._nodes[rank] = node
        if self._scaling is not None and len(self._nodes) == self._scaling.workers:
            self._placed.set()

    def emit(self, event: dict[str, Any]) -> None:
        self._job.emit(event)

    def cancel_requested(self) -> bool:
        return self._job.cancel_requested()

    def cancel(self) -> None:
        self._job.cancel()

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return self._job.events(after)

    def state(self) -> str:
        return self._job.state


def create_trainer_actor(
    options: TrainOptions, placement: Placement | None = None, scaling: TrainScaling | None = None,
    push: Push | None = None,
) -> Any:
    """Start a :class:`TrainerActor`; GPUs left unset = 1 when the Ray cluster has a GPU, else 0. With
    ``scaling`` it takes no resources: its Ray Train workers take ``scaling.per_worker`` each. ``push``: what
    every training process does with the final weights once they are saved (``run_training``'s)."""
    resources = Placement(0.0, 0.0).ray_options() if scaling else (placement or Placement()).ray_options()
    # threaded actor: cancel() and events() -- and the workers' calls -- answer while train() runs
    actor_class: Any = TrainerActor
    concurrency = 4 + (scaling.workers if scaling else 0)
    return actor_class.options(**resources, max_concurrency=concurrency).remote(options, scaling, push)
