"""Support and mismatch rules of the heuristic judge: which items of a sentence the evidence backs, and
whether a close evidence chunk states a conflicting value.

Similarity is not verification ("born in Pensacola, Florida" and "... Pensacola, Mississippi" embed close
together), so these explicit rules decide contradictions:

- *missing*: a sentence item (number, year, month, direction, entity) that none of the evidence chunks
  (nor the topic's own words) mentions;
- *conflict*: a missing item and a rival item in an evidence chunk that the sentence does not mention (the
  same kind: a year only against a year, a number only against one within a factor of ten), *in the
  same context*: the content words within ``window`` tokens of each (topic words left
  out) overlap. "born in Pensacola, Florida" vs "born in Pensacola, Mississippi": Florida is missing,
  Mississippi is extra, both next to "born" and "Pensacola" -> conflict;
- *negation*: exactly one of the sentence and a very close chunk is negated ("never married" vs
  "married twice").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from maskdpo.server.judge.checkable_items import Analysis, Item, has_negation, near_words, stem, words_match

_NUMERIC = frozenset({"number", "year"})
_NAMED = frozenset({"entity", "nationality"})


@dataclass(frozen=True, slots=True)
class Conflict:
    """A sentence item and the evidence item that contradicts it."""

    claim: str
    evidence: str
    kind: str

    def describe(self) -> str:
        return f"{self.kind} mismatch: {self.claim!r} vs {self.evidence!r}"


def _same_kind(a: Item, b: Item) -> bool:
    return a.kind == b.kind or (a.kind in _NUMERIC and b.kind in _NUMERIC)


def _rivals(a: Item, b: Item) -> bool:
    """Whether ``b`` can stand where ``a`` stands: the same kind (a year only against a year), and numbers
    within a factor of ten of each other (5 goals vs 63,000 fans count different things)."""
    if a.kind != b.kind:
        return False
    if a.kind == "number":
        x, y = abs(float(a.value)), abs(float(b.value))
        return min(x, y) * 10 >= max(x, y)
    return True


def is_supported(item: Item, evidence: Sequence[Analysis], topic: frozenset[str]) -> bool:
    """True when some evidence text (or the topic) mentions ``item``."""
    if item.kind in _NAMED:
        words: set[str] = set(topic)
        for analysis in evidence:
            words.update(stem(t.lower) for t in analysis.tokens if t.text[0].isalpha())
            for other in analysis.items:
                words.update(other.words)
        return all(any(words_match(w, e) for e in words) for w in item.words)
    return any(_same_kind(item, other) and other.value == item.value for a in evidence for other in a.items)


def missing_items(claim: Analysis, evidence: Sequence[Analysis], topic: frozenset[str]) -> list[Item]:
    """The sentence's items that the evidence does not mention."""
    return [item for item in claim.items if not is_supported(item, evidence, topic)]


def _is_topic_only(item: Item, topic: frozenset[str]) -> bool:
    return item.kind in _NAMED and all(any(words_match(w, t) for t in topic) for w in item.words)


def find_conflict(
    claim: Analysis,
    missing: Iterable[Item],
    chunk: Analysis,
    topic: frozenset[str],
    window: int,
    *,
    related: bool,
    any_context: bool = False,
) -> Conflict | None:
    """The first missing sentence item that a same-kind item of ``chunk`` contradicts.

    The two items must share context: one near word when the chunk is ``related`` to the sentence (cosine
    above the related threshold), two otherwise; any same-kind item will do when ``any_context`` (the
    chunk nearly paraphrases the sentence)."""
    extras = [
        item
        for item in chunk.items
        if not _is_topic_only(item, topic) and not is_supported(item, (claim,), topic)
    ]
    if not extras:
        return None
    for item in missing:
        context = claim.context(item, window, topic)
        for extra in extras:
            if not _rivals(item, extra):
                continue
            shared = _overlap(context, chunk.context(extra, window, topic))
            if any_context or shared >= (1 if related else 2):
                return Conflict(_surface(claim, item), _surface(chunk, extra), item.kind)
    return None


def _overlap(a: set[str], b: set[str]) -> int:
    """How many words of ``a`` have a near word in ``b``."""
    return sum(1 for x in a if any(near_words(x, y) for y in b))


def negation_differs(claim: Analysis, chunk: Analysis) -> bool:
    """True when exactly one of the two texts is negated."""
    return has_negation(claim) != has_negation(chunk)


def _surface(analysis: Analysis, item: Item) -> str:
    first, last = analysis.tokens[item.first], analysis.tokens[item.last]
    return analysis.text[first.start : last.start + len(last.text)]
