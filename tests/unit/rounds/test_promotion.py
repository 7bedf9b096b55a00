"""The promotion rule: a metric gain by a margin AND no large fall in correct sentences per answer."""

from __future__ import annotations

from maskdpo.server.rounds.config import Promotion
from maskdpo.server.rounds.promotion import decide
from maskdpo.v1 import alignment_pb2


def ev(score: float | None, correct: float) -> alignment_pb2.Evaluation:
    e = alignment_pb2.Evaluation(correct_per_answer=correct, answers=10)
    if score is not None:
        e.anah_score = score
        e.factscore = score / 2
    return e


def test_promotes_on_gain_with_kept_correct_sentences() -> None:
    assert decide(Promotion(), ev(0.5, 3.0), ev(0.6, 2.9)).promote


def test_gain_below_margin_does_not_promote() -> None:
    d = decide(Promotion(min_improvement=0.2), ev(0.5, 3.0), ev(0.6, 3.0))
    assert not d.promote and "did not improve enough" in d.reason


def test_saying_less_does_not_promote() -> None:
    d = decide(Promotion(), ev(0.5, 3.0), ev(1.0, 1.0))  # perfect score by dropping most sentences
    assert not d.promote and "fell too far" in d.reason


def test_metric_setting_is_used() -> None:
    rule = Promotion(metric="factscore", min_improvement=0.06)
    assert not decide(rule, ev(0.5, 3.0), ev(0.6, 3.0)).promote  # factscore gain 0.05
    assert decide(rule, ev(0.5, 3.0), ev(0.7, 3.0)).promote


def test_undefined_candidate_metric_never_promotes() -> None:
    d = decide(Promotion(min_improvement=-1.0, max_correct_drop=1.0), ev(0.5, 1.0), ev(None, 0.0))
    assert not d.promote and "undefined" in d.reason
