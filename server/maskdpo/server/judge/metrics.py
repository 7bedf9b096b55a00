"""Run-level factuality metrics over per-response records (definitions: docs/metrics.md).

Every metric is a ratio of sums over responses (:func:`ratio_terms`), so the point estimate, the bootstrap
intervals and the paired comparison all use the same code. Scores are fractions in [0, 1]; a metric with
nothing to average over is ``None``, never 0.

    metrics = compute_metrics(records, gamma=10, judge=backend.identity())
    metrics.factscore, metrics.intervals["factscore"].low
    compare_runs(records_a, records_b)["factscore"].p_value
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from maskdpo.server.judge.bootstrap import (
    DEFAULT_RESAMPLES,
    ConfidenceInterval,
    FloatArray,
    PairedComparison,
    bootstrap_intervals,
    paired_bootstrap,
)
from maskdpo.server.judge.records import ResponseFacts
from maskdpo.server.judge.types import JudgeIdentity
from maskdpo.trainer.labels import LabelCounts

DEFAULT_GAMMA = 10.0
METRIC_NAMES = (
    "factscore",
    "factscore_no_penalty",
    "respond_ratio",
    "facts_per_response",
    "micro_precision",
    "anah_score",
    "anah_score_released",
    "f1_at_k",
)
MISSING_GROUP = "(missing)"
"""Breakdown group of records that lack the grouping key."""


def length_penalty(n_facts: int, gamma: float) -> float:
    """FActScore's length penalty: ``exp(1 - gamma / n)`` when ``n < gamma``, else 1.

    At ``n == gamma`` both readings of the rule give exactly 1; ``gamma == 0`` disables the penalty.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if n_facts <= 0:
        raise ValueError(f"the length penalty needs at least one fact, got n={n_facts}")
    if gamma == 0 or n_facts >= gamma:
        return 1.0
    return math.exp(1.0 - gamma / n_facts)


def f1_at_k(supported: int, unsupported: int, k: float) -> float:
    """SAFE / VeriScore F1@K of one response: P = S / (S + N), R = min(S / K, 1); 0 when S = 0."""
    if k <= 0:
        raise ValueError(f"K must be > 0, got {k}")
    if supported == 0:
        return 0.0
    precision = supported / (supported + unsupported)
    recall = min(supported / k, 1.0)
    return 2 * precision * recall / (precision + recall)


def choose_k(records: Sequence[ResponseFacts], k: float | None = None) -> tuple[float | None, str]:
    """K for F1@K and how it was chosen: ``given``, or ``median`` facts of the scored responses."""
    if k is not None:
        if k <= 0:
            raise ValueError(f"K must be > 0, got {k}")
        return float(k), "given"
    facts = [r.facts for r in records if r.scored]
    if not facts:
        return None, "none"
    return float(np.median(facts)), "median"


def ratio_terms(
    records: Sequence[ResponseFacts], *, gamma: float = DEFAULT_GAMMA, k: float | None = None
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per-response numerator and denominator of every metric (see the module docstring)."""
    n = len(records)
    terms = {name: (np.zeros(n), np.zeros(n)) for name in METRIC_NAMES}
    for i, r in enumerate(records):
        terms["respond_ratio"][1][i] = 1.0
        if r.responding:
            terms["respond_ratio"][0][i] = 1.0
        if not r.judged or r.uncheckable:
            continue
        ok, incorrect, total = r.counts.ok, r.counts.incorrect, r.counts.total
        terms["anah_score"][0][i], terms["anah_score"][1][i] = ok, ok + incorrect
        terms["anah_score_released"][0][i], terms["anah_score_released"][1][i] = total - incorrect, total
        if k is not None:
            terms["f1_at_k"][1][i] = 1.0
            if r.scored:
                terms["f1_at_k"][0][i] = f1_at_k(r.supported, r.unsupported, k)
        if not r.scored:
            continue
        precision = r.supported / r.facts
        terms["factscore"][0][i] = precision * length_penalty(r.facts, gamma)
        terms["factscore_no_penalty"][0][i] = precision
        terms["facts_per_response"][0][i] = r.facts
        terms["micro_precision"][0][i], terms["micro_precision"][1][i] = r.supported, r.facts
        for name in ("factscore", "factscore_no_penalty", "facts_per_response"):
            terms[name][1][i] = 1.0
    return terms


@dataclass(frozen=True, slots=True)
class FactualityMetrics:
    """Every metric of one run (or one breakdown group), with the judge and settings that produced it."""

    judge: JudgeIdentity | None
    gamma: float
    k: float | None
    k_source: str
    """How K was chosen: ``given``, ``median`` (of the run's scored responses) or ``none`` (no facts)."""
    n_responses: int
    n_responding: int
    n_scored: int
    n_refused: int
    """Explicit refusals."""
    n_zero_facts: int
    """Judged, not refused, but no checkable fact (also abstained)."""
    n_unjudged: int
    n_unparsed: int
    """Sentences whose judge answer could not be parsed (counted unsupported, never correct)."""
    n_uncheckable: int
    """Responses not checkable by this judge: responding, but no sentence matched (excluded from scores)."""
    n_checked: int
    """Fact-stating sentences with a verdict against the knowledge."""
    n_unmatched: int
    """Sentences that state something the judge could not match to its knowledge or claim patterns."""
    supported: int
    facts: int
    counts: LabelCounts
    per_response_counts: tuple[LabelCounts, ...]
    factscore: float | None
    factscore_no_penalty: float | None
    respond_ratio: float | None
    facts_per_response: float | None
    micro_precision: float | None
    anah_score: float | None
    anah_score_released: float | None
    f1_at_k: float | None
    intervals: Mapping[str, ConfidenceInterval] = field(default_factory=dict)

    def value(self, name: str) -> float | None:
        if name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {name!r}; expected one of: {', '.join(METRIC_NAMES)}")
        result: float | None = getattr(self, name)
        return result


def compute_metrics(
    records: Sequence[ResponseFacts],
    *,
    gamma: float = DEFAULT_GAMMA,
    k: float | None = None,
    judge: JudgeIdentity | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> FactualityMetrics:
    """All metrics of a run; ``resamples=0`` skips the bootstrap intervals.

    ``k`` fixes K for F1@K; by default K is the median facts of the scored responses. K is chosen once on
    the whole run and held fixed inside the bootstrap.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, got {resamples}")
    chosen_k, k_source = choose_k(records, k)
    terms = ratio_terms(records, gamma=gamma, k=chosen_k)
    values = {name: _ratio_of_sums(*terms[name]) for name in METRIC_NAMES}
    intervals = (
        bootstrap_intervals(terms, resamples=resamples, seed=seed, level=level)
        if resamples and records
        else {}
    )
    total = LabelCounts()
    for r in records:
        total = total + r.counts
    return FactualityMetrics(
        judge=judge,
        gamma=float(gamma),
        k=chosen_k,
        k_source=k_source,
        n_responses=len(records),
        n_responding=sum(r.responding for r in records),
        n_scored=sum(r.scored for r in records),
        n_refused=sum(r.abstained for r in records),
        n_zero_facts=sum(not r.abstained and r.judged and r.facts == 0 and not r.uncheckable for r in records),
        n_unjudged=sum(not r.judged for r in records),
        n_unparsed=sum(r.unparsed for r in records),
        n_uncheckable=sum(r.uncheckable for r in records),
        n_checked=sum(r.checked for r in records),
        n_unmatched=sum(r.unmatched for r in records),
        supported=sum(r.supported for r in records if r.scored),
        facts=sum(r.facts for r in records if r.scored),
        counts=total,
        per_response_counts=tuple(r.counts for r in records),
        intervals=intervals,
        **values,
    )


def breakdown(
    records: Sequence[ResponseFacts],
    by: str | Callable[[ResponseFacts], str],
    *,
    gamma: float = DEFAULT_GAMMA,
    k: float | None = None,
    judge: JudgeIdentity | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, FactualityMetrics]:
    """Metrics per group: ``by="topic"``, a bucket name (e.g. ``"rarity"``) or a function of a record.

    K is chosen once on the whole run so F1@K is comparable across groups. Records without the bucket go
    to :data:`MISSING_GROUP`.
    """
    key = by if callable(by) else _group_key(by)
    run_k, _ = choose_k(records, k)
    groups: dict[str, list[ResponseFacts]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {
        name: compute_metrics(
            group, gamma=gamma, k=run_k, judge=judge, resamples=resamples, seed=seed, level=level
        )
        for name, group in sorted(groups.items())
    }


def compare_runs(
    records_a: Sequence[ResponseFacts],
    records_b: Sequence[ResponseFacts],
    *,
    gamma: float = DEFAULT_GAMMA,
    k: float | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, PairedComparison]:
    """Paired bootstrap A - B on every metric; record i of A and of B answer the same prompt.

    By default K is the median facts over both runs' scored responses, so both use the same K.
    """
    if len(records_a) != len(records_b):
        raise ValueError(f"paired comparison needs equal-length runs: {len(records_a)} vs {len(records_b)}")
    shared_k, _ = choose_k([*records_a, *records_b], k)
    return paired_bootstrap(
        ratio_terms(records_a, gamma=gamma, k=shared_k),
        ratio_terms(records_b, gamma=gamma, k=shared_k),
        resamples=resamples,
        seed=seed,
        level=level,
    )


def _group_key(by: str) -> Callable[[ResponseFacts], str]:
    if by == "topic":
        return lambda r: r.topic or MISSING_GROUP
    return lambda r: r.buckets.get(by, MISSING_GROUP)


def _ratio_of_sums(num: FloatArray, den: FloatArray) -> float | None:
    total = float(den.sum())
    return float(num.sum()) / total if total > 0 else None
