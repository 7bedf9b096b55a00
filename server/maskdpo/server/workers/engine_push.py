"""The trainer's side of pushing a candidate into a round's engine: which engine, and how to reach it on Ray.

A full-parameter TRAIN hands its trainer (a Trainer actor, or every Ray Train worker) an :class:`EnginePush`:
once the final weights are saved, ``run_training`` calls it with the model, and it sends them into the Generator
actor of that name through :func:`maskdpo.trainer.weight_push.push`. The engine starts beside the trainer and
may not have room until the trainer is done; whoever starts it writes ``placed`` once Ray has given it its
resources (a starting engine blocks its actor, so the trainer cannot ask it), and without that file there is
no push: the candidate goes to the engine from its checkpoint instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskdpo.trainer import distributed
from maskdpo.trainer.weight_push import push

PLACED_FILE = "push-engine-placed"
"""The file, in the run folder, that says the engine has its resources."""


class ActorTarget:
    """The engine behind a Generator actor (its ``push_step``)."""

    def __init__(self, actor: Any) -> None:
        import ray

        self.actor = actor
        self._workers = int(ray.get(actor.push_workers.remote()))

    def step(self, name: str, payload: dict[str, Any] | None = None) -> Callable[[], Any]:
        import ray

        ref = self.actor.push_step.remote(name, payload)
        return lambda: ray.get(ref)

    def workers(self) -> int:
        return self._workers


@dataclasses.dataclass(frozen=True)
class EnginePush:
    """Push the trained model into the engine of Generator actor ``name`` (in Ray namespace ``namespace``),
    if ``placed`` exists, once it is up (waiting up to ``wait_s``)."""

    name: str
    namespace: str
    placed: Path
    wait_s: float = 600.0

    def _target(self) -> tuple[ActorTarget | None, str]:
        """The engine to push to, or why there is none (the main process asks)."""
        import ray

        if not self.placed.exists():  # no room beside the trainer: it gets its room once training ends
            return None, f"engine {self.name} was not placed beside the trainer"
        try:
            actor = ray.get_actor(self.name, namespace=self.namespace)
            ray.get(actor.ready.remote(), timeout=self.wait_s)
            return ActorTarget(actor), ""
        except Exception as exc:
            return None, f"engine {self.name} did not start: {type(exc).__name__}: {str(exc).strip()[:200]}"

    def __call__(self, model: Any, dtype: str | None) -> dict[str, Any]:
        """Called by every training process: the main one finds the engine and says whether to go; then all
        of them iterate the parameters (gathering sharded ones) and the main one sends. ``{"bytes",
        "seconds"}`` (main), ``{"error": why}`` when nothing was pushed (with ``"attempted"`` when the engine
        may hold part of it), ``{}`` on the other processes."""
        import ray

        target, reason = self._target() if distributed.is_main() else (None, "")
        if not distributed.from_main(target is not None):
            return {"error": reason} if distributed.is_main() else {}
        host = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        try:
            return push(model, target, rank=distributed.rank(), dtype=dtype, host=host)
        except Exception as exc:  # the weights are saved: a failed push costs a reload, not the training
            return {"error": f"the push failed: {type(exc).__name__}: {str(exc).strip()[:200]}", "attempted": True}
