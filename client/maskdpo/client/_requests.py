"""Builds request messages from plain Python arguments (shared by the sync and async clients)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from google.longrunning import operations_proto_pb2
from google.protobuf import duration_pb2

from maskdpo.v1 import common_pb2, factuality_pb2

PassageLike = str | tuple[str, str] | Mapping[str, str]
"""A passage: its text, a (title, text) pair, or a mapping with "text" and optional "title"."""
FactLike = tuple[str, str, str] | Mapping[str, str]
"""A fact: (subject, attribute, value) or a mapping with those keys."""


@dataclass
class Knowledge:
    """What to judge an answer against: inline passages, inline facts, or a registered source id."""

    passages: Sequence[PassageLike] = ()
    facts: Sequence[FactLike] = ()
    source: str = ""
    """A knowledge source id ("bios") or resource name ("knowledgeSources/bios")."""

    def to_proto(self) -> factuality_pb2.Knowledge:
        given = sum(bool(x) for x in (self.passages, self.facts, self.source))
        if given > 1:
            raise ValueError("give one of passages, facts or source")
        out = factuality_pb2.Knowledge()
        if self.source:
            out.knowledge_source = knowledge_source_name(self.source)
        elif self.passages:
            out.passages.passages.extend(passage(p) for p in self.passages)
        elif self.facts:
            out.facts.facts.extend(fact(f) for f in self.facts)
        return out


@dataclass
class ScoreOptions:
    """Scoring options; see ``maskdpo.v1.ScoreOptions``."""

    mask_rule: str = "default"
    gamma: float | None = None
    f1_k: int = 0
    bootstrap_resamples: int = 0
    bootstrap_seed: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def to_proto(self) -> factuality_pb2.ScoreOptions:
        rules = {"default": common_pb2.MASK_RULE_DEFAULT, "released": common_pb2.MASK_RULE_RELEASED}
        if self.mask_rule not in rules:
            raise ValueError(f"mask_rule must be one of {sorted(rules)}")
        out = factuality_pb2.ScoreOptions(mask_rule=rules[self.mask_rule], f1_k=self.f1_k,
                                          bootstrap_resamples=self.bootstrap_resamples,
                                          bootstrap_seed=self.bootstrap_seed)
        if self.gamma is not None:
            out.gamma = self.gamma
        return out


def knowledge_source_name(source: str) -> str:
    """``knowledgeSources/{source}`` for a bare id; a resource name stays as it is."""
    return source if source.startswith("knowledgeSources/") else f"knowledgeSources/{source}"


def create_knowledge_source_request(source_id: str, *, passages: Sequence[PassageLike],
                                    facts: Sequence[FactLike], description: str
                                    ) -> factuality_pb2.CreateKnowledgeSourceRequest:
    return factuality_pb2.CreateKnowledgeSourceRequest(
        knowledge_source_id=source_id, description=description,
        passages=[passage(p) for p in passages], facts=[fact(f) for f in facts])


def passage(p: PassageLike) -> factuality_pb2.Passage:
    if isinstance(p, str):
        return factuality_pb2.Passage(text=p)
    if isinstance(p, tuple):
        return factuality_pb2.Passage(title=p[0], text=p[1])
    return factuality_pb2.Passage(title=p.get("title", ""), text=p["text"])


def fact(f: FactLike) -> factuality_pb2.Fact:
    if isinstance(f, tuple):
        return factuality_pb2.Fact(subject=f[0], attribute=f[1], value=f[2])
    return factuality_pb2.Fact(subject=f["subject"], attribute=f["attribute"], value=f["value"])


def answer(response: str, prompt: str = "", topic: str = "", groups: Iterable[str] = ()) -> factuality_pb2.Answer:
    return factuality_pb2.Answer(response=response, prompt=prompt, topic=topic, groups=list(groups))


def score_request(response: str, *, knowledge: Knowledge | None, prompt: str, topic: str, judge: str,
                  options: ScoreOptions | None) -> factuality_pb2.ScoreRequest:
    return factuality_pb2.ScoreRequest(
        judge=judge, answer=answer(response, prompt, topic),
        knowledge=(knowledge or Knowledge()).to_proto(), options=(options or ScoreOptions()).to_proto())


@dataclass
class Item:
    """One answer of a batch, with optional knowledge of its own."""

    response: str
    prompt: str = ""
    topic: str = ""
    groups: Sequence[str] = ()
    knowledge: Knowledge | None = None


def batch_score_request(items: Sequence[Item], *, knowledge: Knowledge | None, judge: str,
                        options: ScoreOptions | None) -> factuality_pb2.BatchScoreRequest:
    out = factuality_pb2.BatchScoreRequest(judge=judge, knowledge=(knowledge or Knowledge()).to_proto(),
                                           options=(options or ScoreOptions()).to_proto())
    for item in items:
        entry = out.items.add(answer=answer(item.response, item.prompt, item.topic, item.groups))
        if item.knowledge is not None:
            entry.knowledge.CopyFrom(item.knowledge.to_proto())
    return out


WAIT_SLICE_S = 30.0
"""The longest a single WaitOperation call asks the server to wait; a longer wait takes several calls."""


def wait_request(name: str, deadline: float) -> tuple[operations_proto_pb2.WaitOperationRequest, float]:
    """The next WaitOperation request for a wait ending at ``deadline`` (``time.monotonic()``), and the
    call's own timeout (the server's wait plus a margin)."""
    remaining = min(max(deadline - time.monotonic(), 0.0), WAIT_SLICE_S)
    wait = duration_pb2.Duration()
    wait.FromNanoseconds(int(remaining * 1e9))
    return operations_proto_pb2.WaitOperationRequest(name=name, timeout=wait), remaining + 10.0
