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
