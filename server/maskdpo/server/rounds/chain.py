"""Chains of rounds (``start_from_round``): the first round of a chain and the weights the chain started from.

A chained round's candidate is judged against the chain's start as well as its own start (promotion.py), so
that rounds cannot drift down step by step. The chain's start is what its first round's SAMPLE started from.
"""

from __future__ import annotations

from maskdpo.server.generation.weights import is_adapter
from maskdpo.server.rounds.context import PhaseFailed, RoundContext
from maskdpo.server.rounds.policy import Policy
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


def chain_start(ctx: RoundContext) -> tuple[Policy, str]:
    """(weights the chain started from, ``rounds/<first round>``); the first round's start policy."""
    first = first_round(ctx)
    summary = ctx.store.phase_summary(first, P.SAMPLE)
    policy = Policy.of(summary) if summary.get("policy") else None
    if policy is None or not _present(policy):
        where = policy.folder if policy else "unknown"
        raise PhaseFailed(f"the chain's start weights ({PREFIX}{first}: {where}) are missing")
    return policy, PREFIX + first


def _present(policy: Policy) -> bool:
    full = (policy.base / "config.json").is_file()
    return full and (policy.adapter is None or is_adapter(policy.adapter))
