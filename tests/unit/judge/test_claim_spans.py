"""The kb judge marks where each wrong value sits; claim-level masks read those spans."""

from __future__ import annotations

from maskdpo.server.judge.claim_spans import wrong_value_spans
from maskdpo.server.judge.kb import KbJudge
from maskdpo.server.judge.knowledge_base import ClaimCheck, KnowledgeBase
from maskdpo.server.judge.types import Fact, JudgeRequest
from maskdpo.trainer.labels import SentenceLabel, Span
from tests.unit.judge.test_kb import EXTRACTOR, FACTS


def _judge(text: str) -> list[tuple[SentenceLabel, list[str]]]:
    [j] = KbJudge(KnowledgeBase(FACTS), EXTRACTOR).judge_batch([JudgeRequest(response=text, topic="Ada Rell")])
    return [(s.label, [w.text_of(text) for w in s.wrong_spans]) for s in j.sentences]


def test_only_the_unsupported_values_are_marked() -> None:
    text = "Ada Rell was born in Lyon in 1901. She was born in Porto in 1901. She married Tomas Vey. Hi."
    assert _judge(text) == [
        (SentenceLabel.OK, []),
        (SentenceLabel.CONTRADICTORY, ["Porto"]),  # the true year is not marked
        (SentenceLabel.UNVERIFIABLE, ["Tomas Vey"]),  # an attribute the KB does not hold
        (SentenceLabel.NOFACT, []),
    ]


def test_spans_are_relative_to_the_response_and_ignore_case_and_spacing() -> None:
    sentence = "Later she married  tomas\nVEY in Lyon."
    spans = wrong_value_spans(sentence, 100, [Fact("Ada Rell", "spouse", "Tomas Vey")], [ClaimCheck.UNKNOWN])
    start = sentence.index("tomas")
    assert spans == (Span(100 + start, 100 + start + len("tomas\nVEY")),)


def test_a_value_not_in_the_sentence_gives_no_spans_at_all() -> None:
    claims = [Fact("Ada Rell", "birthplace", "Porto"), Fact("Ada Rell", "occupation", "baker")]
    checks = [ClaimCheck.CONTRADICTED, ClaimCheck.CONTRADICTED]
    assert wrong_value_spans("She was born in Porto.", 0, claims, checks) == ()  # the sentence counts whole
