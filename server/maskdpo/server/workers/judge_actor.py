"""The Judge Ray actor: hosts one judge backend and batches concurrent requests into backend calls.

Callers send lists of :class:`JudgeRequest`; requests arriving within ``batch_window_ms`` of each other
(up to ``max_batch``) are judged in one backend call on a worker thread, so the actor keeps accepting
work while a batch runs. When a batch fails, its requests are judged again one at a time, so an error
reaches only the caller whose request caused it. A call cancelled by its caller (``ray.cancel``) leaves the queue if its batch has
not started. A full queue answers :class:`QueueFull` with retry advice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray

from maskdpo.server.errors import QueueFull
from maskdpo.server.judge.types import ChunkVectors, JudgeIdentity, JudgeRequest, Judgment, Passage


@dataclass
class _Pending:
    request: JudgeRequest
    future: asyncio.Future[Judgment]


class JudgeService:
    """The batching logic, separate from Ray so it can be tested and used in-process."""

    def __init__(self, backend: Any, batch_window_ms: float = 5.0, max_batch: int = 64,
                 queue_limit: int = 1024) -> None:
        self.backend = backend
        self.batch_window_s = batch_window_ms / 1000
        self.max_batch = max_batch
        self.queue_limit = queue_limit
        self._queue: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._seconds_per_item = 0.01

    def identity(self) -> JudgeIdentity:
        identity: JudgeIdentity = self.backend.identity()
        return identity

    async def index(self, passages: Sequence[Passage]) -> ChunkVectors | None:
        """The passages' chunks and vectors from a backend that embeds passages (None from the others)."""
        index = getattr(self.backend, "index", None)
        if index is None:
            return None
        vectors: ChunkVectors = await asyncio.to_thread(index, passages)
        return vectors

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        if len(self._queue) + len(requests) > self.queue_limit:
            raise QueueFull("judge", retry_after_s=max(0.5, len(self._queue) * self._seconds_per_item))
        loop = asyncio.get_running_loop()
        pending = [_Pending(r, loop.create_future()) for r in requests]
        self._queue.extend(pending)
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        except asyncio.CancelledError:
            waiting = {id(p) for p in pending}
            self._queue = [p for p in self._queue if id(p) not in waiting]
            raise

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.batch_window_s:
                await asyncio.sleep(self.batch_window_s)
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                batch = [p for p in batch if not p.future.done()]
                if not batch:
                    continue
                started = time.perf_counter()
                try:
                    results = await asyncio.to_thread(self.backend.judge_batch, [p.request for p in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0], exc)
                    else:  # one caller's bad request must not fail the others batched with it
                        await self._one_by_one(batch)
                    continue
                self._seconds_per_item = (time.perf_counter() - started) / len(batch)
                for p, result in zip(batch, results, strict=True):
                    _settle(p, result)

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for p in batch:
            if p.future.done():
                continue
            try:
                [result] = await asyncio.to_thread(self.backend.judge_batch, [p.request])
            except Exception as exc:
                _settle(p, exc)
            else:
                _settle(p, result)


def _settle(pending: _Pending, outcome: Judgment | Exception) -> None:
    if pending.future.done():  # cancelled by its caller meanwhile
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)


@ray.remote
class JudgeActor:
    """A Ray actor wrapping :class:`JudgeService` around a backend built by name."""

    def __init__(self, backend_name: str, options: dict[str, Any], batch_window_ms: float,
                 max_batch: int, queue_limit: int) -> None:
        from maskdpo.server.judge.registry import build_backend

        self._service = JudgeService(build_backend(backend_name, **options), batch_window_ms, max_batch,
                                     queue_limit)

    async def identity(self) -> JudgeIdentity:
        return self._service.identity()

    async def judge(self, requests: list[JudgeRequest]) -> list[Judgment]:
        return await self._service.judge(requests)

    async def index(self, passages: list[Passage]) -> ChunkVectors | None:
        return await self._service.index(passages)

    async def ready(self) -> bool:
        return True

    def node_id(self) -> str:
        """The Ray node the backend runs on."""
        from maskdpo.server.workers.placement import node_id

        return node_id()
