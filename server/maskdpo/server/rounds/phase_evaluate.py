"""EVALUATE: decode the evaluation prompts with the start weights and with the candidate, judge both.

Both sides are decoded greedily by the same code: on the serving engine, each request naming its weights,
when the engine can run both (a LoRA round: the start and the candidate are adapters, or none, on the base
the engine holds) -- no model is loaded in the round controller; otherwise (full-parameter candidates)
with transformers on their folders (:mod:`.local_model`). Both are judged with the round's judge and
summarised as :class:`Evaluation` messages (docs/metrics.md) that PROMOTE decides on.
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.generation.weights import is_adapter
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
from maskdpo.server.rounds.phase_sample import Policy, each_with_backpressure
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


def candidate_policy(ctx: RoundContext, start: Policy) -> Policy:
    """The round's candidate: the adapter TRAIN made on the start's base, or full weights."""
    final = final_dir(ctx)
    return Policy(start.base, final) if is_adapter(final) else Policy(final)


async def _greedy(ctx: RoundContext, policy: Policy, prompts: list[str], on_engine: bool) -> list[str]:
    """Greedy answers of ``policy`` to ``prompts``: on the serving engine, or with transformers."""
    max_tokens = ctx.spec.sampling.max_tokens
    if on_engine:
        options = SamplingOptions(temperature=0.0, max_tokens=max_tokens, logprobs=False)
        results = await each_with_backpressure(
            prompts,
            lambda _, prompt: ctx.generator.generate(Prompt.chat([("user", prompt)]), options, policy.weights()),
            ctx.check_cancel,
            lambda _: None,
        )
        return [r.samples[0].text.strip() for r in results]
    answers = await asyncio.to_thread(local_model.generate, policy.folder, prompts, greedy=True,
                                      max_tokens=max_tokens)
    return [a[0] for a in answers]


async def evaluate(ctx: RoundContext, work: Path) -> PhaseOutput:
    items, dataset = ctx.prompts(ctx.spec.eval_prompts)
    backend = ctx.judge_for(dataset)
    start = Policy.of(ctx.store.phase_summary(ctx.rid, P.SAMPLE))
    candidate = candidate_policy(ctx, start)
    engine_base = Path((await ctx.generator.current_version()).checkpoint)
    # a LoRA candidate shares its base with the start: the engine runs both when it holds that base
    on_engine = candidate.adapter is not None and start.base.resolve() == engine_base.resolve()
    ctx.log("EVALUATE decodes both sides on the serving engine" if on_engine
            else "EVALUATE decodes both sides with transformers (full-parameter candidate)")
    rows: list[dict[str, Any]] = []
    results: dict[str, alignment_pb2.Evaluation] = {}
    for step, (side, policy) in enumerate((("before", start), ("after", candidate))):
        ctx.check_cancel()
        texts = await _greedy(ctx, policy, [i.prompt for i in items], on_engine)
        judged = await judge_texts(ctx, backend, items, texts, dataset, P.EVALUATE)
        results[side] = evaluation_of(str(policy.folder), texts, judged)
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
