"""A lost engine whose replacement cannot start is tried again until one starts, and the model says when.

Real Ray and a real checkpoint store; the actors are stand-ins that start (or refuse to) in milliseconds,
so the retry schedule is what is tested, not vLLM (tests/integration/test_generation_service.py kills a
real engine)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

from maskdpo.server.errors import Unavailable
from maskdpo.server.generation.types import ModelInfo, Prompt, SamplingOptions, WeightVersion
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.workers.generator_pool import GeneratorPool, Replica, ServedModel, State

TOY = Path(__file__).resolve().parents[3] / "toyworld" / "maskdpo" / "toyworld" / "model"


@ray.remote(num_cpus=0)
class _StandIn:
    def __init__(self, starts: bool) -> None:
        self.starts = starts

    def ready(self) -> ModelInfo:
        if not self.starts:
            raise RuntimeError("no engine can start here")
        return ModelInfo("toy", 128, WeightVersion(1, TOY), "float32")

    def generate(self, prompt: Prompt, options: SamplingOptions, request_id: str) -> None:
        raise AssertionError("a killed actor runs nothing")

    def shutdown(self) -> None:
        pass


def spawner(plan: list[bool]) -> tuple[Callable[[], Any], list[float]]:
    """A spawn function creating stand-ins that start or not, in ``plan``'s order; and its call times."""
    calls: list[float] = []

    def spawn() -> Any:
        calls.append(time.monotonic())
        return _StandIn.remote(plan[min(len(calls), len(plan)) - 1])  # type: ignore[attr-defined]

    return spawn, calls


def pool_of(spawn: Callable[[], Any], tmp_path: Path) -> GeneratorPool:
    pool = GeneratorPool({"toy": ServedModel("toy", str(TOY), TOY, [Replica(spawn(), spawn=spawn)])}, "toy",
                         CheckpointStore(tmp_path / "models.sqlite"), start_timeout_s=30)
    pool.retry_delays_s = (0.2, 0.4)
    return pool


async def lose_the_engine(pool: GeneratorPool) -> ServedModel:
    model = pool.models["toy"]
    assert await pool.start() == 1 and model.state == State.READY
    ray.kill(model.replicas[0].actor)
    await asyncio.sleep(0.5)
    with pytest.raises(Unavailable, match="not reachable"):
        await pool.generate(model, Prompt(text="x"), SamplingOptions(), timeout=10)
    return model


def test_a_replacement_that_fails_is_retried_until_one_starts(local_ray: None, tmp_path: Path) -> None:
    spawn, calls = spawner([True, False, False, True])  # the first two replacements fail

    async def run() -> list[str]:
        pool = pool_of(spawn, tmp_path)
        model = await lose_the_engine(pool)
        errors = []
        deadline = time.monotonic() + 30
        while model.state != State.READY and time.monotonic() < deadline:
            if model.state == State.FAILED and model.error not in errors:
                errors.append(model.error)
            await asyncio.sleep(0.02)
        assert model.state == State.READY, model.error
        served = (await pool.describe(model)).checkpoint
        assert served == "models/toy/checkpoints/base"
        return errors

    errors = asyncio.run(run())
    assert len(calls) == 4  # the first actor, two failed replacements, the one that started
    assert "RuntimeError: no engine can start here (replacement attempt 1 failed; next in 0.2 s)" in errors, errors
    assert "RuntimeError: no engine can start here (replacement attempt 2 failed; next in 0.4 s)" in errors, errors
    assert not any("Traceback" in e or "ray::" in e for e in errors)  # clients read this: no worker traceback
    assert calls[2] - calls[1] >= 0.2 and calls[3] - calls[2] >= 0.4  # the waits grow as configured


def test_stopping_the_server_ends_the_retries(local_ray: None, tmp_path: Path) -> None:
    spawn, calls = spawner([True, False])  # no replacement ever starts

    async def run() -> None:
        pool = pool_of(spawn, tmp_path)
        model = await lose_the_engine(pool)
        while len(calls) < 3:
            await asyncio.sleep(0.02)
        stopper = threading.Thread(target=pool.shutdown)  # as RunningServer.stop does: from a worker thread
        stopper.start()
        while stopper.is_alive():
            await asyncio.sleep(0.02)
        stopped_at = len(calls)
        await asyncio.sleep(1.0)  # more than two retry delays
        assert len(calls) == stopped_at
        assert model.state != State.READY

    asyncio.run(run())
