"""Scoring glue: backend registry, score_responses, and per-sentence masks per role and rule."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from maskdpo.server.judge.kb import KbJudge
from maskdpo.server.judge.knowledge_base import KnowledgeBase
from maskdpo.server.judge.metrics import breakdown
from maskdpo.server.judge.registry import backend_names, build_backend
from maskdpo.server.judge.scoring import records_of, score_responses, sentence_masks
from maskdpo.server.judge.types import Fact, JudgeIdentity, JudgeRequest, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span

L = SentenceLabel
KB = KnowledgeBase([Fact("Ada Rell", "birthplace", "Lyon"), Fact("Ada Rell", "occupation", "painter")])


def judgment_of(*labels: SentenceLabel, unparsed: int | None = None) -> Judgment:
    verdicts = tuple(
        SentenceVerdict(LabeledSentence(Span(i, i + 1), label, parsed=i != unparsed))
        for i, label in enumerate(labels)
    )
    return Judgment("abcdefgh"[: len(labels)], verdicts, JudgeIdentity(backend="test"))


ALL_LABELS = (L.OK, L.CONTRADICTORY, L.UNVERIFIABLE, L.NOFACT)


@pytest.mark.parametrize(
    ("role", "rule", "expected"),
    [
        ("chosen", "default", [True, False, False, False]),
        ("rejected", "default", [False, True, True, False]),
        ("chosen", "released", [True, False, False, True]),
        ("rejected", "released", [False, True, True, True]),
        ("chosen", "all", [True, True, True, True]),
        ("rejected", "all", [True, True, True, True]),
    ],
)
def test_masks_per_role_and_rule(role: str, rule: str, expected: list[bool]) -> None:
    assert sentence_masks(judgment_of(*ALL_LABELS), role, rule) == expected


def test_unparsed_sentence_is_neutral_except_for_vanilla() -> None:
    judgment = judgment_of(L.OK, L.UNVERIFIABLE, L.NOFACT, unparsed=1)
    assert sentence_masks(judgment, "rejected") == [False, False, False]
    assert sentence_masks(judgment, "rejected", "released") == [False, False, True]
    assert sentence_masks(judgment, "rejected", "all") == [True, True, True]


def test_mask_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown mask rule 'loose'"):
        sentence_masks(judgment_of(L.OK), "chosen", "loose")
    with pytest.raises(ValueError, match="unknown pair role 'winner'"):
        sentence_masks(judgment_of(L.OK), "winner")


def test_registry_builds_kb_and_names_the_backends_on_error() -> None:
    judge = build_backend("kb", knowledge=KB)
    assert isinstance(judge, KbJudge) and judge.identity().backend == "kb"
    assert {"heuristic", "kb", "llm"} <= set(backend_names())
    with pytest.raises(
        ValueError, match="unknown judge backend 'oracle'; expected one of: heuristic, kb, llm"
    ):
        build_backend("oracle")


def test_score_responses_judges_and_measures_with_identity() -> None:
    requests = [
        JudgeRequest(response="Her birthplace is Lyon. Her occupation is painter.", topic="Ada Rell"),
        JudgeRequest(response="Her birthplace is Paris. Her occupation is painter. Hi.", topic="Ada Rell"),
        JudgeRequest(response="I'm sorry, I could not find any information about her.", topic="Ada Rell"),
    ]
    judge = KbJudge(KB)
    judgments, metrics = score_responses(judge, requests, gamma=0, resamples=200, seed=1)
    assert [[v.sentence.label for v in j.verdicts] for j in judgments] == [
        [L.OK, L.OK],
        [L.CONTRADICTORY, L.OK, L.NOFACT],
        [L.NOFACT],
    ]
    assert metrics.judge == judge.identity()
    assert metrics.respond_ratio == pytest.approx(2 / 3)
    assert metrics.factscore == pytest.approx((1.0 + 0.5) / 2)
    assert metrics.anah_score == pytest.approx(3 / 4)
    assert metrics.anah_score_released == pytest.approx(1 - 1 / 6)
    assert metrics.intervals["factscore"].resamples == 200
    records = records_of(judgments, requests, buckets=[{"split": "a"}, {"split": "b"}, {"split": "b"}])
    assert breakdown(records, "split", resamples=0)["b"].respond_ratio == 0.5


class ShortBackend:
    name = "short"

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(backend=self.name)

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        return []


def test_a_backend_that_drops_requests_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="0 judgments for 1 requests"):
        score_responses(ShortBackend(), [JudgeRequest(response="x")])
