"""What a round runs on: the served model's generator, the judges, a trainer -- as Ray actors or in-process.

- :class:`NamedGenerator` calls a model's GeneratorActor, found by name (``generate``, ``current_version``,
  ``deploy``); :class:`LocalGenerator` serves a folder with transformers in this process (tests,
  single-process use; its ``deploy`` loads the checkpoint and bumps the version, without the engine's
  probe verification).
- :class:`Judges` is what a round labels with: the server's Judge actors (the same workers Score uses), or
  :class:`LocalJudges` built in this process.
- :func:`run_trainer` runs one :class:`TrainOptions` either on a Trainer actor (``workers.on_ray``, placed
  by ``workers.trainer``; with ``workers.trainer_workers`` > 1 or ``options.fsdp`` the actor drives that
  many Ray Train workers, each placed by ``workers.trainer``) or in a thread of this process, forwarding its
  numbered progress events and stopping it when ``should_cancel`` turns true (the trainer checks after every
  optimizer step).
- :class:`Workers` says where a round's work runs (the controller gets it from the server's settings),
  including the settings of the engines a round starts on weights the serving engine does not hold.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from maskdpo.server.errors import Unavailable
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import (
    DeployReport,
    GenerationResult,
    Prompt,
    Sample,
    SamplingOptions,
    Weights,
    WeightVersion,
)
from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.judge.registry import build_backend
from maskdpo.server.judge.types import JudgeBackend, JudgeIdentity, JudgeRequest, Judgment
from maskdpo.server.rounds import local_model
from maskdpo.server.workers.generator_actor import deploy_everywhere
from maskdpo.server.workers.placement import Placement, PlacementTimeout, wait_placed
from maskdpo.server.workers.ray_runtime import actor_lost, call_error, find_actor
from maskdpo.server.workers.ray_train import TrainScaling
from maskdpo.trainer.run import Push, TrainOptions

POLL_S = 0.2


@dataclass(frozen=True)
class Workers:
    """Where a round's work runs."""

    on_ray: bool = False
    """Train on a Trainer actor (else in a thread of the controller)."""
    trainer: Placement = field(default_factory=Placement)
    alternate_gpu: bool = False
    """The engine sleeps during TRAIN, leaving its GPU to the trainer (``gpu_sharing = "alternate"``)."""
    placement_timeout_s: float = 600.0
    trainer_workers: int = 1
    """Ray Train workers for TRAIN, each placed by ``trainer`` (more than one: data-parallel on Ray Train);
    the TRAIN phase sets it from the round's ``training.gpus``."""
    fsdp: bool = False
    """TRAIN shards the model over its workers (the round's ``training.fsdp``)."""
    engine: EngineSettings | None = None
    """The serving engines' settings: a round starts an engine with them (its model replaced) on weights the
    serving engine does not hold (:mod:`maskdpo.server.rounds.decoding`); None = transformers in this process."""

    @property
    def engine_placement(self) -> Placement:
        """Where a round's engine runs: as the trainer does (its devices are free outside TRAIN), with the
        engine's own GPU count -- or the trainer's share of the generator's GPU when they alternate on it."""
        return replace(self.trainer, num_gpus=self.trainer.num_gpus if self.alternate_gpu else None)

    def scaling(self, fsdp: bool = False) -> TrainScaling | None:
        """The Ray Train worker group a run trains on (``fsdp`` needs one even for one worker); None for one
        Trainer actor training by itself."""
        if self.trainer_workers > 1 or fsdp:
            return TrainScaling(self.trainer_workers, self.trainer)
        return None


class Judges(Protocol):
    """The judges a round labels with, by backend name: the server's Judge actors
    (:class:`maskdpo.server.workers.judge_pool.JudgePool`), or :class:`LocalJudges` in this process."""

    async def judge(self, backend: str, requests: list[JudgeRequest], timeout: float | None = None
                    ) -> list[Judgment]: ...

    async def identity(self, backend: str) -> JudgeIdentity: ...

    async def where(self, backend: str) -> str:
        """Where ``backend`` runs (a Ray node id), for the round's log."""
        ...


class LocalJudges:
    """Judge backends built in this process from the registry (tests, single-process use)."""

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._options = options or {}
        self._backends: dict[str, JudgeBackend] = {}

    def _backend(self, name: str) -> JudgeBackend:
        if name not in self._backends:
            self._backends[name] = build_backend(name, **dict(self._options.get(name, {})))
        return self._backends[name]

    async def judge(self, backend: str, requests: list[JudgeRequest], timeout: float | None = None
                    ) -> list[Judgment]:
        return await asyncio.to_thread(self._backend(backend).judge_batch, requests)

    async def identity(self, backend: str) -> JudgeIdentity:
        return self._backend(backend).identity()

    async def where(self, backend: str) -> str:
        return "this process"


class Generator(Protocol):
    async def generate(self, prompt: Prompt, options: SamplingOptions, weights: Weights | None = None
                       ) -> GenerationResult: ...

    async def current_version(self) -> WeightVersion: ...

    async def deploy(self, folder: Path, tolerance: float | None) -> DeployReport: ...

    async def sleep(self) -> bool: ...

    async def wake_up(self) -> None: ...

    async def node_id(self) -> str: ...


class NamedGenerator:
    """The Generator actors (replicas) of a model, found by their names in Ray: the server that started them
    may restart and start others under the same names, so a lost handle is looked up again at the next
    call. Generation goes to the replicas in turn; a deploy goes to all (:func:`deploy_everywhere`). Waits
    up to ``wait_s`` for the actors to exist (a server still starting); then the phase fails."""

    def __init__(self, names: Sequence[str], model: str, wait_s: float = 900.0) -> None:
        self.names = list(names)
        self.model = model
        self.wait_s = wait_s
        self._handles: list[Any] = []
        self._turn = 0

    async def _actors(self) -> list[Any]:
        if not self._handles:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait_s
            while True:
                found = [find_actor(name) for name in self.names]
                if all(handle is not None for handle in found):
                    break
                if loop.time() > deadline:
                    raise Unavailable(f"no generator serves models/{self.model} (actors {self.names} not all "
                                      f"found within {self.wait_s:g} s)")
                await asyncio.sleep(1.0)
            self._handles = found
        return self._handles

    async def _call(self, method: str, *args: Any, everywhere: bool = False) -> Any:
        actors = await self._actors()
        self._turn += 1
        chosen = actors if everywhere else [actors[self._turn % len(actors)]]
        try:
            results = [await getattr(actor, method).remote(*args) for actor in chosen]
        except Exception as exc:
            if actor_lost(exc):  # the next call looks the replacements up (the controller runs the phase again)
                self._handles = []
            raise call_error(exc, f"the generator of models/{self.model}") from None
        return results[0]

    async def generate(self, prompt: Prompt, options: SamplingOptions, weights: Weights | None = None
                       ) -> GenerationResult:
        result: GenerationResult = await self._call("generate", prompt, options, "", weights)
        return result

    async def current_version(self) -> WeightVersion:
        version: WeightVersion = await (await self._actors())[0].current_version.remote()
        return version

    async def deploy(self, folder: Path, tolerance: float | None) -> DeployReport:
        actors = await self._actors()
        return await deploy_everywhere(actors, folder, tolerance, f"the generator of models/{self.model}")

    async def sleep(self) -> bool:
        asleep: bool = await self._call("sleep", everywhere=True)
        return asleep

    async def wake_up(self) -> None:
        await self._call("wake_up", everywhere=True)

    async def node_id(self) -> str:
        nodes = [await actor.node_id.remote() for actor in await self._actors()]
        return ", ".join(dict.fromkeys(nodes))


class LocalGenerator:
    """A model folder served by transformers in this process."""

    def __init__(self, model: Path) -> None:
        self.version = WeightVersion(1, Path(model))
        self.deploys: list[str] = []

    async def generate(self, prompt: Prompt, options: SamplingOptions, weights: Weights | None = None
                       ) -> GenerationResult:
        text = prompt.messages[-1].content if prompt.messages else prompt.text
        version = self.version
        folder = version.folder if weights is None else weights.adapter or version.checkpoint
        texts = await asyncio.to_thread(
            local_model.generate,
            folder,
            [text],
            n=options.n,
            greedy=options.temperature == 0,
            temperature=options.temperature or 1.0,
            top_p=options.top_p,
            top_k=options.top_k,
            max_tokens=options.max_tokens,
            seed=options.seed or 0,
        )
        stamp = version.version if folder == version.folder else 0
        samples = tuple(Sample(i, t, (), (), "stop", stamp) for i, t in enumerate(texts[0]))
        return GenerationResult("", 0, samples, stamp)

    async def current_version(self) -> WeightVersion:
        return self.version

    async def sleep(self) -> bool:
        return False

    async def wake_up(self) -> None:
        return None

    async def node_id(self) -> str:
        return "this process"

    async def deploy(self, folder: Path, tolerance: float | None) -> DeployReport:
        await asyncio.to_thread(local_model.load, folder)
        adapter = folder if is_adapter(folder) else None
        self.version = WeightVersion(self.version.version + 1, self.version.checkpoint if adapter else folder,
                                     adapter)
        self.deploys.append(str(folder))
        return DeployReport(True, self.version, folder, 0.0, 0.0, 0, 0.0, 0.0, 0.0)


async def run_trainer(
    options: TrainOptions,
    should_cancel: Callable[[], bool],
    on_event: Callable[[dict[str, Any]], None],
    workers: Workers | None = None,
    on_placed: Callable[[str], None] = lambda node: None,
    push: Push | None = None,
) -> dict[str, Any]:
    """Run training to the end or until cancelled; returns the trainer's summary dict.

    On Ray, ``on_placed`` hears where the training landed (a node, or the worker group's nodes);
    :class:`PlacementTimeout` when the cluster does not take it in time. ``push``: what the training
    processes do with the final weights once saved (``run_training``'s; on Ray only)."""
    if workers is not None and workers.on_ray:
        return await _run_on_actor(options, should_cancel, on_event, workers, on_placed, push)
    from dataclasses import asdict

    from maskdpo.trainer.run import run_training

    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with lock:
            events.append({"seq": len(events) + 1, **event})

    def pending(after: int) -> list[dict[str, Any]]:
        with lock:
            return events[after:]

    # the trainer polls should_cancel after every optimizer step, in its own thread
    task = asyncio.ensure_future(asyncio.to_thread(run_training, options, emit, should_cancel))
    seen = 0
    while not task.done():
        await asyncio.wait({task}, timeout=POLL_S)
        seen = _forward(pending(seen), seen, on_event)
    result = task.result()
    summary = asdict(result)
    summary["out"], summary["final_dir"] = (
        str(result.out),
        str(result.final_dir) if result.final_dir else None,
    )
    return summary


async def _run_on_actor(
    options: TrainOptions,
    should_cancel: Callable[[], bool],
    on_event: Callable[[dict[str, Any]], None],
    workers: Workers,
    on_placed: Callable[[str], None],
    push: Push | None,
) -> dict[str, Any]:
    import ray

    from maskdpo.server.workers.trainer_actor import create_trainer_actor

    scaling = workers.scaling(options.fsdp)
    actor = create_trainer_actor(options, workers.trainer, scaling, push)
    try:
        await wait_placed(actor, workers.placement_timeout_s, "trainer", workers.trainer.describe())
        running = actor.train.remote()
        placed_by = time.monotonic() + workers.placement_timeout_s
        placed, seen, cancelled = False, 0, False
        while True:
            ready, _ = ray.wait([running], timeout=0)
            if not placed:  # a Ray Train worker group waits for its resources after train() started
                where = await actor.where.remote(0)
                if where is not None:
                    placed = True
                    on_placed(where)
                elif cancelled:
                    return {"cancelled": True, "steps": 0, "final_dir": None}
                elif time.monotonic() > placed_by:
                    raise PlacementTimeout(
                        f"the trainer's {scaling.describe() if scaling else 'actor'} did not all start within "
                        f"{workers.placement_timeout_s:.0f} s; check that the cluster has room for them"
                    )
            seen = _forward(await actor.events.remote(seen), seen, on_event)
            if ready:
                break
            if not cancelled and should_cancel():
                await actor.cancel.remote()
                cancelled = True
            await asyncio.sleep(POLL_S)
        result: dict[str, Any] = await running
        return result
    finally:
        ray.kill(actor)


def _forward(events: list[dict[str, Any]], seen: int, on_event: Callable[[dict[str, Any]], None]) -> int:
    for event in events:
        on_event(event)
        seen = max(seen, int(event["seq"]))
    return seen
