"""Bounded admission with a gate that a weight swap closes.

Each request is admitted (or refused with :class:`QueueFullError` when ``limit`` requests are already
admitted), waits while the gate is closed, then runs stamped with the weight version current when it
entered. A swap closes the gate and waits for the running requests to drain, so no request ever mixes two
sets of weights and every sample's version is the one that produced it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from maskdpo.server.generation.errors import QueueFullError


class Admission:
    """Counts admitted and running requests; closes for weight swaps."""

    def __init__(self, limit: int, version: Callable[[], int]) -> None:
        if limit < 1:
            raise ValueError(f"admission limit must be >= 1, got {limit}")
        self.limit = limit
        self._version = version
        self._admitted = 0
        self._running: set[str] = set()
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._mean_latency_s = 1.0

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def running(self) -> frozenset[str]:
        return frozenset(self._running)

    def retry_after_s(self) -> float:
        """Advice for a refused client: about one mean request latency, between 0.5 and 30 s."""
        return min(30.0, max(0.5, self._mean_latency_s))

    @asynccontextmanager
    async def slot(self, request_id: str) -> AsyncIterator[int]:
        """Admit one request; yields the weight version it runs on."""
        if self._admitted >= self.limit:
            raise QueueFullError(self.retry_after_s(), self.limit)
        self._admitted += 1
        started = time.monotonic()
        try:
            while not self._open.is_set():
                await self._open.wait()
            self._running.add(request_id)
            self._idle.clear()
            try:
                yield self._version()
            finally:
                self._running.discard(request_id)
                if not self._running:
                    self._idle.set()
        finally:
            self._admitted -= 1
            self._mean_latency_s = 0.8 * self._mean_latency_s + 0.2 * (time.monotonic() - started)

    def close(self) -> None:
        """Stop starting requests (admitted ones wait at the gate)."""
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request runs; False when ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
