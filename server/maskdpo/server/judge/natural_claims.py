"""The ``kb`` judge's default claim extractor: claims read from natural text through the values it mentions.

Built for one knowledge base (it reads the KB's names, attributes and values). For each sentence:

1. **Statement forms** first: the generic templates of every attribute the KB holds ("Åsa Lind's
   birthplace is Malmö.", "Her occupation was painter.", "Birthplace: Malmö.";
   :meth:`~maskdpo.server.judge.claim_templates.TemplateClaimExtractor.for_attributes`).
2. **The subject**: the first subject the sentence names or refers to by a pronoun. Names are the KB's
   subjects and aliases in any script (:mod:`~maskdpo.server.judge.scripts`: "Åsa Lind", "Şebnem Ferah",
   "王芳" matched literally), and the last word of a multi-word name that no other subject shares ("Lind").
   A pronoun (he, she, it, they, his, her, its, their, him, them) means the topic: the request's topic, or
   the KB's only subject when the request names none. A sentence that names no subject is about the topic
   too, unless it opens with a subject of its own: two capitalised words, or one right before
   is / was / has / had / became ... ("Picasso was a painter."): then it makes no claim here. A possessive
   ("Her father was a chemist.", "Lind's work hangs in Malmö.") followed by a word that is no word of an
   attribute name is about something else: no claim either.
3. **Values**: the typed values the sentence mentions, outside the subject's own name
   (:mod:`~maskdpo.server.judge.value_kinds`: KB values, lexicon words, dates, years, numbers).
4. **Claims**, for each attribute the statement forms did not claim already:

   - a value of the attribute's kind equals a value the KB holds for that attribute of the subject ->
     a claim with the KB's value (supported);
   - else, for an attribute the KB holds for the subject, the first value of its kind no other claim
     used (the one nearest a cue of the attribute when the sentence cues it) -> contradicted;
   - else, for an attribute the KB holds for other subjects only, when the sentence cues it -> a claim the
     KB cannot check (unverifiable).

   Dates, years and numbers count only in a sentence that cues the attribute ("born" for ``birth_year``).

A sentence without claims goes to :meth:`NaturalClaimExtractor.unmatched_label`: when it states something
(:func:`~maskdpo.server.judge.claim_detection.states_claim`; in an unspaced script: when it holds a name or
value the KB knows) it is ``unverifiable`` and counted as unmatched; else it states nothing: ``nofact``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from maskdpo.server.judge.checkable_items import STOP_WORDS, stem
from maskdpo.server.judge.claim_detection import states_claim
from maskdpo.server.judge.claim_templates import TemplateClaimExtractor
from maskdpo.server.judge.knowledge_base import KnowledgeBase, normalize_attribute
from maskdpo.server.judge.scripts import Found, TermIndex, fold, fold_with_offsets, is_unspaced, word_spans
from maskdpo.server.judge.types import Fact
from maskdpo.server.judge.value_kinds import (
    AttributeKind,
    Mention,
    lexicon_mentions,
    pattern_key,
    pattern_mentions,
)
from maskdpo.trainer.labels import SentenceLabel

PRONOUNS = frozenset({"he", "she", "it", "they", "him", "her", "his", "its", "their", "them"})
POSSESSIVES = frozenset({"his", "her", "its", "their"})
OPENING_VERBS = frozenset({"is", "was", "are", "were", "has", "had", "have", "became", "remains", "remained"})
_TYPED = ("date", "year", "number")
_WORD = re.compile(r"[^\W\d_]+")
Term = tuple[str, str]
"""What a known term stands for: ("subject", canonical subject) or ("value", normalised value)."""


@dataclass(frozen=True, slots=True)
class _Subject:
    name: str
    span: tuple[int, int] | None
    """Where the sentence names it (folded offsets); None when it is implied."""


class NaturalClaimExtractor:
    """Claims from natural text about one knowledge base (see the module docstring)."""

    name = "natural"

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self._kb = knowledge
        attributes = sorted(knowledge.attributes())
        self._templates = TemplateClaimExtractor.for_attributes(attributes)
        self._kinds = [AttributeKind.of(a, sorted(knowledge.attribute_values(a))) for a in attributes]
        self._attribute_words = frozenset(w for a in attributes for w, _, _ in word_spans(fold(a)))
        names = knowledge.names()
        self._terms: TermIndex[Term] = TermIndex()
        for name, canonical in names.items():
            self._terms.add(name, ("subject", canonical))
        values = {value for kind in self._kinds for value in kind.known if pattern_key(value) is None}
        for surname, canonical in _surnames(names, values).items():
            self._terms.add(surname, ("subject", canonical))
        for value in values:
            self._terms.add(value, ("value", value))
        holders = {c for c in names.values() if any(knowledge.values(c, a) for a in attributes)}
        self._only = knowledge.written(holders.pop()) if len(holders) == 1 else ""

    def extract(self, sentence: str, topic: str) -> list[Fact]:
        default = topic.strip() or self._only
        claims = self._templates.extract(sentence, default)
        folded, offsets = fold_with_offsets(sentence)
        found = self._terms.find(folded)
        subject = self._subject(sentence, folded, found, default)
        if subject is None:
            return claims
        claimed = {normalize_attribute(claim.attribute) for claim in claims}
        composed = unicodedata.normalize("NFC", sentence)
        mentions = self._mentions(folded, found, subject.span)
        for attribute, value in self._assign(subject, mentions, folded, claimed):
            if isinstance(value, Mention):  # as the sentence writes it
                value = composed[offsets[value.start] : offsets[value.end - 1] + 1]
            claims.append(Fact(subject.name, attribute, value))
        return claims

    def unmatched_label(self, sentence: str, topic: str) -> SentenceLabel | None:
        """``unverifiable`` for a sentence without claims that states something; None when it states nothing."""
        if states_claim(sentence, topic):
            return SentenceLabel.UNVERIFIABLE
        folded = fold(sentence)
        if any(is_unspaced(char) for char in folded) and (
            self._terms.find(folded) or (topic.strip() and fold(topic.strip()) in folded)
        ):
            return SentenceLabel.UNVERIFIABLE
        return None

    def _subject(self, sentence: str, folded: str, found: list[Found[Term]], default: str) -> _Subject | None:
        words = word_spans(folded)
        refs: list[tuple[int, int, str]] = []
        named = next((f for f in found if any(kind == "subject" for kind, _ in f.payloads)), None)
        if named is not None:
            canonical = next(value for kind, value in named.payloads if kind == "subject")
            refs.append((named.start, named.end, canonical))
        pronoun = next(((start, end) for word, start, end in words if word in PRONOUNS), None)
        if pronoun is not None:
            refs.append((*pronoun, ""))
        if not refs:
            if not default or _opens_with_own_subject(sentence):
                return None
            return _Subject(default, None)
        start, end, canonical = min(refs)
        name = self._kb.written(canonical) if canonical else default
        possessive = folded[start:end] in POSSESSIVES if not canonical else folded[end : end + 2] in ("'s", "’s")
        if not name or (possessive and not self._about_subject(words, end)):
            return None
        return _Subject(name, (start, end))

    def _about_subject(self, words: list[tuple[str, int, int]], end: int) -> bool:
        """After a possessive: is the next word a word of an attribute name (or a function word)?"""
        following = [word for word, start, _ in words if start >= end]
        if following[:1] == ["s"]:
            following = following[1:]
        if not following:
            return True
        word = following[0]
        return word in STOP_WORDS or word in self._attribute_words or stem(word) in self._attribute_words

    def _mentions(self, folded: str, found: list[Found[Term]], own: tuple[int, int] | None) -> list[Mention]:
        def outside(start: int, end: int, taken: list[tuple[int, int]]) -> bool:
            return not any(start < e and s < end for s, e in taken)

        taken = [own] if own else []
        known = [
            Mention("known", value, folded[f.start : f.end], f.start, f.end)
            for f in found
            for kind, value in f.payloads
            if kind == "value" and outside(f.start, f.end, taken)
        ]
        taken += [(m.start, m.end) for m in known]
        others = [m for m in lexicon_mentions(folded) + pattern_mentions(folded) if outside(m.start, m.end, taken)]
        return sorted(known + others, key=lambda m: m.start)

    def _assign(
        self, subject: _Subject, mentions: list[Mention], folded: str, claimed: set[str]
    ) -> list[tuple[str, str | Mention]]:
        """(attribute, the KB's value when supported, else the mention) of each claim (module docstring)."""
        words = word_spans(folded)
        out: list[tuple[str, str | Mention]] = []
        used: set[Mention] = set()
        open_kinds: list[tuple[bool, AttributeKind, list[Mention], list[int]]] = []
        for kind in self._kinds:
            if kind.attribute in claimed or kind.vetoed(words):
                continue
            cues = kind.cue_positions(words)
            candidates = [m for m in mentions if kind.takes(m) and (cues or m.kind not in _TYPED)]
            held = sorted(self._kb.values(subject.name, kind.attribute) or ())
            match = next(((m, v) for m in candidates for v in held if kind.matches(m, v)), None)
            if match is not None:
                out.append((kind.attribute, match[1]))
                used.add(match[0])
            elif candidates and (held or cues):
                open_kinds.append((not held, kind, candidates, cues))
        for _, kind, candidates, cues in sorted(open_kinds, key=lambda item: item[0]):
            free = [m for m in candidates if m not in used]
            if free:
                pick = min(free, key=lambda m: min(abs(m.start - c) for c in cues)) if cues else free[0]
                out.append((kind.attribute, pick))
                used.add(pick)
        return out


def _opens_with_own_subject(sentence: str) -> bool:
    """Does the sentence open with a subject of its own (see the module docstring)?"""
    words = _WORD.findall(unicodedata.normalize("NFC", sentence))
    if len(words) < 2 or not words[0][0].isupper() or fold(words[0]) in STOP_WORDS | PRONOUNS:
        return False
    return words[1][0].isupper() or fold(words[1]) in OPENING_VERBS


def _surnames(names: dict[str, str], values: set[str]) -> dict[str, str]:
    """The last word of each multi-word name in a spaced script, when one subject alone has it."""
    owners: dict[str, set[str]] = {}
    for name, canonical in names.items():
        words = name.split()
        if len(words) > 1 and not any(is_unspaced(char) for char in name):
            owners.setdefault(words[-1], set()).add(canonical)
    return {
        word: next(iter(subjects))
        for word, subjects in owners.items()
        if len(subjects) == 1 and len(word) > 1 and word not in names and word not in values | STOP_WORDS
    }
