"""The kb backend labels a hand-built set exactly: ok, contradictory, unverifiable, nofact, aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.server.judge.claim_templates import TemplateClaimExtractor
from maskdpo.server.judge.kb import ClaimExtractor, KbJudge, sentence_label
from maskdpo.server.judge.knowledge_base import ClaimCheck, KnowledgeBase, normalize
from maskdpo.server.judge.types import Fact, JudgeRequest
from maskdpo.trainer.labels import SentenceLabel

L = SentenceLabel
FACTS = (
    Fact("Ada Rell", "birthplace", "Lyon"),
    Fact("Ada Rell", "occupation", "painter"),
    Fact("Ada Rell", "occupation", "sculptor"),
    Fact("Ada Rell", "birth_year", "1901"),
    Fact("Ada Rell", "alias", "Addie Rell"),
    Fact("Lyon", "alias", "Lugdunum"),
    Fact("Tomas Vey", "birthplace", "Porto"),
)

EXTRACTOR = TemplateClaimExtractor(
    {
        "birthplace": [r"(?:(?P<subject>[A-Z]\w+ [A-Z]\w+)|\b(?:he|she)) was born in (?P<value>[A-Z]\w+)"],
        "birth_year": [
            r"\bborn in [A-Z]\w+ in (?P<value>\d{4})",
            r"\bin (?P<value>\d{4}), (?:he|she) was born",
        ],
        "occupation": [r"\bworked as an? (?P<value>[a-z]+)"],
        "spouse": [r"\bmarried (?P<value>[A-Z]\w+(?: [A-Z]\w+)?)"],
    },
    name="test-templates",
)

# (sentence, expected label): each sentence of the response below, in order.
CASES = [
    ("Ada Rell was born in Lyon in 1901.", L.OK),
    ("She worked as a painter.", L.OK),
    ("She worked as a sculptor.", L.OK),  # a second true value of a multi-valued attribute
    ("She worked as a baker.", L.CONTRADICTORY),
    ("Addie Rell was born in Lugdunum.", L.OK),  # subject alias and value alias
    ("She was born in Porto in 1901.", L.CONTRADICTORY),  # one true claim, one contradicted
    ("In 1903, she was born.", L.CONTRADICTORY),
    ("She married Tomas Vey.", L.UNVERIFIABLE),  # attribute the KB does not hold
    ("Bob Kane was born in Lyon.", L.UNVERIFIABLE),  # subject the KB does not know
    ("Tomas Vey was born in Porto.", L.OK),  # another subject named explicitly
    ("She loved the sea.", L.NOFACT),
]


def test_hand_built_set_is_labelled_exactly() -> None:
    judge = KbJudge(extractor=EXTRACTOR)
    response = " ".join(sentence for sentence, _ in CASES)
    [judgment] = judge.judge_batch([JudgeRequest(response=response, topic="Ada Rell", facts=FACTS)])
    assert [v.sentence.text for v in judgment.verdicts] == [sentence for sentence, _ in CASES]
    assert [v.sentence.label for v in judgment.verdicts] == [label for _, label in CASES]
    for verdict in judgment.verdicts:
        assert verdict.sentence.span.text_of(response) == verdict.sentence.text
    mixed = judgment.verdicts[5]
    assert (mixed.facts, mixed.supported) == (2, 1)
    assert "contradicted (KB: Lyon)" in mixed.evidence
    assert judgment.verdicts[-1].facts == 0 and not judgment.abstained


def test_identity_says_exact_kb() -> None:
    identity = KbJudge(extractor=EXTRACTOR, source_name="toy-v1").identity()
    assert identity.backend == "kb" and identity.heuristic is False
    assert identity.knowledge_source == "toy-v1" and identity.splitter.startswith("pysbd")
    assert identity.settings["extractor"] == "test-templates"


def test_default_extractor_reads_attribute_statements() -> None:
    judge = KbJudge(KnowledgeBase(FACTS))
    text = (
        "Ada Rell's birthplace is Lyon. Her occupation was banker. The birth year of Addie Rell is 1901. "
        "Birthplace: Paris. Hello there."
    )
    [judgment] = judge.judge_batch([JudgeRequest(response=text, topic="Ada Rell")])
    labels = [v.sentence.label for v in judgment.verdicts]
    assert labels == [L.OK, L.CONTRADICTORY, L.OK, L.CONTRADICTORY, L.NOFACT]


def test_refusal_is_abstained() -> None:
    [judgment] = KbJudge(KnowledgeBase(FACTS)).judge_batch(
        [JudgeRequest(response="I'm sorry, but I could not find any information about Ada Rell.")]
    )
    assert judgment.abstained


def test_knowledge_resolution_order_and_errors() -> None:
    registered = KnowledgeBase([Fact("Ada Rell", "birthplace", "Nice")])
    judge = KbJudge(KnowledgeBase(FACTS), EXTRACTOR, sources={"alt": registered})
    text = "Ada Rell was born in Nice."
    default, by_source, inline = judge.judge_batch(
        [
            JudgeRequest(response=text),
            JudgeRequest(response=text, knowledge_source="alt"),
            JudgeRequest(
                response=text, facts=(Fact("Ada Rell", "birthplace", "Nice"),), knowledge_source="x"
            ),
        ]
    )
    assert default.verdicts[0].sentence.label is L.CONTRADICTORY
    assert by_source.verdicts[0].sentence.label is L.OK
    assert inline.verdicts[0].sentence.label is L.OK
    with pytest.raises(ValueError, match=r"request 1: unknown knowledge source 'nope' \(registered: alt\)"):
        judge.judge_batch([JudgeRequest(response=text), JudgeRequest(response=text, knowledge_source="nope")])
    with pytest.raises(ValueError, match="needs facts"):
        KbJudge(extractor=EXTRACTOR).judge_batch([JudgeRequest(response=text)])


def test_extractor_must_follow_the_protocol() -> None:
    assert isinstance(EXTRACTOR, ClaimExtractor)
    with pytest.raises(TypeError, match="ClaimExtractor"):
        KbJudge(extractor=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no"):
        TemplateClaimExtractor({"x": [r"no group"]})


def test_knowledge_base_checks_and_normalisation() -> None:
    kb = KnowledgeBase(FACTS)
    assert kb.resolve("addie  RELL.") == "ada rell"
    assert kb.values("Ada Rell", "Occupation") == frozenset({"painter", "sculptor"})
    assert kb.check(Fact("ada rell", "Birth-Year", "1901.")) is ClaimCheck.SUPPORTED
    assert kb.check(Fact("ada rell", "birthplace", "the lyon")) is ClaimCheck.SUPPORTED
    assert kb.check(Fact("Ada Rell", "birthplace", "Nice")) is ClaimCheck.CONTRADICTED
    assert kb.check(Fact("Ada Rell", "spouse", "x")) is ClaimCheck.UNKNOWN
    assert kb.check(Fact("Nobody", "birthplace", "Lyon")) is ClaimCheck.UNKNOWN
    assert "alias" not in kb.attributes() and len(kb) == len(FACTS)
    assert normalize('  "The  Hague." ') == "hague"
    assert sentence_label([]) is L.NOFACT
    assert sentence_label([ClaimCheck.UNKNOWN, ClaimCheck.SUPPORTED]) is L.UNVERIFIABLE
    with pytest.raises(ValueError, match="fact 0: value must be a non-empty string"):
        KnowledgeBase([Fact("a", "b", "  ")])


def test_knowledge_base_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    rows = [{"subject": f.subject, "attribute": f.attribute, "value": f.value} for f in FACTS]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    kb = KnowledgeBase.from_jsonl(path)
    assert len(kb) == len(FACTS) and kb.resolve("Addie Rell") == "ada rell"
    path.write_text(
        json.dumps(rows[0]) + "\n" + json.dumps({"subject": "a", "value": "b"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"kb\.jsonl:2: missing or non-string field\(s\): attribute"):
        KnowledgeBase.from_jsonl(path)
