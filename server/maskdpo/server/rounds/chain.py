"""Chains of rounds (``start_from_round``): the first round of a chain and the weights the chain started from.

A chained round's candidate is judged against the chain's start as well as its own start (promotion.py), so
that rounds cannot drift down step by step. The chain's start is what its first round's SAMPLE started from.
"""

from __future__ import annotations

from pathlib import Path

from maskdpo.server.rounds.context import PhaseFailed, RoundContext
from maskdpo.server.store.rounds import PREFIX, round_id
from maskdpo.v1 import alignment_pb2

P = alignment_pb2.RoundPhase


def first_round(ctx: RoundContext) -> str:
    """The id of the chain's first round (this round's own id when it is not chained)."""
    rid, seen = ctx.rid, set()
    while True:
        seen.add(rid)
        previous = ctx.store.config(rid).start_from_round
        if not previous:
            return rid
        rid = round_id(previous)
        if rid in seen:
            raise PhaseFailed(f"the chain of rounds loops at {PREFIX}{rid}")


def chain_start(ctx: RoundContext) -> tuple[Path, str]:
    """(weights the chain started from, ``rounds/<first round>``); the first round's start policy."""
    first = first_round(ctx)
    policy = ctx.store.phase_summary(first, P.SAMPLE).get("policy", "")
    if not policy or not (Path(policy) / "config.json").is_file():
        raise PhaseFailed(f"the chain's start weights ({PREFIX}{first}: {policy or 'unknown'}) are missing")
    return Path(policy), PREFIX + first
