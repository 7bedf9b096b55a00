"""Pair building: best vs worst by preference score, margins, tie-breaks, degenerate pairs, counts."""

from __future__ import annotations

from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.pairs import (
    Degenerate,
    JudgedSample,
    PairConfig,
    PairRule,
    PairStats,
    PreferencePair,
    admit_pair,
    build_pairs,
)
from maskdpo.trainer.token_masks import MaskRule

OK, BAD, UNV, NOF = (
    SentenceLabel.OK,
    SentenceLabel.CONTRADICTORY,
    SentenceLabel.UNVERIFIABLE,
    SentenceLabel.NOFACT,
)


def _sample(labels: list[SentenceLabel], sample_id: str, extra: str = "") -> JudgedSample:
    text = " ".join(f"S{i}." for i in range(len(labels))) + extra
    sents = tuple(LabeledSentence(Span(4 * i, 4 * i + 3), lab) for i, lab in enumerate(labels))
    return JudgedSample("Who?", text, sents, sample_id)


def test_best_and_worst_with_tie_breaks() -> None:
    samples = [
        _sample([OK, BAD], "a"),  # 0.5
        _sample([OK, OK], "b", extra=" and a long tail"),  # 1.0, 2 ok, 23 chars
        _sample([OK, OK, NOF], "c"),  # 1.0, 2 ok, 11 chars
        _sample([BAD, UNV], "d"),  # 0.0, 2 incorrect
        _sample([BAD], "e"),  # 0.0, 1 incorrect
        _sample([NOF], "f"),  # no score
    ]
    pairs, stats = build_pairs([("p1", samples)])
    assert len(pairs) == 1 and stats.pairs == 1 and not stats.dropped
    pair = pairs[0]
    # b and c tie on score and ok count; the shorter response (c) wins
    assert len(samples[2].response) < len(samples[1].response)
    assert pair.chosen == samples[2].response
    assert pair.rejected == samples[3].response  # more incorrect sentences than e
    assert (pair.chosen_score, pair.rejected_score) == (1.0, 0.0)
    assert pair.source == "p1"


def test_margin_and_too_few_samples_are_counted() -> None:
    close = [_sample([OK, OK, BAD], "a"), _sample([OK, BAD], "b")]  # 0.667 vs 0.5
    equal = [_sample([OK], "a"), _sample([OK, OK], "b")]
    lonely = [_sample([OK], "a"), _sample([NOF], "b")]
    pairs, stats = build_pairs(
        [("close", close), ("equal", equal), ("lonely", lonely)], PairConfig(min_margin=0.3)
    )
    assert pairs == []
    assert stats.dropped == {
        "margin_below_minimum": 1,
        "no_score_difference": 1,
        "fewer_than_two_scored_samples": 1,
    }
    assert stats.prompts == 3


def test_degenerate_pairs_by_option() -> None:
    # chosen states no ok fact, rejected states no incorrect one (an imported pair can look like this)
    empty_both = PreferencePair(
        "Who?", "S0.", "S0.", (LabeledSentence(Span(0, 3), NOF),), (LabeledSentence(Span(0, 3), OK),)
    )
    one_sided = PreferencePair(
        "Who?", "S0.", "S0.", (LabeledSentence(Span(0, 3), NOF),), (LabeledSentence(Span(0, 3), BAD),)
    )
    outcomes = {}
    for option in Degenerate:
        stats = PairStats()
        kept = [p for p in (empty_both, one_sided) if admit_pair(p, PairConfig(degenerate=option), stats)]
        outcomes[option] = (len(kept), stats.degenerate_kept, dict(stats.dropped))
    assert outcomes[Degenerate.KEEP] == (2, 2, {})
    assert outcomes[Degenerate.DROP_BOTH] == (1, 1, {"degenerate_both_empty": 1})
    assert outcomes[Degenerate.DROP_ANY] == (
        0,
        0,
        {"degenerate_both_empty": 1, "degenerate_one_side_empty": 1},
    )
    # under the released rule no-fact sentences are kept: only the rejected side of empty_both stays empty
    stats = PairStats()
    assert admit_pair(empty_both, PairConfig(mask_rule=MaskRule.RELEASED), stats) is empty_both
    assert admit_pair(one_sided, PairConfig(mask_rule=MaskRule.RELEASED), stats) is one_sided
    assert stats.degenerate_kept == 1 and stats.pairs == 2


def _facts(labels: list[SentenceLabel], sample_id: str, correct: int, incorrect: int) -> JudgedSample:
    plain = _sample(labels, sample_id, extra=f" ({sample_id})")
    return JudgedSample(plain.prompt, plain.response, plain.sentences, sample_id, (correct, incorrect))


def test_no_fewer_correct_never_prefers_an_answer_with_fewer_true_sentences() -> None:
    samples = [
        _sample([OK], "terse"),  # 1.0 but one true sentence
        _sample([OK, OK, OK, BAD], "full"),  # 0.75, three true sentences
        _sample([OK, OK, BAD, BAD], "worst"),  # 0.5, two true sentences
    ]
    [precision], _ = build_pairs([("p", samples)])
    assert precision.chosen == samples[0].response and precision.rejected == samples[2].response
    [honest], stats = build_pairs([("p", samples)], PairConfig(rule=PairRule.NO_FEWER_CORRECT))
    assert honest.chosen == samples[1].response and honest.rejected == samples[2].response
    assert (honest.chosen_score, honest.rejected_score) == (0.75, 0.5) and stats.pairs == 1
    # when every better answer states fewer true sentences than the worst one, there is no pair
    only_terse = [samples[0], samples[2]]
    pairs, stats = build_pairs([("p", only_terse)], PairConfig(rule=PairRule.NO_FEWER_CORRECT))
    assert pairs == [] and stats.dropped == {"no_chosen_with_as_many_correct": 1}
    # equally good samples are still dropped for having no score difference
    equal = [_sample([OK], "a"), _sample([OK, OK], "b")]
    pairs, stats = build_pairs([("p", equal)], PairConfig(rule=PairRule.NO_FEWER_CORRECT))
    assert pairs == [] and stats.dropped == {"no_score_difference": 1}


def test_fact_counts_replace_sentence_counts_when_the_judge_gives_them() -> None:
    # "X is a lawyer at Y." is one ok sentence but two correct facts
    combined = _facts([OK], "combined", correct=2, incorrect=0)
    split_short = _facts([OK], "one-fact", correct=1, incorrect=0)
    worst = _facts([OK, BAD], "worst", correct=2, incorrect=1)
    assert (combined.correct, split_short.correct, worst.correct) == (2, 1, 2)
    assert _sample([OK, OK, BAD], "x").correct == 2 and _sample([OK, OK, BAD], "x").incorrect == 1
    # by precision the shorter one-fact answer wins the tie; it states fewer facts than the rejected one
    [by_precision], _ = build_pairs([("p", [split_short, combined, worst])])
    assert by_precision.chosen == split_short.response
    [pair], _ = build_pairs(
        [("p", [split_short, combined, worst])], PairConfig(rule=PairRule.NO_FEWER_CORRECT)
    )
    assert pair.chosen == combined.response and pair.source == "p"
    pairs, stats = build_pairs([("p", [split_short, worst])], PairConfig(rule=PairRule.NO_FEWER_CORRECT))
    assert pairs == [] and stats.dropped["no_chosen_with_as_many_correct"] == 1


def test_net_correct_rewards_more_true_facts_then_precision() -> None:
    samples = [
        _facts([OK], "terse", correct=1, incorrect=0),  # net 1, precision 1.0
        _facts([OK, OK, OK, BAD], "full", correct=4, incorrect=1),  # net 3, precision 0.75
        _facts([OK, OK, OK], "full-clean", correct=3, incorrect=0),  # net 3, precision 1.0
        _facts([BAD, BAD, OK], "worst", correct=1, incorrect=2),  # net -1, precision 0.33
    ]
    [pair], stats = build_pairs([("p", samples)], PairConfig(rule=PairRule.NET_CORRECT))
    assert pair.chosen == samples[2].response  # net ties with "full"; higher precision wins
    assert pair.rejected == samples[3].response and stats.pairs == 1
    # the worst-precision sample can also have the best net count: then no pair (no score difference)
    pairs, stats = build_pairs(
        [("p", [_facts([OK, BAD], "a", 5, 1), _facts([OK], "b", 1, 0)])],
        PairConfig(rule=PairRule.NET_CORRECT),
    )
    assert pairs == [] and stats.dropped == {"no_score_difference": 1}
