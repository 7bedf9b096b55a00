"""EVALUATE: decode the evaluation prompts with the start weights, the candidate and (for a chained round)
the chain's start weights, judge them, and compare: the evidence PROMOTE decides on.

Every side is decoded greedily by the same code: on the serving engine, each request naming its weights,
when the engine can run them all (a LoRA round: the sides are adapters, or none, on the base the engine
holds) -- no model is loaded in the round controller; otherwise (full-parameter candidates) with
transformers on their folders (:mod:`.local_model`). Every side is judged with the round's judge;
:mod:`.comparison` turns the answers into :class:`Evaluation` messages (docs/metrics.md) and the paired
bootstrap intervals of candidate - start and candidate - chain start on every metric.
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.rounds import comparison, local_model
from maskdpo.server.rounds.chain import chain_start
from maskdpo.server.rounds.context import (
    PhaseOutput,
    RoundContext,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.phase_judge import judge_texts
from maskdpo.server.rounds.phase_sample import Policy, each_with_backpressure
from maskdpo.server.rounds.phase_train import final_dir
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase
SUMMARY_METRICS = ("anah_score", "factscore", "f1_at_k", "correct_facts_per_answer", "correct_per_answer")


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
    sides: list[tuple[str, Policy]] = [("before", start), ("after", candidate)]
    chain = ""
    if ctx.spec.start_from_round:
        origin, chain = chain_start(ctx)
        sides.insert(0, (comparison.ORIGIN, origin))
    engine_base = Path((await ctx.generator.current_version()).checkpoint).resolve()
    # a LoRA candidate shares its base with the start: the engine runs every side when it holds that base
    on_engine = candidate.adapter is not None and all(p.base.resolve() == engine_base for _, p in sides)
    ctx.log("EVALUATE decodes every side on the serving engine" if on_engine
            else "EVALUATE decodes every side with transformers (full-parameter candidate)")
    rows: list[dict[str, Any]] = []
    sided: dict[str, tuple[list[str], list[Any]]] = {}
    for step, (side, policy) in enumerate(sides):
        ctx.check_cancel()
        texts = await _greedy(ctx, policy, [i.prompt for i in items], on_engine)
        judged = await judge_texts(ctx, backend, items, texts, dataset, P.EVALUATE)
        sided[side] = (texts, comparison.records_of(judged))
        rows += [
            {
                "side": side,
                "prompt": i.prompt,
                "topic": i.topic,
                "response": t,
                "labels": [v.sentence.label.value for v in j.verdicts],
                "facts": {"correct": r.supported, "incorrect": r.unsupported},
            }
            for i, t, j, r in zip(items, texts, judged, sided[side][1], strict=True)
        ]
        ctx.progress(P.EVALUATE, step + 1, len(sides), f"{side}: {len(texts)} answers judged")
    evaluations, decision = comparison.compare(
        [(side, str(policy.folder), *sided[side]) for side, policy in sides],
        ctx.spec.promotion,
        ctx.spec.seed,
        chain or f"rounds/{ctx.rid}",
    )
    for side, e in evaluations.items():
        ctx.progress(P.EVALUATE, len(sides), len(sides), f"{side}: {_line(e)}")
    write_jsonl(work / "answers.jsonl", rows)
    summary = {side: comparison.as_dict(e) for side, e in evaluations.items()}
    write_json(work / "evaluation.json", {**summary, "decision_evidence": comparison.as_dict(decision)})
    metrics = {
        f"{side}_{name}": float(value)
        for side, e in summary.items()
        for name, value in e.items()
        if name in SUMMARY_METRICS
    }
    updates = {
        "before": evaluations["before"].SerializeToString(),
        "after": evaluations["after"].SerializeToString(),
        "chain_start": evaluations[comparison.ORIGIN if chain else "before"].SerializeToString(),
        "decision": decision.SerializeToString(),
    }
    return PhaseOutput(summary, {"answers": "answers.jsonl", "evaluation": "evaluation.json"}, updates, metrics)


def _line(e: alignment_pb2.Evaluation) -> str:
    score = f"{e.anah_score:.3f}" if e.HasField("anah_score") else "undefined"
    return (
        f"anah_score {score}, correct facts/answer {e.correct_facts_per_answer:.2f}, incorrect facts/answer "
        f"{e.incorrect_facts_per_answer:.2f}, length {e.mean_length:.0f}"
    )
