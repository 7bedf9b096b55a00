"""The promotion rule on constructed evaluations: paired intervals, the chain's start, undecided rounds."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from maskdpo.server.judge.bootstrap import FloatArray
from maskdpo.server.judge.records import ResponseFacts
from maskdpo.server.rounds.comparison import by_metric, compare, differences, side_terms
from maskdpo.server.rounds.config import Promotion
from maskdpo.server.rounds.promotion import Decision, decide, rule_message
from maskdpo.trainer.labels import LabelCounts
from maskdpo.v1 import alignment_pb2

D = alignment_pb2.PromotionDecision


def answers(correct: Sequence[int], incorrect: Sequence[int]) -> list[ResponseFacts]:
    """One record per answer stating ``correct`` true and ``incorrect`` false facts, one per sentence."""
    return [
        ResponseFacts(supported=c, unsupported=w, counts=LabelCounts(ok=c, contradictory=w))
        for c, w in zip(correct, incorrect, strict=True)
    ]


def terms(records: list[ResponseFacts]) -> dict[str, tuple[FloatArray, FloatArray]]:
    return side_terms(records, ["x" * (10 * r.facts) for r in records], k=3.0)


def run(rule: Promotion, start: list[ResponseFacts], candidate: list[ResponseFacts],
        chain: list[ResponseFacts] | None = None) -> Decision:
    a, b = terms(start), terms(candidate)
    versus_start = differences(a, b, seed=0)
    versus_chain = differences(terms(chain), b, seed=0) if chain else versus_start
    return decide(rule, by_metric(versus_start), by_metric(versus_chain), answers=len(start),
                  chain="rounds/first" if chain else "")


N = 200
BASE = answers([3] * N, [3] * N)


def fewer_wrong(records: list[ResponseFacts], every: int) -> list[ResponseFacts]:
    """Every ``every``-th answer states one wrong fact less: a real precision gain."""
    return [
        ResponseFacts(r.supported, r.unsupported - 1, LabelCounts(ok=r.counts.ok, contradictory=r.unsupported - 1))
        if i % every == 0 and r.unsupported else r
        for i, r in enumerate(records)
    ]


def drift(records: list[ResponseFacts], block: int) -> list[ResponseFacts]:
    """A small, noisy fall of correct facts on the answers of ``block``: 16 lose one, 8 gain one (of 200)."""
    out = list(records)
    for j in range(24):
        i = 24 * block + j
        c = out[i].supported + (1 if j % 3 == 0 else -1)
        out[i] = ResponseFacts(c, out[i].unsupported, LabelCounts(ok=c, contradictory=out[i].unsupported))
    return out


def test_a_real_gain_without_fewer_facts_is_promoted() -> None:
    d = run(Promotion(), BASE, fewer_wrong(BASE, 2))
    assert d.outcome == D.PROMOTED and d.promote, d.reason
    assert d.reason.startswith("promoted: anah_score 0.5000 -> ")
    assert "the whole interval reaches the margin" in d.reason


def test_saying_less_is_refused_against_the_start() -> None:
    less = answers([1] * N, [0] * N)  # a perfect score by dropping most sentences
    d = run(Promotion(), BASE, less)
    assert d.outcome == D.REFUSED and not d.promote
    assert "reaches the margin" in d.reason and "a significant fall" in d.reason


def test_a_chain_cannot_drift_down_step_by_step() -> None:
    """Each round's fall of correct facts is within noise against its own start; the second round's
    cumulative fall is not, and the chain's start is what it is judged against."""
    first = fewer_wrong(drift(BASE, 0), 3)
    second = fewer_wrong(drift(first, 1), 3)
    step1 = by_metric(differences(terms(BASE), terms(first), seed=0))["correct_facts_per_answer"]
    step2 = by_metric(differences(terms(first), terms(second), seed=0))["correct_facts_per_answer"]
    total = by_metric(differences(terms(BASE), terms(second), seed=0))["correct_facts_per_answer"]
    assert step1.interval.low < 0 < step1.interval.high  # each step: no significant fall
    assert step2.interval.low < 0 < step2.interval.high
    assert total.interval.high < 0  # together: a significant fall
    assert run(Promotion(), BASE, first).promote
    judged_on_previous = run(Promotion(), first, second)  # what a rule against the previous round would say
    assert judged_on_previous.promote
    d = run(Promotion(), first, second, chain=BASE)
    assert d.outcome == D.REFUSED, d.reason
    assert "against the chain's start (rounds/first) 3.00 -> 2.92" in d.reason
    assert "a significant fall" in d.reason


def test_a_small_evaluation_set_is_undecided_not_promoted() -> None:
    start = answers([3] * 8, [3, 2, 3, 4, 3, 2, 3, 3])
    candidate = answers([3] * 8, [2, 2, 3, 2, 3, 3, 2, 3])  # a gain, by a point estimate
    d = run(Promotion(), start, candidate)
    assert d.outcome == D.UNDECIDED and not d.promote
    assert d.reason.startswith("not promoted (undecided)") and "straddles the margin" in d.reason
    assert "over 8 answers" in d.reason


def test_a_gain_clearly_below_the_margin_is_refused() -> None:
    d = run(Promotion(min_improvement=0.2), BASE, fewer_wrong(BASE, 2))  # gain ~0.07, interval far below 0.2
    assert d.outcome == D.REFUSED and "lies below the margin" in d.reason


def test_the_tolerance_is_a_fraction_of_the_chain_start() -> None:
    fewer = answers([2] * N, [1] * N)  # precision 0.5 -> 0.67, but 3 -> 2 correct facts: a fall of a third
    assert not run(Promotion(), BASE, fewer).promote
    assert not run(Promotion(max_correct_drop=0.2), BASE, fewer).promote
    assert run(Promotion(max_correct_drop=0.4), BASE, fewer).promote


@pytest.mark.parametrize("metric", ["factscore", "f1_at_k"])
def test_the_metric_setting_is_used(metric: str) -> None:
    more_true = answers([4] * N, [3] * N)  # precision up from 0.5 to 0.57, recall (K = 3) full in both
    assert run(Promotion(metric=metric), BASE, more_true).promote
    d = run(Promotion(metric=metric), BASE, BASE)
    assert d.outcome == D.REFUSED and f"{metric} " in d.reason


def test_forcing_both_ways() -> None:
    less = answers([1] * N, [3] * N)
    forced = run(Promotion(min_improvement=-1.0, max_correct_drop=1.0), BASE, less)
    assert forced.promote
    assert not run(Promotion(min_improvement=1.0, max_correct_drop=0.0), BASE, fewer_wrong(BASE, 1)).promote


def test_an_undefined_candidate_metric_never_promotes() -> None:
    silent = answers([0] * N, [0] * N)
    d = run(Promotion(min_improvement=-1.0, max_correct_drop=1.0), BASE, silent)
    assert d.outcome == D.REFUSED and "undefined" in d.reason


def test_compare_builds_every_side_and_fixes_k_on_the_chain_start() -> None:
    texts = ["t"] * N
    evaluations, evidence = compare(
        [("chain_start", "w0", texts, answers([5] * N, [0] * N)), ("before", "w1", texts, BASE),
         ("after", "w2", texts, fewer_wrong(BASE, 2))],
        Promotion(), seed=0, chain_round="rounds/first",
    )
    assert set(evaluations) == {"chain_start", "before", "after"}
    assert {e.f1_k for e in evaluations.values()} == {5.0}  # the median facts of the chain's start
    assert evaluations["before"].correct_facts_per_answer == 3.0 and evaluations["before"].answers == N
    assert evidence.rule == rule_message(Promotion()) and evidence.chain_round == "rounds/first"
    chain = by_metric(evidence.versus_chain_start)["correct_facts_per_answer"]
    assert (chain.baseline, chain.candidate) == (5.0, 3.0)
    assert by_metric(evidence.versus_start)["correct_facts_per_answer"].delta == 0.0
    assert evidence.outcome == D.OUTCOME_UNSPECIFIED  # PROMOTE decides
