"""The kb judge on natural text: claims read through the KB's names and values, in any script; statements it
cannot match are unverifiable and unmatched, fact-free sentences nofact; typed values need a cue."""

from __future__ import annotations

import pytest

from maskdpo.server.judge.kb import KbJudge
from maskdpo.server.judge.metrics import compute_metrics
from maskdpo.server.judge.records import from_judgment
from maskdpo.server.judge.types import Fact, JudgeRequest, SentenceVerdict
from maskdpo.trainer.labels import SentenceLabel

L = SentenceLabel


def facts(name: str, place: str = "Malmö", *extra: tuple[str, str]) -> tuple[Fact, ...]:
    base = [("birthplace", place), ("birth year", "1961"), ("occupation", "painter"), *extra]
    return tuple(Fact(name, attribute, value) for attribute, value in base)


def verdicts(text: str, knowledge: tuple[Fact, ...], topic: str = "", **options: str) -> list[SentenceVerdict]:
    [judgment] = KbJudge(**options).judge_batch([JudgeRequest(response=text, topic=topic, facts=knowledge)])
    assert not judgment.abstained
    return list(judgment.verdicts)


def labels(text: str, knowledge: tuple[Fact, ...], topic: str = "") -> list[tuple[SentenceLabel, bool]]:
    """(label, matched) of each sentence."""
    return [(v.sentence.label, v.matched) for v in verdicts(text, knowledge, topic)]


def test_the_reported_answer_is_read_as_natural_text() -> None:
    text = (
        "Åsa Lind was born in Malmö in 1961. She was a chemist. Åsa Lind won the Nobel Prize. "
        "Åsa Lind's birthplace is Malmö."
    )
    found = verdicts(text, facts("Åsa Lind"), topic="Åsa Lind")
    assert [(v.sentence.label, v.matched) for v in found] == [
        (L.OK, True), (L.CONTRADICTORY, True), (L.UNVERIFIABLE, False), (L.OK, True)
    ]
    assert (found[0].facts, found[0].supported) == (2, 2)
    assert "Åsa Lind / occupation = 'chemist': contradicted (KB: painter)" in found[1].evidence
    assert found[2].evidence.startswith("unmatched") and found[2].facts == 1
    assert found[3].evidence == "Åsa Lind / birthplace = 'Malmö': supported"  # the whole name, not "Lind"


# (name, place, the same four sentences written with that name, pronoun and script)
SCRIPTS = [
    ("Søren Ødegaard", "Malmö", "Søren Ødegaard was born in Malmö in 1961.", "He was a chemist.",
     "Ødegaard won the Nobel Prize.", "Søren Ødegaard's birthplace is Malmö."),
    ("Şebnem Ferah", "İzmir", "Şebnem Ferah was born in İzmir in 1961.", "She was a chemist.",
     "Şebnem Ferah won the Nobel Prize.", "Şebnem Ferah's birthplace is İzmir."),
    ("Günther Straße", "Göttingen", "GÜNTHER STRASSE was born in Göttingen in 1961.", "He was a chemist.",
     "Günther Straße won the Nobel Prize.", "Günther Straße’s birthplace is Göttingen."),
    ("Émile Zola", "Évreux", "Émile Zola was born in Évreux in 1961.", "He was a chemist.",
     "Émile Zola won the Nobel Prize.", "Émile Zola's birthplace is Évreux."),
    ("王芳", "北京", "王芳 was born in 北京 in 1961.", "She was a chemist.", "王芳 won the Nobel Prize.",
     "王芳's birthplace is 北京."),
    ("山田太郎", "東京", "山田太郎は1961年に東京で生まれた。", "He was a chemist.", "山田太郎はノーベル賞を受賞した。",
     "山田太郎's birthplace is 東京."),
]


@pytest.mark.parametrize(("name", "place", "born", "job", "prize", "statement"), SCRIPTS)
def test_names_in_other_scripts(name: str, place: str, born: str, job: str, prize: str, statement: str) -> None:
    text = " ".join((born, job, prize, statement))
    found = verdicts(text, facts(name, place))  # no topic: the KB's only subject is the topic
    assert [v.sentence.text for v in found] == [born, job, prize, statement]
    assert [(v.sentence.label, v.matched) for v in found] == [
        (L.OK, True), (L.CONTRADICTORY, True), (L.UNVERIFIABLE, False), (L.OK, True)
    ]
    assert found[3].evidence == f"{name} / birthplace = {place!r}: supported"


def test_cjk_sentences_match_names_and_values_literally() -> None:
    text = "王芳出生于北京。王芳出生于上海。谢谢。"
    assert labels(text, facts("王芳", "北京", ("alias", "小芳"))) == [
        (L.OK, True), (L.UNVERIFIABLE, False), (L.NOFACT, True)
    ]
    assert labels("小芳出生于北京。", facts("王芳", "北京", ("alias", "小芳"))) == [(L.OK, True)]


def test_unknown_words_never_contradict() -> None:
    text = (
        "She was a flibbertigibbet. She moved to Oslo in 1985. She died in 2001. She painted 300 works. "
        "Her father was a chemist. Picasso was a painter."
    )
    found = labels(text, facts("Åsa Lind"), topic="Åsa Lind")
    assert found == [(L.UNVERIFIABLE, False)] * 6


def test_fact_free_sentences_are_nofact_and_not_unmatched() -> None:
    text = "Hello there. What a life! Thank you for reading. I hope this helps."
    assert labels(text, facts("Åsa Lind"), topic="Åsa Lind") == [(L.NOFACT, True)] * 4


def test_values_typed_by_patterns_need_a_cue() -> None:
    knowledge = (
        Fact("Ada Rell", "birth_date", "12 March 1961"),
        Fact("Ada Rell", "number_of_children", "2"),
        Fact("Ada Rell", "death_year", "2010"),
    )
    text = (
        "She was born on March 12, 1961. She was born on 1961-03-13. Ada Rell was born in 1961. "
        "She had two children. She had 3 children. In 1961 she painted a lot. She died in 2010. "
        "Rell died in 2011, aged 49."
    )
    assert [label for label, _ in labels(text, knowledge, topic="Ada Rell")] == [
        L.OK, L.CONTRADICTORY, L.OK, L.OK, L.CONTRADICTORY, L.UNVERIFIABLE, L.OK, L.CONTRADICTORY
    ]


def test_kinds_come_from_the_kb_values_and_the_lexicon() -> None:
    knowledge = (
        *facts("Åsa Lind"),
        Fact("Erik Berg", "birthplace", "Oslo"),
        Fact("Erik Berg", "employer", "Volvo"),
        Fact("Erik Berg", "spouse", "Åsa Lind"),
    )
    text = (
        "Åsa Lind was born in Oslo. She was a landscape painter. She worked for Volvo. "
        "Lind was an engineer and a painter. Erik Berg was born in Oslo. Erik Berg married Åsa Lind. "
        "Erik Berg was born in Malmö."
    )
    found = verdicts(text, knowledge, topic="Åsa Lind")
    assert [(v.sentence.label, v.matched) for v in found] == [
        (L.CONTRADICTORY, True),  # another subject's birthplace is a place
        (L.OK, True),  # "painter" is the head of a lexicon value: still a painter
        (L.UNVERIFIABLE, False),  # an employer value, but no cue for an attribute she does not hold
        (L.OK, True),  # one held value is enough for a multi-valued attribute
        (L.OK, True),
        (L.OK, True),  # a subject named as a value
        (L.CONTRADICTORY, True),
    ]
    assert "Erik Berg / birthplace = 'Malmö': contradicted (KB: Oslo)" in found[-1].evidence


def test_template_extractor_is_an_option_with_unicode_names() -> None:
    text = "Åsa Lind's birthplace is Malmö. Şebnem Ferah's birthplace is İzmir. She was a chemist. Hello there."
    knowledge = (*facts("Åsa Lind"), Fact("Şebnem Ferah", "birthplace", "Ankara"))
    found = verdicts(text, knowledge, topic="Åsa Lind", extractor="template")
    assert [(v.sentence.label, v.matched) for v in found] == [
        (L.OK, True), (L.CONTRADICTORY, True), (L.NOFACT, False), (L.NOFACT, True)
    ]
    assert found[0].evidence == "Åsa Lind / birthplace = 'Malmö': supported"
    assert KbJudge(extractor="template").identity().settings["extractor"] == "template"
    assert KbJudge().identity().settings["extractor"] == "natural"
    with pytest.raises(ValueError, match="unknown kb extractor 'regex'; expected one of: natural, template"):
        KbJudge(extractor="regex")


def test_an_answer_that_matches_nothing_is_uncheckable_not_abstained() -> None:
    knowledge = facts("Åsa Lind")
    unmatched = "Åsa Lind won the Nobel Prize. She loved the sea. What a life!"
    checked = "Åsa Lind was born in Malmö. She won the Nobel Prize."
    judgments = KbJudge().judge_batch([
        JudgeRequest(response=unmatched, topic="Åsa Lind", facts=knowledge),
        JudgeRequest(response=checked, topic="Åsa Lind", facts=knowledge),
        JudgeRequest(response="Hello there.", topic="Åsa Lind", facts=knowledge),
    ])
    records = [from_judgment(j) for j in judgments]
    assert [(r.checked, r.unmatched, r.uncheckable, r.abstained, r.responding) for r in records] == [
        (0, 2, True, False, True), (1, 1, False, False, True), (0, 0, False, False, False)
    ]
    metrics = compute_metrics(records, resamples=0)
    assert (metrics.n_uncheckable, metrics.n_checked, metrics.n_unmatched) == (1, 1, 3)
    assert (metrics.n_scored, metrics.n_zero_facts, metrics.n_responding) == (1, 1, 2)
    assert metrics.respond_ratio == pytest.approx(2 / 3)
    assert metrics.factscore_no_penalty == pytest.approx(0.5)  # the uncheckable answer is left out
    assert metrics.anah_score == pytest.approx(0.5)
