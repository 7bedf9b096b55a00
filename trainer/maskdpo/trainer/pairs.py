"""Preference pairs from judged on-policy samples of the same prompt.

Each sample is scored with :func:`~maskdpo.trainer.labels.preference_score` (ok / (ok + incorrect)); a
sample that states no checkable fact has no score and is never chosen or rejected. ``chosen`` = the best
score, ``rejected`` = the worst, and the pair is made only when ``best - worst >= min_margin`` (and > 0).

Tie-breaks (deterministic): among equally good samples the chosen one has the most kept (``ok``) sentences,
then the shortest response, then the lowest sample index; among equally bad samples the rejected one has the
most incorrect sentences, then the shortest response, then the lowest index.

``rule`` (:class:`PairRule`) decides what a good sample is. ``precision`` (default) is the rule above.
``no_fewer_correct`` picks the rejected sample as above, then the chosen one among the samples that state at
least as many correct facts as the rejected one (so a pair never teaches "say fewer true things"; no such
sample drops the pair as ``no_chosen_with_as_many_correct``), by score, then the most correct facts, then
the tie-breaks above. ``net_correct`` picks
the chosen sample by correct minus incorrect facts, then precision, then the tie-breaks above (it rewards
stating more true things, not only fewer false ones); the rejected sample is picked as above. A sample's
correct / incorrect *facts* are its ``fact_counts`` when the judge gave them (the kb judge counts the claims
of "X is a lawyer at Y." as two), else its ``ok`` / incorrect sentences.

A pair is *degenerate* when, under the mask rule, the chosen response keeps no sentence or the rejected one
keeps none: it then carries (almost) no Mask-DPO signal. ``degenerate`` decides: ``keep`` all,
``drop_both`` (default) drops pairs where both sides are empty, ``drop_any`` drops pairs where either is.
Everything dropped is counted by reason in :class:`PairStats`.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from maskdpo.trainer.labels import LabelCounts, LabeledSentence, SentenceLabel, Span, preference_score
from maskdpo.trainer.token_masks import MaskRule, Role, sentence_is_kept

Prompt = str | list[dict[str, Any]]


class PairRule(enum.StrEnum):
    PRECISION = "precision"
    NO_FEWER_CORRECT = "no_fewer_correct"
    NET_CORRECT = "net_correct"


class Degenerate(enum.StrEnum):
    KEEP = "keep"
    DROP_BOTH = "drop_both"
    DROP_ANY = "drop_any"


@dataclass(frozen=True, slots=True)
class JudgedSample:
    """One sampled response to a prompt, with its judged sentences (spans index ``response``)."""

    prompt: Prompt
    response: str
    sentences: tuple[LabeledSentence, ...]
    sample_id: str = ""
    fact_counts: tuple[int, int] | None = None
    """(correct, incorrect) facts the judge found, when it counts facts; None = count sentences."""

    @property
    def correct(self) -> int:
        if self.fact_counts is not None:
            return self.fact_counts[0]
        return sum(x.label is SentenceLabel.OK for x in self.sentences)

    @property
    def incorrect(self) -> int:
        if self.fact_counts is not None:
            return self.fact_counts[1]
        return sum(x.label.is_incorrect for x in self.sentences)


@dataclass(frozen=True, slots=True)
class PreferencePair:
    prompt: Prompt
    chosen: str
    rejected: str
    chosen_sentences: tuple[LabeledSentence, ...]
    rejected_sentences: tuple[LabeledSentence, ...]
    chosen_score: float | None = None
    rejected_score: float | None = None
    source: str = ""
    """Where the pair came from (file:line, prompt id), for reports and errors."""

    def to_record(self, conversational: bool | None = None) -> dict[str, Any]:
        """The TRL preference-dataset row plus the sentence columns the Mask-DPO trainer reads."""
        chat = isinstance(self.prompt, list) if conversational is None else conversational
        prompt: Prompt = self.prompt
        if chat and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not chat and isinstance(prompt, list):
            raise ValueError(f"{self.source}: a chat prompt cannot be exported as plain text")
        return {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": self.chosen}] if chat else self.chosen,
            "rejected": [{"role": "assistant", "content": self.rejected}] if chat else self.rejected,
            "chosen_sentences": sentences_to_rows(self.chosen_sentences),
            "rejected_sentences": sentences_to_rows(self.rejected_sentences),
        }


def sentences_to_rows(sentences: Sequence[LabeledSentence]) -> list[dict[str, Any]]:
    """JSON rows of labelled sentences (``"parsed": false`` only on sentences without a verdict; ``"wrong":
    [[start, end], ...]`` only on sentences with wrong-value spans)."""
    return [
        {"start": s.span.start, "end": s.span.end, "label": s.label.value}
        | ({} if s.parsed else {"parsed": False})
        | ({"wrong": [[w.start, w.end] for w in s.wrong_spans]} if s.wrong_spans else {})
        for s in sentences
    ]


def sentences_from_rows(
    rows: Sequence[dict[str, Any]], text: str | None = None
) -> tuple[LabeledSentence, ...]:
    """Labelled sentences from :func:`sentences_to_rows`' rows. A missing or null ``parsed`` / ``wrong`` (a
    datasets table fills keys absent from a row with null) means parsed / no wrong-value spans."""
    out = []
    for row in rows:
        span = Span(int(row["start"]), int(row["end"]))
        wrong = tuple(Span(int(start), int(end)) for start, end in row.get("wrong") or ())
        out.append(
            LabeledSentence(span, SentenceLabel.parse(str(row["label"])), span.text_of(text) if text else "",
                            parsed=row.get("parsed") is not False, wrong_spans=wrong)
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class PairConfig:
    min_margin: float = 0.0
    degenerate: Degenerate = Degenerate.DROP_BOTH
    mask_rule: MaskRule = MaskRule.DEFAULT
    rule: PairRule = PairRule.PRECISION


@dataclass(slots=True)
class PairStats:
    """What pair building produced: pairs, what was dropped and why, how much of each side is kept."""

    prompts: int = 0
    pairs: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    degenerate_kept: int = 0
    skipped_samples: Counter[str] = field(default_factory=Counter)
    """Samples left out before pairing (e.g. a model abstained), by reason."""
    kept_chars_chosen: int = 0
    total_chars_chosen: int = 0
    kept_chars_rejected: int = 0
    total_chars_rejected: int = 0
    labels: LabelCounts = field(default_factory=LabelCounts)

    @property
    def kept_fraction_chosen(self) -> float:
        return self.kept_chars_chosen / self.total_chars_chosen if self.total_chars_chosen else 0.0

    @property
    def kept_fraction_rejected(self) -> float:
        return self.kept_chars_rejected / self.total_chars_rejected if self.total_chars_rejected else 0.0

    def summary(self) -> str:
        why = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items())) or "none"
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped_samples.items())) or "none"
        return (
            f"{self.pairs} pairs from {self.prompts} prompts; dropped: {why}; samples skipped: {skipped}; degenerate kept: "
            f"{self.degenerate_kept}; kept fraction (chars) chosen {self.kept_fraction_chosen:.3f}, "
            f"rejected {self.kept_fraction_rejected:.3f}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "pairs": self.pairs,
            "dropped": dict(self.dropped),
            "degenerate_kept": self.degenerate_kept,
            "skipped_samples": dict(self.skipped_samples),
            "kept_fraction_chosen": self.kept_fraction_chosen,
            "kept_fraction_rejected": self.kept_fraction_rejected,
        }


def _kept(sentences: Sequence[LabeledSentence], role: Role, rule: MaskRule) -> list[LabeledSentence]:
    return [s for s in sentences if sentence_is_kept(s.label, role, rule, s.parsed)]


def pair_for_prompt(
    samples: Sequence[JudgedSample], config: PairConfig, stats: PairStats, source: str = ""
) -> PreferencePair | None:
    """The best-vs-worst pair of one prompt's samples, or None (the reason is counted in ``stats``)."""
    stats.prompts += 1
    for s in samples:
        stats.labels = stats.labels + LabelCounts.of(x.label for x in s.sentences)
    scored: list[tuple[float, int, JudgedSample]] = []
    for i, s in enumerate(samples):
        score = preference_score(s.sentences)
        if score is not None:
            scored.append((score, i, s))
    if len(scored) < 2:
        stats.dropped["fewer_than_two_scored_samples"] += 1
        return None

    def ok(s: JudgedSample) -> int:
        return sum(x.label is SentenceLabel.OK for x in s.sentences)

    def bad(s: JudgedSample) -> int:
        return sum(x.label.is_incorrect for x in s.sentences)

    worst = min(scored, key=lambda t: (t[0], -bad(t[2]), len(t[2].response), t[1]))
    candidates = scored
    if config.rule is PairRule.NO_FEWER_CORRECT:
        candidates = [t for t in scored if t[2].correct >= worst[2].correct and t[0] > worst[0]]
        if not candidates and any(t[0] > worst[0] for t in scored):
            stats.dropped["no_chosen_with_as_many_correct"] += 1
            return None
        candidates = candidates or [worst]  # all equally good: dropped below for no score difference
    if config.rule is PairRule.NET_CORRECT:
        best = min(
            scored,
            key=lambda t: (t[2].incorrect - t[2].correct, -t[0], -ok(t[2]), len(t[2].response), t[1]),
        )
    elif config.rule is PairRule.NO_FEWER_CORRECT:
        best = min(candidates, key=lambda t: (-t[0], -t[2].correct, -ok(t[2]), len(t[2].response), t[1]))
    else:
        best = min(candidates, key=lambda t: (-t[0], -ok(t[2]), len(t[2].response), t[1]))
    margin = best[0] - worst[0]
    if margin <= 0 or margin < config.min_margin:
        stats.dropped["margin_below_minimum" if margin > 0 else "no_score_difference"] += 1
        return None
    chosen, rejected = best[2], worst[2]
    pair = PreferencePair(
        prompt=chosen.prompt,
        chosen=chosen.response,
        rejected=rejected.response,
        chosen_sentences=chosen.sentences,
        rejected_sentences=rejected.sentences,
        chosen_score=best[0],
        rejected_score=worst[0],
        source=source or chosen.sample_id,
    )
    return admit_pair(pair, config, stats)


def admit_pair(pair: PreferencePair, config: PairConfig, stats: PairStats) -> PreferencePair | None:
    """Apply the degenerate-pair option to a built or imported pair and add it to ``stats``.

    Pairs built by score are never degenerate under the ``default`` rule (the chosen response has an ``ok``
    sentence, the rejected one an incorrect sentence); imported pairs can be.
    """
    kept_c = _kept(pair.chosen_sentences, Role.CHOSEN, config.mask_rule)
    kept_r = _kept(pair.rejected_sentences, Role.REJECTED, config.mask_rule)
    empty = (not kept_c) + (not kept_r)
    if empty and config.mask_rule is not MaskRule.ALL:
        if config.degenerate is Degenerate.DROP_ANY or (
            empty == 2 and config.degenerate is Degenerate.DROP_BOTH
        ):
            stats.dropped["degenerate_both_empty" if empty == 2 else "degenerate_one_side_empty"] += 1
            return None
        stats.degenerate_kept += 1
    stats.pairs += 1
    stats.kept_chars_chosen += sum(s.span.end - s.span.start for s in kept_c)
    stats.total_chars_chosen += len(pair.chosen)
    stats.kept_chars_rejected += sum(s.span.end - s.span.start for s in kept_r)
    stats.total_chars_rejected += len(pair.rejected)
    return pair


def build_pairs(
    groups: Sequence[tuple[str, Sequence[JudgedSample]]], config: PairConfig | None = None
) -> tuple[list[PreferencePair], PairStats]:
    """One pair per prompt group ``(name, samples)`` where the rules allow; see the module docstring."""
    config = config or PairConfig()
    stats = PairStats()
    pairs = [
        p for name, samples in groups if (p := pair_for_prompt(samples, config, stats, name)) is not None
    ]
    return pairs, stats
