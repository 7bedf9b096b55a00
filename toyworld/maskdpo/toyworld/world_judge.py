"""The toy world as a knowledge source for the ``kb`` judge, and exact labelling of toy-world answers.

``world_knowledge_base`` holds the world's (subject, attribute, value) facts; ``world_judge`` is the
project's ``kb`` judge over them with the toy world's template claim extractor, so every sentence the
templates (or a model built on them) produce is labelled exactly: no claim -> ``nofact``; a claim about an
attribute the world does not hold for that person (or about an unknown person) -> ``unverifiable``; a
value the world does not hold -> ``contradictory``; all claims held -> ``ok``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from maskdpo.server.judge.kb import KbJudge, KnowledgeBase, sentence_label
from maskdpo.server.judge.knowledge_base import ClaimCheck
from maskdpo.server.judge.types import Fact, JudgeRequest, Judgment
from maskdpo.toyworld.claim_parser import TemplateClaimExtractor, extractor_for_world
from maskdpo.toyworld.world import World
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import SplitterConfig

SOURCE_NAME = "toyworld"


def world_facts(world: World) -> list[Fact]:
    return [Fact(s, a, v) for s, a, v in world.facts()]


def world_knowledge_base(world: World) -> KnowledgeBase:
    return KnowledgeBase(world_facts(world))


def world_judge(world: World, splitter: SplitterConfig | None = None) -> KbJudge:
    """The ``kb`` judge over ``world`` with its claim extractor (source name ``toyworld-seed<N>``)."""
    return KbJudge(
        world_knowledge_base(world),
        extractor_for_world(world),
        splitter=splitter,
        source_name=f"{SOURCE_NAME}-seed{world.config.seed}",
    )


def model_world_judge(model: str = "") -> KbJudge:
    """The ``toyworld`` judge backend (entry point ``maskdpo.judge_backends``): :func:`world_judge` over the
    world the toy model at ``model`` (default: the committed one) was trained on."""
    from maskdpo.toyworld.train_model import DEFAULT_OUT, world_of

    return world_judge(world_of(Path(model) if model else DEFAULT_OUT))


class WorldLabeler:
    """Labels toy-world answers about one topic with the ``kb`` judge."""

    def __init__(self, world: World, splitter: SplitterConfig | None = None) -> None:
        self.knowledge = world_knowledge_base(world)
        self.extractor: TemplateClaimExtractor = extractor_for_world(world)
        self.judge = KbJudge(
            self.knowledge,
            self.extractor,
            splitter=splitter,
            source_name=f"{SOURCE_NAME}-seed{world.config.seed}",
        )

    def label_sentence(self, sentence: str, topic: str) -> SentenceLabel:
        claims = self.extractor.extract(sentence, topic)
        return sentence_label([self.knowledge.check(c) for c in claims])

    def judge_responses(self, responses: Sequence[tuple[str, str]]) -> list[Judgment]:
        """Judge (response, topic) pairs."""
        return self.judge.judge_batch([JudgeRequest(response=r, topic=t) for r, t in responses])

    def label_response(self, response: str, topic: str) -> list[LabeledSentence]:
        return list(self.judge_responses([(response, topic)])[0].sentences)

    def supported_by_attribute(self, judgment: Judgment, topic: str) -> Counter[str]:
        """How many supported claims of each attribute a judged answer about ``topic`` states."""
        counts: Counter[str] = Counter()
        for sentence in judgment.sentences:
            for claim in self.extractor.extract(sentence.text, topic):
                if self.knowledge.check(claim) is ClaimCheck.SUPPORTED:
                    counts[claim.attribute] += 1
        return counts
