"""The promotion rule: does the candidate replace the served weights? Decided like an A/B test.

The evidence (:mod:`maskdpo.server.rounds.comparison`) is the paired bootstrap interval of every metric's
difference, candidate minus the round's start and candidate minus the chain's start (the first round's start
when rounds are chained; the round's own start otherwise), on the same evaluation prompts. Two conditions:

1. **The metric rises** (``anah_score``, ``factscore`` or ``f1_at_k``) against the round's start: met when the
   lower end of the interval of the gain reaches ``min_improvement``; refused when the upper end stays below
   it; otherwise *undecided* -- the evaluation set is too small to tell, and a round never promotes on noise.
   An undefined candidate metric (no fact stated) is refused.
2. **Correct facts per answer do not fall** against the chain's start: refused when the whole interval of the
   change lies below ``-max_correct_drop`` x the chain start's value (default 0: any significant fall);
   otherwise met. Comparing with the chain's start, not the previous round, keeps chained rounds from
   drifting down step by step, each within its own tolerance. A precision score alone can be won by saying
   less; this condition is why that is never promoted as progress.

Refused if either condition is refused, else undecided if the first is undecided, else promoted.
``min_improvement = -1`` meets condition 1 whenever the metric is defined (no difference of a score in
[0, 1] is lower) and ``max_correct_drop = 1`` always meets condition 2: together they force a promotion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from maskdpo.server.rounds.config import Promotion
from maskdpo.v1 import alignment_pb2

Outcome = alignment_pb2.PromotionDecision.Outcome
FACTS = "correct_facts_per_answer"


@dataclass(frozen=True)
class Decision:
    outcome: int
    reason: str
    """One line: the outcome and every finding."""
    findings: tuple[str, ...]

    @property
    def promote(self) -> bool:
        return self.outcome == alignment_pb2.PromotionDecision.PROMOTED


def decide(
    rule: Promotion,
    versus_start: Mapping[str, alignment_pb2.PairedDifference],
    versus_chain_start: Mapping[str, alignment_pb2.PairedDifference],
    *,
    answers: int,
    chain: str = "",
) -> Decision:
    """Apply ``rule`` to the paired differences (by metric name) of ``answers`` evaluation answers;
    ``chain`` names the chain's first round when this round is chained."""
    gain, gain_finding = _metric_condition(rule, versus_start[rule.metric], answers)
    facts, facts_finding = _facts_condition(rule, versus_chain_start[FACTS], chain)
    findings = (gain_finding, facts_finding)
    if "refused" in (gain, facts):
        outcome, word = alignment_pb2.PromotionDecision.REFUSED, "not promoted (refused)"
    elif gain == "undecided":
        outcome, word = alignment_pb2.PromotionDecision.UNDECIDED, "not promoted (undecided)"
    else:
        outcome, word = alignment_pb2.PromotionDecision.PROMOTED, "promoted"
    return Decision(outcome, f"{word}: " + "; ".join(findings), findings)


def rule_message(rule: Promotion) -> alignment_pb2.PromotionRule:
    """The rule as recorded with its decision (defaults filled in)."""
    out = alignment_pb2.PromotionRule(
        metric=rule.metric, min_improvement=rule.min_improvement, max_correct_drop=rule.max_correct_drop
    )
    if rule.f1_k is not None:
        out.f1_k = rule.f1_k
    return out


def _metric_condition(rule: Promotion, d: alignment_pb2.PairedDifference, answers: int) -> tuple[str, str]:
    name, margin = rule.metric, rule.min_improvement
    if not d.HasField("candidate"):
        return "refused", f"the candidate's {name} is undefined (no fact stated)"
    figures = f"{name} {_num(d, 'baseline')} -> {d.candidate:.4f}"
    if not d.HasField("interval"):  # the start's metric is undefined: no paired interval
        if margin <= -1.0:
            return "met", f"{figures} (no interval: the start's is undefined; any gain passes {margin:+.4f})"
        return "undecided", f"{figures}: the start's {name} is undefined, so the gain has no interval"
    low, high = d.interval.low, d.interval.high
    gain = f"{figures}, gain {d.delta:+.4f} [{low:+.4f}, {high:+.4f}] over {answers} answers"
    if low >= margin:
        return "met", f"{gain}: the whole interval reaches the margin {margin:+.4f}"
    if high < margin:
        return "refused", f"{gain}: the whole interval lies below the margin {margin:+.4f}"
    return "undecided", (
        f"{gain}: the interval straddles the margin {margin:+.4f}; too few evaluation answers to tell "
        "(more evaluation prompts, rounds_eval_prompts, narrow it)"
    )


def _facts_condition(rule: Promotion, d: alignment_pb2.PairedDifference, chain: str) -> tuple[str, str]:
    against = f"the chain's start ({chain})" if chain else "the round's start"
    if not d.HasField("interval"):
        return "met", f"correct facts per answer against {against}: no answers to compare"
    floor = -rule.max_correct_drop * d.baseline
    low, high = d.interval.low, d.interval.high
    figures = (
        f"correct facts per answer against {against} {d.baseline:.2f} -> {d.candidate:.2f}, "
        f"change {d.delta:+.2f} [{low:+.2f}, {high:+.2f}]"
    )
    tolerated = f"tolerated down to {floor:+.2f}" if rule.max_correct_drop else "no fall tolerated"
    if high < floor:
        return "refused", f"{figures}: a significant fall ({tolerated})"
    if low < floor:
        return "met", f"{figures}: no significant fall ({tolerated})"
    return "met", f"{figures}: no fall at all beyond {floor:+.2f}"


def _num(d: alignment_pb2.PairedDifference, field: str) -> str:
    return f"{getattr(d, field):.4f}" if d.HasField(field) else "undefined"  # type: ignore[arg-type]
