"""EVALUATE: decode the evaluation prompts with the start weights and with the candidate, judge both.

Both sides are decoded greedily by the same transformers code (:mod:`.local_model`), judged with the
round's judge, and summarised as :class:`Evaluation` messages (docs/metrics.md) that PROMOTE decides on.
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.judge.metrics import compute_metrics
from maskdpo.server.judge.records import from_judgment
from maskdpo.server.judge.types import Judgment
from maskdpo.server.rounds import local_model
from maskdpo.server.rounds.context import (
    PhaseOutput,
    RoundContext,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.phase_judge import judge_texts
from maskdpo.server.rounds.phase_train import final_dir
from maskdpo.trainer.labels import LabelCounts
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase

def evaluation_of(weights: str, texts: list[str], judgments: list[Judgment]) -> alignment_pb2.Evaluation:
    metrics = compute_metrics([from_judgment(j) for j in judgments], resamples=0)
    n = max(len(judgments), 1)
    total = LabelCounts()
    for j in judgments:
        total = total + j.counts
    out = alignment_pb2.Evaluation(
        weights=weights,
        correct_per_answer=total.ok / n,
        incorrect_per_answer=total.incorrect / n,
        nofact_per_answer=total.nofact / n,
        mean_length=sum(len(t) for t in texts) / n,
        answers=len(judgments),
    )
    for name in ("anah_score", "anah_score_released", "factscore"):
        value = getattr(metrics, name)
        if value is not None:
            setattr(out, name, value)
    return out


def as_dict(evaluation: alignment_pb2.Evaluation) -> dict[str, Any]:
    fields = (
        "weights",
        "anah_score",
        "anah_score_released",
        "factscore",
        "correct_per_answer",
        "incorrect_per_answer",
        "nofact_per_answer",
        "mean_length",
        "answers",
    )
    return {
        f: getattr(evaluation, f)
        for f in fields
        if f not in ("anah_score", "anah_score_released", "factscore") or evaluation.HasField(f)  # type: ignore[arg-type]
    }


async def evaluate(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, dataset = ctx.prompts(ctx.spec.eval_prompts)
    backend = ctx.judge_for(dataset)
    policy = Path(ctx.store.phase_summary(ctx.rid, P.SAMPLE)["policy"])
    candidate = final_dir(ctx)
    rows: list[dict[str, Any]] = []
    results: dict[str, alignment_pb2.Evaluation] = {}
    for step, (side, path) in enumerate((("before", policy), ("after", candidate))):
        ctx.check_cancel()
        answers = await asyncio.to_thread(
            local_model.generate,
            path,
            [i.prompt for i in items],
            greedy=True,
            max_tokens=ctx.spec.sampling.max_tokens,
        )
        texts = [a[0] for a in answers]
        judged = await judge_texts(ctx, backend, items, texts, dataset, P.EVALUATE)
        results[side] = evaluation_of(str(path), texts, judged)
        rows += [
            {
                "side": side,
                "prompt": i.prompt,
                "topic": i.topic,
                "response": t,
                "labels": [v.sentence.label.value for v in j.verdicts],
            }
            for i, t, j in zip(items, texts, judged, strict=True)
        ]
        ctx.progress(P.EVALUATE, step + 1, 2, f"{side}: {_line(results[side])}")
    write_jsonl(work / "answers.jsonl", rows)
    summary = {side: as_dict(e) for side, e in results.items()}
    write_json(work / "evaluation.json", summary)
    metrics = {
        f"{side}_{k}": float(v)
        for side, e in summary.items()
        for k, v in e.items()
        if k in ("anah_score", "factscore", "correct_per_answer")
    }
    return PhaseOutput(
        summary,
        {"answers": "answers.jsonl", "evaluation": "evaluation.json"},
        {"before": results["before"].SerializeToString(), "after": results["after"].SerializeToString()},
        metrics,
    )


def _line(e: alignment_pb2.Evaluation) -> str:
    score = f"{e.anah_score:.3f}" if e.HasField("anah_score") else "undefined"
    return f"anah_score {score}, correct/answer {e.correct_per_answer:.2f}"
