"""GeneratorActor: a Ray async actor hosting one engine and its weight versions.

Create it with :func:`create_generator_actor` (declares CPUs, or GPUs = tensor-parallel size on GPU
clusters). Unary calls are plain actor methods; ``generate_stream`` is a Ray streaming generator: cancelling
its ObjectRefGenerator (``ray.cancel``) aborts the request in the engine and frees its slot.

Errors leave the actor as the service's own exceptions (:mod:`maskdpo.server.errors`, which pickle with
their fields): :func:`service_error` maps the generation library's errors at this boundary, so callers on
the other side of Ray re-raise what they receive and nothing parses messages. A dead engine is reported as
UNAVAILABLE with ``engine = dead`` in its metadata (:func:`engine_is_dead`), which is how the server's pool
knows to replace the actor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import ray

from maskdpo.server import errors
from maskdpo.server.generation import errors as gen_errors
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.hotswap import Deployer
from maskdpo.server.generation.types import (
    DeployReport,
    GenerationResult,
    ModelInfo,
    Prompt,
    SamplingOptions,
    StreamDelta,
    Weights,
    WeightVersion,
)
from maskdpo.server.workers.placement import Placement, node_id
from maskdpo.server.workers.ray_runtime import NAMESPACE, actor_name, call_error

log = logging.getLogger("maskdpo.server")

DEAD = "dead"
"""``metadata["engine"]`` of the UNAVAILABLE error that reports a dead engine."""


def service_error(exc: gen_errors.GenerationError, model: str, prompt: Prompt | None = None) -> errors.ServiceError:
    """The service's exception for an error of the generation library. A field about the prompt is named
    by the input the request used (``prompt`` or ``messages``)."""
    what = f"models/{model}"
    if isinstance(exc, gen_errors.InvalidRequestError):
        field = exc.field
        if field == "prompt" and prompt is not None and prompt.messages:
            field = "messages"
        if isinstance(exc, gen_errors.PromptTooLongError):
            return errors.PromptTooLong(field, exc.prompt_tokens, exc.max_model_len - 1)
        return errors.InvalidArgument(field, exc.reason)
    if isinstance(exc, gen_errors.QueueFullError):
        return errors.QueueFull(f"{what} generation", exc.retry_after_s)
    if isinstance(exc, gen_errors.EngineDeadError):
        return errors.Unavailable(f"{what}: {exc}", engine=DEAD)
    if isinstance(exc, gen_errors.EngineAsleepError):
        return errors.Unavailable(f"{what}: {exc}")
    if isinstance(exc, gen_errors.RequestAbortedError):
        return errors.Unavailable(f"{what}: the request was aborted by the server ({exc}); retry it")
    if isinstance(exc, gen_errors.DeployConflictError):
        return errors.Conflict(str(exc))
    if isinstance(exc, gen_errors.CheckpointError | gen_errors.VerificationError):
        return errors.CheckpointRejected(str(exc))
    return errors.Unavailable(f"{what}: {type(exc).__name__}: {exc}")


def engine_is_dead(exc: BaseException) -> bool:
    """True for the error a Generator actor raises when its engine died."""
    return isinstance(exc, errors.Unavailable) and exc.metadata.get("engine") == DEAD


P = ParamSpec("P")
R = TypeVar("R")


def _mapped(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Raise the service's exception for a generation error of ``method`` (self is the first argument)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except gen_errors.GenerationError as exc:
            prompt = next((a for a in args if isinstance(a, Prompt)), None)
            raise service_error(exc, args[0].settings.name, prompt) from None  # type: ignore[attr-defined]

    return wrapper


class GeneratorActorImpl:
    """The actor's body (undecorated, so it can be tested in-process as well)."""

    def __init__(self, settings: EngineSettings, tolerance: float | None = None,
                 restore: WeightVersion | None = None) -> None:
        self.settings = settings
        self._tolerance = tolerance
        self._restore = restore
        self._engine: GenerationEngine | None = None
        self._deployer: Deployer | None = None
        self._starting: asyncio.Lock | None = None

    async def _ready(self) -> tuple[GenerationEngine, Deployer]:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._engine is None or self._deployer is None:
                engine = await GenerationEngine.start(self.settings)
                deployer = Deployer(engine, self._tolerance)
                if self._restore is not None:
                    await self._restored(deployer, self._restore)
                self._engine, self._deployer = engine, deployer
        return self._engine, self._deployer

    async def _restored(self, deployer: Deployer, restore: WeightVersion) -> None:
        """Bring back the weights served before (verified like any deploy, same version) before anyone is
        served; when they are gone or do not verify, the base weights stay (the server says so)."""
        try:
            await _bring_back(deployer, restore)
        except gen_errors.GenerationError as exc:
            log.warning("%s: could not restore %s: %s; serving the base", self.settings.name, restore.folder, exc)

    @_mapped
    async def restore(self, weights: WeightVersion) -> WeightVersion:
        """Serve ``weights`` again under their own version (a deploy into other replicas failed: this one
        goes back to what they all served)."""
        _, deployer = await self._ready()
        await _bring_back(deployer, weights)
        return deployer.engine.version

    @_mapped
    async def ready(self) -> ModelInfo:
        """Start the engine if needed; returns what is served."""
        engine, _ = await self._ready()
        return engine.info()

    @_mapped
    async def info(self) -> ModelInfo:
        return await self.ready()

    @_mapped
    async def current_version(self) -> WeightVersion:
        engine, _ = await self._ready()
        return engine.version

    @_mapped
    async def generate(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = "", weights: Weights | None = None
    ) -> GenerationResult:
        engine, _ = await self._ready()
        return await engine.generate(prompt, options, request_id, weights)

    async def generate_stream(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = "", weights: Weights | None = None
    ) -> AsyncGenerator[StreamDelta, None]:
        try:
            engine, _ = await self._ready()
            async with aclosing(engine.generate_stream(prompt, options, request_id, weights)) as deltas:
                async for delta in deltas:
                    yield delta
        except gen_errors.GenerationError as exc:
            raise service_error(exc, self.settings.name, prompt) from None

    @_mapped
    async def abort(self, request_id: str) -> None:
        engine, _ = await self._ready()
        await engine.abort(request_id)

    @_mapped
    async def deploy(self, checkpoint: str, tolerance: float | None = None,
                     version: int | None = None) -> DeployReport:
        _, deployer = await self._ready()
        return await deployer.deploy(Path(checkpoint), tolerance, version)

    # A weight push (maskdpo.server.workers.engine_push.ActorTarget; engines with accept_pushed_weights)

    @_mapped
    async def push_step(self, step: str, payload: dict[str, Any] | None = None) -> None:
        """One step of a push into the engine (:meth:`GenerationEngine.push_step`)."""
        engine, _ = await self._ready()
        await engine.push_step(step, payload)

    def push_workers(self) -> int:
        return self.settings.tensor_parallel_size

    @_mapped
    async def adopt_pushed(self, reference: str, served_as: str, tolerance: float | None = None) -> DeployReport:
        """Verify the pushed weights against ``reference``'s probe and serve them as ``served_as``."""
        _, deployer = await self._ready()
        return await deployer.adopt_pushed(Path(reference), Path(served_as), tolerance)

    @_mapped
    async def sleep(self) -> bool:
        """Leave the GPU to a trainer (see :meth:`GenerationEngine.sleep`); False where the engine cannot."""
        engine, _ = await self._ready()
        return await engine.sleep()

    @_mapped
    async def wake_up(self) -> None:
        engine, _ = await self._ready()
        await engine.wake_up()

    def node_id(self) -> str:
        """The Ray node the engine runs on."""
        return node_id()

    @_mapped
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


async def _bring_back(deployer: Deployer, weights: WeightVersion) -> None:
    """Deploy ``weights`` under their recorded version: an adapter's base weights first when they are not the
    ones the engine holds. CheckpointError when a folder is gone."""
    steps = [weights.folder]
    if weights.adapter is not None and weights.checkpoint != deployer.engine.version.checkpoint:
        steps.insert(0, weights.checkpoint)
    for folder in steps:
        if not folder.is_dir():
            raise gen_errors.CheckpointError(f"{folder} is gone")
        await deployer.deploy(folder, None, weights.version)


async def deploy_everywhere(actors: Sequence[Any], folder: Path, tolerance: float | None, what: str,
                            on_failure: Callable[[int, BaseException], None] = lambda i, exc: None) -> DeployReport:
    """Deploy ``folder`` into every replica of a model, one after the other, under the same next version.
    When one refuses (or fails), the replicas that already switched go back to the weights served before
    under their own version, so replicas never serve different versions; then the error is raised
    (:func:`call_error`; ``on_failure`` hears which replica failed and how). Returns the first replica's
    report."""
    before: WeightVersion = await actors[0].current_version.remote()
    reports: list[DeployReport] = []
    for index, actor in enumerate(actors):
        try:
            reports.append(await actor.deploy.remote(str(folder), tolerance, before.version + 1))
        except Exception as exc:
            on_failure(index, exc)
            for done in actors[:index]:
                try:
                    await done.restore.remote(before)
                except Exception as undo:  # that replica now serves other weights: it must not serve on
                    log.error("%s: a replica could not go back to version %d: %s", what, before.version, undo)
                    on_failure(actors.index(done), undo)
            raise call_error(exc, what) from None
    return reports[0]


def generator_names(data_dir: Path, model: str, replicas: int) -> list[str]:
    """The Ray names of the Generator actors (one per replica) of ``model`` on the server of ``data_dir``."""
    return [actor_name(data_dir, f"generator-{model}-{i}") for i in range(replicas)]


def create_generator_actor(
    settings: EngineSettings,
    *,
    placement: Placement | None = None,
    name: str | None = None,
    tolerance: float | None = None,
    restore: WeightVersion | None = None,
) -> Any:
    """Create the actor (named ``name`` in the service's namespace, if given); GPUs left unset = the
    tensor-parallel size when the cluster has GPUs, else 0. ``restore``: weights to bring back (with their
    version) before the engine serves anything."""
    options: dict[str, Any] = {
        **(placement or Placement()).ray_options(auto_gpus=settings.tensor_parallel_size),
        "max_concurrency": 1000,
    }
    if name:
        options |= {"name": name, "namespace": NAMESPACE}
    return GeneratorActor.options(**options).remote(settings, tolerance, restore)
