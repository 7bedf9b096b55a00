"""PROMOTE: apply the promotion rule to the evaluation; deploy a passing candidate, verified.

A passing candidate is deployed through the GeneratorActor, which verifies the served weights and rolls
back on failure. The outcome (version served, or the refusal) is recorded in the same transaction that
marks PROMOTE done. A PROMOTE redone after a crash first asks the generator what it serves: if the
candidate is already live, it records that instead of deploying twice.
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    write_json,
)
from maskdpo.server.rounds.phase_train import final_dir
from maskdpo.server.rounds.promotion import decide
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase

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
