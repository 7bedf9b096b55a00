"""Best-of-N order: by the chosen metric (ANAH score by default, or F1@K with one K), answers without it last,
then more supported facts, then draw order."""

from __future__ import annotations

import pytest

from maskdpo.server.judge.metrics import FactualityMetrics, compute_metrics
from maskdpo.server.judge.ranking import RANKINGS, best_first
from maskdpo.server.judge.records import ResponseFacts
from maskdpo.trainer.labels import LabelCounts


def answer(ok: int, wrong: int, nofact: int = 0, abstained: bool = False) -> FactualityMetrics:
    counts = LabelCounts(ok=ok, contradictory=wrong, nofact=nofact)
    return compute_metrics([ResponseFacts(supported=ok, unsupported=wrong, counts=counts, abstained=abstained,
                                          checked=ok + wrong)], resamples=0)


def test_higher_anah_first_and_answers_without_a_score_last() -> None:
    answers = [
        answer(1, 1),  # 0: ANAH 0.5
        answer(0, 0, nofact=2),  # 1: no fact: no ANAH score
        answer(3, 0),  # 2: ANAH 1.0
        answer(0, 2),  # 3: ANAH 0.0, still above an answer without a score
        answer(0, 0, abstained=True),  # 4: a refusal
        answer(2, 1),  # 5: ANAH 0.67
    ]
    assert answers[1].anah_score is None and answers[4].anah_score is None
    assert best_first(answers) == [2, 5, 0, 3, 1, 4]


def test_ties_go_to_more_supported_facts_then_to_the_earlier_draw() -> None:
    answers = [answer(1, 0), answer(3, 0), answer(2, 2), answer(1, 1), answer(3, 0)]
    assert best_first(answers) == [1, 4, 0, 2, 3]
    assert best_first([]) == []


def test_f1_at_k_lets_more_correct_facts_beat_a_short_precise_answer() -> None:
    """A short answer with one correct fact beats a long one with 6 correct and 1 wrong on ANAH score, not on
    F1@K with K = 5 (the recall term): the long one says five more true things."""
    short, long, wrong = answer(1, 0), answer(6, 1), answer(0, 3)
    assert best_first([short, long, wrong]) == [0, 1, 2]
    assert best_first([short, long, wrong], by="f1_at_k", k=5) == [1, 0, 2]
    assert best_first([short, long, wrong], by="f1_at_k", k=1) == [0, 1, 2]  # K = 1: recall full for both
    assert best_first([answer(0, 0, nofact=2), short], by="f1_at_k", k=5) == [1, 0]  # no facts: last
    assert RANKINGS[0] == "anah_score"  # the default stays the paper's
    with pytest.raises(ValueError, match="cannot rank by 'length'"):
        best_first([short], by="length")
