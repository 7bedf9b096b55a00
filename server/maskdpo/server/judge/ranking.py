"""Best-of-N: the order of judged answers by factuality, the best first.

    order = best_first([compute_metrics([record]) for record in records])   # indices into the answers

The key is the answer's ANAH score, correct / (correct + incorrect) sentences -- the score the Mask-DPO
paper reports best-of-N with. An answer without one (it abstains, states no fact, or the judge could check
none of it) comes after every scored answer: nothing in it was found correct. Ties go to the answer with
more supported facts (at equal precision, the one that says more that is true), then to the earlier draw,
so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from maskdpo.server.judge.metrics import FactualityMetrics


def best_first(answers: Sequence[FactualityMetrics]) -> list[int]:
    """Indices of ``answers`` (each one answer's metrics), the most factual first."""

    def key(index: int) -> tuple[bool, float, int, int]:
        m = answers[index]
        return m.anah_score is None, -(m.anah_score or 0.0), -m.supported, index

    return sorted(range(len(answers)), key=key)
