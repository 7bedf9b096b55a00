"""TRAIN: Mask-DPO (or vanilla DPO) on the round's pairs, from the weights the round started from.

The trainer runs on a Trainer actor (or in the controller), resumes from its last checkpoint after a crash,
reports steps and metrics as round events and honours a cancel after every optimizer step. With
``alternate_gpu`` the engine sleeps while the trainer holds its GPU. The candidate is ``TRAIN/final``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundCancelled,
    RoundContext,
)
from maskdpo.server.rounds.phase_pair import pair_config
from maskdpo.server.rounds.workers import run_trainer
from maskdpo.server.workers.placement import PlacementTimeout
from maskdpo.trainer.run import TrainOptions
from maskdpo.trainer.token_masks import MaskUnit
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase

def train_steps(ctx: RoundContext, pairs: int) -> int:
    t = ctx.spec.training
    steps = max(1, math.ceil(pairs * t.epochs / t.batch_size))
    return min(steps, t.max_steps) if t.max_steps else steps


async def train(ctx: RoundContext, work: Path) -> PhaseOutput:
    policy = Path(ctx.store.phase_summary(ctx.rid, P.SAMPLE)["policy"])
    pairs = int(ctx.store.phase_summary(ctx.rid, P.PAIR)["pairs"])
    t, config = ctx.spec.training, pair_config(ctx)
    steps = train_steps(ctx, pairs)
    options = TrainOptions(
        data=ctx.phase_dir("PAIR") / "pairs.jsonl",
        fmt="pairs",
        model=policy,
        out=work,
        loss=ctx.spec.loss,
        mask_rule=config.mask_rule,
        mask_unit=MaskUnit(ctx.spec.mask_unit),
        degenerate=config.degenerate,
        pair_rule=config.rule,
        nll_alpha=t.nll_alpha,
        steps=steps,
        learning_rate=t.learning_rate,
        beta=t.beta,
        batch_size=min(t.batch_size, pairs),
        max_length=t.max_length,
        seed=ctx.spec.seed,
        save_steps=ctx.save_steps or max(1, steps // 4),
        resume=True,
        progress_bar=False,
    )

    def on_event(event: dict[str, Any]) -> None:
        if event.get("kind") == "step":
            ctx.progress(P.TRAIN, int(event["step"]), int(event.get("max_steps") or steps), "training steps")
        elif event.get("kind") == "metrics":
            values = {
                k: float(v)
                for k, v in event.items()
                if k not in ("kind", "seq", "step") and isinstance(v, int | float)
            }
            ctx.metrics(P.TRAIN, values, f"step {event.get('step')}")
        elif event.get("kind") == "train_begin" and event.get("step"):
            ctx.store.record(
                ctx.rid, "LOG", P.TRAIN, f"training resumed from checkpoint step {event['step']}"
            )

    summary = await _train_beside_generator(ctx, options, on_event)
    if summary.get("cancelled"):
        raise RoundCancelled(f"cancelled during TRAIN at step {summary.get('steps')}")
    if not summary.get("final_dir"):
        raise PhaseFailed("training finished without a final model")
    keep: dict[str, Any] = {
        k: summary[k] for k in ("steps", "seconds", "last_log", "pair_stats", "mask_report") if k in summary
    }
    return PhaseOutput(
        {**keep, "policy": str(policy), "final_dir": str(final_dir(ctx))},
        {"final": "final", "metrics": "metrics.jsonl"},
        {"checkpoint": f"models/{ctx.spec.model_id}/checkpoints/{ctx.rid}"},
    )


async def _train_beside_generator(
    ctx: RoundContext, options: TrainOptions, on_event: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Train; with ``alternate_gpu`` the engine sleeps meanwhile and wakes up however training ends."""
    asleep = ctx.workers.alternate_gpu and await ctx.generator.sleep()
    if asleep:
        ctx.log("the engine sleeps while the trainer uses its GPU")
    try:
        return await run_trainer(options, ctx.cancel_requested, on_event, ctx.workers,
                                 lambda node: ctx.log(f"trainer runs on node {node}"))
    except PlacementTimeout as exc:
        raise PhaseFailed(str(exc)) from None
    finally:
        if asleep:
            await ctx.generator.wake_up()
            ctx.log("the engine is awake again")


def final_dir(ctx: RoundContext) -> Path:
    return ctx.phase_dir("TRAIN") / "final"
