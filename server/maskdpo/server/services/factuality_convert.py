"""Translation between protobuf messages and internal types: the service's edge, and the only one.

Validation of request shapes lives here too (what is required, what is too long), raising
:class:`InvalidArgument` / :class:`TextTooLong` naming the offending field by its request path.
"""

from __future__ import annotations

from collections.abc import Sequence

from maskdpo.server.errors import InvalidArgument, TextTooLong
from maskdpo.server.judge.bootstrap import ConfidenceInterval
from maskdpo.server.judge.metrics import FactualityMetrics
from maskdpo.server.judge.scoring import sentence_masks
from maskdpo.server.judge.types import Fact, JudgeRequest, Judgment, Passage
from maskdpo.server.wire import label_counts
from maskdpo.trainer.labels import SentenceLabel
from maskdpo.trainer.mask_rules import MaskRule, PairRole
from maskdpo.v1 import common_pb2, factuality_pb2

LABEL_TO_PROTO = {
    SentenceLabel.OK: common_pb2.SENTENCE_LABEL_OK,
    SentenceLabel.CONTRADICTORY: common_pb2.SENTENCE_LABEL_CONTRADICTORY,
    SentenceLabel.UNVERIFIABLE: common_pb2.SENTENCE_LABEL_UNVERIFIABLE,
    SentenceLabel.NOFACT: common_pb2.SENTENCE_LABEL_NOFACT,
}
MASK_RULE_FROM_PROTO = {
    common_pb2.MASK_RULE_UNSPECIFIED: MaskRule.DEFAULT,
    common_pb2.MASK_RULE_DEFAULT: MaskRule.DEFAULT,
    common_pb2.MASK_RULE_RELEASED: MaskRule.RELEASED,
}


def check_text(field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise TextTooLong(field, len(text), limit)


def mask_rule(value: int, field: str) -> MaskRule:
    rule: MaskRule | None = MASK_RULE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if rule is None:
        raise InvalidArgument(field, f"unknown mask rule {value}")
    return rule


def judge_request(answer: factuality_pb2.Answer, passages: Sequence[Passage], facts: Sequence[Fact],
                  source: str, field: str, max_chars: int) -> JudgeRequest:
    """A validated JudgeRequest from an Answer and its resolved knowledge."""
    if not answer.response.strip():
        raise InvalidArgument(f"{field}.response", "the answer text is empty")
    check_text(f"{field}.response", answer.response, max_chars)
    check_text(f"{field}.prompt", answer.prompt, max_chars)
    check_text(f"{field}.topic", answer.topic, 1000)
    return JudgeRequest(response=answer.response, prompt=answer.prompt, topic=answer.topic,
                        passages=tuple(passages), facts=tuple(facts), knowledge_source=source)


def inline_knowledge(knowledge: factuality_pb2.Knowledge, field: str,
                     max_chars: int) -> tuple[list[Passage], list[Fact]]:
    """Inline passages / facts of a Knowledge message, validated."""
    passages: list[Passage] = []
    facts: list[Fact] = []
    total = 0
    for i, p in enumerate(knowledge.passages.passages):
        if not p.text.strip():
            raise InvalidArgument(f"{field}.passages.passages[{i}].text", "empty passage")
        total += len(p.text) + len(p.title)
        passages.append(Passage(text=p.text, title=p.title))
    if total > max_chars:
        raise TextTooLong(f"{field}.passages", total, max_chars)
    for i, f in enumerate(knowledge.facts.facts):
        for name in ("subject", "attribute", "value"):
            if not getattr(f, name).strip():
                raise InvalidArgument(f"{field}.facts.facts[{i}].{name}", "required")
        facts.append(Fact(subject=f.subject, attribute=f.attribute, value=f.value))
    return passages, facts


def _utf8_offsets(text: str) -> list[int]:
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + len(ch.encode("utf-8")))
    return offsets


def scored_answer(judgment: Judgment, rule: MaskRule, metrics: FactualityMetrics
                  ) -> factuality_pb2.ScoredAnswer:
    """A ScoredAnswer from a judgment and its one-response metrics."""
    byte_at = _utf8_offsets(judgment.response)
    out = factuality_pb2.ScoredAnswer()
    chosen, rejected = sentence_masks(judgment, PairRole.CHOSEN, rule), sentence_masks(judgment, PairRole.REJECTED, rule)
    for verdict, chosen_mask, rejected_mask in zip(judgment.verdicts, chosen, rejected, strict=True):
        s = verdict.sentence
        out.sentences.add(
            start=s.span.start, end=s.span.end, utf8_start=byte_at[s.span.start], utf8_end=byte_at[s.span.end],
            text=s.span.text_of(judgment.response), label=LABEL_TO_PROTO[s.label],
            chosen_mask=chosen_mask, rejected_mask=rejected_mask, evidence=verdict.evidence,
            unparsed=not s.parsed, unmatched=not verdict.matched,
        )
    m = out.metrics
    m.counts.CopyFrom(label_counts(judgment.counts))
    m.abstained = metrics.n_responding == 0
    m.uncheckable = metrics.n_uncheckable > 0
    m.facts = metrics.facts
    m.coverage.CopyFrom(coverage(metrics))
    for name in ("anah_score", "anah_score_released"):
        value = getattr(metrics, name)
        if value is not None:
            setattr(m, name, value)
    if metrics.factscore_no_penalty is not None:
        m.precision = metrics.factscore_no_penalty
    return out


def coverage(metrics: FactualityMetrics) -> common_pb2.Coverage:
    return common_pb2.Coverage(sentences=metrics.counts.total, unparsed=metrics.n_unparsed,
                               checked=metrics.n_checked, unmatched=metrics.n_unmatched)


def _interval(ci: ConfidenceInterval | None) -> common_pb2.ConfidenceInterval | None:
    if ci is None:
        return None
    return common_pb2.ConfidenceInterval(low=ci.low, high=ci.high, level=ci.level, resamples=ci.resamples)


def _estimate(metrics: FactualityMetrics, name: str) -> factuality_pb2.Estimate:
    est = factuality_pb2.Estimate()
    value = getattr(metrics, name)
    if value is not None:
        est.value = value
    interval = _interval(metrics.intervals.get(name))
    if interval is not None:
        est.interval.CopyFrom(interval)
    return est


def aggregate_metrics(metrics: FactualityMetrics,
                      groups: Sequence[tuple[str, FactualityMetrics]]) -> factuality_pb2.AggregateMetrics:
    out = factuality_pb2.AggregateMetrics(
        answers=metrics.n_responses,
        respond_ratio=metrics.respond_ratio or 0.0,
        facts_per_response=metrics.facts_per_response or 0.0,
        counts=label_counts(metrics.counts),
        k=metrics.k or 0.0,
        k_rule=metrics.k_source,
        gamma=metrics.gamma,
        coverage=coverage(metrics),
        uncheckable=metrics.n_uncheckable,
    )
    for name in ("factscore", "factscore_no_penalty", "anah_score", "anah_score_released", "f1_at_k"):
        getattr(out, name).CopyFrom(_estimate(metrics, name))
    if metrics.micro_precision is not None:
        out.micro_precision = metrics.micro_precision
    for group, gm in groups:
        g = out.groups.add(group=group, answers=gm.n_responses, respond_ratio=gm.respond_ratio or 0.0)
        if gm.factscore is not None:
            g.factscore = gm.factscore
        if gm.anah_score is not None:
            g.anah_score = gm.anah_score
    return out
