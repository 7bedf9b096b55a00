"""JUDGE: label every sampled answer sentence by sentence with the round's judge.

Writes ``judged.jsonl`` (the samples with their sentences, labels and abstention) and ``judge.json`` (the
judge's identity, also stored with the round). :func:`judge_texts` is shared with EVALUATE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from maskdpo.server.judge.records import from_judgment
from maskdpo.server.judge.types import JudgeRequest, Judgment
from maskdpo.server.rounds.config import PromptItem
from maskdpo.server.rounds.context import (
    PhaseOutput,
    RoundContext,
    read_jsonl,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.datasets import Dataset
from maskdpo.server.wire import judge_identity
from maskdpo.trainer.labels import LabelCounts
from maskdpo.trainer.pairs import sentences_to_rows
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase
JUDGE_CHUNK = 32

async def judge_texts(
    ctx: RoundContext,
    judge: str,
    items: Sequence[PromptItem],
    texts: Sequence[str],
    dataset: Dataset | None,
    phase: int,
) -> list[Judgment]:
    """Judge answers with the backend ``judge``, in chunks (cancellable between them). A prompt set's own
    judge knows its whole domain; any other backend gets each prompt's facts."""
    use_facts = dataset is None or judge != dataset.judge
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
        out += await ctx.judges.judge(judge, requests[start : start + JUDGE_CHUNK])
        if phase == P.JUDGE:
            ctx.progress(phase, len(out), len(requests), "answers judged")
    return out


async def judge(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, dataset = ctx.prompts(ctx.spec.prompts)
    backend = ctx.judge_for(dataset)
    ctx.log(f"judge {backend} runs on node {await ctx.judges.where(backend)}")
    rows = read_jsonl(ctx.phase_dir("SAMPLE") / "samples.jsonl")
    judged = await judge_texts(
        ctx,
        backend,
        [items[int(r["prompt_id"])] for r in rows],
        [r["response"] for r in rows],
        dataset,
        P.JUDGE,
    )
    counts = LabelCounts()
    for row, judgment in zip(rows, judged, strict=True):
        row["sentences"] = sentences_to_rows(judgment.sentences)
        row["abstained"] = judgment.abstained
        claims = from_judgment(judgment, unit="fact")  # the fact-aware pair rules count claims
        row["facts"] = {"correct": claims.supported, "incorrect": claims.unsupported}
        counts = counts + judgment.counts
    write_jsonl(work / "judged.jsonl", rows)
    identity = await ctx.judges.identity(backend)
    write_json(work / "judge.json", dataclasses.asdict(identity))
    facts = counts.ok + counts.incorrect
    metrics = {"samples_ok_fraction": counts.ok / facts} if facts else {}
    return PhaseOutput(
        {"judge": dataclasses.asdict(identity), "labels": dataclasses.asdict(counts)},
        {"judged": "judged.jsonl", "judge": "judge.json"},
        {"judge": judge_identity(identity).SerializeToString()},
        metrics,
    )
