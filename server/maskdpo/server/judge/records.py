"""The per-response record every factuality metric is computed from.

A :class:`ResponseFacts` says, for one judged response, how many checkable facts it states, how many of
them the knowledge supports, its sentence-label counts, and whether the model abstained. It is built from a
:class:`~maskdpo.server.judge.types.Judgment` (:func:`from_judgment`) or directly from atomic-fact counts
(the constructor), so the same metric code serves sentence-level and atomic-fact judges.

States of a response (see docs/metrics.md):

- *abstained*: an explicit refusal ("I could not find information about ..."), or no checkable fact at all;
- *uncheckable*: not a refusal, states something, but the judge matched none of its sentences to its
  knowledge or claim patterns (``unmatched > 0`` and ``checked == 0``). Not an abstention: it counts as
  responding, but gets no score (the judge cannot tell whether it is right), and metrics report how many;
- *responding*: not abstained;
- *unjudged* (``judged=False``): the model answered but the judge gave no usable verdict for the response
  as a whole (e.g. human annotators skipped it). It counts as responding but gets no score; metrics report
  how many there were instead of silently dropping or crediting them;
- *scored*: responding, judged and checkable, hence with at least one fact: the items FActScore averages
  over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from maskdpo.server.judge.types import Judgment
from maskdpo.trainer.labels import LabelCounts, SentenceLabel


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the metrics need to know about one judged response."""

    supported: int
    """Facts the knowledge supports (S)."""
    unsupported: int
    """Facts stated but not supported: contradicted, unverifiable, irrelevant or undecided (N)."""
    counts: LabelCounts = field(default_factory=LabelCounts)
    """Sentence-label counts (all zero when the judge works on atomic facts only)."""
    abstained: bool = False
    """An explicit refusal (see :mod:`maskdpo.server.judge.abstention`)."""
    judged: bool = True
    """False when the judge gave no usable verdict for the response as a whole."""
    unparsed: int = 0
    """Sentences whose judge answer could not be parsed (already counted as unsupported)."""
    checked: int = 0
    """Fact-stating sentences with a verdict against the knowledge: parsed and matched."""
    unmatched: int = 0
    """Sentences that state something the judge could not match to its knowledge or claim patterns."""
    topic: str = ""
    buckets: Mapping[str, str] = field(default_factory=dict)
    """Grouping keys for breakdowns, e.g. ``{"rarity": "rare", "domain": "sports"}``."""

    def __post_init__(self) -> None:
        for name in ("supported", "unsupported", "unparsed", "checked", "unmatched"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"ResponseFacts.{name} must be a non-negative integer, got {value!r}")

    @property
    def facts(self) -> int:
        """n_i: all checkable facts of the response."""
        return self.supported + self.unsupported

    @property
    def uncheckable(self) -> bool:
        """Not a refusal, but nothing of it could be matched (see the module docstring)."""
        return not self.abstained and self.judged and self.unmatched > 0 and self.checked == 0

    @property
    def responding(self) -> bool:
        """Not an explicit refusal, and (when judged) at least one fact or an uncheckable statement."""
        if self.abstained:
            return False
        return self.facts > 0 or not self.judged or self.uncheckable

    @property
    def scored(self) -> bool:
        """Responding, judged and checkable: it has a precision ``supported / facts``."""
        return self.responding and self.judged and not self.uncheckable


FactUnit = Literal["sentence", "fact"]


def from_judgment(
    judgment: Judgment,
    *,
    topic: str = "",
    buckets: Mapping[str, str] | None = None,
    unit: FactUnit = "sentence",
) -> ResponseFacts:
    """Turn one judgment into a metric record.

    ``unit="sentence"`` (default): every ``ok`` / ``contradictory`` / ``unverifiable`` sentence is one fact
    and the ``ok`` ones are supported (the ANAH view). ``unit="fact"``: use each verdict's ``facts`` and
    ``supported`` counts (judges that check several claims per sentence); ``nofact`` sentences state none.

    A sentence whose judge answer was not parsed counts as unsupported; one labelled ``ok`` is a backend
    error and raises ValueError (an unparsed answer must never count as correct).
    """
    supported = unsupported = unparsed = checked = unmatched = 0
    for index, verdict in enumerate(judgment.verdicts):
        label = verdict.sentence.label
        if not verdict.parsed:
            unparsed += 1
            if label is SentenceLabel.OK:
                raise ValueError(f"sentence {index} has an unparsed judge answer but is labelled ok")
        if not verdict.matched:
            unmatched += 1
        elif verdict.parsed and label.is_fact:
            checked += 1
        if label is SentenceLabel.NOFACT:
            continue
        if unit == "sentence":
            good = 1 if label is SentenceLabel.OK and verdict.parsed else 0
            supported += good
            unsupported += 1 - good
        elif unit == "fact":
            if verdict.facts < 0 or not 0 <= verdict.supported <= verdict.facts:
                raise ValueError(
                    f"sentence {index}: supported={verdict.supported} must lie in [0, facts={verdict.facts}]"
                )
            good = verdict.supported if verdict.parsed else 0
            supported += good
            unsupported += verdict.facts - good
        else:
            raise ValueError(f"unknown fact unit {unit!r}; expected 'sentence' or 'fact'")
    return ResponseFacts(
        supported=supported,
        unsupported=unsupported,
        counts=judgment.counts,
        abstained=judgment.abstained,
        unparsed=unparsed,
        checked=checked,
        unmatched=unmatched,
        topic=topic,
        buckets=dict(buckets or {}),
    )
