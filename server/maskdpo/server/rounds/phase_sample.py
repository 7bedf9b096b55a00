"""The work of SAMPLE, JUDGE, PAIR and TRAIN (EVALUATE and PROMOTE are in :mod:`.finish`).

Each phase function writes its artifacts into ``work`` (a private folder the controller renames into
``<round>/<PHASE>/`` once the function returns) and returns a :class:`PhaseOutput`. They read the
artifacts of earlier phases from their final folders. Phases check for cancellation between units of
work; TRAIN passes the check to the trainer, which honours it after every optimizer step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.judge.types import JudgeBackend, JudgeRequest, Judgment
from maskdpo.server.rounds.config import PromptItem
from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundCancelled,
    RoundContext,
    read_jsonl,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.workers import run_trainer
from maskdpo.server.services.factuality_convert import judge_identity
from maskdpo.server.store.rounds import PREFIX, SUCCEEDED, round_id
from maskdpo.server.workers.placement import PlacementTimeout
from maskdpo.trainer.data import load_judged_samples, write_pairs
from maskdpo.trainer.labels import LabelCounts
from maskdpo.trainer.pairs import Degenerate, PairConfig, sentences_to_rows
from maskdpo.trainer.run import TrainOptions
from maskdpo.trainer.token_masks import MaskRule
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase
CONCURRENCY = 8
JUDGE_CHUNK = 32


async def start_policy(ctx: RoundContext) -> tuple[Path, int, bool]:
    """(weights folder the round starts from, served version now, whether those weights are served)."""
    served = await ctx.generator.current_version()
    if not ctx.spec.start_from_round:
        return Path(served.checkpoint), served.version, True
    previous = ctx.store.row(round_id(ctx.spec.start_from_round))
    if previous["state"] != SUCCEEDED:
        raise PhaseFailed(f"start_from_round {ctx.spec.start_from_round} did not succeed")
    path = Path(ctx.store.phase_summary(previous["id"], P.TRAIN).get("final_dir", ""))
    if not (path / "config.json").is_file():
        raise PhaseFailed(f"start_from_round {ctx.spec.start_from_round}: its checkpoint {path} is missing")
    return path, served.version, path.resolve() == Path(served.checkpoint).resolve()


async def sample(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, _ = ctx.prompts(ctx.spec.prompts)
    policy, version, served = await start_policy(ctx)
    s, k = ctx.spec.sampling, ctx.spec.samples_per_prompt
    rows: list[dict[str, Any]] = []
    if served:
        ctx.log(f"sampling on the engine at node {await ctx.generator.node_id()}")
        for start in range(0, len(items), CONCURRENCY):
            ctx.check_cancel()
            chunk = items[start : start + CONCURRENCY]
            results = await asyncio.gather(
                *(
                    ctx.generator.generate(
                        Prompt.chat([("user", item.prompt)]),
                        SamplingOptions(
                            n=k,
                            temperature=s.temperature,
                            top_p=s.top_p,
                            top_k=s.top_k,
                            max_tokens=s.max_tokens,
                            seed=ctx.spec.seed * 100_003 + start + i,
                            logprobs=False,
                        ),
                    )
                    for i, item in enumerate(chunk)
                )
            )
            for i, (item, result) in enumerate(zip(chunk, results, strict=True)):
                rows += [
                    _sample_row(start + i, item, x.index, x.text, x.weight_version, x.finish_reason)
                    for x in result.samples
                ]
            ctx.progress(P.SAMPLE, min(start + CONCURRENCY, len(items)), len(items), "prompts sampled")
    else:
        from maskdpo.server.rounds import local_model

        ctx.check_cancel()
        texts = await asyncio.to_thread(
            local_model.generate,
            policy,
            [i.prompt for i in items],
            n=k,
            greedy=False,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=s.max_tokens,
            seed=ctx.spec.seed,
        )
        for i, (item, answers) in enumerate(zip(items, texts, strict=True)):
            rows += [_sample_row(i, item, j, t, 0, "") for j, t in enumerate(answers)]
        ctx.progress(P.SAMPLE, len(items), len(items), "prompts sampled (transformers on the checkpoint)")
    write_jsonl(work / "samples.jsonl", rows)
    meta = {
        "policy": str(policy),
        "served_version": version,
        "sampler": "generator" if served else "transformers",
        "sampling": dataclasses.asdict(s),
        "samples_per_prompt": k,
        "seed": ctx.spec.seed,
    }
    write_json(work / "meta.json", meta)
    return PhaseOutput(
        meta | {"samples": len(rows), "prompts": len(items)},
        {"samples": "samples.jsonl", "meta": "meta.json"},
        {"start_version": version},
    )


def _sample_row(
    pid: int, item: PromptItem, index: int, text: str, version: int, finish: str
) -> dict[str, Any]:
    return {
        "prompt_id": str(pid),
        "sample_id": f"{pid}-{index}",
        "prompt": [{"role": "user", "content": item.prompt}],
        "topic": item.topic,
        "response": text,
        "weight_version": version,
        "finish_reason": finish,
    }


async def judge_texts(
    ctx: RoundContext,
    judge: JudgeBackend,
    items: Sequence[PromptItem],
    texts: Sequence[str],
    use_facts: bool,
    phase: int,
) -> list[Judgment]:
    requests = [
        JudgeRequest(
            response=t,
            prompt=i.prompt,
            topic=i.topic,
            facts=i.facts if use_facts else (),
            passages=i.passages,
        )
        for i, t in zip(items, texts, strict=True)
    ]
    out: list[Judgment] = []
    for start in range(0, len(requests), JUDGE_CHUNK):
        ctx.check_cancel()
        out += await asyncio.to_thread(judge.judge_batch, requests[start : start + JUDGE_CHUNK])
        if phase == P.JUDGE:
            ctx.progress(phase, len(out), len(requests), "answers judged")
    return out


async def judge(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, dataset = ctx.prompts(ctx.spec.prompts)
    backend = await ctx.judge_for(dataset)
    use_facts = dataset is None or dataset.judge is None
    rows = read_jsonl(ctx.phase_dir("SAMPLE") / "samples.jsonl")
    judged = await judge_texts(
        ctx,
        backend,
        [items[int(r["prompt_id"])] for r in rows],
        [r["response"] for r in rows],
        use_facts,
        P.JUDGE,
    )
    counts = LabelCounts()
    for row, judgment in zip(rows, judged, strict=True):
        row["sentences"] = sentences_to_rows(judgment.sentences)
        row["abstained"] = judgment.abstained
        counts = counts + judgment.counts
    write_jsonl(work / "judged.jsonl", rows)
    identity = backend.identity()
    write_json(work / "judge.json", dataclasses.asdict(identity))
    facts = counts.ok + counts.incorrect
    metrics = {"samples_ok_fraction": counts.ok / facts} if facts else {}
    return PhaseOutput(
        {"judge": dataclasses.asdict(identity), "labels": dataclasses.asdict(counts)},
        {"judged": "judged.jsonl", "judge": "judge.json"},
        {"judge": judge_identity(identity).SerializeToString()},
        metrics,
    )


def pair_config(ctx: RoundContext) -> PairConfig:
    rule = MaskRule.ALL if ctx.spec.loss == "dpo" else MaskRule(ctx.spec.mask_rule)
    degenerate = Degenerate.KEEP if ctx.spec.keep_degenerate else Degenerate.DROP_BOTH
    return PairConfig(min_margin=ctx.spec.min_margin, degenerate=degenerate, mask_rule=rule)


async def pair(ctx: RoundContext, work: Path) -> PhaseOutput:
    ctx.check_cancel()
    pairs, stats = load_judged_samples(ctx.phase_dir("JUDGE") / "judged.jsonl", pair_config(ctx))
    write_json(work / "stats.json", stats.as_dict())
    if not pairs:
        raise PhaseFailed(f"no preference pairs: {stats.summary()}")
    write_pairs(work / "pairs.jsonl", pairs, conversational=True)
    return PhaseOutput(
        stats.as_dict(), {"pairs": "pairs.jsonl", "stats": "stats.json"}, metrics={"pairs": float(len(pairs))}
    )


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
        degenerate=config.degenerate,
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


__all__ = ["PREFIX", "judge", "pair", "sample", "start_policy", "train"]
