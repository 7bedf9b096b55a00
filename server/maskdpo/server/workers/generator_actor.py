"""GeneratorActor: a Ray async actor hosting one engine and its weight versions.

Create it with :func:`create_generator_actor` (declares CPUs, or GPUs = tensor-parallel size on GPU
clusters). Unary calls are plain actor methods; ``generate_stream`` is a Ray streaming generator: cancelling
its ObjectRefGenerator (``ray.cancel``) aborts the request in the engine and frees its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import ray

from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.hotswap import Deployer
from maskdpo.server.generation.settings import EngineSettings
from maskdpo.server.generation.types import (
    DeployReport,
    GenerationResult,
    ModelInfo,
    Prompt,
    SamplingOptions,
    StreamDelta,
    WeightVersion,
)
from maskdpo.server.workers.placement import Placement, node_id


class GeneratorActorImpl:
    """The actor's body (undecorated, so it can be tested in-process as well)."""

    def __init__(self, settings: EngineSettings, tolerance: float | None = None) -> None:
        self.settings = settings
        self._tolerance = tolerance
        self._engine: GenerationEngine | None = None
        self._deployer: Deployer | None = None
        self._starting: asyncio.Lock | None = None

    async def _ready(self) -> tuple[GenerationEngine, Deployer]:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._engine is None or self._deployer is None:
                engine = await GenerationEngine.start(self.settings)
                self._deployer = Deployer(engine, self._tolerance)
                self._engine = engine
        return self._engine, self._deployer

    async def ready(self) -> ModelInfo:
        """Start the engine if needed; returns what is served."""
        engine, _ = await self._ready()
        return engine.info()

    async def info(self) -> ModelInfo:
        return await self.ready()

    async def current_version(self) -> WeightVersion:
        engine, _ = await self._ready()
        return engine.version

    async def generate(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = ""
    ) -> GenerationResult:
        engine, _ = await self._ready()
        return await engine.generate(prompt, options, request_id)

    async def generate_stream(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = ""
    ) -> AsyncGenerator[StreamDelta, None]:
        engine, _ = await self._ready()
        async with aclosing(engine.generate_stream(prompt, options, request_id)) as deltas:
            async for delta in deltas:
                yield delta

    async def abort(self, request_id: str) -> None:
        engine, _ = await self._ready()
        await engine.abort(request_id)

    async def deploy(self, checkpoint: str, tolerance: float | None = None,
                     version: int | None = None) -> DeployReport:
        _, deployer = await self._ready()
        return await deployer.deploy(Path(checkpoint), tolerance, version)

    async def sleep(self) -> bool:
        """Leave the GPU to a trainer (see :meth:`GenerationEngine.sleep`); False where the engine cannot."""
        engine, _ = await self._ready()
        return await engine.sleep()

    async def wake_up(self) -> None:
        engine, _ = await self._ready()
        await engine.wake_up()

    def node_id(self) -> str:
        """The Ray node the engine runs on."""
        return node_id()

    async def load(self) -> dict[str, Any]:
        """Admission and engine counters (admitted, running, unfinished in the engine, deploying)."""
        engine, deployer = await self._ready()
        return {
            "admitted": engine.admission.admitted,
            "running": len(engine.admission.running),
            "engine_unfinished": engine.unfinished(),
            "limit": engine.admission.limit,
            "deploying": deployer.deploying,
        }

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None


GeneratorActor = ray.remote(GeneratorActorImpl)


def create_generator_actor(
    settings: EngineSettings,
    *,
    placement: Placement | None = None,
    name: str | None = None,
    tolerance: float | None = None,
) -> Any:
    """Create the actor; GPUs left unset = the tensor-parallel size when the cluster has GPUs, else 0."""
    options: dict[str, Any] = {
        **(placement or Placement()).ray_options(auto_gpus=settings.tensor_parallel_size),
        "max_concurrency": 1000,
    }
    if name:
        options["name"] = name
    return GeneratorActor.options(**options).remote(settings, tolerance)
