"""The Trainer Ray actor: one Mask-DPO / DPO training run, cancellable, reporting progress events.

The training itself is :func:`maskdpo.trainer.run.run_training`; this module only hosts it. ``train()``
blocks for the whole run while ``cancel()`` and ``events(after)`` answer from other threads (the actor is
threaded), so a round controller can poll progress and stop a run within one optimizer step. Events are
plain dicts numbered by ``seq`` (1, 2, ...); ``events(after=n)`` returns those with ``seq > n``.

Create it with :func:`create_trainer_actor`, which asks Ray for a GPU when the cluster has one.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

import ray

from maskdpo.server.workers.placement import Placement, node_id
from maskdpo.trainer.run import TrainOptions, TrainResult, run_training


class TrainingJob:
    """A training run with a cancel flag and a numbered event log; Ray-free so it can run in-process."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.state = "pending"

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append({"seq": len(self._events) + 1, **event})

    def train(self) -> dict[str, Any]:
        """Run to the end (or until cancelled); return a summary of the :class:`TrainResult`."""
        self.state = "running"
        try:
            result: TrainResult = run_training(
                self.options, emit=self._emit, should_cancel=self._cancel.is_set
            )
        except Exception as exc:
            self.state = "failed"
            self._emit({"kind": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        self.state = "cancelled" if result.cancelled else "done"
        summary = asdict(result)
        summary["out"] = str(result.out)
        summary["final_dir"] = str(result.final_dir) if result.final_dir else None
        return summary

    def cancel(self) -> None:
        self._cancel.set()
        self._emit({"kind": "cancel_requested"})

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if e["seq"] > after]


@ray.remote
class TrainerActor:
    """Ray wrapper of :class:`TrainingJob` (threaded: ``cancel``/``events`` answer while ``train`` runs)."""

    def __init__(self, options: TrainOptions) -> None:
        self._job = TrainingJob(options)

    def train(self) -> dict[str, Any]:
        return self._job.train()

    def cancel(self) -> None:
        self._job.cancel()

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return self._job.events(after)

    def state(self) -> str:
        return self._job.state

    def node_id(self) -> str:
        return node_id()


def create_trainer_actor(options: TrainOptions, placement: Placement | None = None) -> Any:
    """Start a :class:`TrainerActor`; GPUs left unset = 1 when the Ray cluster has a GPU, else 0."""
    # threaded actor: cancel() and events() answer while train() runs
    actor_class: Any = TrainerActor
    return actor_class.options(**(placement or Placement()).ray_options(), max_concurrency=4).remote(options)
