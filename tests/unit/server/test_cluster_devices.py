"""What the cluster offers the trainer, from Ray's node list: GPUs on the trainer's nodes, their memory by
accelerator type or the setting, and a CPU node when there are no GPUs."""

from __future__ import annotations

from typing import Any

from maskdpo.server.workers.cluster_devices import trainer_devices
from maskdpo.trainer.memory_plan import GB, GIB, Devices


def node(alive: bool = True, **resources: float) -> dict[str, Any]:
    return {"Alive": alive, "Resources": resources}


GPU_NODES = [
    node(CPU=16, GPU=8, memory=500 * GB, **{"accelerator_type:H100": 1, "maskdpo-trainer": 1}),
    node(CPU=16, GPU=8, memory=500 * GB, **{"accelerator_type:H200": 1, "maskdpo-trainer": 1}),
    node(CPU=8, GPU=1, **{"accelerator_type:L4": 1, "maskdpo-generator": 1}),
    node(alive=False, CPU=16, GPU=8, **{"accelerator_type:H200": 1, "maskdpo-trainer": 1}),
]


def test_gpus_on_the_trainers_nodes_with_the_smallest_known_memory() -> None:
    pinned = {"maskdpo-trainer": 1}
    assert trainer_devices(GPU_NODES, pinned, True, None) == Devices("gpu", 16, 80 * GB, "accelerator_type:H100")
    everywhere = trainer_devices(GPU_NODES, {}, True, None)
    assert (everywhere.count, everywhere.memory_bytes) == (17, 24 * GB)  # the L4 node counts too


def test_the_setting_wins_and_unknown_types_leave_memory_unknown() -> None:
    assert trainer_devices(GPU_NODES, {}, True, 40.0) == Devices("gpu", 17, 40 * GIB, "trainer_gpu_memory_gib")
    a100 = [node(GPU=4, **{"accelerator_type:A100": 1}), node(GPU=4, **{"accelerator_type:H100": 1})]
    unknown = trainer_devices(a100, {}, True, None)
    assert (unknown.count, unknown.memory_bytes) == (8, 0) and "A100" in unknown.source
    assert trainer_devices([node(GPU=2)], {}, True, None).memory_bytes == 0  # Ray named no type


def test_without_gpus_the_trainer_runs_on_the_largest_cpu_node() -> None:
    cpus = [node(CPU=2, memory=10 * GB), node(CPU=4, memory=20 * GB), node(alive=False, CPU=8, memory=90 * GB)]
    assert trainer_devices(cpus, {}, True, None) == Devices("cpu", 1, 20 * GB,
                                                            "Ray's memory resource of the largest node")
    no_gpus_wanted = trainer_devices(GPU_NODES, {"maskdpo-trainer": 1}, False, None)
    assert (no_gpus_wanted.kind, no_gpus_wanted.memory_bytes) == ("cpu", 500 * GB)
