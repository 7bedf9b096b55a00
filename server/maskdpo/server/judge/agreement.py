"""How well a judge's labels agree with human labels: balanced accuracy, agreement, confusion, intervals.

The judge labels each sentence of a labelled text; the text's verdict is its worst sentence label
(:func:`text_verdict`: contradictory, else unverifiable, else ok, else nofact). The binary task is
*supported vs not supported*: a text counts as judged supported when its verdict is ``ok``.

- ``supported_recall`` = supported texts judged ok / supported texts;
- ``not_supported_recall`` = not-supported texts judged anything else / not-supported texts;
- ``balanced_accuracy`` = their mean (what a judge gets right on both sides, whatever the class sizes:
  a judge that flags everything scores 0.5, not the share of not-supported texts);
- ``agreement`` = binary accuracy over supported and not-supported texts;
- ``exact`` = share of texts whose verdict equals the gold label, where the gold labels are the judge's own
  four labels (the project's sentences);
- ``confusion``: gold label x verdict counts; partially supported texts and texts without a fact are left
  out of the binary task and reported apart (``partial``: how they were judged).

Intervals are percentile bootstraps over texts (:func:`maskdpo.server.judge.bootstrap.bootstrap_derived`,
1000 resamples by default, seeded).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from maskdpo.server.judge.bootstrap import (
    DEFAULT_RESAMPLES,
    ConfidenceInterval,
    FloatArray,
    RatioTerms,
    bootstrap_derived,
    bootstrap_intervals,
)
from maskdpo.server.judge.labelled_sets import GOLD_CLASSES
from maskdpo.trainer.labels import SentenceLabel

_SEVERITY = (SentenceLabel.CONTRADICTORY, SentenceLabel.UNVERIFIABLE, SentenceLabel.OK)
_JUDGE_LABELS = frozenset(label.value for label in SentenceLabel)


def text_verdict(labels: Sequence[SentenceLabel]) -> SentenceLabel:
    """The verdict on a whole text from its sentences' labels: the worst label of a fact-stating sentence,
    nofact when no sentence states a fact (or there is none)."""
    for label in _SEVERITY:
        if label in labels:
            return label
    return SentenceLabel.NOFACT


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement of verdicts with gold labels (see the module docstring)."""

    n: int
    supported: int
    supported_ok: int
    not_supported: int
    not_supported_flagged: int
    exact_total: int
    exact_hits: int
    confusion: Mapping[tuple[str, SentenceLabel], int]
    intervals: Mapping[str, ConfidenceInterval]

    @property
    def supported_recall(self) -> float | None:
        return self.supported_ok / self.supported if self.supported else None

    @property
    def not_supported_recall(self) -> float | None:
        return self.not_supported_flagged / self.not_supported if self.not_supported else None

    @property
    def balanced_accuracy(self) -> float | None:
        a, b = self.supported_recall, self.not_supported_recall
        return None if a is None or b is None else (a + b) / 2

    @property
    def agreement(self) -> float | None:
        total = self.supported + self.not_supported
        return (self.supported_ok + self.not_supported_flagged) / total if total else None

    @property
    def exact(self) -> float | None:
        return self.exact_hits / self.exact_total if self.exact_total else None

    def verdicts_of(self, gold: str) -> Counter[SentenceLabel]:
        """How the texts with gold label ``gold`` were judged."""
        return Counter({p: c for (g, p), c in self.confusion.items() if g == gold})


def measure(
    gold: Sequence[str],
    verdicts: Sequence[SentenceLabel],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Agreement:
    """Compare ``verdicts`` with ``gold`` labels (keys of ``labelled_sets.GOLD_CLASSES``), one per text."""
    if len(gold) != len(verdicts):
        raise ValueError(f"{len(gold)} gold labels for {len(verdicts)} verdicts")
    classes = [GOLD_CLASSES[g] for g in gold]
    judged_ok = np.array([v is SentenceLabel.OK for v in verdicts], dtype=np.float64)
    is_supported = np.array([c == "supported" for c in classes], dtype=np.float64)
    is_not = np.array([c == "not_supported" for c in classes], dtype=np.float64)
    is_exact = np.array([g in _JUDGE_LABELS for g in gold], dtype=np.float64)
    exact_hit = np.array([g == v.value for g, v in zip(gold, verdicts, strict=True)], dtype=np.float64)
    terms: RatioTerms = {
        "supported_recall": (is_supported * judged_ok, is_supported),
        "not_supported_recall": (is_not * (1 - judged_ok), is_not),
        "agreement": (is_supported * judged_ok + is_not * (1 - judged_ok), is_supported + is_not),
        "exact": (is_exact * exact_hit, is_exact),
    }
    intervals: dict[str, ConfidenceInterval] = {}
    if resamples > 0:
        # same seed, so the same resampled texts for every metric
        intervals.update(bootstrap_intervals(terms, resamples=resamples, seed=seed, level=level))
        found = bootstrap_derived(terms, _balanced, resamples=resamples, seed=seed, level=level)
        if found is not None:
            intervals["balanced_accuracy"] = found
    return Agreement(
        n=len(gold),
        supported=int(is_supported.sum()),
        supported_ok=int((is_supported * judged_ok).sum()),
        not_supported=int(is_not.sum()),
        not_supported_flagged=int((is_not * (1 - judged_ok)).sum()),
        exact_total=int(is_exact.sum()),
        exact_hits=int((is_exact * exact_hit).sum()),
        confusion=Counter(zip(gold, verdicts, strict=True)),
        intervals=intervals,
    )


def _balanced(ratios: Mapping[str, FloatArray]) -> FloatArray:
    mean: FloatArray = (ratios["supported_recall"] + ratios["not_supported_recall"]) / 2.0
    return mean
