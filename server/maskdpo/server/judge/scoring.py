"""Glue: judge a batch with any backend, then compute the run's metrics and the per-sentence masks.

    judgments, metrics = score_responses(build_backend("kb", knowledge=kb), requests)
    chosen = sentence_masks(judgments[0], "chosen")           # default rule: ok sentences only
    rejected = sentence_masks(judgments[1], "rejected", "released")

Masks follow the trainer's rule (:mod:`maskdpo.trainer.mask_rules`); a sentence whose judge answer could
not be parsed is neutral in both roles (its label is only a fallback), except under the ``all`` rule, which
keeps every sentence (vanilla DPO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maskdpo.server.judge.bootstrap import DEFAULT_RESAMPLES
from maskdpo.server.judge.metrics import DEFAULT_GAMMA, FactualityMetrics, compute_metrics
from maskdpo.server.judge.records import FactUnit, ResponseFacts, from_judgment
from maskdpo.server.judge.types import JudgeBackend, JudgeRequest, Judgment
from maskdpo.trainer.mask_rules import MaskRule, PairRole, sentence_mask


def score_responses(
    backend: JudgeBackend,
    requests: Sequence[JudgeRequest],
    *,
    gamma: float = DEFAULT_GAMMA,
    k: float | None = None,
    unit: FactUnit = "sentence",
    buckets: Sequence[Mapping[str, str]] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[list[Judgment], FactualityMetrics]:
    """Judge ``requests`` in one batch and compute the metrics, stamped with the backend's identity.

    ``buckets`` (one mapping per request, optional) feeds :func:`~maskdpo.server.judge.metrics.breakdown`
    through the records; use :func:`records_of` to get them.
    """
    judgments = backend.judge_batch(requests)
    if len(judgments) != len(requests):
        raise RuntimeError(
            f"backend {backend.name!r} returned {len(judgments)} judgments for {len(requests)} requests"
        )
    records = records_of(judgments, requests, buckets=buckets, unit=unit)
    metrics = compute_metrics(
        records, gamma=gamma, k=k, judge=backend.identity(), resamples=resamples, seed=seed, level=level
    )
    return judgments, metrics


def records_of(
    judgments: Sequence[Judgment],
    requests: Sequence[JudgeRequest],
    *,
    buckets: Sequence[Mapping[str, str]] | None = None,
    unit: FactUnit = "sentence",
) -> list[ResponseFacts]:
    """Metric records of judged requests (topic from each request, buckets from ``buckets``)."""
    if len(judgments) != len(requests):
        raise ValueError(f"{len(judgments)} judgments for {len(requests)} requests")
    if buckets is not None and len(buckets) != len(requests):
        raise ValueError(f"{len(buckets)} bucket mappings for {len(requests)} requests")
    return [
        from_judgment(judgment, topic=request.topic, buckets=buckets[i] if buckets else None, unit=unit)
        for i, (judgment, request) in enumerate(zip(judgments, requests, strict=True))
    ]


def sentence_masks(
    judgment: Judgment, role: PairRole | str, rule: MaskRule | str = MaskRule.DEFAULT
) -> list[bool]:
    """One flag per sentence of ``judgment``: True = counts in the Mask-DPO loss for a response in ``role``."""
    return sentence_mask(judgment.sentences, role, rule)
