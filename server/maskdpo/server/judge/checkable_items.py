"""What a sentence states, as far as simple rules can tell: checkable items, content words, filler.

The heuristic judge compares a response sentence with reference text through the *items* both mention:

- numbers (digits, "6,200", "2.5", and the words two..twenty, thirty..ninety, hundred, thousand);
- years (a 4-digit number from 1000 to 2100 without a thousands comma);
- months (January..December, capitalised);
- directions (north/northern/..., normalised to the base word);
- named entities: runs of capitalised words (allowing "of"/"the"/"de" inside a run). A capitalised
  sentence-initial word starts an entity only when it is followed by another capitalised word or is also
  seen capitalised mid-sentence in the same text or the reference; otherwise it is an ordinary word.

Content words are lower-cased words outside :data:`STOP_WORDS`. Entity words match loosely: equal, or
sharing a prefix of at least five letters and all but one letter of the shorter word ("America" /
"American"), or forms of the same country ("Finland" / "Finnish", see :data:`_COUNTRY_FORMS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

STOP_WORDS = frozenset(
    """a about above after again against all almost also although always am among an and another any are
    around as at be became because become been before being below between both but by can could did do does
    doing done down during each either else even ever every few for from further had has have having he her
    here hers herself him himself his how however i if in into is it its itself just later least less like
    many may me might more most much must my myself near nearly neither no nor not now of off often on once
    one only or other others our ours ourselves out over own per perhaps quite rather roughly same several
    she should since so some such than that the their theirs them themselves then there these they this
    those though through thus to too under until up upon us very via was we well were what when where which
    while who whom whose why will with within without would yet you your yours yourself approximately
    around among toward towards throughout whereas whether s t""".split()
)
"""Function words: never content, never evidence of a fact on their own."""

EVALUATIVE = frozenset(
    """amazing awesome beautiful brilliant charming delightful excellent extraordinary fantastic
    fascinating good great impressive incredible inspiring interesting lovely marvellous marvelous
    nice notable outstanding remarkable splendid stunning superb terrific truly wonderful worth""".split()
)
"""Words of opinion: a sentence with one of these and no checkable item states no fact."""

_META_START = re.compile(
    r"^\s*(here (is|are)|in (summary|short|conclusion)|to (summarise|summarize|sum up)|overall|sure|"
    r"certainly|of course|thank|thanks|feel free|let me|let's|hope|what an?)\b",
    re.IGNORECASE,
)
_READER_WORDS = frozenset({"i", "me", "my", "you", "your", "we", "let's", "i'm", "i'd", "i've"})
NEGATIONS = frozenset({"not", "never", "no", "none", "nobody", "nothing", "neither", "nor", "n't"})

MONTHS = {
    name: index
    for index, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march",), ("april", "apr"), ("may",), ("june",),
         ("july",), ("august", "aug"), ("september", "sept", "sep"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}  # fmt: skip
DIRECTIONS = {
    "north": "north", "northern": "north", "south": "south", "southern": "south", "east": "east",
    "eastern": "east", "west": "west", "western": "west", "northeast": "northeast",
    "northeastern": "northeast", "northwest": "northwest", "northwestern": "northwest",
    "southeast": "southeast", "southeastern": "southeast", "southwest": "southwest",
    "southwestern": "southwest",
}  # fmt: skip
NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "dozen": 12, "twice": 2,
}  # fmt: skip
_COUNTRY_FORMS = [
    {"finland", "finnish", "finn"}, {"netherlands", "netherland", "dutch", "holland"}, {"france", "french"},
    {"britain", "british", "uk"}, {"spain", "spanish"}, {"sweden", "swedish", "swede"},
    {"norway", "norwegian"}, {"denmark", "danish", "dane"}, {"china", "chinese"},
    {"switzerland", "swiss"}, {"greece", "greek"}, {"ireland", "irish"},
    {"scotland", "scottish", "scots"}, {"england", "english"}, {"wales", "welsh"},
    {"poland", "polish"}, {"turkey", "turkish"}, {"thailand", "thai"}, {"philippines", "philippine", "filipino"},
    {"america", "american", "usa"}, {"nigeria", "nigerian"}, {"canada", "canadian"}, {"peru", "peruvian"}, {"belgium", "belgian"},
    {"portugal", "portuguese"}, {"germany", "german"}, {"italy", "italian"}, {"mexico", "mexican"},
]  # fmt: skip
_COUNTRY = {form: index for index, forms in enumerate(_COUNTRY_FORMS) for form in forms}
_NATIONALITY_SUFFIXES = ("ian", "ese", "ish", "can", "ean")
_NATIONALITIES = frozenset(
    "dutch french swiss greek thai german welsh scots irish british danish finnish icelandic".split()
)


def is_nationality(word: str) -> bool:
    """A nationality adjective ("Dutch", "Nigerian", "Portuguese"): its own item kind, so that a
    nationality never contradicts a place or a person's name."""
    return word in _NATIONALITIES or (len(word) > 5 and word.endswith(_NATIONALITY_SUFFIXES))


_ENTITY_JOINERS = frozenset({"of", "the", "de", "von", "van", "da", "del", "la", "le"})
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[^\W\d_](?:[^\W\d_]|['’](?=[^\W\d_]))*|\S")
"""Numbers, words (letters of any script: "Åsa", "Ødegaard", "王芳"; an apostrophe inside a word, not a
closing quote), and any other character alone."""
WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
"""Capitalised, but no entity: a weekday names no person, place or work a sentence could get wrong."""


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    lower: str
    start: int
    """Character offset in the analysed text."""


@dataclass(frozen=True, slots=True)
class Item:
    """One checkable thing a text mentions."""

    kind: str
    """"number", "year", "month", "direction", "nationality" or "entity"."""
    value: str
    """Normalised value: the number, the month index, the direction, or the entity's words joined."""
    words: tuple[str, ...]
    """Lower-cased words of an entity (empty for other kinds)."""
    first: int
    last: int
    """Token index range [first, last] of the item in its text."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """Tokens, items and content words of one text."""

    text: str
    tokens: tuple[Token, ...]
    items: tuple[Item, ...]
    content: frozenset[str]

    def context(self, item: Item, window: int, exclude: frozenset[str]) -> set[str]:
        """Content words and item values within ``window`` tokens of ``item`` (not the item itself)."""
        out: set[str] = set()
        lo, hi = max(0, item.first - window), min(len(self.tokens), item.last + window + 1)
        for index in range(lo, hi):
            if item.first <= index <= item.last:
                continue
            word = stem(self.tokens[index].lower)
            if word and word not in STOP_WORDS and word not in exclude and word.isalnum():
                out.add(word)
        return out


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.group().lower().replace("’", "'"), m.start()) for m in _TOKEN.finditer(text)]


def stem(word: str) -> str:
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _number(token: str) -> float | None:
    if token[0].isdigit():
        try:
            return float(token.replace(",", ""))
        except ValueError:
            return None
    return float(NUMBER_WORDS[token]) if token in NUMBER_WORDS else None


def _is_capitalised(token: Token) -> bool:
    return token.text[0].isupper() and token.lower != "i"


def analyse(text: str, known_capitalised: Iterable[str] = ()) -> Analysis:
    """Find the items and content words of ``text``.

    ``known_capitalised`` holds lower-cased words seen capitalised mid-sentence elsewhere (e.g. in the
    reference), which lets a sentence-initial capitalised word count as an entity.
    """
    tokens = tokenize(text)
    mid_caps = {t.lower for i, t in enumerate(tokens) if i > 0 and _is_capitalised(t) and _word(t)}
    mid_caps.update(known_capitalised)
    items: list[Item] = []
    content: set[str] = set()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        number = _number(token.lower)
        if number is not None and (not token.text[0].isupper() or index == 0):
            is_year = token.text.isdigit() and len(token.text) == 4 and 1000 <= number <= 2100
            items.append(Item("year" if is_year else "number", f"{number:g}", (), index, index))
        elif token.lower in MONTHS and _is_capitalised(token) and (token.lower != "may" or index > 0):
            items.append(Item("month", str(MONTHS[token.lower]), (), index, index))
        elif token.lower in DIRECTIONS:
            items.append(Item("direction", DIRECTIONS[token.lower], (), index, index))
        elif _word(token) and _is_capitalised(token) and _starts_entity(tokens, index, mid_caps):
            last = index
            while last + 1 < len(tokens):
                nxt = tokens[last + 1]
                if _word(nxt) and _is_capitalised(nxt) and nxt.lower not in MONTHS:
                    last += 1
                elif (
                    nxt.lower in _ENTITY_JOINERS
                    and last + 2 < len(tokens)
                    and _is_capitalised(tokens[last + 2])
                    and _word(tokens[last + 2])
                ):
                    last += 2
                else:
                    break
            words = tuple(stem(t.lower) for t in tokens[index : last + 1] if t.lower not in _ENTITY_JOINERS)
            if any(len(w) > 1 for w in words):  # not "U" / "S" of "U.S."
                kind = "nationality" if len(words) == 1 and is_nationality(words[0]) else "entity"
                items.append(Item(kind, " ".join(words), words, index, last))
            index = last + 1
            continue
        elif _word(token) and token.lower not in STOP_WORDS:
            content.add(stem(token.lower))
        index += 1
    return Analysis(text, tuple(tokens), tuple(items), frozenset(content))


def _word(token: Token) -> bool:
    return token.text[0].isalpha()


def _starts_entity(tokens: list[Token], index: int, mid_caps: set[str]) -> bool:
    token = tokens[index]
    if (token.lower in STOP_WORDS and token.lower not in _ENTITY_JOINERS) or token.lower in WEEKDAYS:
        return False
    sentence_initial = index == 0 or tokens[index - 1].text in {".", "!", "?", '"', "(", ":"}
    if not sentence_initial:
        return True
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    if following is not None and _word(following) and _is_capitalised(following):
        return True
    return token.lower in mid_caps


def words_match(a: str, b: str) -> bool:
    """Loose equality of two lower-cased entity words (see the module docstring)."""
    if a == b:
        return True
    country_a, country_b = _COUNTRY.get(a), _COUNTRY.get(b)
    if country_a is not None and country_a == country_b:
        return True
    shorter = min(len(a), len(b))
    prefix = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        prefix += 1
    return prefix >= max(5, shorter - 1)


def is_filler(analysis: Analysis, topic_words: frozenset[str]) -> bool:
    """True when the sentence states no checkable fact (the ``nofact`` rule).

    A sentence with a number, year, month or an entity other than the topic's own words always states a
    fact. Otherwise it is filler when it has no content word (beyond the stop list and the topic's words),
    or it speaks to or as the reader ("I hope...", "Let me know...", "you"), or it starts with a meta phrase
    ("Here is...", "In summary", "Thank you", "What a..."), or it uses a word of opinion (:data:`EVALUATIVE`).
    """
    for item in analysis.items:
        if item.kind not in ("entity", "nationality"):
            return False
        if not all(any(words_match(w, t) for t in topic_words) for w in item.words):
            return False
    lowers = {t.lower for t in analysis.tokens}
    content = {w for w in analysis.content if w not in topic_words}
    if not content:
        return True
    if lowers & _READER_WORDS or _META_START.match(analysis.text):
        return True
    return bool(lowers & EVALUATIVE)


def has_negation(analysis: Analysis) -> bool:
    return any(t.lower in NEGATIONS or t.lower.endswith("n't") for t in analysis.tokens)


def near_words(a: str, b: str) -> bool:
    """Same word stem, loosely: a shared prefix of at least 4 letters and all but 3 of the shorter word
    ("retired" / "retirement", "opened" / "opening"); short words must be equal."""
    if a == b:
        return True
    prefix = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        prefix += 1
    return prefix >= max(4, min(len(a), len(b)) - 3)
