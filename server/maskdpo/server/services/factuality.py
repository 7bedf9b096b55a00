"""FactualityService: Score, BatchScore, ListJudges and knowledge-source management."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from maskdpo.server.edge.paging import page
from maskdpo.server.edge.rpc import Ctx, unary
from maskdpo.server.errors import BatchTooLarge, InvalidArgument
from maskdpo.server.judge.metrics import FactualityMetrics, compute_metrics
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.registry import READS_FACTS_ONLY
from maskdpo.server.judge.types import ChunkVectors, Fact, JudgeRequest, Judgment, Passage
from maskdpo.server.services import factuality_convert as convert
from maskdpo.server.settings import ServerSettings
from maskdpo.server.store.knowledge_sources import KnowledgeSourceInfo, KnowledgeStore, parse_name
from maskdpo.server.wire import judge_identity, timestamp
from maskdpo.server.workers.judge_pool import JudgePool
from maskdpo.v1 import factuality_pb2, factuality_pb2_grpc

DEFAULT_GAMMA = 10.0
DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 20_000


class FactualityServicer(factuality_pb2_grpc.FactualityServiceServicer):
    def __init__(self, settings: ServerSettings, judges: JudgePool, store: KnowledgeStore) -> None:
        self.settings = settings
        self.judges = judges
        self.store = store

    # --- scoring -------------------------------------------------------------------------------------

    async def _knowledge(self, knowledge: factuality_pb2.Knowledge, topic: str,
                         field: str) -> tuple[list[Passage], list[Fact], str, ChunkVectors | None]:
        kind = knowledge.WhichOneof("source")
        if kind == "knowledge_source":
            source_id = parse_name(knowledge.knowledge_source, f"{field}.knowledge_source")
            found = await asyncio.to_thread(self.store.resolve, source_id, topic)
            vectors = await asyncio.to_thread(self.store.chunk_vectors, source_id, topic)
            return list(found[0]), list(found[1]), knowledge.knowledge_source, vectors
        passages, facts = convert.inline_knowledge(knowledge, field, self.settings.max_passages_chars)
        return passages, facts, "inline" if kind else "", None

    async def _request(self, judge: str, answer: factuality_pb2.Answer, knowledge: factuality_pb2.Knowledge,
                       field: str, knowledge_field: str) -> JudgeRequest:
        passages, facts, source, vectors = await self._knowledge(knowledge, answer.topic, knowledge_field)
        if judge in READS_FACTS_ONLY and not facts:
            raise InvalidArgument(knowledge_field, f"the {judge} judge reads facts: give inline facts or a "
                                  "knowledge source with facts (about the answer's topic)")
        request = convert.judge_request(answer, passages, facts, source, field, self.settings.max_text_chars)
        return replace(request, chunk_vectors=vectors) if vectors is not None else request

    @staticmethod
    def _options(options: factuality_pb2.ScoreOptions) -> tuple[float, float | None, int]:
        gamma = options.gamma if options.HasField("gamma") else DEFAULT_GAMMA
        if not gamma >= 0:  # also rejects NaN
            raise InvalidArgument("options.gamma", "must be >= 0")
        if options.f1_k < 0:
            raise InvalidArgument("options.f1_k", "must be >= 0")
        resamples = options.bootstrap_resamples
        if resamples < -1 or resamples > MAX_RESAMPLES:
            raise InvalidArgument("options.bootstrap_resamples", f"must be -1, 0 or 1..{MAX_RESAMPLES}")
        resamples = DEFAULT_RESAMPLES if resamples == 0 else max(resamples, 0)
        if options.bootstrap_seed < 0:  # numpy's generators take non-negative seeds only
            raise InvalidArgument("options.bootstrap_seed", "must be >= 0")
        if options.split_on_semicolon:
            raise InvalidArgument("options.split_on_semicolon",
                                  "not supported by this server's judges yet; split with the default rule")
        return gamma, float(options.f1_k) or None, resamples

    @staticmethod
    def _record(judgment: Judgment, answer: factuality_pb2.Answer) -> ResponseFacts:
        return from_judgment(judgment, topic=answer.topic,
                             buckets={f"group:{g}": g for g in answer.groups})

    @unary
    async def Score(self, request: factuality_pb2.ScoreRequest, context: Ctx) -> factuality_pb2.ScoreResponse:
        if not request.HasField("answer"):
            raise InvalidArgument("answer", "required")
        name = self.judges.resolve(request.judge)
        rule = convert.mask_rule(request.options.mask_rule, "options.mask_rule")
        gamma, k, _ = self._options(request.options)
        judge_request = await self._request(name, request.answer, request.knowledge, "answer", "knowledge")
        [judgment] = await self.judges.judge(name, [judge_request], context.time_remaining())
        metrics = compute_metrics([self._record(judgment, request.answer)], gamma=gamma, k=k, resamples=0)
        return factuality_pb2.ScoreResponse(
            answer=convert.scored_answer(judgment, rule, metrics),
            judge=judge_identity(judgment.identity, judge_request.knowledge_source),
        )

    @unary
    async def BatchScore(self, request: factuality_pb2.BatchScoreRequest,
                         context: Ctx) -> factuality_pb2.BatchScoreResponse:
        if not request.items:
            raise InvalidArgument("items", "at least one item is required")
        if len(request.items) > self.settings.max_batch_items:
            raise BatchTooLarge("items", len(request.items), self.settings.max_batch_items)
        name = self.judges.resolve(request.judge)
        rule = convert.mask_rule(request.options.mask_rule, "options.mask_rule")
        gamma, k, resamples = self._options(request.options)
        judge_requests = []
        for i, item in enumerate(request.items):
            own = item.HasField("knowledge") and item.knowledge.WhichOneof("source") is not None
            knowledge = item.knowledge if own else request.knowledge
            knowledge_field = f"items[{i}].knowledge" if own else "knowledge"
            judge_requests.append(await self._request(name, item.answer, knowledge, f"items[{i}].answer",
                                                      knowledge_field))
        judgments = await self.judges.judge(name, judge_requests, context.time_remaining())
        records = [self._record(j, item.answer) for j, item in zip(judgments, request.items, strict=True)]
        overall = await asyncio.to_thread(compute_metrics, records, gamma=gamma, k=k, resamples=resamples,
                                          seed=request.options.bootstrap_seed)
        answers = [convert.scored_answer(j, rule, compute_metrics([r], gamma=gamma, k=overall.k, resamples=0))
                   for j, r in zip(judgments, records, strict=True)]
        groups = sorted({g for item in request.items for g in item.answer.groups})
        by_group: list[tuple[str, FactualityMetrics]] = [
            (g, compute_metrics([r for r in records if f"group:{g}" in r.buckets], gamma=gamma, k=overall.k,
                                resamples=0))
            for g in groups
        ]
        sources = {r.knowledge_source for r in judge_requests}
        return factuality_pb2.BatchScoreResponse(
            answers=answers,
            metrics=convert.aggregate_metrics(overall, by_group),
            judge=judge_identity(judgments[0].identity, sources.pop() if len(sources) == 1 else "mixed"),
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

