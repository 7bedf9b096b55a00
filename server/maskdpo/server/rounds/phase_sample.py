"""SAMPLE: on-policy answers of the weights the round starts from, ``k`` per prompt.

The served engine samples when the round starts from the served weights (prompts sent in chunks of
``CONCURRENCY``); a round chained from an unpromoted candidate samples with transformers on its folder.
Writes ``samples.jsonl`` (one row per answer, with the weight version that produced it) and ``meta.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
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
CONCURRENCY = 8

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
