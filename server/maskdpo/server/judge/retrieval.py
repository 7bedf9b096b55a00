"""Evidence retrieval for the heuristic judge: reference passages cut into sentence chunks, ranked by a
hybrid of BM25 (rank-bm25's BM25Plus, whose IDF stays positive on tiny corpora) and MiniLM cosine.

hybrid = alpha * cosine + (1 - alpha) * bm25, with the BM25 scores min-max scaled over the chunks of the
same reference. A prepared reference (chunks, their analyses and vectors, the BM25 index) is cached by the
passages' text, so many answers judged against one reference embed it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rank_bm25 import BM25Plus

from maskdpo.server.judge.checkable_items import STOP_WORDS, Analysis, analyse, stem, tokenize
from maskdpo.server.judge.embedding import Vectors
from maskdpo.server.judge.types import Passage
from maskdpo.trainer.sentences import split_sentences

ReferenceKey = tuple[tuple[str, str], ...]


def bm25_terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed words and numbers of ``text`` without stop words."""
    return [
        stem(t.lower).replace(",", "")
        for t in tokenize(text)
        if t.text[0].isalnum() and t.lower not in STOP_WORDS
    ]


def topic_words(texts: Sequence[str]) -> frozenset[str]:
    """The words naming what the reference is about (passage titles, the request's topic)."""
    return frozenset(w for text in texts for w in bm25_terms(text) if w.isalpha())


@dataclass(slots=True)
class Reference:
    """The reference of one request, ready to retrieve from."""

    chunks: tuple[str, ...]
    analyses: tuple[Analysis, ...]
    topic: frozenset[str]
    known_capitalised: frozenset[str]
    bm25: BM25Plus | None
    vectors: Vectors | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk."""

    index: int
    cosine: float
    hybrid: float


def reference_key(passages: Sequence[Passage], topic: str) -> ReferenceKey:
    return (("", topic), *((p.title, p.text) for p in passages))


def prepare_reference(passages: Sequence[Passage], topic: str) -> Reference:
    """Chunk the passages into sentences and index them (vectors are added by the caller, in a batch)."""
    chunks: list[str] = []
    for passage in passages:
        chunks.extend(span.text_of(passage.text) for span in split_sentences(passage.text))
    names = [topic, *(p.title for p in passages)]
    known: set[str] = set()
    for chunk in chunks:
        tokens = tokenize(chunk)
        known.update(t.lower for i, t in enumerate(tokens) if i > 0 and t.text[0].isupper())
    for name in names:
        known.update(t.lower for t in tokenize(name) if t.text[0].isupper())
    analyses = tuple(analyse(chunk, known) for chunk in chunks)
    corpus = [bm25_terms(chunk) or ["_"] for chunk in chunks]
    return Reference(
        chunks=tuple(chunks),
        analyses=analyses,
        topic=topic_words(names),
        known_capitalised=frozenset(known),
        bm25=BM25Plus(corpus) if corpus else None,
    )


def rank(reference: Reference, query: str, vector: Vectors, *, alpha: float, top_k: int) -> list[Hit]:
    """The ``top_k`` chunks by hybrid score, best first (empty when the reference has no chunks)."""
    if not reference.chunks or reference.vectors is None or reference.bm25 is None:
        return []
    cosines = reference.vectors @ vector
    terms = bm25_terms(query)
    lexical = np.asarray(reference.bm25.get_scores(terms), dtype=np.float64) if terms else None
    if lexical is not None and lexical.max() > lexical.min():
        lexical = (lexical - lexical.min()) / (lexical.max() - lexical.min())
    else:
        lexical = np.zeros(len(reference.chunks))
    hybrid = alpha * cosines + (1.0 - alpha) * lexical
    order = np.argsort(-hybrid, kind="stable")[:top_k]
    return [Hit(int(i), float(cosines[i]), float(hybrid[i])) for i in order]


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
