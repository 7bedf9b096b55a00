"""JudgeService batches concurrent requests, drops cancelled ones, and refuses work past its queue limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from maskdpo.server.errors import QueueFull
from maskdpo.server.judge.types import JudgeIdentity, JudgeRequest, Judgment
from maskdpo.server.workers.judge_actor import JudgeService


class RecordingBackend:
    """A stand-in backend that records the batch sizes it is called with."""

    name = "recording"

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.release = threading.Event()
        self.release.set()

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(backend=self.name)

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        self.release.wait(5)
        self.batches.append([r.response for r in requests])
        return [Judgment(response=r.response, verdicts=(), identity=self.identity()) for r in requests]


async def test_concurrent_calls_share_a_batch() -> None:
    backend = RecordingBackend()
    service = JudgeService(backend, batch_window_ms=20, max_batch=64)
    results = await asyncio.gather(*(service.judge([JudgeRequest(response=f"r{i}")]) for i in range(10)))
    assert [r[0].response for r in results] == [f"r{i}" for i in range(10)]
    assert len(backend.batches) == 1 and len(backend.batches[0]) == 10


async def test_max_batch_splits() -> None:
    backend = RecordingBackend()
    service = JudgeService(backend, batch_window_ms=10, max_batch=4)
    await service.judge([JudgeRequest(response=f"r{i}") for i in range(10)])
    assert [len(b) for b in backend.batches] == [4, 4, 2]


async def test_cancelled_requests_leave_the_queue() -> None:
    backend = RecordingBackend()
    backend.release.clear()
    service = JudgeService(backend, batch_window_ms=0, max_batch=1)
    first = asyncio.create_task(service.judge([JudgeRequest(response="first")]))
    await asyncio.sleep(0.05)  # the first batch is now blocked inside the backend
    second = asyncio.create_task(service.judge([JudgeRequest(response="cancelled")]))
    await asyncio.sleep(0.01)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    backend.release.set()
    await first
    await service.judge([JudgeRequest(response="third")])
    assert backend.batches == [["first"], ["third"]]


async def test_queue_limit() -> None:
    backend = RecordingBackend()
    service = JudgeService(backend, batch_window_ms=0, queue_limit=3)
    with pytest.raises(QueueFull) as info:
        await service.judge([JudgeRequest(response="x")] * 4)
    assert float(info.value.metadata["retry_after_s"]) > 0


class FailingBackend(RecordingBackend):
    """Fails every batch that holds a response starting with "bad"."""

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        if any(r.response.startswith("bad") for r in requests):
            self.batches.append([r.response for r in requests])
            raise ValueError("cannot judge a bad request")
        return super().judge_batch(requests)


async def test_a_failing_request_fails_alone() -> None:
    backend = FailingBackend()
    service = JudgeService(backend, batch_window_ms=20, max_batch=64)
    results = await asyncio.gather(*(service.judge([JudgeRequest(response=text)])
                                     for text in ("good 1", "bad", "good 2")), return_exceptions=True)
    assert backend.batches[0] == ["good 1", "bad", "good 2"]  # they were batched, and the batch failed
    assert [r[0].response for r in (results[0], results[2])] == ["good 1", "good 2"]  # type: ignore[index]
    assert isinstance(results[1], ValueError)
