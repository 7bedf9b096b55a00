"""The toy world as a knowledge source, and the exact labelling of toy-world responses against it.

``WorldKnowledge`` indexes the world's (subject, attribute, value) facts. ``label_claims`` is the
kb rule for one sentence's claims: no claim -> ``nofact``; a claim whose (subject, attribute) the world
does not hold -> ``unverifiable``; a value the world does not hold for it -> ``contradictory``; all claims
held -> ``ok``. A sentence with several claims takes the worst (contradictory > unverifiable > ok).
``label_response`` splits with the project's one sentence splitter and labels each sentence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from maskdpo.server.judge.types import Fact
from maskdpo.toyworld.claims import TemplateClaimExtractor, extractor_for_world
from maskdpo.toyworld.world import World
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import SplitterConfig, split_sentences


class WorldKnowledge:
    """Facts indexed by (subject, attribute) -> set of values."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self._index: dict[tuple[str, str], set[str]] = defaultdict(set)
        for fact in facts:
            self._index[(fact.subject, fact.attribute)].add(fact.value)

    @classmethod
    def of_world(cls, world: World) -> WorldKnowledge:
        return cls(Fact(s, a, v) for s, a, v in world.facts())

    def check(self, claim: Fact) -> SentenceLabel:
        values = self._index.get((claim.subject, claim.attribute))
        if not values:
            return SentenceLabel.UNVERIFIABLE
        return SentenceLabel.OK if claim.value in values else SentenceLabel.CONTRADICTORY


def label_claims(claims: Iterable[Fact], knowledge: WorldKnowledge) -> SentenceLabel:
    labels = [knowledge.check(c) for c in claims]
    if not labels:
        return SentenceLabel.NOFACT
    for worst in (SentenceLabel.CONTRADICTORY, SentenceLabel.UNVERIFIABLE):
        if worst in labels:
            return worst
    return SentenceLabel.OK


class WorldLabeler:
    """Labels whole responses about one topic: split, extract, check."""

    def __init__(self, world: World, splitter: SplitterConfig | None = None) -> None:
        self.knowledge = WorldKnowledge.of_world(world)
        self.extractor: TemplateClaimExtractor = extractor_for_world(world)
        self.splitter = splitter or SplitterConfig()

    def label_sentence(self, sentence: str, topic: str) -> SentenceLabel:
        return label_claims(self.extractor.extract(sentence, topic), self.knowledge)

    def label_response(self, response: str, topic: str) -> list[LabeledSentence]:
        out = []
        for span in split_sentences(response, self.splitter):
            text = span.text_of(response)
            out.append(LabeledSentence(span, self.label_sentence(text, topic), text))
        return out
