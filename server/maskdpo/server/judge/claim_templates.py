"""A regex-template claim extractor for the ``kb`` judge: per-attribute patterns -> (subject, attribute, value).

Configure it with, for each attribute, one or more regular expressions. Each pattern must define a named
group ``value``; it may define a group ``subject``. Every match in a sentence is one claim. When the
pattern has no ``subject`` group, or the group is empty or a pronoun (he, she, they, ...), the claim's
subject is the request's topic. String patterns are compiled case-insensitively; pass compiled patterns
to control flags yourself.

    extractor = TemplateClaimExtractor({
        "birthplace": [r"\\bborn in (?P<value>[A-Z][a-z]+)"],
        "occupation": [r"(?P<subject>[A-Z][a-z]+(?: [A-Z][a-z]+)*) (?:is|was) an? (?P<value>[a-z]+)"],
    })

:meth:`TemplateClaimExtractor.for_attributes` builds generic statement patterns from attribute names alone
(``home_town`` -> "home town"); each matches, for an attribute A:

- "<Subject>'s A is|was <value>", "His|Her|Its|Their|The A is|was <value>";
- "The A of <Subject> is|was <value>";
- "A: <value>" (a whole sentence in key-value form).

The value runs to the next ",", ";", "." (or "，", "；", "。") or the end of the sentence. A subject is a
run of capitalised words in any alphabet ("Åsa Lind", "Şebnem Ferah", "Émile Zola"; see
:data:`~maskdpo.server.judge.scripts.UPPER`), joined by "of", "de", "van", ... , or a run of characters of
an unspaced script ("王芳").

A sentence no pattern matches is ``nofact`` for this extractor (in a precise domain the patterns say what a
fact is); :meth:`TemplateClaimExtractor.unmatched_label` still reports the ones that state something
(:func:`~maskdpo.server.judge.claim_detection.states_claim`), so coverage counts them as unmatched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from maskdpo.server.judge.claim_detection import states_claim
from maskdpo.server.judge.knowledge_base import normalize, normalize_attribute
from maskdpo.server.judge.scripts import UNSPACED, UPPER
from maskdpo.server.judge.types import Fact
from maskdpo.trainer.labels import SentenceLabel

PRONOUNS = frozenset({"he", "she", "it", "they", "him", "her", "his", "hers", "its", "their", "theirs"})
_WORD = rf"(?:[{UPPER}][\w.'’-]*|[{UNSPACED}]+)"
_NAME = rf"{_WORD}(?:\s+(?:(?:of|de|da|van|von|der|la|le)\s+)?{_WORD})*"
_VALUE = r"(?P<value>[^,;.，；。]+?)\s*(?:[,;.，；。]|$)"
_BE = r"(?i:is|was|are|were)"


class TemplateClaimExtractor:
    """Claims from per-attribute regular expressions (see the module docstring)."""

    DEFAULT_NAME = "template"

    def __init__(
        self, patterns: Mapping[str, Sequence[str | re.Pattern[str]]], *, name: str = DEFAULT_NAME
    ) -> None:
        self.name = name
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for attribute, items in patterns.items():
            if not attribute.strip():
                raise ValueError("an attribute name of the template extractor is empty")
            for item in items:
                pattern = re.compile(item, re.IGNORECASE) if isinstance(item, str) else item
                if "value" not in pattern.groupindex:
                    raise ValueError(
                        f"pattern {pattern.pattern!r} of attribute {attribute!r} has no (?P<value>...)"
                    )
                self._patterns.append((attribute, pattern))
        self.attributes = frozenset(normalize_attribute(attribute) for attribute in patterns)

    @classmethod
    def for_attributes(cls, attributes: Iterable[str], *, name: str = DEFAULT_NAME) -> TemplateClaimExtractor:
        """Generic statement patterns for each attribute name (see the module docstring)."""
        patterns: dict[str, list[re.Pattern[str]]] = {}
        for attribute in sorted(set(attributes)):
            words = r"[\s_-]+".join(
                re.escape(word) for word in re.split(r"[\s_-]+", attribute.strip()) if word
            )
            if not words:
                raise ValueError(f"attribute name {attribute!r} has no words")
            phrase = f"(?i:{words})"
            patterns[attribute] = [
                re.compile(
                    rf"(?:\b(?P<subject>{_NAME})['’]s|\b(?i:his|her|its|their|the))\s+{phrase}\s+{_BE}\s+{_VALUE}"
                ),
                re.compile(rf"\b(?i:the)\s+{phrase}\s+(?i:of)\s+(?P<subject>{_NAME})\s+{_BE}\s+{_VALUE}"),
                re.compile(rf"^\s*{phrase}\s*:\s*{_VALUE}"),
            ]
        return cls(patterns, name=name)

    def unmatched_label(self, sentence: str, topic: str) -> SentenceLabel | None:
        """``nofact`` (counted as unmatched) for a sentence without claims that states something, else None."""
        return SentenceLabel.NOFACT if states_claim(sentence, topic) else None

    def extract(self, sentence: str, topic: str) -> list[Fact]:
        claims: list[Fact] = []
        seen: set[tuple[str, str, str]] = set()
        for attribute, pattern in self._patterns:
            for match in pattern.finditer(sentence):
                value = (match.group("value") or "").strip()
                if not value:
                    continue
                subject = match.groupdict().get("subject") or ""
                if not subject.strip() or normalize(subject) in PRONOUNS:
                    subject = topic
                key = (normalize(subject), normalize_attribute(attribute), normalize(value))
                if key not in seen:
                    seen.add(key)
                    claims.append(Fact(subject.strip(), attribute, value))
        return claims
