"""The heuristic judge: mismatch rules on clear cases, batching, caching, identity, accuracy floor."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from maskdpo.server.judge.embedding import MiniLMEncoder, Vectors
from maskdpo.server.judge.heuristic import HeuristicJudge, HeuristicSettings
from maskdpo.server.judge.judge_eval import evaluate, format_run
from maskdpo.server.judge.labelled_sets import DEFAULT_SENTENCES, load_set
from maskdpo.server.judge.types import JudgeBackend, JudgeRequest, Passage
from maskdpo.trainer.labels import SentenceLabel

ACCURACY_FLOOR = 0.90  # measured 0.955 on all 132 sentences (dev 0.959, held-out 0.941)
HELDOUT_FLOOR = 0.85

REFERENCE = Passage(
    "Tobias Renfrew (1894 – 1958) was an American architect born in Pensacola, Mississippi. "
    "He designed more than forty public libraries across the southern United States. "
    "He married the painter Ida Moss in 1921; they had two daughters.",
    title="Tobias Renfrew",
)


class CountingEncoder(MiniLMEncoder):
    """The real encoder, counting calls and texts."""

    def __init__(self) -> None:
        super().__init__(threads=2)
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(len(texts))
        return super().encode(texts)


@pytest.fixture(scope="module")
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture
def judge(encoder: CountingEncoder) -> HeuristicJudge:
    encoder.calls.clear()
    return HeuristicJudge(HeuristicSettings(threads=2), encoder=encoder)


def labels_of(
    judge: HeuristicJudge, response: str, passages: tuple[Passage, ...] = (REFERENCE,)
) -> list[str]:
    [judgment] = judge.judge_batch(
        [JudgeRequest(response=response, topic="Tobias Renfrew", passages=passages)]
    )
    return [v.sentence.label.value for v in judgment.verdicts]


def test_pensacola_place_mismatch_is_contradictory(judge: HeuristicJudge) -> None:
    assert labels_of(judge, "He was born in Pensacola, Florida.") == ["contradictory"]
    assert labels_of(judge, "He was born in Pensacola, Mississippi.") == ["ok"]


@pytest.mark.parametrize(
    ("sentence", "label"),
    [
        ("Renfrew designed over forty public libraries in the American South.", "ok"),
        ("He married Ida Moss in 1925.", "contradictory"),
        ("He designed more than ninety public libraries.", "contradictory"),
        ("He won a gold medal for architecture at the 1932 Olympics.", "unverifiable"),
        ("Renfrew also designed several railway stations in Alabama.", "unverifiable"),
        ("I hope this helps!", "nofact"),
        ("What a remarkable career.", "nofact"),
    ],
)
def test_clear_cases(judge: HeuristicJudge, sentence: str, label: str) -> None:
    assert labels_of(judge, sentence) == [label]


def test_multi_sentence_response_spans_and_counts(judge: HeuristicJudge) -> None:
    response = (
        "Tobias Renfrew was an American architect. He was born in Pensacola, Florida. Thanks for asking!"
    )
    [judgment] = judge.judge_batch(
        [JudgeRequest(response=response, topic="Tobias Renfrew", passages=(REFERENCE,))]
    )
    assert [v.sentence.label for v in judgment.verdicts] == [
        SentenceLabel.OK,
        SentenceLabel.CONTRADICTORY,
        SentenceLabel.NOFACT,
    ]
    for verdict in judgment.verdicts:
        assert verdict.sentence.span.text_of(response) == verdict.sentence.text
    assert [(v.facts, v.supported) for v in judgment.verdicts] == [(1, 1), (1, 0), (0, 0)]
    assert "Mississippi" in judgment.verdicts[1].evidence
    assert not judgment.abstained


def test_explicit_refusal_is_abstained_without_facts(judge: HeuristicJudge) -> None:
    [judgment] = judge.judge_batch(
        [JudgeRequest(response="I'm sorry, but I could not find any information about Tobias Renfrew.")]
    )
    assert judgment.abstained
    assert [v.sentence.label for v in judgment.verdicts] == [SentenceLabel.NOFACT]
    assert judgment.verdicts[0].facts == 0


def test_no_reference_text_makes_facts_unverifiable(judge: HeuristicJudge) -> None:
    assert labels_of(judge, "He was born in 1894. Have a nice day!", passages=()) == [
        "unverifiable",
        "nofact",
    ]


def test_empty_response_has_no_verdicts(judge: HeuristicJudge) -> None:
    [judgment] = judge.judge_batch([JudgeRequest(response="   ", passages=(REFERENCE,))])
    assert judgment.verdicts == ()
    assert judgment.abstained


def test_identity_says_heuristic(judge: HeuristicJudge) -> None:
    assert isinstance(judge, JudgeBackend)
    identity = judge.identity()
    assert identity.backend == "heuristic"
    assert identity.heuristic is True
    assert identity.model == "all-MiniLM-L6-v2 + BM25"
    assert identity.splitter.startswith("pysbd-")
    assert identity.settings["support_similarity"] == "0.5"
    assert {"related_similarity", "close_similarity", "alpha", "top_k"} <= set(identity.settings)
    [judgment] = judge.judge_batch([JudgeRequest(response="He died in 1958.", passages=(REFERENCE,))])
    assert judgment.identity == identity


def test_settings_overrides_by_name(encoder: CountingEncoder) -> None:
    judge = HeuristicJudge(encoder=encoder, support_similarity=0.6, top_k=5)
    assert (judge.settings.support_similarity, judge.settings.top_k) == (0.6, 5)
    assert judge.identity().settings["top_k"] == "5"
    with pytest.raises(ValueError, match=r"unknown heuristic judge setting.*'nonsense'"):
        HeuristicJudge(encoder=encoder, nonsense=1)


def test_batch_gives_the_same_labels_as_one_by_one_in_one_model_call(
    judge: HeuristicJudge, encoder: CountingEncoder
) -> None:
    _, items = load_set(DEFAULT_SENTENCES)
    requests = [JudgeRequest(response=i.text, topic=i.topic, passages=i.passages) for i in items[::5]]
    batched = judge.judge_batch(requests)
    assert len(encoder.calls) == 1, "one encoder call for all chunks and sentences of a batch"
    fresh = HeuristicJudge(HeuristicSettings(threads=2), encoder=encoder)
    single = [fresh.judge_batch([r])[0] for r in requests]
    assert [j.sentences for j in batched] == [j.sentences for j in single]


def test_reference_is_embedded_once(judge: HeuristicJudge, encoder: CountingEncoder) -> None:
    request = JudgeRequest(response="He died in 1958.", topic="Tobias Renfrew", passages=(REFERENCE,))
    judge.judge_batch([request])
    judge.judge_batch([request, request])
    assert encoder.calls == [3 + 1, 2], "the second batch embeds only its two sentences"


def test_accuracy_floor_on_the_labelled_set(judge: HeuristicJudge) -> None:
    kind, items = load_set(DEFAULT_SENTENCES)
    assert kind == "sentences" and len(items) >= 100
    assert {i.gold for i in items} == {label.value for label in SentenceLabel}
    run = evaluate(judge, items, kind, resamples=0)
    report = format_run(run, judge, errors=True)
    print(report)
    assert run.agreement.exact is not None and run.agreement.exact >= ACCURACY_FLOOR, report
    heldout = run.split("heldout")
    assert heldout.exact is not None and heldout.exact >= HELDOUT_FLOOR, report
    for label in SentenceLabel:
        judged = run.agreement.verdicts_of(label.value)
        assert judged[label] / sum(judged.values()) >= 0.75, f"{label}: {judged}"


@pytest.mark.parametrize(
    ("passage", "sentence", "label"),
    [
        # a year is no rival of an ordinal or a count: no contradiction, just not found
        ("The Riverside cadets won their seventh trophy at the 35th annual parade in Atlanta.",
         "The Riverside cadets won their seventh trophy in 2016.", "unverifiable"),
        # numbers ten times apart count different things (goals vs fans)
        ("More than 63,000 fans watched United play Arsenal at Highbury.",
         "United beat Arsenal by 5 goals at Highbury.", "unverifiable"),
        ("Renfrew designed 40 libraries across the South.", "Renfrew designed 90 libraries across the South.",
         "contradictory"),
        # a weekday names no one a sentence could get wrong
        ("On Wednesday 24 July, Theresa May took her final questions as prime minister.",
         "James Marshall replaced Theresa May as prime minister on 24 July.", "unverifiable"),
        # a closing quote is no part of a name
        ("We replaced the 'Coming Soon' lettering with 'The Director's Cut'.",
         'They replaced the "Coming Soon" lettering with "The Director\'s Cut".', "ok"),
    ],
)
def test_rules_on_web_text(judge: HeuristicJudge, passage: str, sentence: str, label: str) -> None:
    assert labels_of(judge, sentence, passages=(Passage(passage),)) == [label]


def test_items_may_be_found_in_the_chunks_around_the_retrieved_ones(encoder: CountingEncoder) -> None:
    page = Passage("Tom Perez announced the schedule of the debates at a press call. "
                   "The first one is set for June 2019 in Miami.")
    sentence = "Tom Perez announced the schedule of the debates, the first in June 2019."
    narrow = HeuristicJudge(HeuristicSettings(threads=2), encoder=encoder, top_k=1, support_chunks=1)
    wide = HeuristicJudge(HeuristicSettings(threads=2), encoder=encoder, top_k=1, support_chunks=2)
    assert labels_of(narrow, sentence, passages=(page,)) == ["unverifiable"]
    assert labels_of(wide, sentence, passages=(page,)) == ["ok"]
