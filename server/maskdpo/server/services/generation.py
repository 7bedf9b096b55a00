"""GenerationService: Generate, BatchGenerate and StreamGenerate on the served models' Generator actors.

Requests are validated at the edge (:mod:`maskdpo.server.services.generation_convert`); the call's deadline is
passed down to Ray; a client's cancel (or a passed deadline) cancels the Ray task, which aborts the
request in the engine and frees its admission slot. Every sample carries the weight version that
produced it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager

from maskdpo.server.edge.rpc import Ctx, streaming, unary
from maskdpo.server.errors import BatchTooLarge, InvalidArgument
from maskdpo.server.generation.types import Prompt, SamplingOptions
from maskdpo.server.services import generation_convert as convert
from maskdpo.server.settings import ServerSettings
from maskdpo.server.workers.generator_pool import GeneratorPool, ServedModel
from maskdpo.v1 import generation_pb2, generation_pb2_grpc

Parsed = tuple[ServedModel, Prompt, SamplingOptions]


@contextmanager
def nested_at(prefix: str) -> Iterator[None]:
    """Name the field of an INVALID_ARGUMENT by its request path (``requests[2].sampling.top_p``): the
    Generator actor names it within one request."""
    try:
        yield
    except InvalidArgument as exc:
        raise exc.within(prefix) from None


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, settings: ServerSettings, pool: GeneratorPool) -> None:
        self.settings = settings
        self.pool = pool

    def _parse(self, request: generation_pb2.GenerateRequest, prefix: str = "") -> Parsed:
        name = convert.model_id(request.model, f"{prefix}model")
        prompt = convert.prompt(request, prefix, self.settings.max_text_chars)
        options = convert.sampling(
            request.sampling, f"{prefix}sampling.", self.settings.generator_default_max_tokens
        )
        return self.pool.serving(name), prompt, options

    async def _generate(
        self, parsed: Parsed, prefix: str, timeout: float | None
    ) -> generation_pb2.GenerateResponse:
        model, prompt, options = parsed
        with nested_at(prefix):
            result = await self.pool.generate(model, prompt, options, timeout)
        return convert.generate_response(model.name, result, options.logprobs, model.decode)

    @unary
    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Ctx
    ) -> generation_pb2.GenerateResponse:
        return await self._generate(self._parse(request), "", context.time_remaining())

    @unary
    async def BatchGenerate(
        self, request: generation_pb2.BatchGenerateRequest, context: Ctx
    ) -> generation_pb2.BatchGenerateResponse:
        if not request.requests:
            raise InvalidArgument("requests", "at least one request is required")
        if len(request.requests) > self.settings.max_batch_items:
            raise BatchTooLarge("requests", len(request.requests), self.settings.max_batch_items)
        parsed = [self._parse(r, f"requests[{i}].") for i, r in enumerate(request.requests)]
        timeout = context.time_remaining()
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels (aborts) the others
                tasks = [
                    group.create_task(self._generate(p, f"requests[{i}].", timeout))
                    for i, p in enumerate(parsed)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return generation_pb2.BatchGenerateResponse(responses=[t.result() for t in tasks])

    @streaming
    async def StreamGenerate(
        self, request: generation_pb2.GenerateRequest, context: Ctx
    ) -> AsyncIterator[generation_pb2.GenerateChunk]:
        model, prompt, options = self._parse(request)
        deltas = self.pool.stream(model, prompt, options, context.time_remaining())
        async with aclosing(deltas):
            async for delta in deltas:
                yield convert.chunk(delta, options.logprobs, model.decode)
