"""Judging answers for the services: the one path Score, BatchScore, best-of-N Generate and judged streams
share.

A request names a judge, the knowledge to judge against and scoring options. :class:`AnswerJudge`
validates them (INVALID_ARGUMENT naming the field), resolves the knowledge (inline passages or facts, or a
registered source with its precomputed chunk vectors), calls the Judge actors with the caller's deadline,
and turns a judgment into the ScoredAnswer Score returns, with its per-answer metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from maskdpo.server.errors import InvalidArgument
from maskdpo.server.judge.metrics import FactualityMetrics, compute_metrics
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.registry import READS_FACTS_ONLY
from maskdpo.server.judge.types import ChunkVectors, Fact, JudgeRequest, Judgment, Passage
from maskdpo.server.services import factuality_convert as convert
from maskdpo.server.settings import ServerSettings
from maskdpo.server.store.knowledge_sources import KnowledgeStore, parse_name
from maskdpo.server.wire import judge_identity
from maskdpo.server.workers.judge_pool import JudgePool
from maskdpo.trainer.mask_rules import MaskRule
from maskdpo.v1 import common_pb2, factuality_pb2

DEFAULT_GAMMA = 10.0
DEFAULT_RESAMPLES = 1000
MAX_RESAMPLES = 20_000
MAX_TOPIC_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Scoring:
    """Validated ScoreOptions."""

    rule: MaskRule
    gamma: float
    k: float | None
    resamples: int
    seed: int


@dataclass(frozen=True, slots=True)
class Knowledge:
    """Resolved knowledge: what a JudgeRequest carries besides the answer."""

    passages: tuple[Passage, ...]
    facts: tuple[Fact, ...]
    source: str
    """A registered source's resource name, "inline", or "" (none given)."""
    vectors: ChunkVectors | None


@dataclass(frozen=True, slots=True)
class Plan:
    """How to judge generated answers: a hosted judge, resolved knowledge, the topic and the options."""

    judge: str
    knowledge: Knowledge
    topic: str
    scoring: Scoring

    def request(self, response: str, prompt: str = "") -> JudgeRequest:
        """The JudgeRequest of one answer (any text, empty included: a sample is judged as it came)."""
        k = self.knowledge
        return JudgeRequest(response=response, prompt=prompt, topic=self.topic, passages=k.passages,
                            facts=k.facts, knowledge_source=k.source, chunk_vectors=k.vectors)


class AnswerJudge:
    """Validates what a request asks of a judge, resolves its knowledge and calls the Judge actors."""

    def __init__(self, settings: ServerSettings, judges: JudgePool, store: KnowledgeStore) -> None:
        self.settings = settings
        self.judges = judges
        self.store = store

    def resolve(self, name: str, field: str = "judge") -> str:
        """The hosted judge ``name`` names ("" = the default); INVALID_ARGUMENT for one not hosted."""
        return self.judges.resolve(name, field)

    @staticmethod
    def scoring(options: factuality_pb2.ScoreOptions, field: str = "options") -> Scoring:
        rule = convert.mask_rule(options.mask_rule, f"{field}.mask_rule")
        gamma = options.gamma if options.HasField("gamma") else DEFAULT_GAMMA
        if not gamma >= 0:  # also rejects NaN
            raise InvalidArgument(f"{field}.gamma", "must be >= 0")
        if options.f1_k < 0:
            raise InvalidArgument(f"{field}.f1_k", "must be >= 0")
        resamples = options.bootstrap_resamples
        if resamples < -1 or resamples > MAX_RESAMPLES:
            raise InvalidArgument(f"{field}.bootstrap_resamples", f"must be -1, 0 or 1..{MAX_RESAMPLES}")
        resamples = DEFAULT_RESAMPLES if resamples == 0 else max(resamples, 0)
        if options.bootstrap_seed < 0:  # numpy's generators take non-negative seeds only
            raise InvalidArgument(f"{field}.bootstrap_seed", "must be >= 0")
        if options.split_on_semicolon:
            raise InvalidArgument(f"{field}.split_on_semicolon",
                                  "not supported by this server's judges yet; split with the default rule")
        return Scoring(rule, gamma, float(options.f1_k) or None, resamples, options.bootstrap_seed)

    async def knowledge(self, judge: str, knowledge: factuality_pb2.Knowledge, topic: str,
                        field: str) -> Knowledge:
        """The knowledge a request gives, resolved; INVALID_ARGUMENT when ``judge`` cannot read it."""
        kind = knowledge.WhichOneof("source")
        if kind == "knowledge_source":
            source_id = parse_name(knowledge.knowledge_source, f"{field}.knowledge_source")
            passages, facts = await asyncio.to_thread(self.store.resolve, source_id, topic)
            vectors = await asyncio.to_thread(self.store.chunk_vectors, source_id, topic)
            found = Knowledge(tuple(passages), tuple(facts), knowledge.knowledge_source, vectors)
        else:
            inline = convert.inline_knowledge(knowledge, field, self.settings.max_passages_chars)
            found = Knowledge(tuple(inline[0]), tuple(inline[1]), "inline" if kind else "", None)
        if judge in READS_FACTS_ONLY and not found.facts:
            raise InvalidArgument(field, f"the {judge} judge reads facts: give inline facts or a "
                                  "knowledge source with facts (about the answer's topic)")
        return found

    async def request(self, judge: str, answer: factuality_pb2.Answer, knowledge: factuality_pb2.Knowledge,
                      field: str, knowledge_field: str) -> JudgeRequest:
        """The validated JudgeRequest of a given Answer (Score, BatchScore)."""
        found = await self.knowledge(judge, knowledge, answer.topic, knowledge_field)
        request = convert.judge_request(answer, found.passages, found.facts, found.source, field,
                                        self.settings.max_text_chars)
        return replace(request, chunk_vectors=found.vectors) if found.vectors is not None else request

    async def plan(self, judge: str, knowledge: factuality_pb2.Knowledge, topic: str,
                   options: factuality_pb2.ScoreOptions, field: str) -> Plan:
        """How to judge generated answers, validated before anything is generated (``field`` is the
        request's judging message, e.g. ``requests[1].judging``)."""
        name = self.resolve(judge, f"{field}.judge")
        scoring = self.scoring(options, f"{field}.options")
        convert.check_text(f"{field}.topic", topic, MAX_TOPIC_CHARS)
        return Plan(name, await self.knowledge(name, knowledge, topic, f"{field}.knowledge"), topic, scoring)

    async def judge(self, judge: str, requests: list[JudgeRequest], timeout: float | None) -> list[Judgment]:
        return await self.judges.judge(judge, requests, timeout)

    @staticmethod
    def record(judgment: Judgment, topic: str, groups: Sequence[str] = ()) -> ResponseFacts:
        """The metric record of one judged answer (``groups`` are its Answer.groups)."""
        return from_judgment(judgment, topic=topic, buckets={f"group:{g}": g for g in groups})

    @staticmethod
    def scored(judgment: Judgment, record: ResponseFacts, scoring: Scoring,
               k: float | None = None) -> tuple[factuality_pb2.ScoredAnswer, FactualityMetrics]:
        """The answer as Score returns it, and its metrics (F1@K with ``k``, else the options' K)."""
        metrics = compute_metrics([record], gamma=scoring.gamma, k=k or scoring.k, resamples=0)
        return convert.scored_answer(judgment, scoring.rule, metrics), metrics

    @staticmethod
    def identity(judgment: Judgment, knowledge_source: str) -> common_pb2.JudgeIdentity:
        return judge_identity(judgment.identity, knowledge_source)
