"""What kind of value each attribute of a knowledge base takes, and the typed values a sentence mentions.

The natural-text claim extractor (:mod:`maskdpo.server.judge.natural_claims`) reads a value in a sentence as
a claim about an attribute only when the value is *of that attribute's kind*. An attribute's kind comes
from its values in the knowledge base (across all subjects), never from its name alone:

- **known values**: every value the KB holds for the attribute, for any subject ("Malmö", "Oslo" for
  ``birthplace``): a mention of one of them is of the attribute's kind.
- **a lexicon**: when the last word of one of the attribute's values is a word of a built-in lexicon
  (:data:`LEXICONS`; today one, occupations: "painter", "chemist", ...), every word of that lexicon is of
  the attribute's kind, so "She was a chemist." speaks about ``occupation`` = painter.
- **a pattern**, when *all* the attribute's values parse as one: a full date ("12 March 1961", "March 12,
  1961", "1961-03-12"; also takes a bare year, compared with the date's year), a year (four digits,
  1000-2100), or a number (digits, "6,200", "2.5", or a number word "three"; a unit may follow).

A word that is none of these (an unknown noun, a name the KB never mentions) is of no kind: it can never
become a claim, let alone a contradiction.

Pattern values are everywhere in text ("In 1985 she moved..."), so a year, date or number counts for an
attribute only when the sentence also **cues** the attribute: a word of the attribute's name other than
:data:`GENERIC_WORDS` ("children" for ``number_of_children``, loosely: "founded" for ``founding_year``), or
a word of the attribute's :data:`CUE_FAMILIES` ("born" for ``birth_year``, "died" for ``death_date``).
Families also veto: a value is not read as a ``birth...`` attribute in a sentence that speaks of death
only (and the other way round), whatever its kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from maskdpo.server.judge.checkable_items import MONTHS, NUMBER_WORDS, STOP_WORDS, near_words, stem
from maskdpo.server.judge.knowledge_base import normalize
from maskdpo.server.judge.scripts import fold, word_spans

OCCUPATIONS = frozenset(
    """accountant activist actor actress admiral agronomist anthropologist archaeologist architect artist
    astronaut astronomer athlete author aviator banker baker barrister biochemist biologist bishop botanist
    boxer broadcaster builder businessman businesswoman butcher carpenter cartoonist ceramicist chef chemist
    choreographer cinematographer clergyman coach comedian composer conductor cook critic cyclist dancer
    dentist designer diplomat director economist editor educator engineer entrepreneur essayist explorer
    farmer filmmaker financier fisherman footballer gardener general geographer geologist goalkeeper golfer
    guitarist historian illustrator industrialist inventor jeweller jeweler journalist judge jurist lawyer
    lecturer librarian linguist lyricist magistrate manager mathematician mechanic merchant meteorologist
    midwife minister missionary model monk musician novelist nun nurse oceanographer officer painter
    pharmacist philanthropist philosopher photographer physician physicist physiologist pianist pilot
    playwright poet politician priest printmaker producer professor programmer psychiatrist psychologist
    publisher rabbi rapper referee researcher sailor scientist screenwriter sculptor senator shoemaker singer
    skier soldier songwriter sociologist statistician surgeon surveyor swimmer tailor teacher theologian
    translator violinist weaver writer zoologist""".split()
)
"""Occupation words (singular, lower case)."""
LEXICONS: Mapping[str, frozenset[str]] = {"occupation": OCCUPATIONS}
"""Built-in lexicons of value kinds, by name."""
CUE_FAMILIES: Mapping[str, frozenset[str]] = {
    "birth": frozenset({"birth", "born", "née", "nee", "birthplace", "birthday"}),
    "death": frozenset({"death", "died", "dies", "dead", "deceased", "killed"}),
}
"""Words that speak of one event; an attribute whose name starts with a family's name belongs to it."""
GENERIC_WORDS = frozenset({"year", "date", "day", "place", "number", "count", "total", "name", "value"})
"""Words of attribute names that cue nothing on their own ("year" in ``birth_year``)."""

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_ORDINAL = r"(?:st|nd|rd|th)?"
_DATES = (
    re.compile(rf"\b(?P<d>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?(?P<m>{_MONTH})\.?,?\s+(?P<y>\d{{3,4}})\b"),
    re.compile(rf"\b(?P<m>{_MONTH})\.?\s+(?P<d>\d{{1,2}}){_ORDINAL},?\s+(?P<y>\d{{3,4}})\b"),
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
)
_YEAR = re.compile(r"(?<![0-9a-z.,])(?P<y>1\d{3}|20\d{2}|2100)(?![0-9a-z]|[.,]\d)")
_NUMBER = re.compile(r"(?<![0-9a-z.,])\d[\d,]*(?:\.\d+)?(?![0-9]|[.,]\d)")
_LEADING_NUMBER = re.compile(r"^\s*(\d[\d,]*(?:\.\d+)?)(?:\s*[^\W\d_]+\.?)?\s*$")


@dataclass(frozen=True, slots=True)
class Mention:
    """A typed value a sentence mentions; offsets are in the sentence's folded form (:func:`fold`)."""

    kind: str
    """``known`` (a KB value), ``lexicon``, ``date``, ``year`` or ``number``."""
    key: str
    """The comparable form: the normalised value, an ISO date, a year, or a number."""
    text: str
    start: int
    end: int
    lexicon: str = ""
    """The lexicon of a ``lexicon`` mention."""


def date_key(year: str, month: str, day: str) -> str | None:
    """An ISO date from its parts (month as a number or an English month name), or None if invalid."""
    number = int(month) if month.isdigit() else MONTHS.get(month.rstrip("."))
    if number is None or not 1 <= number <= 12 or not 1 <= int(day) <= 31:
        return None
    return f"{int(year):04d}-{number:02d}-{int(day):02d}"


def number_key(text: str) -> str | None:
    """The comparable form of a number ("6,200" -> "6200", "2.50" -> "2.5", "three" -> "3")."""
    if text in NUMBER_WORDS:
        return f"{NUMBER_WORDS[text]:g}"
    try:
        return f"{float(text.replace(',', '')):g}"
    except ValueError:
        return None


def pattern_key(value: str) -> tuple[str, str] | None:
    """(pattern, key) when a whole KB value is a date, a year or a number (a unit may follow); else None."""
    text = fold(value).strip()
    for pattern in _DATES:
        match = pattern.fullmatch(text)
        if match:
            key = date_key(match["y"], match["m"], match["d"])
            return ("date", key) if key else None
    if _YEAR.fullmatch(text):
        return "year", str(int(text))
    number = _LEADING_NUMBER.match(text)
    key = number_key(number.group(1) if number else text)
    return ("number", key) if key is not None else None


def pattern_mentions(folded: str) -> list[Mention]:
    """The dates, years and numbers of a folded sentence; a year or number inside a date is the date's."""
    out: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATES:
        for match in pattern.finditer(folded):
            key = date_key(match["y"], match["m"], match["d"])
            if key and not _overlaps(match.span(), taken):
                out.append(Mention("date", key, match.group(), *match.span()))
                taken.append(match.span())
    for match in _YEAR.finditer(folded):
        if not _overlaps(match.span(), taken):
            out.append(Mention("year", str(int(match.group())), match.group(), *match.span()))
            taken.append(match.span())
    for match in _NUMBER.finditer(folded):
        key = number_key(match.group())
        if key is not None and not _overlaps(match.span(), taken):
            out.append(Mention("number", key, match.group(), *match.span()))
    for word, start, end in word_spans(folded):
        if word in NUMBER_WORDS:
            out.append(Mention("number", f"{NUMBER_WORDS[word]:g}", word, start, end))
    return out


def _overlaps(span: tuple[int, int], taken: Sequence[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def lexicon_of(values: Sequence[str]) -> str | None:
    """The lexicon holding the last word of one of ``values`` ("landscape painter" -> occupation)."""
    for value in values:
        words = word_spans(fold(value))
        if words:
            head = words[-1][0]
            for name, lexicon in LEXICONS.items():
                if head in lexicon or stem(head) in lexicon:
                    return name
    return None


def lexicon_mentions(folded: str) -> list[Mention]:
    """Words of a folded sentence that belong to a lexicon (plural forms too: "painters")."""
    out: list[Mention] = []
    for word, start, end in word_spans(folded):
        for name, lexicon in LEXICONS.items():
            key = word if word in lexicon else stem(word)
            if key in lexicon:
                out.append(Mention("lexicon", key, word, start, end, lexicon=name))
    return out


@dataclass(frozen=True, slots=True)
class AttributeKind:
    """The kind of value one attribute takes (see the module docstring)."""

    attribute: str
    known: frozenset[str]
    """Normalised values of the attribute across all subjects."""
    lexicon: str | None
    pattern: str | None
    """``date``, ``year`` or ``number`` when all the attribute's values are one; else None."""
    families: frozenset[str]
    cues: frozenset[str]
    """Words of the attribute's name that cue it (generic and stop words left out)."""
    family_words: frozenset[str]
    """Words of the attribute's families ("born" for ``birth_year``)."""

    @classmethod
    def of(cls, attribute: str, values: Sequence[str]) -> AttributeKind:
        keys = [pattern_key(value) for value in values]
        patterns = {key[0] for key in keys if key is not None}
        if patterns == {"year", "number"}:  # "1500" and "25000" inhabitants: numbers
            patterns = {"number"}
        pattern = patterns.pop() if len(patterns) == 1 and all(keys) else None
        words = [w for w, _, _ in word_spans(fold(attribute))]
        families = frozenset(f for f in CUE_FAMILIES for w in words if w.startswith(f))
        cues = frozenset(w for w in words if w not in GENERIC_WORDS and w not in STOP_WORDS)
        family_words = frozenset(word for family in families for word in CUE_FAMILIES[family])
        known = frozenset(normalize(v) for v in values)
        return cls(attribute, known, lexicon_of(values), pattern, families, cues, family_words)

    def takes(self, mention: Mention) -> bool:
        """Is ``mention`` a value of this attribute's kind?"""
        if mention.kind in ("known", "lexicon") and mention.key in self.known:
            return True
        if mention.kind == "lexicon":
            return self.lexicon is not None and mention.lexicon == self.lexicon
        if self.pattern == "date":
            return mention.kind in ("date", "year")
        if self.pattern == "year":
            return mention.kind == "year"
        return self.pattern == "number" and mention.kind in ("number", "year")

    def matches(self, mention: Mention, value: str) -> bool:
        """Does ``mention`` state the KB value ``value`` of this attribute?"""
        if mention.kind in ("known", "lexicon"):
            if mention.key == normalize(value):
                return True
            words = word_spans(normalize(value)) if mention.kind == "lexicon" else []
            return bool(words) and mention.key == stem(words[-1][0])
        parsed = pattern_key(value)
        if parsed is None:
            return False
        if parsed[0] == "date" and mention.kind == "year":
            return parsed[1][:4] == f"{int(mention.key):04d}"
        return parsed[1] == mention.key

    def cue_positions(self, words: Sequence[tuple[str, int, int]]) -> list[int]:
        """Offsets of the sentence words that cue this attribute."""
        return [
            start
            for word, start, _ in words
            if word in self.family_words or any(near_words(stem(word), cue) for cue in self.cues)
        ]

    def vetoed(self, words: Sequence[tuple[str, int, int]]) -> bool:
        """True when the sentence speaks only of another family's event (see the module docstring)."""
        if not self.families:
            return False
        spoken = {f for f, members in CUE_FAMILIES.items() for word, _, _ in words if word in members}
        return bool(spoken) and not spoken & self.families
