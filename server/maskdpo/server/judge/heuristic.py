"""The ``heuristic`` judge backend: retrieval plus mismatch rules, on CPU, without a judge model.

For each sentence of a response (the shared splitter):

1. ``nofact`` when it states nothing checkable (:func:`maskdpo.server.judge.checkable_items.is_filler`: no number,
   date or entity beyond the topic's name, and no content word, or reader talk / meta phrase / opinion),
   and every sentence that is an explicit refusal ("I could not find information about ...", the
   patterns of :mod:`maskdpo.server.judge.abstention`, which also decides ``Judgment.abstained``);
2. retrieve the ``top_k`` reference chunks (passage sentences) by hybrid BM25 + MiniLM cosine, among the
   ``candidates`` chunks BM25 ranks best (:mod:`maskdpo.server.judge.retrieval`);
3. ``contradictory`` when a chunk with cosine >= ``related_similarity`` states a conflicting number /
   year / month / direction / entity in the same context, or a chunk with cosine >=
   ``negation_similarity`` differs in negation (:mod:`maskdpo.server.judge.mismatch`);
4. ``ok`` when every item of the sentence is found in the retrieved chunks, the ``support_chunks`` best
   by BM25 or the topic, the best cosine is >= ``item_support_similarity`` (``support_similarity`` for a
   sentence without items, which also needs ``min_coverage`` of its content words there);
5. ``unverifiable`` otherwise.

It is a heuristic (its identity says so): similarity is not verification, and the rules miss paraphrased
contradictions ("won" vs "lost", "sculptor" vs "painter"). Sentences of all requests, and the chunks
they still need, are embedded in one model call; each reference is prepared once and cached.
Measured agreement with human labels: ``maskdpo judge-eval`` (docs/metrics.md, "Judge accuracy").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from maskdpo.server.judge.abstention import REFUSAL_PATTERNS, is_refusal
from maskdpo.server.judge.checkable_items import (
    Analysis,
    Item,
    analyse,
    is_filler,
    near_words,
    stem,
    words_match,
)
from maskdpo.server.judge.embedding import MODEL_NAME, MiniLMEncoder
from maskdpo.server.judge.mismatch import find_conflict, missing_items, negation_differs
from maskdpo.server.judge.retrieval import (
    Hit,
    Reference,
    ReferenceCache,
    ReferenceKey,
    bm25_terms,
    candidates,
    passage_chunks,
    prepare_reference,
    rank,
    reference_key,
)
from maskdpo.server.judge.types import (
    ChunkVectors,
    JudgeIdentity,
    JudgeRequest,
    Judgment,
    Passage,
    SentenceVerdict,
)
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import SplitterConfig, split_sentences

PROMPT_VERSION = "heuristic-rules-2"


def _is_refusal_sentence(sentence: str) -> bool:
    return any(pattern.search(sentence) for pattern in REFUSAL_PATTERNS)


@dataclass(frozen=True, slots=True)
class HeuristicSettings:
    """Thresholds and options; all of them are part of the judge's identity."""

    alpha: float = 0.7
    """Weight of the cosine in the hybrid ranking score (the rest is min-max scaled BM25)."""
    top_k: int = 3
    """Evidence chunks considered per sentence."""
    candidates: int = 4
    """Chunks per sentence that BM25 lets through to be embedded and ranked (every chunk of a shorter
    reference): a long reference costs a few embeddings per sentence, not one per chunk."""
    support_similarity: float = 0.5
    """Cosine needed for ok when the sentence names no number, date or entity (beyond the topic)."""
    item_support_similarity: float = 0.25
    """Cosine needed for ok when all of the sentence's numbers, dates and entities are found."""
    related_similarity: float = 0.3
    """Cosine above which a conflicting item sharing one context word makes a contradiction (below it,
    two shared context words are needed)."""
    close_similarity: float = 0.75
    """Cosine above which any conflicting item of the same kind makes a contradiction."""
    negation_similarity: float = 0.6
    """Cosine above which a difference in negation makes a contradiction."""
    support_chunks: int = 16
    """Chunks, best by BM25, in which a sentence's numbers, dates and entities may be found besides the
    ``top_k`` retrieved ones (no vectors needed): a fact is often spread over several sentences of a page."""
    min_coverage: float = 0.6
    """Share of the sentence's content words (beyond the topic) that the evidence must contain for ok,
    when the sentence names no number, date or entity."""
    context_window: int = 4
    threads: int = max(1, min(4, (os.cpu_count() or 2) // 2))
    """torch intra-op threads, set when the encoder loads (0: leave torch's setting). Half the cores, at
    most 4: OpenMP threads spin-wait, and on 2 busy cores 2 threads embedded 7x slower than 1."""
    embedding_dtype: str = "auto"
    """MiniLM's compute dtype: ``auto`` = bfloat16 where the CPU computes it natively (AVX512-BF16 / AMX:
    2.3x faster, cosines within 2e-4 of float32), else float32."""
    cache_size: int = 256
    split_on_semicolon: bool = False

    def as_settings(self) -> dict[str, str]:
        skip = {"threads", "cache_size", "embedding_dtype"}
        return {k: str(v) for k, v in asdict(self).items() if k not in skip}


class HeuristicJudge:
    """Retrieval (BM25 + all-MiniLM-L6-v2) and number / date / entity mismatch rules."""

    name = "heuristic"

    def __init__(
        self,
        settings: HeuristicSettings | None = None,
        encoder: MiniLMEncoder | None = None,
        **overrides: Any,
    ) -> None:
        """``overrides`` replace single settings by name (``HeuristicJudge(support_similarity=0.6)``)."""
        settings = settings or HeuristicSettings()
        unknown = set(overrides) - {f.name for f in fields(HeuristicSettings)}
        if unknown:
            known = ", ".join(f.name for f in fields(HeuristicSettings))
            raise ValueError(f"unknown heuristic judge setting(s) {sorted(unknown)}; expected: {known}")
        for name, value in overrides.items():
            default = getattr(settings, name)
            numeric = isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool)
            if type(value) is not type(default) and not numeric:
                raise ValueError(
                    f"heuristic judge setting {name!r} must be a {type(default).__name__}: {value!r}"
                )
        self.settings = replace(settings, **overrides) if overrides else settings
        self.encoder = encoder or MiniLMEncoder(threads=self.settings.threads, dtype=self.settings.embedding_dtype)
        self.splitter = SplitterConfig(split_on_semicolon=self.settings.split_on_semicolon)
        self._cache = ReferenceCache(self.settings.cache_size)

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(
            backend=self.name,
            model=f"{MODEL_NAME} + BM25",
            prompt_version=PROMPT_VERSION,
            splitter=self.splitter.identity,
            heuristic=True,
            settings={**self.settings.as_settings(), "embedding_dtype": self.encoder.dtype},
        )

    def judge(self, request: JudgeRequest) -> Judgment:
        return self.judge_batch([request])[0]

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        settings = self.settings
        references, fresh = self._references(requests)
        spans = [split_sentences(r.response, self.splitter) for r in requests]
        texts = [[s.text_of(r.response) for s in ss] for r, ss in zip(requests, spans, strict=True)]
        refusals = [[_is_refusal_sentence(t) for t in ts] for ts in texts]
        analyses = [
            [analyse(t, ref.known_capitalised) for t in ts] for ts, ref in zip(texts, references, strict=True)
        ]
        filler = [
            [refused or is_filler(a, ref.topic) for a, refused in zip(aa, rr, strict=True)]
            for aa, rr, ref in zip(analyses, refusals, references, strict=True)
        ]
        checked = [
            (i, j)
            for i, ts in enumerate(texts)
            for j in range(len(ts))
            if not filler[i][j] and references[i].chunks
        ]
        # BM25 first: only the chunks that can matter to some sentence get embedded.
        lexical = {(i, j): references[i].lexical(bm25_terms(texts[i][j])) for i, j in checked}
        among = {key: candidates(lexical[key], settings.candidates) for key in checked}
        wanted: dict[int, tuple[Reference, set[int]]] = {}
        for (i, _), rows in among.items():
            reference = references[i]
            missing = wanted.setdefault(id(reference), (reference, set()))[1]
            missing.update(r for r in rows if not reference.embedded[r])
        pending = [(reference, sorted(rows)) for reference, rows in wanted.values() if rows]
        chunk_texts = [reference.chunks[r] for reference, rows in pending for r in rows]
        # One model call for the chunks still needed and every sentence to check.
        vectors = self.encoder.encode(chunk_texts + [texts[i][j] for i, j in checked])
        offset = 0
        for reference, rows in pending:
            reference.use_vectors(rows, vectors[offset : offset + len(rows)])
            offset += len(rows)
        for key, reference in fresh.items():
            self._cache.put(key, reference)
        row = {key: offset + n for n, key in enumerate(checked)}
        identity = self.identity()
        out: list[Judgment] = []
        for i, request in enumerate(requests):
            verdicts = []
            for j, span in enumerate(spans[i]):
                matched = True
                if filler[i][j]:
                    label, evidence = SentenceLabel.NOFACT, ""
                elif (i, j) not in row:
                    label, evidence, matched = SentenceLabel.UNVERIFIABLE, "no reference text: unmatched", False
                else:
                    hits = rank(references[i], lexical[(i, j)], among[(i, j)], vectors[row[(i, j)]],
                                alpha=settings.alpha, top_k=settings.top_k)
                    support = candidates(lexical[(i, j)], settings.support_chunks)
                    label, evidence = self._label(analyses[i][j], references[i], hits, support)
                verdicts.append(
                    SentenceVerdict(
                        LabeledSentence(span, label, texts[i][j]),
                        evidence=evidence,
                        facts=int(label is not SentenceLabel.NOFACT),
                        supported=int(label is SentenceLabel.OK),
                        matched=matched,
                    )
                )
            # is_refusal re-splits the text: ask it only when some sentence matched a refusal pattern.
            refused = any(refusals[i]) and is_refusal(request.response, self.splitter)
            abstained = refused or not request.response.strip()
            out.append(Judgment(request.response, tuple(verdicts), identity, abstained=abstained))
        return out

    def index(self, passages: Sequence[Passage]) -> ChunkVectors:
        """The passages' chunks and their vectors, computed now (a knowledge source, when registered)."""
        chunks = passage_chunks(passages)
        vectors = self.encoder.encode([c for cs in chunks for c in cs])
        return ChunkVectors(MODEL_NAME, chunks, vectors)

    def _references(
        self, requests: Sequence[JudgeRequest]
    ) -> tuple[list[Reference], dict[ReferenceKey, Reference]]:
        """The prepared reference of each request, and those not cached yet."""
        keys = [reference_key(r.passages, r.topic) for r in requests]
        fresh: dict[ReferenceKey, Reference] = {}
        found: dict[ReferenceKey, Reference] = {}
        for key, request in zip(keys, requests, strict=True):
            if key in found:
                continue
            ahead = request.chunk_vectors
            if ahead is not None and (ahead.model != MODEL_NAME or len(ahead.chunks) != len(request.passages)):
                ahead = None
            cached = self._cache.get(key)
            if cached is None or (ahead is not None and not cached.embedded.all()):
                cached = fresh[key] = prepare_reference(request.passages, request.topic, ahead)
            found[key] = cached
        return [found[key] for key in keys], fresh

    def _label(self, claim: Analysis, reference: Reference, hits: Sequence[Hit],
               support: Sequence[int]) -> tuple[SentenceLabel, str]:
        s = self.settings
        evidence = [reference.analysis(h.index) for h in hits]
        shown = {h.index for h in hits}
        around = evidence + [reference.analysis(r) for r in support if r not in shown]
        best = max(hits, key=lambda h: h.cosine)
        best_text = reference.chunks[best.index]
        missing = missing_items(claim, around, reference.topic)
        for hit, chunk in zip(hits, evidence, strict=True):
            if missing:
                conflict = find_conflict(
                    claim,
                    missing,
                    chunk,
                    reference.topic,
                    s.context_window,
                    related=hit.cosine >= s.related_similarity,
                    any_context=hit.cosine >= s.close_similarity,
                )
                if conflict is not None:
                    return SentenceLabel.CONTRADICTORY, f"{conflict.describe()} in: {chunk.text}"
            if hit.cosine >= s.negation_similarity and negation_differs(claim, chunk):
                return SentenceLabel.CONTRADICTORY, f"negation differs from: {chunk.text}"
        if missing:
            return SentenceLabel.UNVERIFIABLE, f"not found: {', '.join(m.value for m in missing)}"
        checkable = [m for m in claim.items if not _topic_only(m, reference.topic)]
        if checkable and best.cosine >= s.item_support_similarity:
            return SentenceLabel.OK, f"all items found (cosine {best.cosine:.2f}): {best_text}"
        if not checkable and best.cosine >= s.support_similarity:
            if _coverage(claim, around, reference.topic) >= s.min_coverage:
                return SentenceLabel.OK, f"cosine {best.cosine:.2f}: {best_text}"
            return SentenceLabel.UNVERIFIABLE, f"few shared words with: {best_text}"
        return SentenceLabel.UNVERIFIABLE, f"closest (cosine {best.cosine:.2f}): {best_text}"


def _topic_only(item: Item, topic: frozenset[str]) -> bool:
    return bool(item.words) and all(any(words_match(w, t) for t in topic) for w in item.words)


def _coverage(claim: Analysis, evidence: Sequence[Analysis], topic: frozenset[str]) -> float:
    words = {w for w in claim.content if w not in topic}
    if not words:
        return 1.0
    pool = {stem(t.lower) for a in evidence for t in a.tokens} | {w for a in evidence for w in a.content}
    found = sum(1 for w in words if w in pool or any(near_words(w, p) for p in pool))
    return found / len(words)
