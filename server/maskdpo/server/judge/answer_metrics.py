"""What two models are compared on, per answer, as ratio terms: the run-level metrics plus per-answer means.

:func:`answer_terms` extends :func:`maskdpo.server.judge.metrics.ratio_terms` (ANAH, FActScore, F1@K, ...)
with the counts an A/B comparison of two models on the same prompts must show next to a precision score,
because a precision score alone can be won by saying less (:data:`PER_ANSWER`): correct, incorrect and
fact-free sentences, correct and incorrect facts (the judge's claims; records built with
``from_judgment(..., unit="fact")``), abstentions and length. Every entry is (numerator per answer,
denominator per answer), so point values, bootstrap intervals and paired differences come from one code
path (:mod:`maskdpo.server.judge.bootstrap`). The round's EVALUATE phase and the toy-world experiment both
read these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from maskdpo.server.judge.bootstrap import FloatArray
from maskdpo.server.judge.metrics import DEFAULT_GAMMA, ratio_terms
from maskdpo.server.judge.records import ResponseFacts

PER_ANSWER: Mapping[str, Callable[[ResponseFacts, str], float]] = {
    "correct_per_answer": lambda r, _: r.counts.ok,
    "incorrect_per_answer": lambda r, _: r.counts.incorrect,
    "nofact_per_answer": lambda r, _: r.counts.nofact,
    "sentences_per_answer": lambda r, _: r.counts.total,
    "correct_facts_per_answer": lambda r, _: r.supported,
    "incorrect_facts_per_answer": lambda r, _: r.unsupported,
    "abstention_rate": lambda r, _: float(not r.responding),
    "mean_length": lambda _, text: len(text),
}
"""Per-answer means: name -> value of one answer (its record and its text)."""


def answer_terms(
    records: Sequence[ResponseFacts],
    texts: Sequence[str],
    *,
    gamma: float = DEFAULT_GAMMA,
    k: float | None = None,
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Every metric of :func:`ratio_terms` and of :data:`PER_ANSWER` for answers ``texts`` judged as ``records``."""
    if len(records) != len(texts):
        raise ValueError(f"{len(records)} records for {len(texts)} answers")
    terms = dict(ratio_terms(records, gamma=gamma, k=k))
    ones = np.ones(len(records))
    for name, value in PER_ANSWER.items():
        terms[name] = (np.array([value(r, t) for r, t in zip(records, texts, strict=True)], dtype=float), ones)
    return terms


def value_of(terms: Mapping[str, tuple[FloatArray, FloatArray]], name: str) -> float | None:
    """The point value of one metric: sum of numerators / sum of denominators (None when nothing counts)."""
    num, den = terms[name]
    total = float(den.sum())
    return float(num.sum()) / total if total > 0 else None
