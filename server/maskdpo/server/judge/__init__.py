"""The factuality judge: split a response into sentences, label each, and compute metrics.

Usable in-process without the service::

    from maskdpo.server.judge import JudgeRequest, build_backend, score_responses
    judge = build_backend("heuristic")
    [judgment] = judge.judge_batch([JudgeRequest(response="...", passages=(...))])
    judgments, metrics = score_responses(judge, requests)

Backends: ``kb`` (:mod:`.kb`), ``heuristic``, ``llm`` (see :mod:`.registry`). Metrics: :mod:`.metrics`
(definitions in docs/metrics.md). The service hosts the same backends in Ray actors.
"""

from maskdpo.server.judge.metrics import FactualityMetrics, breakdown, compare_runs, compute_metrics
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.registry import build_backend
from maskdpo.server.judge.scoring import score_responses, sentence_masks
from maskdpo.server.judge.types import (
    Fact,
    JudgeBackend,
    JudgeIdentity,
    JudgeRequest,
    Judgment,
    Passage,
    SentenceVerdict,
)

__all__ = [
    "Fact",
    "FactualityMetrics",
    "JudgeBackend",
    "JudgeIdentity",
    "JudgeRequest",
    "Judgment",
    "Passage",
    "ResponseFacts",
    "SentenceVerdict",
    "breakdown",
    "build_backend",
    "compare_runs",
    "compute_metrics",
    "from_judgment",
    "score_responses",
    "sentence_masks",
]
