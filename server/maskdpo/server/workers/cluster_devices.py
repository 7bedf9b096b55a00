"""The devices the Ray cluster offers the Trainer actor, for the memory plan: how many GPUs, and how much
memory one has.

GPUs are counted on the alive nodes that offer every custom resource of the trainer's placement
(``trainer_resources``, all nodes when none). Ray knows a GPU's model, not its memory: the memory comes
from the ``trainer_gpu_memory_gib`` setting when set, else from the ``accelerator_type:<name>`` resource
Ray gives a GPU node, through :data:`GPU_MEMORY_GB` (the smallest over the nodes); an unknown model leaves
it unknown and the plan unchecked. A cluster without GPUs (or ``trainer_num_gpus = 0``) trains on a CPU:
one device with the largest ``memory`` resource among those nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ray

from maskdpo.trainer.memory_plan import GB, GIB, Devices

GPU_MEMORY_GB: Mapping[str, int] = {
    "A100-40G": 40, "A100-80G": 80, "H100": 80, "H200": 141, "H20": 96, "L4": 24, "L40S": 48, "A10G": 24,
    "T4": 16, "RTX-PRO-6000": 96,
}
"""Memory of one GPU as sold (10^9 bytes; devices report a little more, which the headroom does not count),
by Ray's accelerator type. Types sold in several sizes (A100, V100) are absent: set trainer_gpu_memory_gib."""
ACCELERATOR = "accelerator_type:"


def trainer_devices(nodes: Iterable[Mapping[str, Any]], pinned: Mapping[str, float], use_gpus: bool,
                    gpu_memory_gib: float | None) -> Devices:
    """The trainer's devices on ``nodes`` (``ray.nodes()`` entries) offering the ``pinned`` resources."""
    offered = [n["Resources"] for n in nodes
               if n.get("Alive") and all(n["Resources"].get(k, 0) >= v for k, v in pinned.items())]
    gpus = int(sum(r.get("GPU", 0) for r in offered)) if use_gpus else 0
    if not gpus:
        memory = int(max((r.get("memory", 0) for r in offered), default=0))
        return Devices("cpu", 1, memory, "Ray's memory resource of the largest node")
    if gpu_memory_gib is not None:
        return Devices("gpu", gpus, int(gpu_memory_gib * GIB), "trainer_gpu_memory_gib")
    types = {k.removeprefix(ACCELERATOR) for r in offered if r.get("GPU") for k in r if k.startswith(ACCELERATOR)}
    known = [GPU_MEMORY_GB[t] for t in types if t in GPU_MEMORY_GB]
    if not types or len(known) < len(types):
        unknown = ", ".join(sorted(types - set(GPU_MEMORY_GB))) or "none reported"
        return Devices("gpu", gpus, 0, f"accelerator type {unknown}: set trainer_gpu_memory_gib")
    smallest = min(types, key=lambda t: GPU_MEMORY_GB[t])
    return Devices("gpu", gpus, GPU_MEMORY_GB[smallest] * GB, f"{ACCELERATOR}{smallest}")


def ray_trainer_devices(pinned: Mapping[str, float], use_gpus: bool, gpu_memory_gib: float | None) -> Devices:
    """:func:`trainer_devices` of the Ray cluster this process is connected to."""
    return trainer_devices(ray.nodes(), pinned, use_gpus, gpu_memory_gib)  # type: ignore[no-untyped-call]
