"""SAMPLE: on-policy answers of the weights the round starts from, ``k`` per prompt.

The round's start is its :class:`Policy`: the served weights, or a chained round's starting candidate
(full weights, or a LoRA adapter on the served base). The serving engine samples whenever it can run the
start -- served weights, or an adapter on the base it holds, named per request -- with every prompt
submitted at once and at most ``IN_FLIGHT`` requests in the engine's queue (back-pressure: a full queue is
waited on, not failed); only unpromoted full weights are sampled with transformers on their folder.
Writes ``samples.jsonl`` (one row per answer, with the weight version that produced it: 0 = weights not
served) and ``meta.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from maskdpo.server.errors import QueueFull
from maskdpo.server.generation.types import GenerationResult, Prompt, SamplingOptions, Weights
from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.rounds.config import PromptItem
from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    write_json,
    write_jsonl,
)
from maskdpo.server.store.rounds import SUCCEEDED, round_id
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase
IN_FLIGHT = 32
"""Requests a round keeps in the engine's queue at once (the engine batches what is queued)."""
T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """Weights a round works with: full weights (``base``), or ``base`` with a LoRA ``adapter``."""

    base: Path
    adapter: Path | None = None

    @property
    def folder(self) -> Path:
        return self.adapter or self.base

    def weights(self) -> Weights:
        """The same weights, named per request on an engine that holds ``base``."""
        return Weights(self.adapter)

    def as_dict(self) -> dict[str, str]:
        return {"policy": str(self.folder), "policy_base": str(self.base),
                "policy_adapter": str(self.adapter or "")}

    @classmethod
    def of(cls, summary: dict[str, Any]) -> Policy:
        """The policy a phase summary recorded (:meth:`as_dict`)."""
        adapter = summary.get("policy_adapter") or ""
        return cls(Path(summary.get("policy_base") or summary["policy"]), Path(adapter) if adapter else None)


async def start_policy(ctx: RoundContext) -> tuple[Policy, int, bool]:
    """(the weights the round starts from, the served version now, whether those weights are served)."""
    served = await ctx.generator.current_version()
    if not ctx.spec.start_from_round:
        return Policy(Path(served.checkpoint), served.adapter), served.version, True
    previous = ctx.store.row(round_id(ctx.spec.start_from_round))
    if previous["state"] != SUCCEEDED:
        raise PhaseFailed(f"start_from_round {ctx.spec.start_from_round} did not succeed")
    path = Path(ctx.store.phase_summary(previous["id"], P.TRAIN).get("final_dir", ""))
    if is_adapter(path):
        policy = Policy(Policy.of(ctx.store.phase_summary(previous["id"], P.SAMPLE)).base, path)
    elif (path / "config.json").is_file():
        policy = Policy(path)
    else:
        raise PhaseFailed(f"start_from_round {ctx.spec.start_from_round}: its checkpoint {path} is missing")
    return policy, served.version, path.resolve() == served.folder.resolve()


def on_the_engine(policy: Policy, served: bool, engine_base: Path) -> bool:
    """Whether the serving engine can run ``policy``: served, or an adapter on the base it holds."""
    return served or (policy.adapter is not None and policy.base.resolve() == engine_base.resolve())


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


async def sample(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, _ = ctx.prompts(ctx.spec.prompts)
    policy, version, served = await start_policy(ctx)
    s, k = ctx.spec.sampling, ctx.spec.samples_per_prompt
    rows: list[dict[str, Any]] = []
    engine_base = Path((await ctx.generator.current_version()).checkpoint)
    sampler = "generator" if on_the_engine(policy, served, engine_base) else "transformers"
    if sampler == "generator":
        ctx.log(f"sampling {policy.folder} on the engine at node {await ctx.generator.node_id()}")

        def options(index: int) -> SamplingOptions:
            return SamplingOptions(n=k, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                   max_tokens=s.max_tokens, seed=ctx.spec.seed * 100_003 + index, logprobs=False)

        results = await each_with_backpressure(
            items,
            lambda i, item: ctx.generator.generate(Prompt.chat([("user", item.prompt)]), options(i),
                                                   None if served else policy.weights()),
            ctx.check_cancel,
            lambda done: ctx.progress(P.SAMPLE, done, len(items), "prompts sampled"),
        )
        for i, (item, result) in enumerate(zip(items, results, strict=True)):
            rows += [_sample_row(i, item, x.index, x.text, x.weight_version, x.finish_reason) for x in result.samples]
    else:
        from maskdpo.server.rounds import local_model

        ctx.check_cancel()
        texts = await asyncio.to_thread(
            local_model.generate,
            policy.folder,
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
        **policy.as_dict(),
        "served_version": version,
        "sampler": sampler,
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
