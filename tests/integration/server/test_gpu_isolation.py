"""On a GPU node, every actor sees exactly the GPUs Ray gave it: the llm judge's engine and the generator
get different devices, and actors that hold no GPU (the other judges, the round controller) see none.

Real Ray with two fake GPUs; the actors are stand-ins created with the options the server gives the real
ones (Ray sets CUDA_VISIBLE_DEVICES before any code of the actor runs, so what they see is what an engine
would use)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from maskdpo.server.settings import load_settings
from maskdpo.server.workers.placement import NO_GPU


@pytest.fixture(scope="module")
def two_gpus() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@ray.remote
class _Devices:
    def visible(self) -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<all>")


def visible(options: dict[str, Any]) -> str:
    return str(ray.get(_Devices.options(**options).remote().visible.remote(), timeout=120))  # type: ignore[attr-defined]


def test_judge_engine_and_generator_get_different_devices_and_the_rest_none(two_gpus: None) -> None:
    settings = load_settings(None, judges=["kb", "llm"], models={"toy": "/m"})
    generator = visible(settings.generator_placement.ray_options(auto_gpus=settings.generator_tensor_parallel_size))
    llm_where, llm_gpus = settings.judge_placement("llm")
    llm = visible(llm_where.ray_options(llm_gpus))
    kb_where, kb_gpus = settings.judge_placement("kb")
    kb = visible(kb_where.ray_options(kb_gpus))
    controller = visible({"num_cpus": 0, "runtime_env": NO_GPU})
    assert {generator, llm} == {"0", "1"}, (generator, llm)
    assert kb == controller == "", (kb, controller)
