"""PAIR: preference pairs with sentence masks from the judged samples of each prompt.

Writes ``pairs.jsonl`` (the trainer's pair format) and ``stats.json`` (pairs made, degenerate pairs and
how they were handled); a round without a single pair ends FAILED with the statistics in its reason.
"""

from __future__ import annotations

from pathlib import Path

from maskdpo.server.rounds.context import (
    PhaseFailed,
    PhaseOutput,
    RoundContext,
    write_json,
)
from maskdpo.trainer.data import load_judged_samples, write_pairs
from maskdpo.trainer.pairs import Degenerate, PairConfig, PairRule
from maskdpo.trainer.token_masks import MaskRule
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase

def pair_config(ctx: RoundContext) -> PairConfig:
    rule = MaskRule.ALL if ctx.spec.loss == "dpo" else MaskRule(ctx.spec.mask_rule)
    degenerate = Degenerate.KEEP if ctx.spec.keep_degenerate else Degenerate.DROP_BOTH
    return PairConfig(min_margin=ctx.spec.min_margin, degenerate=degenerate, mask_rule=rule,
                      rule=PairRule(ctx.spec.pair_rule))


async def pair(ctx: RoundContext, work: Path) -> PhaseOutput:
    ctx.check_cancel()
    pairs, stats = load_judged_samples(ctx.phase_dir("JUDGE") / "judged.jsonl", pair_config(ctx))
    write_json(work / "stats.json", stats.as_dict())
    if not pairs:
        raise PhaseFailed(f"no preference pairs: {stats.summary()}")
    write_pairs(work / "pairs.jsonl", pairs, conversational=True)
    return PhaseOutput(
        stats.as_dict(), {"pairs": "pairs.jsonl", "stats": "stats.json"}, metrics={"pairs": float(len(pairs))}
    )
