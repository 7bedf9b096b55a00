"""Claim extraction for the toy world: a sentence -> the (subject, attribute, value) facts it states.

Parsing is built from the very templates the corpus renders (:mod:`maskdpo.toyworld.bio_templates`), so every
corpus sentence parses back exactly. Model output is parsed in three passes:

1. the whole sentence matches one template (fact or filler): its claims, or none for a filler;
2. otherwise, template predicates found anywhere in it ("Later, she studied at X and works at Y."), with
   the topic as subject;
3. otherwise, if it mentions anything of the world's vocabulary (a city, school, organisation, work, trade,
   person or a number), one claim with attribute ``unparsed`` -- a statement the knowledge cannot check,
   so it is labelled unverifiable, never silently fact-free; else no claim (``nofact``).

Subjects: pronouns and single given names refer to the topic; a full name is taken as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from maskdpo.server.judge.types import Fact
from maskdpo.toyworld import bio_templates as T
from maskdpo.toyworld import vocab

UNPARSED = "unparsed"
"""Attribute of a claim the extractor could not map to a world attribute (labelled unverifiable)."""

_WORD = r"[A-Z][\w'-]*"
_NAME_WORD = r"[A-Z][\w-]*"
_PROPER = rf"{_WORD}(?: (?:of |the )?{_WORD})*"
_VALUE_PATTERNS = {"birth_year": r"\d{1,4}", "occupation": r"[a-z]+(?: [a-z]+)?"}
_SUBJECT = {
    "S": rf"(?P<subj>{_NAME_WORD}(?: {_NAME_WORD})*)",
    "P": rf"(?P<subj>His|Her|Their|Its|{_NAME_WORD}(?: {_NAME_WORD})*'s)",
    "-": "",
}
_PRONOUNS = frozenset({"he", "she", "they", "it", "his", "her", "their", "its"})
_END = r"\s*[.!]?"
_NUMBER = re.compile(r"\b\d{3,4}\b")


def _predicate_regex(template: T.Template, strict: bool = False) -> str:
    """The predicate as a regex; ``strict`` limits occupations to the world's trades (fragment search)."""
    values = dict(_VALUE_PATTERNS)
    if strict:
        values["occupation"] = "|".join(vocab.TRADES)
    parts: list[str] = []
    cursor = 0
    for match in T.SLOT.finditer(template.predicate):
        parts.append(re.escape(template.predicate[cursor : match.start()]))
        slot = match.group(1)
        if slot == "a":
            parts.append("an?")
        elif slot == "sibling_word":
            parts.append("(?:brother|sister|sibling)")
        else:
            parts.append(f"(?P<{slot}>{values.get(slot, _PROPER)})")
        cursor = match.end()
    tail = template.predicate[cursor:]
    parts.append(re.escape(tail.rstrip(".")))
    return "".join(parts)


@dataclass(frozen=True)
class _Compiled:
    template: T.Template
    whole: re.Pattern[str]
    fragment: re.Pattern[str]


def _compile(template: T.Template) -> _Compiled:
    predicate = _predicate_regex(template)
    if template.subject == "-":
        whole = re.compile(rf"(?i:{predicate[0]}){predicate[1:]}{_END}")
    else:
        whole = re.compile(rf"{_SUBJECT[template.subject]} {predicate}{_END}")
    fragment = _predicate_regex(template, strict=True)
    return _Compiled(template, whole, re.compile(rf"(?<![\w'-]){fragment}(?![\w'-])"))


_FACTS = tuple(_compile(t) for t in T.ALL_FACT_TEMPLATES)
_FILLERS = tuple(_compile(t) for t in T.FILLER_TEMPLATES)


class TemplateClaimExtractor:
    """Parses toy-world sentences into claims; ``known_terms`` feeds the unparsed-statement fallback."""

    name = "toyworld-templates"

    def __init__(self, known_terms: Iterable[str] = ()) -> None:
        terms = {t for t in known_terms if t} | set(vocab.TRADES)
        words = sorted(terms, key=len, reverse=True)
        self._terms = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b") if words else None

    def extract(self, sentence: str, topic: str) -> list[Fact]:
        """The claims ``sentence`` makes about ``topic`` (or a named person); [] means fact-free."""
        text = " ".join(sentence.split())
        if not text:
            return []
        for compiled in _FACTS:
            match = compiled.whole.fullmatch(text)
            if match:
                subject = self._subject(match.groupdict().get("subj"), topic)
                return _claims(compiled.template, match, subject)
        for compiled in _FILLERS:
            if compiled.whole.fullmatch(text):
                return []
        claims: list[Fact] = []
        for compiled in _FACTS:
            for match in compiled.fragment.finditer(text):
                for claim in _claims(compiled.template, match, topic):
                    if claim not in claims:
                        claims.append(claim)
        if claims:
            return claims
        if _NUMBER.search(text) or (self._terms is not None and self._terms.search(text)):
            return [Fact(topic, UNPARSED, text)]
        return []

    @staticmethod
    def _subject(raw: str | None, topic: str) -> str:
        if raw is None:
            return topic
        name = raw[:-2] if raw.endswith("'s") else raw
        if name.lower() in _PRONOUNS or " " not in name:
            return topic
        return name


def _claims(template: T.Template, match: re.Match[str], subject: str) -> list[Fact]:
    return [Fact(subject, attribute, match.group(attribute)) for attribute in template.attributes]


def extractor_for_world(world: object) -> TemplateClaimExtractor:
    """An extractor whose fallback knows every name and value of ``world`` (a :class:`World`)."""
    from maskdpo.toyworld.world import World

    if not isinstance(world, World):
        raise TypeError(f"expected a World, got {type(world).__name__}")
    terms: set[str] = set(world.cities) | set(world.schools) | {o.name for o in world.organisations}
    for person in world.people:
        terms.update({person.name, person.surname})
        for values in person.attributes.values():
            terms.update(values)
    return TemplateClaimExtractor(terms)
