"""FactualityService: Score, BatchScore, ListJudges and knowledge-source management (judging itself goes
through :mod:`maskdpo.server.services.judging`, shared with GenerationService)."""

from __future__ import annotations

import asyncio

from maskdpo.server.edge.paging import page
from maskdpo.server.edge.rpc import Ctx, unary
from maskdpo.server.errors import BatchTooLarge, InvalidArgument
from maskdpo.server.judge.metrics import FactualityMetrics, compute_metrics
from maskdpo.server.services import factuality_convert as convert
from maskdpo.server.services.judging import AnswerJudge
from maskdpo.server.settings import ServerSettings
from maskdpo.server.store.knowledge_sources import KnowledgeSourceInfo, parse_name
from maskdpo.server.wire import judge_identity, timestamp
from maskdpo.v1 import factuality_pb2, factuality_pb2_grpc


class FactualityServicer(factuality_pb2_grpc.FactualityServiceServicer):
    def __init__(self, settings: ServerSettings, judging: AnswerJudge) -> None:
        self.settings = settings
        self.judging = judging
        self.judges = judging.judges
        self.store = judging.store

    # --- scoring -------------------------------------------------------------------------------------

    @unary
    async def Score(self, request: factuality_pb2.ScoreRequest, context: Ctx) -> factuality_pb2.ScoreResponse:
        if not request.HasField("answer"):
            raise InvalidArgument("answer", "required")
        name = self.judging.resolve(request.judge)
        scoring = self.judging.scoring(request.options)
        judge_request = await self.judging.request(name, request.answer, request.knowledge, "answer",
                                                    "knowledge")
        [judgment] = await self.judging.judge(name, [judge_request], context.time_remaining())
        record = self.judging.record(judgment, request.answer.topic, request.answer.groups)
        answer, _ = self.judging.scored(judgment, record, scoring)
        return factuality_pb2.ScoreResponse(
            answer=answer, judge=self.judging.identity(judgment, judge_request.knowledge_source))

    @unary
    async def BatchScore(self, request: factuality_pb2.BatchScoreRequest,
                         context: Ctx) -> factuality_pb2.BatchScoreResponse:
        if not request.items:
            raise InvalidArgument("items", "at least one item is required")
        if len(request.items) > self.settings.max_batch_items:
            raise BatchTooLarge("items", len(request.items), self.settings.max_batch_items)
        name = self.judging.resolve(request.judge)
        scoring = self.judging.scoring(request.options)
        judge_requests = []
        for i, item in enumerate(request.items):
            own = item.HasField("knowledge") and item.knowledge.WhichOneof("source") is not None
            knowledge = item.knowledge if own else request.knowledge
            knowledge_field = f"items[{i}].knowledge" if own else "knowledge"
            judge_requests.append(await self.judging.request(name, item.answer, knowledge,
                                                             f"items[{i}].answer", knowledge_field))
        judgments = await self.judging.judge(name, judge_requests, context.time_remaining())
        records = [self.judging.record(j, item.answer.topic, item.answer.groups)
                   for j, item in zip(judgments, request.items, strict=True)]
        overall = await asyncio.to_thread(compute_metrics, records, gamma=scoring.gamma, k=scoring.k,
                                          resamples=scoring.resamples, seed=scoring.seed)
        answers = [self.judging.scored(j, r, scoring, overall.k)[0]
                   for j, r in zip(judgments, records, strict=True)]
        groups = sorted({g for item in request.items for g in item.answer.groups})
        by_group: list[tuple[str, FactualityMetrics]] = [
            (g, compute_metrics([r for r in records if f"group:{g}" in r.buckets], gamma=scoring.gamma,
                                k=overall.k, resamples=0))
            for g in groups
        ]
        sources = {r.knowledge_source for r in judge_requests}
        return factuality_pb2.BatchScoreResponse(
            answers=answers,
            metrics=convert.aggregate_metrics(overall, by_group),
            judge=self.judging.identity(judgments[0], sources.pop() if len(sources) == 1 else "mixed"),
        )

    @unary
    async def ListJudges(self, request: factuality_pb2.ListJudgesRequest,
                         context: Ctx) -> factuality_pb2.ListJudgesResponse:
        return factuality_pb2.ListJudgesResponse(judges=[
            factuality_pb2.JudgeInfo(name=name, identity=judge_identity(identity),
                                     is_default=name == self.judges.default)
            for name, identity in sorted(self.judges.identities.items())
        ])

    # --- knowledge sources ---------------------------------------------------------------------------

    @staticmethod
    def _source(info: KnowledgeSourceInfo) -> factuality_pb2.KnowledgeSource:
        return factuality_pb2.KnowledgeSource(name=info.name, description=info.description,
                                              passage_count=info.passage_count, fact_count=info.fact_count,
                                              create_time=timestamp(info.create_time))

    @unary
    async def CreateKnowledgeSource(self, request: factuality_pb2.CreateKnowledgeSourceRequest,
                                    context: Ctx) -> factuality_pb2.KnowledgeSource:
        knowledge = factuality_pb2.Knowledge()
        knowledge.passages.passages.extend(request.passages)
        passages, _ = convert.inline_knowledge(knowledge, "", self.settings.max_passages_chars)
        knowledge = factuality_pb2.Knowledge()
        knowledge.facts.facts.extend(request.facts)
        _, facts = convert.inline_knowledge(knowledge, "", self.settings.max_passages_chars)
        convert.check_text("description", request.description, 10_000)
        self.store.check_new(request.knowledge_source_id)  # refused before any embedding work
        # embedded once, here, by a hosted judge that embeds passages; stored with the source
        index = await self.judges.index(passages, context.time_remaining()) if passages else None
        info = await asyncio.to_thread(self.store.create, request.knowledge_source_id, request.description,
                                       passages, facts, index)
        return self._source(info)

    @unary
    async def GetKnowledgeSource(self, request: factuality_pb2.GetKnowledgeSourceRequest,
                                 context: Ctx) -> factuality_pb2.KnowledgeSource:
        return self._source(await asyncio.to_thread(self.store.get, parse_name(request.name)))

    @unary
    async def ListKnowledgeSources(self, request: factuality_pb2.ListKnowledgeSourcesRequest,
                                   context: Ctx) -> factuality_pb2.ListKnowledgeSourcesResponse:
        size, offset = page(request.page_size, request.page_token)
        items = await asyncio.to_thread(self.store.list)
        chunk = items[offset : offset + size]
        token = str(offset + size) if offset + size < len(items) else ""
        return factuality_pb2.ListKnowledgeSourcesResponse(
            knowledge_sources=[self._source(i) for i in chunk], next_page_token=token)

    @unary
    async def DeleteKnowledgeSource(self, request: factuality_pb2.DeleteKnowledgeSourceRequest,
                                    context: Ctx) -> factuality_pb2.DeleteKnowledgeSourceResponse:
        await asyncio.to_thread(self.store.delete, parse_name(request.name))
        return factuality_pb2.DeleteKnowledgeSourceResponse()

