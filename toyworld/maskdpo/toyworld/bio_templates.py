"""Sentence templates of the toy world: the corpus renders them, the claim extractor parses them.

A template is a subject slot plus a predicate with value slots. Subject kinds: ``S`` (a name or a
pronoun: "Tavi Zandal", "Tavi", "She"), ``P`` (a possessive: "Tavi Zandal's", "Her") and ``-`` (no
subject). ``{a}`` is the indefinite article of the next word; ``{sibling_word}`` is brother or sister.
Both directions use the same strings, so every sentence the corpus can produce parses back exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    subject: str
    predicate: str

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(s for s in SLOT.findall(self.predicate) if s not in ("a", "sibling_word"))


def _t(subject: str, *predicates: str) -> tuple[Template, ...]:
    return tuple(Template(subject, p) for p in predicates)


FACT_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "birth_year": (
        *_t("S", "was born in {birth_year}.", "was born in the year {birth_year}."),
        *_t("P", "year of birth is {birth_year}."),
    ),
    "birthplace": (
        *_t("S", "was born in {birthplace}.", "comes from {birthplace}.", "grew up in {birthplace}."),
        *_t("P", "hometown is {birthplace}."),
    ),
    "occupation": (
        *_t("S", "is {a} {occupation}.", "works as {a} {occupation}."),
        *_t("P", "trade is that of {a} {occupation}."),
    ),
    "employer": (
        *_t("S", "works at {employer}.", "is employed by {employer}."),
        *_t("P", "employer is {employer}."),
    ),
    "school": (*_t("S", "studied at {school}.", "graduated from {school}.", "is a graduate of {school}."),),
    "notable_work": (
        *_t("S", "is best known for {notable_work}.", "created {notable_work}."),
        *_t("P", "most famous work is {notable_work}."),
    ),
    "sibling": (
        *_t("S", "has a sibling named {sibling}."),
        *_t("P", "sibling is {sibling}.", "{sibling_word} is {sibling}."),
    ),
}
"""Templates stating one attribute, by attribute."""

COMBINED_TEMPLATES: tuple[Template, ...] = _t(
    "S",
    "was born in {birthplace} in {birth_year}.",
    "is {a} {occupation} from {birthplace}.",
    "is {a} {occupation} at {employer}.",
)
"""Templates stating two attributes at once (used for the opening sentence)."""

FILLER_TEMPLATES: tuple[Template, ...] = (
    *_t("S", "is remembered fondly by many.", "led a busy and varied life.", "enjoyed long walks."),
    *_t("P", "story is still told today.", "friends speak warmly of those days."),
    *_t("-", "Many people remember this life fondly.", "Little else is known about the early years."),
)
"""Fact-free sentences (label ``nofact``)."""

ALL_FACT_TEMPLATES: tuple[Template, ...] = (
    *COMBINED_TEMPLATES,
    *(t for group in FACT_TEMPLATES.values() for t in group),
)

QUESTIONS: tuple[str, ...] = (
    "Tell me a bio of {name}.",
    "Who is {name}?",
    "Write a short biography of {name}.",
)
"""User turns of the chat examples; the first is the evaluation prompt."""


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def render_predicate(template: Template, values: dict[str, str]) -> str:
    """Fill a predicate's slots; ``values`` holds attribute values and ``sibling_word``."""

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot == "a":
            rest = template.predicate[match.end() :].lstrip()
            nxt = SLOT.match(rest)
            word = values[nxt.group(1)] if nxt else rest
            return article(word)
        if slot not in values:
            raise KeyError(f"template {template.predicate!r} needs a value for {slot!r}")
        return values[slot]

    return SLOT.sub(fill, template.predicate)


def render(template: Template, subject: str, possessive: str, values: dict[str, str]) -> str:
    """A whole sentence: subject (or possessive) + predicate, first letter capitalised."""
    predicate = render_predicate(template, values)
    if template.subject == "S":
        sentence = f"{subject} {predicate}"
    elif template.subject == "P":
        sentence = f"{possessive} {predicate}"
    else:
        sentence = predicate
    return sentence[0].upper() + sentence[1:]
