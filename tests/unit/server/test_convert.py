"""Edge translation: spans in code points and UTF-8 bytes, masks by rule, request validation."""

from __future__ import annotations

import pytest

from maskdpo.server.errors import InvalidArgument, TextTooLong
from maskdpo.server.judge.metrics import compute_metrics
from maskdpo.server.judge.records import from_judgment
from maskdpo.server.judge.types import JudgeIdentity, Judgment, SentenceVerdict
from maskdpo.server.services import factuality_convert as convert
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.mask_rules import MaskRule
from maskdpo.v1 import common_pb2, factuality_pb2


def _judgment() -> Judgment:
    text = "Zürich is in Switzerland. Hello there! It has 9 million people."
    labels = [SentenceLabel.OK, SentenceLabel.NOFACT, SentenceLabel.CONTRADICTORY]
    spans = [Span(0, 25), Span(26, 38), Span(39, len(text))]
    verdicts = tuple(SentenceVerdict(LabeledSentence(s, lab, s.text_of(text))) for s, lab in zip(spans, labels, strict=True))
    return Judgment(response=text, verdicts=verdicts, identity=JudgeIdentity(backend="kb"))


@pytest.mark.parametrize("rule", [MaskRule.DEFAULT, MaskRule.RELEASED])
def test_scored_answer(rule: MaskRule) -> None:
    judgment = _judgment()
    metrics = compute_metrics([from_judgment(judgment)], resamples=0)
    out = convert.scored_answer(judgment, rule, metrics)
    encoded = judgment.response.encode()
    for s in out.sentences:
        assert judgment.response[s.start : s.end] == s.text
        assert encoded[s.utf8_start : s.utf8_end].decode() == s.text
    assert out.sentences[1].utf8_start == out.sentences[1].start + 1  # "ü" takes two bytes
    assert [s.chosen_mask for s in out.sentences] == [True, rule is MaskRule.RELEASED, False]
    assert [s.rejected_mask for s in out.sentences] == [False, rule is MaskRule.RELEASED, True]
    assert out.metrics.anah_score == pytest.approx(0.5)
    assert out.metrics.counts.nofact == 1


def test_request_validation() -> None:
    with pytest.raises(InvalidArgument, match=r"answer\.response"):
        convert.judge_request(factuality_pb2.Answer(response="  "), [], [], "", "answer", 100)
    with pytest.raises(TextTooLong):
        convert.judge_request(factuality_pb2.Answer(response="x" * 101), [], [], "", "answer", 100)
    with pytest.raises(InvalidArgument, match="mask"):
        convert.mask_rule(99, "options.mask_rule")
    assert convert.mask_rule(common_pb2.MASK_RULE_UNSPECIFIED, "x") is MaskRule.DEFAULT
    knowledge = factuality_pb2.Knowledge()
    knowledge.facts.facts.add(subject="A", attribute="", value="1")
    with pytest.raises(InvalidArgument, match=r"knowledge.facts.facts\[0\].attribute"):
        convert.inline_knowledge(knowledge, "knowledge", 1000)


def test_coverage_and_uncheckable_answers_on_the_wire() -> None:
    """Coverage per answer and per batch; an answer whose sentences all went unmatched is uncheckable, not
    abstained, and the batch counts it."""
    text = "Åsa Lind won the Nobel Prize. Hello there!"
    spans = [Span(0, 28), Span(29, len(text))]
    unmatched = Judgment(text, (
        SentenceVerdict(LabeledSentence(spans[0], SentenceLabel.UNVERIFIABLE, spans[0].text_of(text)), matched=False),
        SentenceVerdict(LabeledSentence(spans[1], SentenceLabel.NOFACT, spans[1].text_of(text)), facts=0),
    ), JudgeIdentity(backend="kb"))
    records = [from_judgment(unmatched), from_judgment(_judgment())]
    answer = convert.scored_answer(unmatched, MaskRule.DEFAULT, compute_metrics(records[:1], resamples=0))
    assert [s.unmatched for s in answer.sentences] == [True, False]
    m = answer.metrics
    assert m.uncheckable and not m.abstained and not m.HasField("precision") and not m.HasField("anah_score")
    assert (m.coverage.sentences, m.coverage.checked, m.coverage.unmatched, m.coverage.unparsed) == (2, 0, 1, 0)
    checked = convert.scored_answer(_judgment(), MaskRule.DEFAULT, compute_metrics(records[1:], resamples=0))
    assert not checked.metrics.uncheckable and checked.metrics.coverage.checked == 2
    batch = convert.aggregate_metrics(compute_metrics(records, resamples=0), [])
    assert batch.uncheckable == 1 and batch.respond_ratio == 1.0
    assert (batch.coverage.sentences, batch.coverage.checked, batch.coverage.unmatched) == (5, 2, 1)
