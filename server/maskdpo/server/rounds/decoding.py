"""Where a round decodes a policy, and how it feeds an engine its prompts.

The serving engine decodes every policy on the base it holds: the served weights, and any LoRA adapter on
that base, each request naming its weights. Other weights -- a full-parameter candidate in EVALUATE, a chained
round's unpromoted full-weight start in SAMPLE -- are decoded on an engine the round starts on them for the
length of the phase: a Generator actor with the serving engines' settings (the same vLLM code, dtype and
limits, so the sides of a comparison are decoded alike), placed as the trainer is (its devices are free
outside TRAIN); one per phase, reloaded in place (a verified hot-swap) when a second policy needs it. With
``gpu_sharing = "alternate"`` the serving engine sleeps meanwhile, as during TRAIN. No model is loaded in
the round controller: at 8B it would not fit the head node, and it would decode on a CPU.

A controller without engine settings (``Workers.engine`` unset: rounds run in one process, in tests) decodes
those weights with transformers in this process (:class:`~maskdpo.server.rounds.workers.LocalGenerator`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from maskdpo.server.errors import QueueFull
from maskdpo.server.generation.types import GenerationResult, Weights
from maskdpo.server.rounds.context import RoundContext
from maskdpo.server.rounds.policy import Policy
from maskdpo.server.rounds.workers import Generator, LocalGenerator, NamedGenerator

SERVING, ROUND_ENGINE, IN_PROCESS = "generator", "round engine", "transformers"
"""Where a policy was decoded (``Decoder.kind``, the ``sampler`` SAMPLE records)."""
IN_FLIGHT = 32
"""Requests a round keeps in an engine's queue at once (the engine batches what is queued)."""
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Decoder:
    """A policy's decoder: ``generator``, every request naming ``weights``."""

    generator: Generator
    weights: Weights
    kind: str
    where: str

    @property
    def serving(self) -> bool:
        """Decoded by the serving engine: the samples carry its weight versions (0 = not the served weights)."""
        return self.kind == SERVING


class Decoders:
    """Where a phase decodes its policies: ``async with Decoders(ctx) as decoders``, then
    ``await decoders.of(policy)`` per policy. The serving engine decodes every policy on the base it holds;
    the others share one engine of the phase's own, started on the first of them and reloaded in place (a
    verified hot-swap) for each next one; it stops when the block ends. An engine an earlier phase left for
    this one (``ctx.spare_engine``: TRAIN's, holding the candidate it pushed) is that engine."""

    def __init__(self, ctx: RoundContext) -> None:
        self.ctx = ctx
        self._stack = AsyncExitStack()
        self._own: tuple[Generator, str, str] | None = None
        self._holds: Path | None = None

    async def __aenter__(self) -> Decoders:
        await self._stack.__aenter__()
        spare, self.ctx.spare_engine = self.ctx.spare_engine, None
        if spare is not None:
            self._stack.push_async_callback(spare.stop)
            self._own = (spare.generator, ROUND_ENGINE, spare.where)
            self._holds = spare.holds.resolve() if spare.holds is not None else None
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._stack.__aexit__(*exc)

    async def on_serving_engine(self, policy: Policy) -> bool:
        """Whether the serving engine holds ``policy``'s base (decode those first: with ``gpu_sharing =
        "alternate"`` it sleeps once the phase's own engine starts)."""
        return policy.base.resolve() == Path((await self.ctx.generator.current_version()).checkpoint).resolve()

    async def of(self, policy: Policy) -> Decoder:
        ctx = self.ctx
        if await self.on_serving_engine(policy):
            node = await ctx.generator.node_id()
            return Decoder(ctx.generator, policy.weights(), SERVING, f"the serving engine at node {node}")
        base = policy.base.resolve()
        if self._own is None:
            self._own = await self._stack.enter_async_context(round_engine(ctx, base))
        elif self._holds != base:  # a verified reload from disk
            await self._own[0].deploy(base, None)
            ctx.log(f"the round's engine now holds {base}")
        self._holds = base
        generator, kind, where = self._own
        return Decoder(generator, policy.weights(), kind, where)


@dataclasses.dataclass
class RoundEngine:
    """An engine the round started (a Generator actor), and the weights it holds."""

    actor: Any
    name: str
    model: str
    """The model id the round aligns."""
    holds: Path | None
    """None: unknown (a push failed half-way); its next use reloads it from a checkpoint."""
    where: str
    woke: Generator | None = None
    """The serving engine it put to sleep (``gpu_sharing = "alternate"``), woken when this one stops."""

    @property
    def generator(self) -> NamedGenerator:
        return NamedGenerator([self.name], self.model, wait_s=10.0)

    async def stop(self) -> None:
        import ray

        with suppress(Exception):  # already gone: nothing left to stop
            await self.actor.shutdown.remote()
        ray.kill(self.actor)
        if self.woke is not None:
            await self.woke.wake_up()


def engine_name(ctx: RoundContext) -> str:
    return f"{ctx.spec.model_id}-round-{ctx.rid[:8]}-{uuid.uuid4().hex[:6]}"


async def start_round_engine(ctx: RoundContext, base: Path, name: str = "", accept_pushed_weights: bool = False,
                             on_placed: Callable[[], object] = lambda: None) -> RoundEngine:
    """Start an engine on ``base`` with the serving engines' settings, placed as the trainer is;
    ``on_placed`` is called once Ray has given it its resources (its start takes a while longer)."""
    from maskdpo.server.workers.generator_actor import create_generator_actor
    from maskdpo.server.workers.placement import wait_placed
    from maskdpo.server.workers.ray_runtime import call_error

    workers = ctx.workers
    assert workers.engine is not None, "a controller without engine settings decodes in its own process"
    name = name or engine_name(ctx)
    settings = dataclasses.replace(workers.engine, model=base, served_name=name, sleep_mode=False,
                                   accept_pushed_weights=accept_pushed_weights)
    placement = workers.engine_placement
    what = f"the round's engine on {base}"
    asleep = await ctx.generator.sleep() if workers.alternate_gpu else False
    engine = RoundEngine(create_generator_actor(settings, placement=placement, name=name), name,
                         ctx.spec.model_id, base, "",
                         ctx.generator if asleep else None)
    try:
        await wait_placed(engine.actor, workers.placement_timeout_s, what,
                          placement.describe(settings.tensor_parallel_size))
        on_placed()
        try:
            await engine.actor.ready.remote()
            node = await engine.actor.node_id.remote()
        except Exception as exc:
            raise call_error(exc, what) from None
    except BaseException:
        await engine.stop()
        raise
    engine.where = f"an engine of the round's at node {node}"
    ctx.log(f"started engine {name} on {base} at node {node}")
    return engine


@asynccontextmanager
async def round_engine(ctx: RoundContext, base: Path) -> AsyncIterator[tuple[Generator, str, str]]:
    """(a Generator on ``base``, its kind, where it runs) for the length of the block."""
    if ctx.workers.engine is None:
        yield LocalGenerator(base), IN_PROCESS, "transformers in the round controller"
        return
    engine = await start_round_engine(ctx, base)
    try:
        yield engine.generator, ROUND_ENGINE, engine.where
    finally:
        await engine.stop()


async def each_with_backpressure(
    items: Sequence[T], call: Callable[[int, T], Awaitable[GenerationResult]],
    check_cancel: Callable[[], None], on_done: Callable[[int], None],
) -> list[GenerationResult]:
    """``call`` for every item, at most ``IN_FLIGHT`` at once; a full engine queue (QUEUE_FULL) is waited
    on for the advised time and tried again. Results in the items' order."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    done = 0

    async def one(index: int, item: T) -> GenerationResult:
        nonlocal done
        async with gate:
            while True:
                check_cancel()
                try:
                    result = await call(index, item)
                    break
                except QueueFull as exc:
                    await asyncio.sleep(float(exc.metadata.get("retry_after_s", 1.0)))
        done += 1
        on_done(done)
        return result

    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))
