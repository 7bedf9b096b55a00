"""The judge's request / result types and the protocol every backend implements.

These are internal types: the gRPC servicers translate protobuf messages to and from them at the edge.
Labels and spans come from the trainer's vocabulary (:mod:`maskdpo.trainer.labels`), so what the judge
emits is exactly what the mask and pair code consumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from maskdpo.trainer.labels import LabelCounts, LabeledSentence


@dataclass(frozen=True, slots=True)
class Passage:
    """One piece of reference knowledge (e.g. a Wikipedia lead section)."""

    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Fact:
    """A (subject, attribute, value) fact of a structured knowledge base."""

    subject: str
    attribute: str
    value: str


@dataclass(frozen=True, slots=True, eq=False)
class ChunkVectors:
    """Passages cut into sentence chunks, with the chunks' embeddings, computed once (when a knowledge
    source is registered) so that judging against them embeds only the response."""

    model: str
    """The embedding model that made the vectors (a judge with another model ignores them)."""
    chunks: tuple[tuple[str, ...], ...]
    """The chunks of each passage, in passage order."""
    vectors: npt.NDArray[np.float32]
    """One unit vector per chunk, all passages' chunks in order."""

    def select(self, indices: Sequence[int]) -> ChunkVectors:
        """The chunks and vectors of the passages at ``indices``, in that order (itself for all of them)."""
        if list(indices) == list(range(len(self.chunks))):
            return self
        starts = np.cumsum([0, *(len(c) for c in self.chunks)])
        rows = [r for i in indices for r in range(int(starts[i]), int(starts[i + 1]))]
        return ChunkVectors(self.model, tuple(self.chunks[i] for i in indices),
                            np.ascontiguousarray(self.vectors[rows], dtype=np.float32))


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """One response to judge, with the knowledge to judge it against."""

    response: str
    prompt: str = ""
    topic: str = ""
    """The entity the response is about (e.g. the person of a biography); helps retrieval and kb lookup."""
    passages: tuple[Passage, ...] = ()
    """Reference text given inline (heuristic / llm backends)."""
    facts: tuple[Fact, ...] = ()
    """Structured facts given inline (kb backend)."""
    knowledge_source: str = ""
    """Id of a registered knowledge source; resolved by the caller before the backend sees the request."""
    chunk_vectors: ChunkVectors | None = None
    """The passages' chunks and embeddings when they were computed ahead (a registered source's); backends
    that embed passages use them instead of embedding again."""


@dataclass(frozen=True, slots=True)
class JudgeIdentity:
    """Who judged: scores from different judges are not comparable, so every result carries this."""

    backend: str
    model: str = ""
    prompt_version: str = ""
    knowledge_source: str = ""
    splitter: str = ""
    heuristic: bool = False
    """True when the backend is a heuristic (similarity and mismatch rules), not a verifier."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Backend thresholds and options that change labels (e.g. similarity cut-offs)."""


@dataclass(frozen=True, slots=True)
class SentenceVerdict:
    """A labelled sentence plus the judge's evidence for it (free text; may be empty)."""

    sentence: LabeledSentence
    evidence: str = ""
    facts: int = 1
    """Number of checkable facts the sentence states (1 for sentence-level judges; 0 for nofact)."""
    supported: int = 0
    """How many of those facts the knowledge supports."""
    matched: bool = True
    """False when the sentence states something the judge could not match to its knowledge or its claim
    patterns (e.g. the ``kb`` judge found no claim about any attribute it holds, or there was no reference
    text): its label is then the judge's fallback. Coverage counts such sentences as *unmatched*, and an
    answer with unmatched sentences and none checked is not checkable by this judge (docs/metrics.md)."""

    @property
    def parsed(self) -> bool:
        """False when the judge reached no verdict for this sentence (see :attr:`LabeledSentence.parsed`):
        metrics count it as unsupported and report how many there were, and the masks leave it neutral."""
        return self.sentence.parsed


@dataclass(frozen=True, slots=True)
class Judgment:
    """The judge's result for one response."""

    response: str
    verdicts: tuple[SentenceVerdict, ...]
    identity: JudgeIdentity
    abstained: bool = False
    """True when the response is an explicit refusal ("I could not find information about ...")."""

    @property
    def sentences(self) -> tuple[LabeledSentence, ...]:
        return tuple(v.sentence for v in self.verdicts)

    @property
    def counts(self) -> LabelCounts:
        return LabelCounts.of(v.sentence.label for v in self.verdicts)


@runtime_checkable
class JudgeBackend(Protocol):
    """What every judge backend (kb, heuristic, llm) implements."""

    name: str

    def identity(self) -> JudgeIdentity:
        """The identity stamped on every judgment this backend produces."""
        ...

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        """Judge several responses at once (backends batch model calls across them)."""
        ...
