"""The ``kb`` judge backend: exact judging against a structured knowledge base of (subject, attribute, value).

How a sentence is labelled: a :class:`ClaimExtractor` turns the sentence (and the response's topic) into
claims, each a :class:`~maskdpo.server.judge.types.Fact` ``(subject, attribute, value)``; the knowledge
base checks each claim:

- the KB holds that attribute of that subject and the value is among its values -> supported;
- the KB holds that attribute of that subject with other values only -> contradicted;
- the KB does not know the subject, or holds no value of that attribute for it -> unverifiable.

Sentence label: any contradicted claim -> ``contradictory``; else any unverifiable claim ->
``unverifiable``; else ``ok``. A sentence without claims is ``nofact``, unless the extractor says it states
something it could not read as a claim (``unmatched_label``, below): then it gets the extractor's fallback
label (``unverifiable`` for natural text, ``nofact`` for templates) and ``matched = False``, which the
coverage counts report as *unmatched*. Each verdict carries ``facts`` = claims and ``supported`` =
supported claims, and a short evidence text. Responses that open with an explicit refusal are marked
abstained.

The extractor protocol (what a domain, e.g. the toy world, implements)::

    class ClaimExtractor(Protocol):
        name: str                                   # recorded in the judge identity
        def extract(self, sentence: str, topic: str) -> list[Fact]: ...

``sentence`` is one sentence of the response (the shared splitter's output); ``topic`` is the request's
topic, the subject that pronouns and subject-less sentences refer to. Return every claim the sentence
makes, or ``[]`` when it makes none. Subjects and values may use any alias or casing the KB knows; the KB
normalises them (:func:`maskdpo.server.judge.knowledge_base.normalize`).

An extractor may also implement ``unmatched_label(sentence, topic) -> SentenceLabel | None``
(:class:`ReportsUnmatched`), asked for sentences without claims: None means the sentence states nothing;
a label means it states something the extractor could not match. Extractors without it (the toy world's,
whose templates cover every sentence its world writes) make every claim-less sentence ``nofact``.

Extractors for the knowledge base in use, by name (``extractor=``):

- ``"natural"`` (the default): :class:`~maskdpo.server.judge.natural_claims.NaturalClaimExtractor`, claims
  read from ordinary sentences through the KB's names and values ("Åsa Lind was born in Malmö in 1961.",
  "She was a chemist.").
- ``"template"``: :class:`~maskdpo.server.judge.claim_templates.TemplateClaimExtractor` built from the
  attribute names alone (statements like "Her birthplace is Lyon."), for precise domains.

Or pass any :class:`ClaimExtractor` instance (the toy world passes its own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from maskdpo.server.judge.abstention import is_refusal
from maskdpo.server.judge.claim_spans import wrong_value_spans
from maskdpo.server.judge.claim_templates import TemplateClaimExtractor
from maskdpo.server.judge.knowledge_base import ClaimCheck, KnowledgeBase
from maskdpo.server.judge.natural_claims import NaturalClaimExtractor
from maskdpo.server.judge.types import Fact, JudgeIdentity, JudgeRequest, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.sentences import SplitterConfig, split_sentences

__all__ = [
    "EXTRACTORS",
    "ClaimExtractor",
    "KbJudge",
    "KnowledgeBase",
    "NaturalClaimExtractor",
    "ReportsUnmatched",
    "TemplateClaimExtractor",
    "sentence_label",
]


@runtime_checkable
class ClaimExtractor(Protocol):
    """Turns one sentence into (subject, attribute, value) claims; ``[]`` means the sentence states none."""

    name: str

    def extract(self, sentence: str, topic: str) -> list[Fact]: ...


@runtime_checkable
class ReportsUnmatched(Protocol):
    """An extractor that tells a sentence stating nothing from one stating what it cannot match."""

    def unmatched_label(self, sentence: str, topic: str) -> SentenceLabel | None: ...


EXTRACTORS: dict[str, Callable[[KnowledgeBase], ClaimExtractor]] = {
    NaturalClaimExtractor.name: NaturalClaimExtractor,
    TemplateClaimExtractor.DEFAULT_NAME: lambda kb: TemplateClaimExtractor.for_attributes(kb.attributes()),
}
"""The extractors built for the knowledge base in use, by name (the first is the default)."""
DEFAULT_EXTRACTOR = next(iter(EXTRACTORS))
_CACHED_KNOWLEDGE = 8


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
    ``extractor``: a name of :data:`EXTRACTORS` (built for each knowledge base) or a :class:`ClaimExtractor`.
    """

    name = "kb"

    def __init__(
        self,
        knowledge: KnowledgeBase | None = None,
        extractor: ClaimExtractor | str = DEFAULT_EXTRACTOR,
        *,
        sources: Mapping[str, KnowledgeBase] | None = None,
        splitter: SplitterConfig | None = None,
        source_name: str = "",
    ) -> None:
        if isinstance(extractor, str):
            if extractor not in EXTRACTORS:
                raise ValueError(f"unknown kb extractor {extractor!r}; expected one of: {', '.join(EXTRACTORS)}")
        elif not isinstance(extractor, ClaimExtractor):
            raise TypeError(f"extractor {extractor!r} does not implement ClaimExtractor (name, extract)")
        self._knowledge = knowledge
        self._extractor = extractor
        self._sources = dict(sources or {})
        self._splitter = splitter or SplitterConfig()
        self._source_name = source_name
        self._built: dict[object, tuple[KnowledgeBase, ClaimExtractor]] = {}

    def identity(self) -> JudgeIdentity:
        extractor = self._extractor if isinstance(self._extractor, str) else self._extractor.name
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

    def _knowledge_for(self, index: int, request: JudgeRequest) -> tuple[KnowledgeBase, ClaimExtractor]:
        """The request's knowledge base and the extractor for it (the last few are kept, so a batch that
        shares its facts, or a registered source, builds them once)."""
        key, knowledge = self._source_of(index, request)
        if key not in self._built:
            kb = knowledge()
            extractor = EXTRACTORS[self._extractor](kb) if isinstance(self._extractor, str) else self._extractor
            if len(self._built) >= _CACHED_KNOWLEDGE:
                del self._built[next(iter(self._built))]
            self._built[key] = (kb, extractor)
        return self._built[key]

    def _source_of(self, index: int, request: JudgeRequest) -> tuple[object, Callable[[], KnowledgeBase]]:
        if request.facts:
            return request.facts, lambda: KnowledgeBase(request.facts)
        if request.knowledge_source:
            source = self._sources.get(request.knowledge_source)
            if source is None:
                known = ", ".join(sorted(self._sources)) or "none"
                raise ValueError(
                    f"request {index}: unknown knowledge source {request.knowledge_source!r} (registered: {known})"
                )
            return ("source", request.knowledge_source), lambda: source
        default = self._knowledge
        if default is None:
            raise ValueError(f"request {index}: the kb judge needs facts, a knowledge source or a default KB")
        return ("default",), lambda: default

    def _judge(self, index: int, request: JudgeRequest, identity: JudgeIdentity) -> Judgment:
        kb, extractor = self._knowledge_for(index, request)
        text = request.response
        verdicts = [
            self._verdict(kb, extractor, span, span.text_of(text), request.topic)
            for span in split_sentences(text, self._splitter)
        ]
        return Judgment(
            response=text,
            verdicts=tuple(verdicts),
            identity=identity,
            abstained=is_refusal(text, self._splitter),
        )

    @staticmethod
    def _verdict(kb: KnowledgeBase, extractor: ClaimExtractor, span: Span, sentence: str,
                 topic: str) -> SentenceVerdict:
        claims = extractor.extract(sentence, topic)
        if not claims:
            label = extractor.unmatched_label(sentence, topic) if isinstance(extractor, ReportsUnmatched) else None
            if label is not None:
                return SentenceVerdict(
                    sentence=LabeledSentence(span, label, sentence),
                    evidence=f"unmatched: states something, but the {extractor.name} extractor "
                    "found no claim in it",
                    facts=int(label.is_fact),
                    matched=False,
                )
        checks = [kb.check(claim) for claim in claims]
        return SentenceVerdict(
            sentence=LabeledSentence(span, sentence_label(checks), sentence,
                                     wrong_spans=wrong_value_spans(sentence, span.start, claims, checks)),
            evidence="; ".join(kb.explain(claim, check) for claim, check in zip(claims, checks, strict=True)),
            facts=len(claims),
            supported=sum(check is ClaimCheck.SUPPORTED for check in checks),
        )
