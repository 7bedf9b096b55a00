"""PROMOTE: apply the promotion rule to EVALUATE's evidence; deploy a passing candidate, verified.

The decision (outcome, the rule, every paired interval, the findings in words) is recorded with the round
(``AlignmentRound.decision``) and in ``decision.json``.

A passing candidate is deployed the way DeployCheckpoint deploys (:func:`maskdpo.server.workers.deploys.deploy`):
the model's GeneratorActor verifies the served weights and rolls back on failure, and the version it serves
is recorded in the checkpoint store, so ModelService shows it and a restarted server restores it. The outcome (version served, or the refusal) is recorded in the same transaction that
marks PROMOTE done. A PROMOTE redone after a crash first asks the generator what it serves: if the
candidate is already live, it records that instead of deploying twice.
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.errors import ServiceError
from maskdpo.server.generation.types import DeployReport
from maskdpo.server.rounds.comparison import as_dict, by_metric
from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    write_json,
)
from maskdpo.server.rounds.decoding import SERVING
from maskdpo.server.rounds.phase_train import final_dir
from maskdpo.server.rounds.promotion import decide
from maskdpo.server.workers.deploys import deploy
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase


async def promote(ctx: RoundContext, work: Path) -> PhaseOutput:
    row = ctx.store.row(ctx.rid)
    if not row["decision"]:
        raise PhaseFailed("EVALUATE left no promotion evidence (a round evaluated by an older version)")
    after = alignment_pb2.Evaluation.FromString(row["after"])
    evidence = alignment_pb2.PromotionDecision.FromString(row["decision"])
    decision = decide(
        ctx.spec.promotion,
        by_metric(evidence.versus_start),
        by_metric(evidence.versus_chain_start),
        answers=after.answers,
        chain=evidence.chain_round if ctx.spec.start_from_round else "",
    )
    evidence.outcome = decision.outcome  # type: ignore[assignment]
    evidence.findings[:] = decision.findings
    candidate = final_dir(ctx).resolve()  # full weights, or a LoRA adapter (deployed as one)
    outcome: dict[str, Any] = {
        "promote": decision.promote,
        "rule": decision.reason,
        "candidate": str(candidate),
        "decision": as_dict(evidence),
    }
    updates: dict[str, Any] = {"reason": decision.reason, "decision": evidence.SerializeToString()}
    round_name = f"rounds/{ctx.rid}"
    if decision.promote:
        served = await ctx.generator.current_version()
        if served.folder.resolve() == candidate:  # a PROMOTE redone after a crash
            await asyncio.to_thread(ctx.checkpoints.served, ctx.spec.model_id, candidate, served.version, round_name,
                                    served.checkpoint if served.adapter else None)
            outcome |= {"deployed": True, "version": served.version, "note": "already served (resumed)"}
        else:
            sampled = ctx.store.phase_summary(ctx.rid, P.SAMPLE)
            if sampled.get("sampler") == SERVING and served.version != row["start_version"]:
                raise PhaseFailed(
                    f"the served weights changed during the round (version {row['start_version']} "
                    f"-> {served.version}); not promoting over them"
                )
            ctx.check_cancel()  # the last point where a cancel stops the round: a started deploy completes
            ctx.store.record(ctx.rid, "LOG", P.PROMOTE, f"deploying {candidate}")

            async def on_the_generator(model: str, folder: Path, tolerance: float | None) -> DeployReport:
                return await ctx.generator.deploy(folder, tolerance)

            try:
                report, _ = await deploy(on_the_generator, ctx.checkpoints, ctx.spec.model_id, candidate,
                                         None, round_name)
            except ServiceError as exc:
                raise PhaseFailed(f"deploy refused, served weights unchanged: {exc.message}") from exc
            outcome |= {
                "deployed": True,
                "version": report.served.version,
                "max_abs_diff": report.max_abs_diff,
                "tolerance": report.tolerance,
            }
        updates |= {"promoted": 1, "promoted_version": outcome["version"]}
    write_json(work / "decision.json", outcome)
    return PhaseOutput(outcome, {"decision": "decision.json"}, updates)
