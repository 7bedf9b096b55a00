"""The factuality judge: split a response into sentences, label each, and compute metrics.

Usable in-process without the service::

    from maskdpo.server.judge import JudgeRequest, build_backend
    judge = build_backend("heuristic")
    [judgment] = judge.judge_batch([JudgeRequest(response="...", passages=(...))])

The service hosts the same backends in Ray actors (see ``maskdpo.server.actors``).
"""

from maskdpo.server.judge.types import (
    JudgeBackend,
    JudgeIdentity,
    JudgeRequest,
    Judgment,
    Passage,
)

__all__ = ["JudgeBackend", "JudgeIdentity", "JudgeRequest", "Judgment", "Passage"]
