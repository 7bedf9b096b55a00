"""The ``kb`` judge backend: exact judging against a structured knowledge base of (subject, attribute, value).

How a sentence is labelled: a :class:`ClaimExtractor` turns the sentence (and the response's topic) into
claims, each a :class:`~maskdpo.server.judge.types.Fact` ``(subject, attribute, value)``; the knowledge
base checks each claim:

- the KB holds that attribute of that subject and the value is among its values -> supported;
- the KB holds that attribute of that subject with other values only -> contradicted;
- the KB does not know the subject, or holds no value of that attribute for it -> unverifiable.

Sentence label: no claim -> ``nofact``; any contradicted claim -> ``contradictory``; else any unverifiable
claim -> ``unverifiable``; else ``ok``. Each verdict carries ``facts`` = claims and ``supported`` = supported
claims, and a short evidence text. Responses that open with an explicit refusal are marked abstained.

The extractor protocol (what a domain, e.g. the toy world, implements)::

    class ClaimExtractor(Protocol):
        name: str                                   # recorded in the judge identity
        def extract(self, sentence: str, topic: str) -> list[Fact]: ...

``sentence`` is one sentence of the response (the shared splitter's output); ``topic`` is the request's
topic, the subject that pronouns and subject-less sentences refer to. Return every claim the sentence
makes, or ``[]`` when it makes none. Subjects and values may use any alias or casing the KB knows; the KB
normalises them (:func:`maskdpo.server.judge.knowledge_base.normalize`).

The default extractor is a :class:`~maskdpo.server.judge.claim_templates.TemplateClaimExtractor` built from the
attribute names of the knowledge base in use (statements like "Her birthplace is Lyon.").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from maskdpo.server.judge.abstention import is_refusal
from maskdpo.server.judge.claim_spans import wrong_value_spans
from maskdpo.server.judge.claim_templates import TemplateClaimExtractor
from maskdpo.server.judge.knowledge_base import ClaimCheck, KnowledgeBase
from maskdpo.server.judge.types import Fact, JudgeIdentity, JudgeRequest, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import SplitterConfig, split_sentences

__all__ = ["ClaimExtractor", "KbJudge", "KnowledgeBase", "TemplateClaimExtractor", "sentence_label"]


@runtime_checkable
class ClaimExtractor(Protocol):
    """Turns one sentence into (subject, attribute, value) claims; ``[]`` means the sentence states none."""

    name: str

    def extract(self, sentence: str, topic: str) -> list[Fact]: ...


def sentence_label(checks: Sequence[ClaimCheck]) -> SentenceLabel:
    """The label of a sentence from the checks of its claims (see the module docstring)."""
    if not checks:
        return SentenceLabel.NOFACT
    if any(check is ClaimCheck.CONTRADICTED for check in checks):
        return SentenceLabel.CONTRADICTORY
    if any(check is ClaimCheck.UNKNOWN for check in checks):
        return SentenceLabel.UNVERIFIABLE
    return SentenceLabel.OK


class KbJudge:
    """Exact judge against a knowledge base: the request's inline ``facts``, a registered source, or a default.

    Knowledge per request, in order: inline ``request.facts`` (aliases declared with the ``alias``
    attribute); else ``sources[request.knowledge_source]``; else ``knowledge``. None of them -> ValueError.
    """

    name = "kb"

    def __init__(
        self,
        knowledge: KnowledgeBase | None = None,
        extractor: ClaimExtractor | None = None,
        *,
        sources: Mapping[str, KnowledgeBase] | None = None,
        splitter: SplitterConfig | None = None,
        source_name: str = "",
    ) -> None:
        if extractor is not None and not isinstance(extractor, ClaimExtractor):
            raise TypeError(f"extractor {extractor!r} does not implement ClaimExtractor (name, extract)")
        self._knowledge = knowledge
        self._extractor = extractor
        self._sources = dict(sources or {})
        self._splitter = splitter or SplitterConfig()
        self._source_name = source_name
        self._default_extractors: dict[frozenset[str], TemplateClaimExtractor] = {}

    def identity(self) -> JudgeIdentity:
        extractor = self._extractor.name if self._extractor else TemplateClaimExtractor.DEFAULT_NAME
        return JudgeIdentity(
            backend=self.name,
            knowledge_source=self._source_name,
            splitter=self._splitter.identity,
            heuristic=False,
            settings={"extractor": extractor, "value_match": "normalized-exact"},
        )

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        identity = self.identity()
        return [self._judge(index, request, identity) for index, request in enumerate(requests)]

    def _knowledge_for(self, index: int, request: JudgeRequest) -> KnowledgeBase:
        if request.facts:
            return KnowledgeBase(request.facts)
        if request.knowledge_source:
            if request.knowledge_source not in self._sources:
                known = ", ".join(sorted(self._sources)) or "none"
                raise ValueError(
                    f"request {index}: unknown knowledge source {request.knowledge_source!r} (registered: {known})"
                )
            return self._sources[request.knowledge_source]
        if self._knowledge is None:
            raise ValueError(f"request {index}: the kb judge needs facts, a knowledge source or a default KB")
        return self._knowledge

    def _extractor_for(self, kb: KnowledgeBase) -> ClaimExtractor:
        if self._extractor is not None:
            return self._extractor
        attributes = kb.attributes()
        if attributes not in self._default_extractors:
            self._default_extractors[attributes] = TemplateClaimExtractor.for_attributes(attributes)
        return self._default_extractors[attributes]

    def _judge(self, index: int, request: JudgeRequest, identity: JudgeIdentity) -> Judgment:
        kb = self._knowledge_for(index, request)
        extractor = self._extractor_for(kb)
        text = request.response
        verdicts: list[SentenceVerdict] = []
        for span in split_sentences(text, self._splitter):
            sentence = span.text_of(text)
            claims = extractor.extract(sentence, request.topic)
            checks = [kb.check(claim) for claim in claims]
            verdicts.append(
                SentenceVerdict(
                    sentence=LabeledSentence(span, sentence_label(checks), sentence,
                                             wrong_spans=wrong_value_spans(sentence, span.start, claims, checks)),
                    evidence="; ".join(
                        kb.explain(claim, check) for claim, check in zip(claims, checks, strict=True)
                    ),
                    facts=len(claims),
                    supported=sum(check is ClaimCheck.SUPPORTED for check in checks),
                )
            )
        return Judgment(
            response=text,
            verdicts=tuple(verdicts),
            identity=identity,
            abstained=is_refusal(text, self._splitter),
        )
