"""TRAIN: Mask-DPO (or vanilla DPO) on the round's pairs, from the weights the round started from.

The trainer runs on a Trainer actor (or in the controller), resumes from its last checkpoint after a crash,
reports steps and metrics as round events and honours a cancel after every optimizer step. With
``alternate_gpu`` the engine sleeps while the trainer holds its GPU. The candidate is ``TRAIN/final``: full
weights, or with ``training.lora`` a LoRA adapter on the start's base (a chained LoRA round goes on training
the adapter it starts from; a full-parameter round that starts from an adapter trains the two merged).

The round's recipe (``training.*``, what the memory plan reads) says how: ``gpus`` training processes on Ray
Train (data-parallel; ``fsdp`` shards their state, GPUs only), ``precision`` (``bf16_mixed``: bfloat16
compute on float32 master weights), ``precompute_ref``, ``grad_accum``. ``batch_size`` is the pairs per
optimizer step: each process takes ``batch_size / (gpus x grad_accum)`` pairs per micro-batch (rounded up).
Once training is done the checkpoints' optimizer state is deleted. A full-parameter candidate's engine may
start beside the trainer and get the candidate pushed into it (:mod:`~maskdpo.server.rounds.candidate_engine`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskdpo.server.errors import NotImplementedYet
from maskdpo.server.generation.verify import PROBE_TEXT
from maskdpo.server.rounds import candidate_engine
from maskdpo.server.rounds.config import Training
from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundCancelled,
    RoundContext,
)
from maskdpo.server.rounds.phase_pair import pair_config
from maskdpo.server.rounds.policy import Policy
from maskdpo.server.rounds.workers import Workers, run_trainer
from maskdpo.server.workers.engine_push import EnginePush
from maskdpo.server.workers.placement import PlacementTimeout
from maskdpo.trainer.memory_plan import Precision
from maskdpo.trainer.merge import merge_adapter
from maskdpo.trainer.retention import drop_resume_state
from maskdpo.trainer.run import TrainOptions
from maskdpo.trainer.token_masks import MaskUnit
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase


def check_runnable(t: Training) -> None:
    """NotImplementedYet naming the first recipe field TRAIN does not run (validate_only plans them all)."""
    for field_name, unsupported, what in (
        ("precision", t.precision is Precision.BF16 and not t.lora, "bf16 weights and optimizer state for "
         "full-parameter training (use bf16_mixed)"),
        ("gradient_checkpointing", not t.gradient_checkpointing, "training without gradient checkpointing"),
    ):
        if unsupported:
            where = f"config.training.{field_name}"
            raise NotImplementedYet(f"{where}: rounds do not train with {what} yet (validate_only plans it)",
                                    field=where)


def per_process_batch(global_batch: int, processes: int, accumulation: int) -> int:
    """Pairs per process and micro-batch for ``global_batch`` pairs per optimizer step (rounded up)."""
    return max(1, math.ceil(global_batch / (processes * accumulation)))


def train_steps(ctx: RoundContext, pairs: int) -> int:
    t = ctx.spec.training
    steps = max(1, math.ceil(pairs * t.epochs / t.batch_size))
    return min(steps, t.max_steps) if t.max_steps else steps


async def train(ctx: RoundContext, work: Path) -> PhaseOutput:
    policy = Policy.of(ctx.store.phase_summary(ctx.rid, P.SAMPLE))
    pairs = int(ctx.store.phase_summary(ctx.rid, P.PAIR)["pairs"])
    t, config = ctx.spec.training, pair_config(ctx)
    steps = train_steps(ctx, pairs)
    model, adapter = policy.base, policy.adapter
    if adapter is not None and not t.lora:  # full-parameter training starts from the adapter merged in
        model = await asyncio.to_thread(merge_adapter, policy.base, adapter, work / "start-merged")
        adapter = None
    per_process = per_process_batch(min(t.batch_size, pairs), t.gpus, t.grad_accum)
    options = TrainOptions(
        data=ctx.phase_dir("PAIR") / "pairs.jsonl",
        fmt="pairs",
        model=model,
        adapter=adapter,
        lora=t.lora,
        probe_text=PROBE_TEXT,  # the deploy's verification reference, computed where the candidate is
        lora_r=t.lora_r,
        lora_alpha=2 * t.lora_r,
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
        batch_size=per_process,
        grad_accum=t.grad_accum,
        bf16=t.precision is not Precision.FLOAT32,
        precompute_ref=t.precompute_ref,
        fsdp=t.fsdp,
        keep_checkpoints=ctx.keep_checkpoints,
        serving_dtype=ctx.serving_dtype,
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

    if per_process * t.gpus * t.grad_accum != min(t.batch_size, pairs):
        ctx.log(f"{min(t.batch_size, pairs)} pairs per step do not split evenly over {t.gpus} process(es) x "
                f"{t.grad_accum} micro-batch(es): {per_process} pairs each")
    if (t.gpus > 1 or t.fsdp) and not ctx.workers.on_ray:
        raise PhaseFailed("training.gpus > 1 and training.fsdp train on Ray Train: set the server's "
                          "rounds_trainer_on_ray")
    workers = dataclasses.replace(ctx.workers, trainer_workers=t.gpus, fsdp=t.fsdp)
    await ctx.release()  # an engine an earlier attempt of this phase left
    beside = candidate_engine.EngineBesideTraining(ctx, work, model) if candidate_engine.wanted(ctx) else None

    def trainer_placed(where: str) -> None:
        ctx.log(f"trainer runs on {where}")
        if beside is not None:
            beside.trainer_placed()

    try:
        summary = await _train_beside_generator(ctx, options, on_event, workers, trainer_placed,
                                                beside.push if beside is not None else None)
    except BaseException:
        if beside is not None:
            await beside.abandon()
        raise
    if beside is not None:
        if summary.get("cancelled") or not summary.get("final_dir"):
            await beside.abandon()
        else:
            await beside.hand_over(summary.get("pushed") or {}, Path(summary["final_dir"]), final_dir(ctx))
    if summary.get("cancelled"):
        raise RoundCancelled(f"cancelled during TRAIN at step {summary.get('steps')}")
    if not summary.get("final_dir"):
        raise PhaseFailed("training finished without a final model")
    drop_resume_state(work / "checkpoints")
    keep: dict[str, Any] = {
        k: summary[k] for k in ("steps", "seconds", "last_log", "pair_stats", "mask_report", "pushed")
        if k in summary
    }
    return PhaseOutput(
        {**keep, **policy.as_dict(), "final_dir": str(final_dir(ctx)), "lora": t.lora},
        {"final": "final", "metrics": "metrics.jsonl"},
        {"checkpoint": f"models/{ctx.spec.model_id}/checkpoints/{ctx.rid}"},
    )


async def _train_beside_generator(
    ctx: RoundContext, options: TrainOptions, on_event: Callable[[dict[str, Any]], None], workers: Workers,
    on_placed: Callable[[str], None], push: EnginePush | None,
) -> dict[str, Any]:
    """Train; with ``alternate_gpu`` the engine sleeps meanwhile and wakes up however training ends."""
    asleep = workers.alternate_gpu and await ctx.generator.sleep()
    if asleep:
        ctx.log("the engine sleeps while the trainer uses its GPU")
    try:
        return await run_trainer(options, ctx.cancel_requested, on_event, workers, on_placed, push)
    except PlacementTimeout as exc:
        raise PhaseFailed(str(exc)) from None
    finally:
        if asleep:
            await ctx.generator.wake_up()
            ctx.log("the engine is awake again")


def final_dir(ctx: RoundContext) -> Path:
    return ctx.phase_dir("TRAIN") / "final"
