"""SAMPLE: on-policy answers of the weights the round starts from, ``k`` per prompt.

The round's start is its :class:`~maskdpo.server.rounds.policy.Policy`: the served weights, or a chained
round's starting candidate (full weights, or a LoRA adapter on the served base). It is sampled where
:mod:`.decoding` says -- the serving engine when it holds the start's base (an adapter is named per
request), else an engine the phase starts on the start's weights -- with every prompt submitted at once and
back-pressure on the engine's queue. Writes ``samples.jsonl`` (one row per answer, with the weight version
that produced it: 0 = weights not served) and ``meta.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.rounds.config import PromptItem
from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.decoding import Decoders, each_with_backpressure
from maskdpo.server.rounds.policy import Policy
from maskdpo.server.store.rounds import SUCCEEDED, round_id
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase


async def start_policy(ctx: RoundContext) -> tuple[Policy, int]:
    """(the weights the round starts from, the served version now)."""
    served = await ctx.generator.current_version()
    if not ctx.spec.start_from_round:
        return Policy(Path(served.checkpoint), served.adapter), served.version
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
    return policy, served.version


async def sample(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, _ = ctx.prompts(ctx.spec.prompts)
    policy, version = await start_policy(ctx)
    s, k = ctx.spec.sampling, ctx.spec.samples_per_prompt

    def options(index: int) -> SamplingOptions:
        return SamplingOptions(n=k, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                               max_tokens=s.max_tokens, seed=ctx.spec.seed * 100_003 + index, logprobs=False)

    async with Decoders(ctx) as decoders:
        decoder = await decoders.of(policy)
        ctx.log(f"sampling {policy.folder} on {decoder.where}")
        results = await each_with_backpressure(
            items,
            lambda i, item: decoder.generator.generate(Prompt.chat([("user", item.prompt)]), options(i),
                                                       decoder.weights),
            ctx.check_cancel,
            lambda done: ctx.progress(P.SAMPLE, done, len(items), "prompts sampled"),
        )
    rows: list[dict[str, Any]] = []
    for i, (item, result) in enumerate(zip(items, results, strict=True)):
        rows += [_sample_row(i, item, x.index, x.text, x.weight_version if decoder.serving else 0, x.finish_reason)
                 for x in result.samples]
    write_jsonl(work / "samples.jsonl", rows)
    meta = {
        **policy.as_dict(),
        "served_version": version,
        "sampler": decoder.kind,
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
