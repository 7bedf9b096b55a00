"""The promotion rule: does the candidate replace the served weights?

Default: promote only if the evaluation metric (``anah_score``, or ``factscore``) improves by at least
``min_improvement`` (absolute) over the starting weights AND the correct sentences per answer do not fall
by more than ``max_correct_drop`` (a fraction of the start's). The second condition exists because a score
alone can be won by saying less: an answer with one correct sentence scores 1.0.
An undefined metric (no fact stated in any evaluation answer) never promotes.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskdpo.server.rounds.config import Promotion
from maskdpo.v1 import alignment_pb2


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def metric_of(evaluation: alignment_pb2.Evaluation, metric: str) -> float | None:
    if metric not in ("anah_score", "factscore"):
        raise ValueError(f"unknown promotion metric {metric!r}")
    return getattr(evaluation, metric) if evaluation.HasField(metric) else None  # type: ignore[arg-type]


def decide(rule: Promotion, before: alignment_pb2.Evaluation, after: alignment_pb2.Evaluation) -> Decision:
    start, candidate = metric_of(before, rule.metric), metric_of(after, rule.metric)
    if candidate is None:
        return Decision(False, f"not promoted: the candidate's {rule.metric} is undefined (no fact stated)")
    gain = candidate - (start if start is not None else 0.0)
    floor = before.correct_per_answer * (1.0 - rule.max_correct_drop)
    figures = (
        f"{rule.metric} {_fmt(start)} -> {candidate:.4f} (gain {gain:+.4f}, needs >= "
        f"{rule.min_improvement:+.4f}); correct per answer {before.correct_per_answer:.3f} -> "
        f"{after.correct_per_answer:.3f} (floor {floor:.3f})"
    )
    if gain < rule.min_improvement:
        return Decision(False, f"not promoted: {figures}: the metric did not improve enough")
    if after.correct_per_answer < floor - 1e-12:
        return Decision(False, f"not promoted: {figures}: correct sentences per answer fell too far")
    return Decision(True, f"promoted: {figures}")


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
