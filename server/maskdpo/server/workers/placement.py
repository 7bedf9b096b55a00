"""Where the service's Ray actors run: resources they declare, node groups they are pinned to, and a bounded
wait for an actor to be placed.

Each role (generator, judge, trainer) has a :class:`Placement`: CPUs, GPUs, memory and custom Ray resources.
Custom resources pin a role to a node group: start the group's nodes with ``--resources='{"maskdpo-trainer":
1}'`` and set ``trainer_resources = {"maskdpo-trainer": 1}``. GPUs left unset follow the cluster: a role that
can use a GPU takes one when the cluster has any. With ``gpu_sharing = "alternate"`` the generator and the
trainer take half a GPU each, so Ray puts them on the same device, and the engine sleeps while a round trains.

An actor whose resources no node offers stays pending in Ray for ever; :func:`wait_placed` turns that into
:class:`PlacementTimeout` after a bounded wait, naming what was asked for.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

GIB = 1024**3
NO_GPU: dict[str, Any] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
"""The runtime environment of an actor that holds no GPU: it sees none."""


class GpuSharing(enum.StrEnum):
    """How the generator and the trainer use GPUs."""

    SEPARATE = "separate"
    """Each on GPUs of its own (the engine keeps serving while a round trains)."""
    ALTERNATE = "alternate"
    """Both on one GPU, taking turns: the engine sleeps (weights offloaded, KV cache freed) during TRAIN."""


class PlacementTimeout(RuntimeError):
    """No node of the cluster offered an actor's resources in time."""


@dataclass(frozen=True)
class Placement:
    """The Ray resources of one actor."""

    num_cpus: float = 1.0
    num_gpus: float | None = None
    """None = ``auto_gpus`` when the cluster has GPUs, else 0."""
    memory_gib: float | None = None
    """Memory Ray reserves for the actor (a scheduling hint, as in Ray)."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Custom Ray resources, e.g. ``{"maskdpo-trainer": 1}`` to pin the actor to a node group."""

    def ray_options(self, auto_gpus: float = 1.0) -> dict[str, Any]:
        """Keyword arguments for ``ActorClass.options(...)``. An actor with no GPU sees none: Ray leaves
        CUDA_VISIBLE_DEVICES unset for it, so on a GPU node it would see -- and could allocate on -- the GPUs
        other actors hold (a judge's or the controller's stray CUDA context on the generator's device)."""
        gpus = self.num_gpus
        if gpus is None:
            gpus = auto_gpus if cluster_gpus() > 0 else 0.0
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": gpus}
        if not gpus:
            options["runtime_env"] = NO_GPU
        if self.memory_gib:
            options["memory"] = int(self.memory_gib * GIB)
        if self.resources:
            options["resources"] = dict(self.resources)
        return options

    def describe(self, auto_gpus: float = 1.0) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.ray_options(auto_gpus).items() if k != "runtime_env")


def cluster_gpus() -> float:
    """GPUs in the whole Ray cluster (0 on CPU clusters); the server process may have none itself."""
    return float(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]


def node_id() -> str:
    """The Ray node this process runs on (actors report it so operators see where work ran)."""
    return str(ray.get_runtime_context().get_node_id())


def pinned_here() -> dict[str, Any]:
    """Options that keep an actor on this process's node (e.g. one that must share its filesystem)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id(), soft=False)}


async def wait_placed(actor: Any, timeout_s: float, what: str, placement: str) -> None:
    """Return once ``actor`` runs; raise :class:`PlacementTimeout` if no node took it within ``timeout_s``."""
    ref = actor.__ray_ready__.remote()
    try:
        await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
    except TimeoutError:
        ray.kill(actor)
        raise PlacementTimeout(
            f"no node of the Ray cluster took the {what} within {timeout_s:.0f} s (it asks for {placement}); "
            "check that a node group offers these resources and has room"
        ) from None
