"""The ``heuristic`` judge backend: retrieval plus mismatch rules, on CPU, without a judge model.

For each sentence of a response (the shared splitter):

1. ``nofact`` when it states nothing checkable (:func:`maskdpo.server.judge.checkable_items.is_filler`: no number,
   date or entity beyond the topic's name, and no content word, or reader talk / meta phrase / opinion),
   and every sentence that is an explicit refusal ("I could not find information about ...", the
   patterns of :mod:`maskdpo.server.judge.abstention`, which also decides ``Judgment.abstained``);
2. retrieve the ``top_k`` reference chunks (passage sentences) by hybrid BM25 + MiniLM cosine;
3. ``contradictory`` when a chunk with cosine >= ``related_similarity`` states a conflicting number /
   year / month / direction / entity in the same context, or a chunk with cosine >=
   ``negation_similarity`` differs in negation (:mod:`maskdpo.server.judge.mismatch`);
4. ``ok`` when every item of the sentence is found in the retrieved chunks (or the topic), the best
   cosine is >= ``support_similarity`` and at least ``min_coverage`` of its content words occur there;
5. ``unverifiable`` otherwise.

It is a heuristic (its identity says so): similarity is not verification, and the rules miss paraphrased
contradictions ("won" vs "lost", "sculptor" vs "painter"). Sentences of all requests are embedded in one
model call; each reference is prepared once and cached.
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
from maskdpo.server.judge.embedding import MODEL_NAME, MiniLMEncoder, Vectors
from maskdpo.server.judge.mismatch import find_conflict, missing_items, negation_differs
from maskdpo.server.judge.retrieval import (
    Reference,
    ReferenceCache,
    ReferenceKey,
    prepare_reference,
    rank,
    reference_key,
)
from maskdpo.server.judge.types import JudgeIdentity, JudgeRequest, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import SplitterConfig, split_sentences

PROMPT_VERSION = "heuristic-rules-1"


def _is_refusal_sentence(sentence: str) -> bool:
    return any(pattern.search(sentence) for pattern in REFUSAL_PATTERNS)


@dataclass(frozen=True, slots=True)
class HeuristicSettings:
    """Thresholds and options; all of them are part of the judge's identity."""

    alpha: float = 0.7
    """Weight of the cosine in the hybrid ranking score (the rest is min-max scaled BM25)."""
    top_k: int = 3
    """Evidence chunks considered per sentence."""
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
    min_coverage: float = 0.6
    """Share of the sentence's content words (beyond the topic) that the evidence must contain for ok,
    when the sentence names no number, date or entity."""
    context_window: int = 4
    threads: int = max(1, min(4, (os.cpu_count() or 2) // 2))
    """torch intra-op threads, set when the encoder loads (0: leave torch's setting). Half the cores, at
    most 4: OpenMP threads spin-wait, and on 2 busy cores 2 threads embedded 7x slower than 1."""
    cache_size: int = 256
    split_on_semicolon: bool = False

    def as_settings(self) -> dict[str, str]:
        skip = {"threads", "cache_size"}
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
        self.encoder = encoder or MiniLMEncoder(threads=self.settings.threads)
        self.splitter = SplitterConfig(split_on_semicolon=self.settings.split_on_semicolon)
        self._cache = ReferenceCache(self.settings.cache_size)

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(
            backend=self.name,
            model=f"{MODEL_NAME} + BM25",
            prompt_version=PROMPT_VERSION,
            splitter=self.splitter.identity,
            heuristic=True,
            settings=self.settings.as_settings(),
        )

    def judge(self, request: JudgeRequest) -> Judgment:
        return self.judge_batch([request])[0]

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
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
        to_embed = [
            (i, j)
            for i, ts in enumerate(texts)
            for j in range(len(ts))
            if not filler[i][j] and references[i].chunks
        ]
        # One model call for the new references' chunks and every sentence to check.
        chunks = [chunk for ref in fresh.values() for chunk in ref.chunks]
        vectors = self.encoder.encode(chunks + [texts[i][j] for i, j in to_embed])
        offset = 0
        for key, ref in fresh.items():
            ref.vectors = vectors[offset : offset + len(ref.chunks)]
            offset += len(ref.chunks)
            self._cache.put(key, ref)
        row = {key: offset + n for n, key in enumerate(to_embed)}
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
                    label, evidence = self._label(analyses[i][j], references[i], vectors[row[(i, j)]])
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

    def _references(
        self, requests: Sequence[JudgeRequest]
    ) -> tuple[list[Reference], dict[ReferenceKey, Reference]]:
        """The prepared reference of each request, and those not cached yet (still without vectors)."""
        keys = [reference_key(r.passages, r.topic) for r in requests]
        fresh: dict[ReferenceKey, Reference] = {}
        found: dict[ReferenceKey, Reference] = {}
        for key, request in zip(keys, requests, strict=True):
            if key in found:
                continue
            cached = self._cache.get(key)
            if cached is None:
                cached = fresh[key] = prepare_reference(request.passages, request.topic)
            found[key] = cached
        return [found[key] for key in keys], fresh

    def _label(self, claim: Analysis, reference: Reference, vector: Vectors) -> tuple[SentenceLabel, str]:
        s = self.settings
        hits = rank(reference, claim.text, vector, alpha=s.alpha, top_k=s.top_k)
        evidence = [reference.analyses[h.index] for h in hits]
        best = max(hits, key=lambda h: h.cosine)
        best_text = reference.chunks[best.index]
        missing = missing_items(claim, evidence, reference.topic)
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
            if _coverage(claim, evidence, reference.topic) >= s.min_coverage:
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
