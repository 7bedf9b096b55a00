"""Metric definitions on hand-computed examples and the edge cases of docs/metrics.md."""

from __future__ import annotations

import math

import pytest

from maskdpo.server.judge.metrics import (
    MISSING_GROUP,
    breakdown,
    choose_k,
    compute_metrics,
    f1_at_k,
    length_penalty,
)
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.types import JudgeIdentity, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabelCounts, LabeledSentence, SentenceLabel, Span

L = SentenceLabel


def run() -> list[ResponseFacts]:
    return [
        ResponseFacts(
            3, 1, LabelCounts(ok=2, contradictory=1, nofact=1), topic="a", buckets={"rarity": "rare"}
        ),
        ResponseFacts(10, 0, LabelCounts(ok=4, unverifiable=1), topic="b", buckets={"rarity": "freq"}),
        ResponseFacts(0, 0, abstained=True, topic="a", buckets={"rarity": "rare"}),
        ResponseFacts(0, 0, LabelCounts(nofact=2), topic="c"),
        ResponseFacts(0, 0, LabelCounts(ok=3), judged=False, topic="c"),
    ]


def test_length_penalty_rule_and_edges() -> None:
    assert length_penalty(5, 10) == pytest.approx(math.exp(-1.0))
    assert length_penalty(10, 10) == 1.0  # n = gamma: exp(1 - 1) = 1, either reading of the rule
    assert length_penalty(11, 10) == 1.0
    assert length_penalty(1, 0) == 1.0  # gamma = 0 disables the penalty
    with pytest.raises(ValueError, match="at least one fact"):
        length_penalty(0, 10)
    with pytest.raises(ValueError, match="gamma"):
        length_penalty(3, -1)


def test_hand_computed_run() -> None:
    m = compute_metrics(run(), gamma=10, resamples=0)
    assert (m.n_responses, m.n_responding, m.n_scored) == (5, 3, 2)
    assert (m.n_refused, m.n_zero_facts, m.n_unjudged) == (1, 1, 1)
    assert m.respond_ratio == pytest.approx(3 / 5)
    assert m.factscore == pytest.approx((0.75 * math.exp(1 - 10 / 4) + 1.0) / 2)
    assert m.factscore_no_penalty == pytest.approx((0.75 + 1.0) / 2)
    assert m.facts_per_response == pytest.approx(7.0)
    assert m.micro_precision == pytest.approx(13 / 14)
    assert (m.supported, m.facts) == (13, 14)
    assert m.anah_score == pytest.approx(6 / 8)  # the unjudged response's sentences are not used
    assert m.anah_score_released == pytest.approx(1 - 2 / 11)
    assert (m.k, m.k_source) == (7.0, "median")
    # F1@7: 6/11 and 1 for the scored ones, 0 for the refusal and the zero-fact one; unjudged left out.
    assert m.f1_at_k == pytest.approx((6 / 11 + 1.0) / 4)
    assert m.counts == LabelCounts(ok=9, contradictory=1, unverifiable=1, nofact=3)
    assert m.per_response_counts[0] == LabelCounts(ok=2, contradictory=1, nofact=1)
    assert m.intervals == {}


def test_gamma_zero_equals_no_penalty_and_both_are_reported() -> None:
    m = compute_metrics(run(), gamma=0, resamples=0)
    assert m.factscore == m.factscore_no_penalty == pytest.approx(0.875)
    assert m.gamma == 0.0


def test_given_k_is_recorded() -> None:
    m = compute_metrics(run(), k=3, resamples=0)
    assert (m.k, m.k_source) == (3.0, "given")
    assert m.f1_at_k == pytest.approx((f1_at_k(3, 1, 3) + 1.0) / 4)
    assert f1_at_k(3, 1, 3) == pytest.approx(2 * 0.75 / 1.75)
    with pytest.raises(ValueError, match="K must be > 0"):
        compute_metrics(run(), k=0)


def test_empty_run_has_no_values_not_zeros() -> None:
    m = compute_metrics([], resamples=1000)
    assert m.n_responses == 0
    assert all(m.value(name) is None for name in ("factscore", "respond_ratio", "f1_at_k", "anah_score"))
    assert choose_k([]) == (None, "none")


def test_all_abstained_run() -> None:
    m = compute_metrics([ResponseFacts(0, 0, abstained=True)] * 3, resamples=100)
    assert m.respond_ratio == 0.0
    assert m.factscore is None and m.micro_precision is None and m.k is None and m.f1_at_k is None


def test_refusal_is_not_responding_even_with_facts() -> None:
    record = ResponseFacts(1, 1, abstained=True)
    assert not record.responding and not record.scored


def test_bad_record_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"ResponseFacts\.supported"):
        ResponseFacts(-1, 0)


def test_breakdown_by_topic_and_bucket_with_missing_group() -> None:
    by_topic = breakdown(run(), "topic", resamples=0)
    assert set(by_topic) == {"a", "b", "c"}
    assert by_topic["a"].respond_ratio == 0.5 and by_topic["a"].factscore_no_penalty == 0.75
    assert by_topic["a"].k == 7.0  # K of the whole run
    by_rarity = breakdown(run(), "rarity", resamples=0)
    assert set(by_rarity) == {"rare", "freq", MISSING_GROUP}
    assert by_rarity[MISSING_GROUP].n_responses == 2


def sentence(
    label: SentenceLabel, parsed: bool = True, facts: int = 1, supported: int = 0, matched: bool = True
) -> SentenceVerdict:
    return SentenceVerdict(
        LabeledSentence(Span(0, 1), label, parsed=parsed), facts=facts, supported=supported, matched=matched
    )


IDENTITY = JudgeIdentity(backend="test")


def test_from_judgment_sentence_unit_and_unparsed_never_correct() -> None:
    judgment = Judgment(
        "x",
        (
            sentence(L.OK),
            sentence(L.CONTRADICTORY),
            sentence(L.NOFACT),
            sentence(L.UNVERIFIABLE, parsed=False),
        ),
        IDENTITY,
    )
    record = from_judgment(judgment, topic="t", buckets={"lang": "en"})
    assert (record.supported, record.unsupported, record.unparsed) == (1, 2, 1)
    assert record.counts == LabelCounts(ok=1, contradictory=1, unverifiable=1, nofact=1)
    assert record.topic == "t" and record.buckets == {"lang": "en"}
    with pytest.raises(ValueError, match="unparsed judge answer but is labelled ok"):
        from_judgment(Judgment("x", (sentence(L.OK, parsed=False),), IDENTITY))


def test_from_judgment_fact_unit() -> None:
    judgment = Judgment(
        "x", (sentence(L.OK, facts=2, supported=2), sentence(L.CONTRADICTORY, facts=3, supported=1)), IDENTITY
    )
    record = from_judgment(judgment, unit="fact")
    assert (record.supported, record.unsupported) == (3, 2)
    with pytest.raises(ValueError, match="supported=4"):
        from_judgment(Judgment("x", (sentence(L.OK, facts=2, supported=4),), IDENTITY), unit="fact")


def test_empty_response_and_refusal_judgments_abstain() -> None:
    empty = from_judgment(Judgment("", (), IDENTITY))
    assert empty.facts == 0 and not empty.responding
    refusal = from_judgment(Judgment("I'm sorry.", (sentence(L.NOFACT),), IDENTITY, abstained=True))
    assert not refusal.responding
    m = compute_metrics([empty, refusal], judge=IDENTITY, resamples=0)
    assert m.respond_ratio == 0.0 and m.judge == IDENTITY
    assert m.anah_score is None and m.anah_score_released == 1.0


def test_coverage_counts_and_uncheckable_answers() -> None:
    """checked = matched, parsed, fact-stating sentences; unmatched = matched=False (whatever the fallback
    label); an answer with unmatched sentences and none checked is responding but never scored."""
    mixed = from_judgment(Judgment("x", (
        sentence(L.OK), sentence(L.UNVERIFIABLE, matched=False), sentence(L.NOFACT),
        sentence(L.UNVERIFIABLE, parsed=False),
    ), IDENTITY))
    assert (mixed.checked, mixed.unmatched, mixed.unparsed, mixed.uncheckable, mixed.scored) == (1, 1, 1, False, True)
    unverifiable = from_judgment(Judgment("x", (sentence(L.UNVERIFIABLE, matched=False),), IDENTITY))
    nofact = from_judgment(Judgment("x", (sentence(L.NOFACT, facts=0, matched=False),), IDENTITY))
    for record in (unverifiable, nofact):  # the natural extractor's fallback and the template extractor's
        assert record.uncheckable and record.responding and not record.scored and not record.abstained
    refused = from_judgment(Judgment("x", (sentence(L.UNVERIFIABLE, matched=False),), IDENTITY, abstained=True))
    assert not refused.uncheckable and not refused.responding
    m = compute_metrics([mixed, unverifiable, nofact, refused], resamples=200)
    assert (m.n_responses, m.n_responding, m.n_scored, m.n_refused) == (4, 3, 1, 1)
    assert (m.n_uncheckable, m.n_zero_facts, m.n_checked, m.n_unmatched, m.n_unparsed) == (2, 0, 1, 4, 1)
    assert m.respond_ratio == pytest.approx(3 / 4)
    assert m.factscore_no_penalty == pytest.approx(1 / 3)  # the mixed answer only: 1 ok of 3 facts
    assert m.anah_score == pytest.approx(1 / 4) and m.facts == 3  # ANAH counts the refusal's sentence too
    assert m.f1_at_k is not None and m.intervals["factscore"].resamples == 200
