"""The sentence-label vocabulary shared by the judge, the masks and the metrics.

A judged response is a list of :class:`LabeledSentence`: a character span of the response text and one of
four labels (ANAH-v2 style). Everything downstream (token masks, pair scores, factuality metrics) reads
these types; nothing else defines its own label strings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class SentenceLabel(enum.StrEnum):
    """What the judge found for one sentence."""

    OK = "ok"
    """States a fact that the knowledge supports."""
    CONTRADICTORY = "contradictory"
    """States a fact that the knowledge contradicts."""
    UNVERIFIABLE = "unverifiable"
    """States a checkable fact that the knowledge neither supports nor contradicts."""
    NOFACT = "nofact"
    """States no checkable fact (greetings, opinions, filler)."""

    @property
    def is_incorrect(self) -> bool:
        """Contradictory and unverifiable sentences both count as incorrect (hallucinated)."""
        return self in (SentenceLabel.CONTRADICTORY, SentenceLabel.UNVERIFIABLE)

    @property
    def is_fact(self) -> bool:
        return self is not SentenceLabel.NOFACT

    @classmethod
    def parse(cls, value: str) -> SentenceLabel:
        """Parse a label name, case-insensitively; raise ValueError naming the allowed values."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(label.value for label in cls)
            raise ValueError(f"unknown sentence label {value!r}; expected one of: {allowed}") from None


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character span ``[start, end)`` of a response text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def text_of(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True, slots=True)
class LabeledSentence:
    """One sentence of a response: where it is and what the judge said about it."""

    span: Span
    label: SentenceLabel
    text: str = ""
    """The sentence's text (``response[span.start:span.end]``), kept for reports and debugging."""
    parsed: bool = True
    """False when the judge could not reach a verdict for this sentence (its answer could not be read, or
    the question could not be asked). The label is then only the judge's fallback (never ``ok``): the
    sentence is neutral in both masks, and metrics report how many there were."""
    wrong_spans: tuple[Span, ...] = ()
    """Character spans (relative to the response, inside this sentence) of the values the judge found wrong,
    when it checks claims and knows where their values are; claim-level masks then keep only these tokens
    of a kept rejected sentence. Empty: no claim spans, the whole sentence counts."""


@dataclass(frozen=True, slots=True)
class LabelCounts:
    """How many sentences of one or more responses carry each label."""

    ok: int = 0
    contradictory: int = 0
    unverifiable: int = 0
    nofact: int = 0

    @classmethod
    def of(cls, labels: Iterable[SentenceLabel]) -> LabelCounts:
        counts = dict.fromkeys(SentenceLabel, 0)
        for label in labels:
            counts[label] += 1
        return cls(
            ok=counts[SentenceLabel.OK],
            contradictory=counts[SentenceLabel.CONTRADICTORY],
            unverifiable=counts[SentenceLabel.UNVERIFIABLE],
            nofact=counts[SentenceLabel.NOFACT],
        )

    @property
    def incorrect(self) -> int:
        return self.contradictory + self.unverifiable

    @property
    def total(self) -> int:
        return self.ok + self.contradictory + self.unverifiable + self.nofact

    def __add__(self, other: LabelCounts) -> LabelCounts:
        return LabelCounts(
            self.ok + other.ok,
            self.contradictory + other.contradictory,
            self.unverifiable + other.unverifiable,
            self.nofact + other.nofact,
        )


def preference_score(sentences: Sequence[LabeledSentence]) -> float | None:
    """The pair-building score of one response: ok / (ok + incorrect); None when it states no fact."""
    counts = LabelCounts.of(s.label for s in sentences)
    checked = counts.ok + counts.incorrect
    return counts.ok / checked if checked else None
