"""Best-of-N: the order of judged answers by factuality, the best first.

    order = best_first([compute_metrics([record]) for record in records])   # indices into the answers

The key is one metric of each answer (``RANKINGS``):

- ``anah_score`` (the default): correct / (correct + incorrect) sentences -- the score the Mask-DPO paper
  reports best-of-N with. Precision alone: on the toy world best-of-4 by it gave answers with 0.80x the
  correct facts of greedy decoding (shorter answers win).
- ``f1_at_k``: F1@K of the answer's facts, precision with recall against K facts (the same K for the N
  answers: the request's, else the median facts of the N), so that at equal precision more correct facts
  win.

An answer without the metric (it abstains, states no fact, or the judge could check none of it) comes after
every scored answer: nothing in it was found correct. Ties go to the answer with more supported facts, then
to the earlier draw, so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from maskdpo.server.judge.metrics import FactualityMetrics, f1_at_k

RANKINGS = ("anah_score", "f1_at_k")
"""The metrics best-of-N can rank by; the first is the default."""


def best_first(answers: Sequence[FactualityMetrics], by: str = RANKINGS[0], k: float | None = None) -> list[int]:
    """Indices of ``answers`` (each one answer's metrics), the most factual first by the metric ``by`` (one of
    ``RANKINGS``); F1@K is taken with ``k`` for every answer (the service's choice: the request's K, else the
    median facts of the N answers, :func:`~maskdpo.server.judge.metrics.choose_k`)."""
    if by not in RANKINGS:
        raise ValueError(f"cannot rank by {by!r}: one of {', '.join(RANKINGS)}")

    def value(m: FactualityMetrics) -> float | None:
        if by == "anah_score":
            return m.anah_score
        return f1_at_k(m.supported, m.facts - m.supported, k) if m.n_scored and k else None

    def key(index: int) -> tuple[bool, float, int, int]:
        m = answers[index]
        v = value(m)
        return v is None, -(v or 0.0), -m.supported, index

    return sorted(range(len(answers)), key=key)
