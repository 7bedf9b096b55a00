"""The evidence a promotion is decided on: evaluations of the round's start, its candidate and the chain's
start on the same prompts, and paired bootstrap intervals of the candidate's differences to each.

Every answer is judged, then turned into per-answer ratio terms
(:func:`maskdpo.server.judge.answer_metrics.answer_terms`: ANAH, FActScore, F1@K, correct and incorrect
facts per answer, abstentions, length, ...), counting the judge's claims as facts. An :class:`Evaluation`
holds the point values (its fields carry the terms' names); :func:`differences` resamples the answers of
both sides together (:func:`maskdpo.server.judge.bootstrap.paired_bootstrap`) for every metric. K of F1@K is
fixed once per round, from the chain's start (or the rule), so every side is scored against the same K.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from maskdpo.server.judge.answer_metrics import answer_terms, value_of
from maskdpo.server.judge.bootstrap import FloatArray, paired_bootstrap
from maskdpo.server.judge.metrics import DEFAULT_GAMMA, choose_k
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.types import Judgment
from maskdpo.server.rounds.config import Promotion
from maskdpo.server.rounds.promotion import rule_message
from maskdpo.v1 import alignment_pb2, common_pb2

ORIGIN = "chain_start"
"""The side of the chain's start weights (present only when the round is chained)."""
LEVEL = 0.95
RESAMPLES = 1000
Terms = Mapping[str, tuple[FloatArray, FloatArray]]


def records_of(judgments: Sequence[Judgment]) -> list[ResponseFacts]:
    """Metric records of judged answers, with the judge's claims as facts."""
    return [from_judgment(j, unit="fact") for j in judgments]


def f1_k(chain_start: Sequence[ResponseFacts], given: float | None) -> float:
    """K of F1@K: ``given``, else the median facts of the chain start's answers (1 when none states one)."""
    k, _ = choose_k(chain_start, given)
    return k if k is not None else 1.0


def side_terms(records: Sequence[ResponseFacts], texts: Sequence[str], k: float) -> dict[str, tuple[FloatArray, FloatArray]]:
    return answer_terms(records, texts, gamma=DEFAULT_GAMMA, k=k)


def evaluation_of(weights: str, terms: Terms, k: float) -> alignment_pb2.Evaluation:
    """An :class:`Evaluation` of one side: every term with a field of that name, undefined ones unset."""
    fields = alignment_pb2.Evaluation.DESCRIPTOR.fields_by_name
    out = alignment_pb2.Evaluation(weights=weights, f1_k=k)
    for name in terms:
        value = value_of(terms, name)
        if name in fields and value is not None:
            setattr(out, name, value)
    rate = value_of(terms, "abstention_rate")
    out.answers = len(next(iter(terms.values()))[0])
    out.abstentions = round((rate or 0.0) * out.answers)
    return out


def differences(baseline: Terms, candidate: Terms, seed: int) -> list[alignment_pb2.PairedDifference]:
    """Candidate minus baseline on every metric, with paired bootstrap intervals (same answers resampled)."""
    out = []
    for name, c in paired_bootstrap(candidate, baseline, resamples=RESAMPLES, seed=seed, level=LEVEL).items():
        d = alignment_pb2.PairedDifference(metric=name)
        for field, value in (("baseline", c.b), ("candidate", c.a), ("delta", c.delta), ("p_value", c.p_value)):
            if value is not None:
                setattr(d, field, value)
        if c.low is not None and c.high is not None:
            d.interval.CopyFrom(common_pb2.ConfidenceInterval(low=c.low, high=c.high, level=c.level,
                                                              resamples=c.resamples))
        out.append(d)
    return out


def by_metric(diffs: Sequence[alignment_pb2.PairedDifference]) -> dict[str, alignment_pb2.PairedDifference]:
    return {d.metric: d for d in diffs}


def compare(
    sides: Sequence[tuple[str, str, Sequence[str], Sequence[ResponseFacts]]],
    rule: Promotion,
    seed: int,
    chain_round: str,
) -> tuple[dict[str, alignment_pb2.Evaluation], alignment_pb2.PromotionDecision]:
    """Evaluations of every side ``(name, weights, answer texts, records)`` -- ``before``, ``after`` and, for a
    chained round, :data:`ORIGIN` -- and the decision's evidence (outcome not set yet)."""
    by_name = {name: (weights, texts, records) for name, weights, texts, records in sides}
    origin = ORIGIN if ORIGIN in by_name else "before"
    k = f1_k(by_name[origin][2], rule.f1_k)
    terms = {name: side_terms(records, texts, k) for name, (_, texts, records) in by_name.items()}
    evaluations = {name: evaluation_of(weights, terms[name], k) for name, (weights, _, _) in by_name.items()}
    versus_start = differences(terms["before"], terms["after"], seed)
    decision = alignment_pb2.PromotionDecision(
        rule=rule_message(rule),
        level=LEVEL,
        resamples=RESAMPLES,
        versus_start=versus_start,
        versus_chain_start=versus_start if origin == "before" else differences(terms[origin], terms["after"], seed),
        chain_round=chain_round,
    )
    return evaluations, decision


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready values with field names as in the proto; unset optional fields left out."""
    out: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return out
