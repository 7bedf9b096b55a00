"""EVALUATE and PROMOTE: compare the candidate with the start weights, then deploy it or not.

EVALUATE decodes every evaluation prompt greedily with the start weights and with the candidate (the same
transformers code for both, :mod:`.local_model`), judges the answers with the round's judge and computes
the metrics (docs/metrics.md). PROMOTE applies the promotion rule; a passing candidate is deployed through
the GeneratorActor, which verifies the served weights and rolls back on failure. The outcome (version
served, or the refusal) is recorded in the same transaction that marks PROMOTE done. A PROMOTE redone
after a crash first asks the generator what it serves: if the candidate is already live, it records that
instead of deploying twice.
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
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    read_jsonl,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.phases import final_dir, judge_texts
from maskdpo.server.rounds.promotion import decide
from maskdpo.server.store.checkpoints import CheckpointStore
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
    backend = await ctx.judge_for(dataset)
    use_facts = dataset is None or dataset.judge is None
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
        judged = await judge_texts(ctx, backend, items, texts, use_facts, P.EVALUATE)
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


async def promote(ctx: RoundContext, work: Path) -> PhaseOutput:
    row = ctx.store.row(ctx.rid)
    before = alignment_pb2.Evaluation.FromString(row["before"])
    after = alignment_pb2.Evaluation.FromString(row["after"])
    decision = decide(ctx.spec.promotion, before, after)
    candidate = final_dir(ctx)
    outcome: dict[str, Any] = {
        "promote": decision.promote,
        "rule": decision.reason,
        "candidate": str(candidate),
    }
    updates: dict[str, Any] = {"reason": decision.reason}
    if decision.promote:
        served = await ctx.generator.current_version()
        if Path(served.checkpoint).resolve() == candidate.resolve():
            outcome |= {"deployed": True, "version": served.version, "note": "already served (resumed)"}
        else:
            sampled = ctx.store.phase_summary(ctx.rid, P.SAMPLE)
            if sampled.get("sampler") == "generator" and served.version != row["start_version"]:
                raise PhaseFailed(
                    f"the served weights changed during the round (version {row['start_version']} "
                    f"-> {served.version}); not promoting over them"
                )
            ctx.check_cancel()  # the last point where a cancel stops the round: a started deploy completes
            ctx.store.record(ctx.rid, "LOG", P.PROMOTE, f"deploying {candidate}")
            try:
                report = await ctx.generator.deploy(str(candidate))
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc  # a Ray task error carries the actor's exception
                raise PhaseFailed(f"deploy refused, served weights unchanged: {cause}") from exc
            if not report.accepted:
                raise PhaseFailed(f"deploy refused, served weights unchanged: {report.error}")
            await asyncio.to_thread(_record_served, ctx, candidate, report.served.version)
            outcome |= {
                "deployed": True,
                "version": report.served.version,
                "max_abs_diff": report.max_abs_diff,
                "tolerance": report.tolerance,
            }
        updates |= {"promoted": 1, "promoted_version": outcome["version"]}
    write_json(work / "decision.json", outcome)
    return PhaseOutput(outcome, {"decision": "decision.json"}, updates)


def _record_served(ctx: RoundContext, candidate: Path, version: int) -> None:
    """Register the promoted checkpoint with the model registry, so ModelService lists it and a restarted
    server brings it back (the data folder is the parent of ``rounds/<id>``)."""
    store = CheckpointStore(ctx.root.parents[1] / "models.sqlite")
    try:
        store.served(ctx.spec.model_id, candidate.resolve(), version, f"rounds/{ctx.rid}")
    finally:
        store.close()


def read_answers(ctx: RoundContext) -> list[dict[str, Any]]:
    path = ctx.phase_dir("EVALUATE") / "answers.jsonl"
    if not path.is_file():
        raise PhaseFailed("EVALUATE artifacts are missing")
    return read_jsonl(path)
