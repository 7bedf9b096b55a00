"""EVALUATE: decode the evaluation prompts with the start weights, the candidate and (for a chained round)
the chain's start weights, judge them, and compare: the evidence PROMOTE decides on.

Every side is decoded greedily by the same code, where :mod:`.decoding` says: on the serving engine when it
holds the side's base (a LoRA round: every side is an adapter, or none, on that base; each request names its
weights), else on an engine the phase starts on the side's weights (a full-parameter candidate; a chained
round's unpromoted start shares it, reloaded in place) with the serving engines' settings. The serving
engine's sides are decoded first. No model is loaded in the round controller. Every side is judged with the round's judge;
:mod:`.comparison` turns the answers into :class:`Evaluation` messages (docs/metrics.md) and the paired
bootstrap intervals of candidate - start and candidate - chain start on every metric.
"""


from __future__ import annotations

from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.rounds import comparison
from maskdpo.server.rounds.chain import chain_start
from maskdpo.server.rounds.context import (
    PhaseOutput,
    RoundContext,
    write_json,
    write_jsonl,
)
from maskdpo.server.rounds.decoding import Decoder, Decoders, each_with_backpressure
from maskdpo.server.rounds.phase_judge import judge_texts
from maskdpo.server.rounds.phase_train import final_dir
from maskdpo.server.rounds.policy import Policy
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase
SUMMARY_METRICS = ("anah_score", "factscore", "f1_at_k", "correct_facts_per_answer", "correct_per_answer")


def candidate_policy(ctx: RoundContext, start: Policy) -> Policy:
    """The round's candidate: the adapter TRAIN made on the start's base, or full weights."""
    final = final_dir(ctx)
    return Policy(start.base, final) if is_adapter(final) else Policy(final)


async def _greedy(ctx: RoundContext, decoder: Decoder, prompts: list[str]) -> list[str]:
    """Greedy answers of the decoder's policy to ``prompts``."""
    options = SamplingOptions(temperature=0.0, max_tokens=ctx.spec.sampling.max_tokens, logprobs=False)
    results = await each_with_backpressure(
        prompts,
        lambda _, prompt: decoder.generator.generate(Prompt.chat([("user", prompt)]), options, decoder.weights),
        ctx.check_cancel,
        lambda _: None,
    )
    return [r.samples[0].text.strip() for r in results]


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
    rows: list[dict[str, Any]] = []
    sided: dict[str, tuple[list[str], list[Any]]] = {}
    judgments: dict[str, list[Any]] = {}
    async with Decoders(ctx) as decoders:
        serving = {side: await decoders.on_serving_engine(policy) for side, policy in sides}
        ordered = sorted(sides, key=lambda s: not serving[s[0]])  # the serving engine's sides first
        for step, (side, policy) in enumerate(ordered):
            ctx.check_cancel()
            decoder = await decoders.of(policy)
            ctx.log(f"EVALUATE decodes {side} ({policy.folder}) on {decoder.where}")
            texts = await _greedy(ctx, decoder, [i.prompt for i in items])
            judgments[side] = await judge_texts(ctx, backend, items, texts, dataset, P.EVALUATE)
            sided[side] = (texts, comparison.records_of(judgments[side]))
            ctx.progress(P.EVALUATE, step + 1, len(sides), f"{side}: {len(texts)} answers judged")
    for side, _ in sides:
        texts, records = sided[side]
        rows += [
            {
                "side": side,
                "prompt": i.prompt,
                "topic": i.topic,
                "response": t,
                "labels": [v.sentence.label.value for v in j.verdicts],
                "facts": {"correct": r.supported, "incorrect": r.unsupported},
            }
            for i, t, j, r in zip(items, texts, judgments[side], records, strict=True)
        ]
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
