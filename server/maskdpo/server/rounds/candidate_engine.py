"""The engine a full-parameter candidate is decoded on, started while TRAIN runs and handed to EVALUATE.

Where that engine takes no GPU (a CPU cluster), TRAIN starts it on the start weights once the trainer is
placed (so it only takes room the trainer leaves), and the trainer pushes the candidate into it after saving
it (:class:`~maskdpo.server.workers.engine_push.EnginePush`). TRAIN then leaves it for EVALUATE
(``ctx.spare_engine``): serving the candidate once the probe has verified it; else on the start weights
(nothing pushed, or refused) or on unknown ones (a push broke off), which EVALUATE replaces from the
candidate's checkpoint. On GPUs it would take the trainer's devices, so it starts after TRAIN instead
(:func:`~maskdpo.server.rounds.decoding.round_engine`).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from pathlib import Path
from typing import Any

from maskdpo.server.rounds.context import RoundContext
from maskdpo.server.rounds.decoding import RoundEngine, engine_name, start_round_engine
from maskdpo.server.workers.engine_push import PLACED_FILE, EnginePush
from maskdpo.server.workers.ray_runtime import NAMESPACE, remote_error


def wanted(ctx: RoundContext) -> bool:
    """Whether a full-parameter round on Ray starts its candidate's engine beside the trainer: where that
    engine takes no GPU."""
    w = ctx.workers
    if w.engine is None or not w.on_ray or ctx.spec.training.lora:
        return False
    return not w.engine_placement.ray_options(auto_gpus=w.engine.tensor_parallel_size)["num_gpus"]


class EngineBesideTraining:
    """One TRAIN attempt's candidate engine: ``push`` goes to the trainer, :meth:`trainer_placed` starts the
    engine, then :meth:`hand_over` (a candidate was saved) or :meth:`abandon` (none was)."""

    def __init__(self, ctx: RoundContext, work: Path, start: Path) -> None:
        self.ctx, self.start = ctx, start
        self.name, placed = engine_name(ctx), work / PLACED_FILE
        placed.unlink(missing_ok=True)  # a marker of an earlier attempt's engine
        self.push = EnginePush(self.name, NAMESPACE, placed)
        self._starting: asyncio.Task[RoundEngine] | None = None

    def trainer_placed(self) -> None:
        """Start the engine (once): only now, so that it never takes the trainer's room."""
        if self._starting is None:
            self._starting = asyncio.create_task(start_round_engine(
                self.ctx, self.start, self.name, accept_pushed_weights=True, on_placed=self.push.placed.touch))

    async def abandon(self) -> None:
        """Stop the engine, starting or started: there is no candidate."""
        if self._starting is None:
            return
        self._starting.cancel()  # a start in progress stops its actor
        with suppress(BaseException):
            await (await self._starting).stop()

    async def hand_over(self, pushed: dict[str, Any], saved: Path, served_as: Path) -> None:
        """Leave the engine for EVALUATE, serving the pushed candidate if it verifies (see the module)."""
        if self._starting is None:
            return
        try:
            engine = await self._starting
        except Exception as exc:  # EVALUATE starts its own
            self.ctx.log(f"the candidate's engine did not start beside training: {remote_error(exc)}")
            return
        self.ctx.spare_engine = engine
        await adopt_pushed(self.ctx, engine, pushed, saved, served_as)


async def adopt_pushed(ctx: RoundContext, engine: RoundEngine, pushed: dict[str, Any], saved: Path,
                       served_as: Path) -> None:
    """Serve the candidate pushed into ``engine`` (saved at ``saved``, kept at ``served_as``) once the probe
    verifies it; else EVALUATE reloads it from its checkpoint (written either way: PROMOTE deploys it and
    rolls back to it)."""
    if "bytes" not in pushed:
        if pushed.get("attempted"):
            engine.holds = None  # part of a push: neither the start nor the candidate
        ctx.log(f"the candidate was not pushed ({pushed.get('error', 'no push made')}): EVALUATE loads it from disk")
        return
    try:
        await engine.actor.adopt_pushed.remote(str(saved), str(served_as))
    except Exception as exc:
        ctx.log(f"the pushed candidate did not verify ({remote_error(exc)}): EVALUATE loads it from disk")
        return
    engine.holds = served_as
    ctx.log(f"pushed the candidate into engine {engine.name}: {pushed['bytes'] / 2**20:.1f} MiB in "
            f"{pushed['seconds']:.2f} s, verified by the probe")
