"""Letters of every script for the judge's name rules: matching forms, uppercase letters, unspaced scripts.

Names in knowledge bases and answers are written in any script: "Åsa Lind", "Émile Zola", "Søren
Kierkegaard", "Şebnem Ferah", "Günther Straße", "王芳", "山田太郎". The judge's rules read them through:

- :func:`fold`: the matching form of a text (Unicode NFC, then case-folded: "Straße" -> "strasse").
- :data:`UPPER`: a regular-expression class body of every uppercase or titlecase letter (``[A-Z]`` would
  end a name at "Å", "É", "Ø" or "Ş").
- :func:`is_unspaced`: scripts written without spaces between words (CJK ideographs, kana). They have no
  capitals and no word edges, so names in them are matched literally, as substrings.
- :func:`word_spans`: the words of a folded text (letters and digits of any script) with their offsets.
- :class:`TermIndex`: where known terms (names, values) occur in a text: in spaced scripts as whole words,
  whatever the punctuation between them ("Jean-Paul" = "Jean Paul", "Malmö's" holds "Malmö"); in unspaced
  scripts literally; the longest term wins where several overlap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_UNSPACED_RANGES = (
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),  # katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK extensions B..G
)
UNSPACED = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _UNSPACED_RANGES)
"""A regular-expression class body of the unspaced scripts' characters."""
_WORD = re.compile(r"[^\W_]+")


def _uppercase_class(limit: int) -> str:
    ranges: list[tuple[int, int]] = []
    for code in range(limit):
        char = chr(code)
        if char.isupper() or char.istitle():
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
                   for lo, hi in ranges)


UPPER = _uppercase_class(0x20000)
"""A regular-expression class body of every uppercase or titlecase letter (Latin, Greek, Cyrillic, ...)."""


def fold(text: str) -> str:
    """The matching form of a text: NFC-composed ("A" + combining ring = "Å") and case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


def is_unspaced(char: str) -> bool:
    """True for a character of a script written without spaces between words (CJK, kana)."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _UNSPACED_RANGES)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of ``text`` (runs of letters and digits of any script) as (word, start, end)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """:func:`fold` of ``text``, and for each folded character (plus one past the end) its offset in the
    NFC form of ``text`` (case folding may lengthen a text: "ß" -> "ss")."""
    composed = unicodedata.normalize("NFC", text)
    folded: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(composed):
        lowered = char.casefold()
        folded.append(lowered)
        offsets.extend([index] * len(lowered))
    offsets.append(len(composed))
    return "".join(folded), offsets


@dataclass(frozen=True, slots=True)
class Found(Generic[T]):
    """One occurrence of a known term: offsets in the folded text, and what the term stands for."""

    start: int
    end: int
    payloads: tuple[T, ...]


class TermIndex(Generic[T]):
    """Known terms, each with a payload, found in folded texts (see the module docstring)."""

    def __init__(self) -> None:
        self._spaced: dict[tuple[str, ...], list[T]] = {}
        self._unspaced: dict[str, list[T]] = {}
        self._longest = 0

    def add(self, term: str, payload: T) -> None:
        folded = fold(term).strip()
        if any(is_unspaced(char) for char in folded):
            self._unspaced.setdefault(folded, []).append(payload)
            return
        words = tuple(word for word, _, _ in word_spans(folded))
        if words:
            self._spaced.setdefault(words, []).append(payload)
            self._longest = max(self._longest, len(words))

    def find(self, folded: str) -> list[Found[T]]:
        """The terms of a folded text, in order, without overlaps (the longest wins)."""
        found: list[Found[T]] = []
        words = word_spans(folded)
        for first in range(len(words)):
            for count in range(min(self._longest, len(words) - first), 0, -1):
                key = tuple(word for word, _, _ in words[first : first + count])
                if key in self._spaced:
                    end = words[first + count - 1][2]
                    found.append(Found(words[first][1], end, tuple(self._spaced[key])))
                    break
        for term, payloads in self._unspaced.items():
            start = folded.find(term)
            while start >= 0:
                found.append(Found(start, start + len(term), tuple(payloads)))
                start = folded.find(term, start + 1)
        kept: list[Found[T]] = []
        for item in sorted(found, key=lambda f: (f.start - f.end, f.start)):
            if not any(item.start < other.end and other.start < item.end for other in kept):
                kept.append(item)
        return sorted(kept, key=lambda f: f.start)
