"""GenerationService: Generate, BatchGenerate and StreamGenerate on the served models' Generator actors.

Requests are validated at the edge (:mod:`maskdpo.server.services.generation_convert`); the call's deadline is
passed down to Ray; a client's cancel (or a passed deadline) cancels the Ray task, which aborts the
request in the engine and frees its admission slot. Every sample carries the weight version that
produced it.

Judged generation goes through the judging path Score uses (:mod:`maskdpo.server.services.judging`), its
judge, knowledge and options checked before anything is sampled: with ``best_of``, Generate samples that
many answers, judges them in one call and returns them ranked best first
(:func:`maskdpo.server.judge.ranking.best_first`); StreamGenerate with ``judging`` streams each
sentence's verdict as the sentence completes (:mod:`maskdpo.server.services.judged_stream`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, replace

from maskdpo.server.edge.rpc import Ctx, streaming, unary
from maskdpo.server.errors import BatchTooLarge, InvalidArgument
from maskdpo.server.generation.types import GenerationResult, Prompt, SamplingOptions
from maskdpo.server.judge.metrics import choose_k
from maskdpo.server.judge.ranking import RANKINGS, best_first
from maskdpo.server.services import generation_convert as convert
from maskdpo.server.services.judged_stream import judged_chunks
from maskdpo.server.services.judging import AnswerJudge, Plan
from maskdpo.server.settings import ServerSettings
from maskdpo.server.workers.generator_pool import GeneratorPool, ServedModel
from maskdpo.v1 import common_pb2, factuality_pb2, generation_pb2, generation_pb2_grpc


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated GenerateRequest."""

    model: ServedModel
    prompt: Prompt
    options: SamplingOptions
    plan: Plan | None
    """How to judge the answers (best_of, or a judged stream); None: not judged."""
    question: str
    """What the answers reply to, for the judge."""
    rank_by: str = RANKINGS[0]
    """The metric best_of orders the answers by."""


@contextmanager
def nested_at(prefix: str) -> Iterator[None]:
    """Name the field of an INVALID_ARGUMENT by its request path (``requests[2].sampling.top_p``): the
    Generator actor names it within one request."""
    try:
        yield
    except InvalidArgument as exc:
        raise exc.within(prefix) from None


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, settings: ServerSettings, pool: GeneratorPool, judging: AnswerJudge) -> None:
        self.settings = settings
        self.pool = pool
        self.judging = judging

    async def _parse(self, request: generation_pb2.GenerateRequest, prefix: str = "",
                     streaming: bool = False) -> Parsed:
        name = convert.model_id(request.model, f"{prefix}model")
        prompt = convert.prompt(request, prefix, self.settings.max_text_chars)
        options = convert.sampling(
            request.sampling, f"{prefix}sampling.", self.settings.generator_default_max_tokens
        )
        best_of = convert.best_of(request, prefix, self.settings.max_best_of, streaming)
        if best_of:
            options = replace(options, n=best_of)
        plan = None
        if best_of or request.HasField("judging"):
            j = request.judging
            plan = await self.judging.plan(j.judge, j.knowledge, j.topic, j.options, f"{prefix}judging")
        return Parsed(self.pool.serving(name), prompt, options, plan, convert.question(request),
                      convert.rank_by(request, prefix, best_of))

    async def _generate(self, parsed: Parsed, prefix: str,
                        timeout: float | None) -> generation_pb2.GenerateResponse:
        model = parsed.model
        with nested_at(prefix):
            result = await self.pool.generate(model, parsed.prompt, parsed.options, timeout)
        response = convert.generate_response(model.name, result, parsed.options.logprobs, model.decode)
        if parsed.plan is not None:
            await self._rank(parsed.plan, parsed.question, result, response, timeout, parsed.rank_by)
        return response

    async def _rank(self, plan: Plan, question: str, result: GenerationResult,
                    response: generation_pb2.GenerateResponse, timeout: float | None,
                    by: str = RANKINGS[0]) -> None:
        """Judge every sample in one call; put them in order, the most factual first by ``by``."""
        requests = [plan.request(sample.text, question) for sample in result.samples]
        judgments = await self.judging.judge(plan.judge, requests, timeout)
        records = [self.judging.record(j, plan.topic) for j in judgments]
        scored = [self.judging.scored(j, r, plan.scoring) for j, r in zip(judgments, records, strict=True)]
        k, _ = choose_k(records, plan.scoring.k)  # one K for the N answers, so that their F1@K compare
        convert.ranked(response, [answer for answer, _ in scored], best_first([m for _, m in scored], by, k),
                       self.judging.identity(judgments[0], plan.knowledge.source))

    @unary
    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Ctx
    ) -> generation_pb2.GenerateResponse:
        return await self._generate(await self._parse(request), "", context.time_remaining())

    @unary
    async def BatchGenerate(
        self, request: generation_pb2.BatchGenerateRequest, context: Ctx
    ) -> generation_pb2.BatchGenerateResponse:
        if not request.requests:
            raise InvalidArgument("requests", "at least one request is required")
        if len(request.requests) > self.settings.max_batch_items:
            raise BatchTooLarge("requests", len(request.requests), self.settings.max_batch_items)
        parsed = [await self._parse(r, f"requests[{i}].") for i, r in enumerate(request.requests)]
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
        parsed = await self._parse(request, streaming=True)
        model, options, plan = parsed.model, parsed.options, parsed.plan
        deltas = self.pool.stream(model, parsed.prompt, options, context.time_remaining())
        if plan is None:
            async with aclosing(deltas):
                async for delta in deltas:
                    yield convert.chunk(delta, options.logprobs, model.decode)
            return

        async def judge(text: str) -> tuple[factuality_pb2.ScoredAnswer, common_pb2.JudgeIdentity]:
            [judgment] = await self.judging.judge(plan.judge, [plan.request(text, parsed.question)],
                                                  context.time_remaining())
            answer, _ = self.judging.scored(judgment, self.judging.record(judgment, plan.topic), plan.scoring)
            return answer, self.judging.identity(judgment, plan.knowledge.source)

        chunks = judged_chunks(deltas, lambda d: convert.chunk(d, options.logprobs, model.decode), judge)
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk
