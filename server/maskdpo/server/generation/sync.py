"""A GenerationEngine on its own event-loop thread, for synchronous callers (the llm judge, benchmarks).

    with EngineThread(EngineSettings(model=path)) as engine:
        results = engine.generate_many([(prompt, options), ...])

The engine starts on first use (15-40 s on CPU). ``generate_many`` submits every request at once, so the
engine batches them; a request that fails yields its exception in place of a result (nothing is dropped).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import GenerationResult, Prompt, SamplingOptions

T = TypeVar("T")


class EngineThread:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="generation-engine", daemon=True)
        self._thread.start()
        self._engine: GenerationEngine | None = None
        self._start_lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the engine's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    @property
    def engine(self) -> GenerationEngine:
        with self._start_lock:
            if self._engine is None:
                self._engine = self.run(GenerationEngine.start(self.settings))
            return self._engine

    def generate_many(
        self, requests: Sequence[tuple[Prompt, SamplingOptions]]
    ) -> list[GenerationResult | BaseException]:
        engine = self.engine

        async def all_at_once() -> list[GenerationResult | BaseException]:
            tasks = [engine.generate(prompt, options) for prompt, options in requests]
            return list(await asyncio.gather(*tasks, return_exceptions=True))

        return self.run(all_at_once())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> EngineThread:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
