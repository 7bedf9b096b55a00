"""Evidence retrieval for the heuristic judge: reference passages cut into sentence chunks
(:mod:`maskdpo.server.judge.chunks`), narrowed by BM25 (rank-bm25's BM25Plus, whose IDF stays positive on
tiny corpora), then ranked by a hybrid of BM25 and MiniLM cosine.

For each sentence, BM25 scores every chunk and only the ``candidates`` best (all of them in a short
reference) go on: they are the only chunks whose vectors are needed, so a long inline reference (a web
page of hundreds of sentences) costs a few embeddings per sentence instead of one per chunk. Among the
candidates, hybrid = alpha * cosine + (1 - alpha) * bm25, the BM25 scores min-max scaled over the
reference's chunks. Chunk vectors are computed on first need and kept with the prepared reference;
a registered knowledge source brings all of them, computed when it was registered
(:class:`~maskdpo.server.judge.types.ChunkVectors`). Prepared references are cached by the passages'
text, so many answers judged against one reference embed each of its chunks at most once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from rank_bm25 import BM25Plus

from maskdpo.server.judge.checkable_items import STOP_WORDS, Analysis, Token, analyse, stem, tokenize
from maskdpo.server.judge.chunks import chunk_text
from maskdpo.server.judge.embedding import DIMENSION, Vectors
from maskdpo.server.judge.types import ChunkVectors, Passage

ReferenceKey = tuple[tuple[str, str], ...]


def bm25_terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed words and numbers of ``text`` without stop words."""
    return _terms(tokenize(text))


def _terms(tokens: Sequence[Token]) -> list[str]:
    return [stem(t.lower).replace(",", "") for t in tokens if t.text[0].isalnum() and t.lower not in STOP_WORDS]


def topic_words(texts: Sequence[str]) -> frozenset[str]:
    """The words naming what the reference is about (passage titles, the request's topic)."""
    return frozenset(w for text in texts for w in bm25_terms(text) if w.isalpha())


def passage_chunks(passages: Sequence[Passage]) -> tuple[tuple[str, ...], ...]:
    """The sentence chunks of each passage."""
    return tuple(tuple(chunk_text(p.text)) for p in passages)


@dataclass(slots=True)
class Reference:
    """The reference of one request, ready to retrieve from. Vectors and analyses fill in on first need
    (one judge call at a time uses a reference: the Judge actor runs its batches one after another)."""

    chunks: tuple[str, ...]
    topic: frozenset[str]
    known_capitalised: frozenset[str]
    bm25: BM25Plus | None
    vectors: Vectors
    embedded: npt.NDArray[np.bool_]
    _analyses: dict[int, Analysis] = field(default_factory=dict)

    def analysis(self, index: int) -> Analysis:
        found = self._analyses.get(index)
        if found is None:
            found = self._analyses[index] = analyse(self.chunks[index], self.known_capitalised)
        return found

    def lexical(self, terms: Sequence[str]) -> npt.NDArray[np.float64]:
        """BM25 scores of every chunk for ``terms``, min-max scaled to [0, 1] (zeros when all are equal)."""
        if self.bm25 is None or not terms:
            return np.zeros(len(self.chunks))
        scores = np.asarray(self.bm25.get_scores(list(terms)), dtype=np.float64)
        low, high = scores.min(), scores.max()
        return (scores - low) / (high - low) if high > low else np.zeros(len(self.chunks))

    def use_vectors(self, indices: Sequence[int], vectors: Vectors) -> None:
        self.vectors[list(indices)] = vectors
        self.embedded[list(indices)] = True


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk."""

    index: int
    cosine: float
    hybrid: float


def reference_key(passages: Sequence[Passage], topic: str) -> ReferenceKey:
    return (("", topic), *((p.title, p.text) for p in passages))


def prepare_reference(passages: Sequence[Passage], topic: str, ahead: ChunkVectors | None = None) -> Reference:
    """Chunk and index the passages; with ``ahead`` (computed for these passages), take its chunks and
    vectors instead."""
    chunks = [c for cs in (ahead.chunks if ahead is not None else passage_chunks(passages)) for c in cs]
    names = [topic, *(p.title for p in passages)]
    known: set[str] = set()
    corpus: list[list[str]] = []
    for chunk in chunks:
        tokens = tokenize(chunk)
        known.update(t.lower for i, t in enumerate(tokens) if i > 0 and t.text[0].isupper())
        corpus.append(_terms(tokens) or ["_"])
    for name in names:
        known.update(t.lower for t in tokenize(name) if t.text[0].isupper())
    if ahead is not None and len(ahead.vectors) == len(chunks):
        vectors, embedded = np.array(ahead.vectors, dtype=np.float32), np.ones(len(chunks), dtype=np.bool_)
    else:
        vectors, embedded = np.zeros((len(chunks), DIMENSION), dtype=np.float32), np.zeros(len(chunks), np.bool_)
    return Reference(
        chunks=tuple(chunks),
        topic=topic_words(names),
        known_capitalised=frozenset(known),
        bm25=BM25Plus(corpus) if corpus else None,
        vectors=vectors,
        embedded=embedded,
    )


def candidates(lexical: npt.NDArray[np.float64], limit: int) -> list[int]:
    """The chunks worth embedding for one sentence: the ``limit`` best by BM25 (all, in a short reference)."""
    if len(lexical) <= limit:
        return list(range(len(lexical)))
    return [int(i) for i in np.argsort(-lexical, kind="stable")[:limit]]


def rank(reference: Reference, lexical: npt.NDArray[np.float64], among: Sequence[int], vector: Vectors, *,
         alpha: float, top_k: int) -> list[Hit]:
    """The ``top_k`` of the chunks ``among`` (their vectors present) by hybrid score, best first."""
    if not among:
        return []
    rows = np.asarray(among)
    cosines = reference.vectors[rows] @ vector
    hybrid = alpha * cosines + (1.0 - alpha) * lexical[rows]
    order = np.argsort(-hybrid, kind="stable")[:top_k]
    return [Hit(int(rows[i]), float(cosines[i]), float(hybrid[i])) for i in order]


class ReferenceCache:
    """A thread-safe LRU of prepared references keyed by their passages' text."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[ReferenceKey, Reference] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ReferenceKey) -> Reference | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: ReferenceKey, reference: Reference) -> None:
        with self._lock:
            self._items[key] = reference
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
