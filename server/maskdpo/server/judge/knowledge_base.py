"""A structured knowledge base of (subject, attribute, value) facts, and exact claim checking against it.

Index: subject -> attribute -> set of values (an attribute may have several true values). Matching is
exact after normalisation (:func:`normalize`: Unicode NFC, case-folded, whitespace collapsed, surrounding punctuation
and a leading "the" removed; attribute names also treat spaces and hyphens as underscores).

Aliases: a fact whose attribute is ``alias`` (:data:`ALIAS_ATTRIBUTE`) declares another name of its
subject, e.g. ``{"subject": "Robert Smith", "attribute": "alias", "value": "Bob Smith"}``. A claim may name
a subject by any alias; a claimed value that is an alias of a subject matches a stored value naming the
same subject.

File format (:meth:`KnowledgeBase.from_jsonl`): one JSON object per line with string fields ``subject``,
``attribute`` and ``value``; blank lines are skipped; errors name the file and line.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable
from pathlib import Path

from maskdpo.server.judge.scripts import fold
from maskdpo.server.judge.types import Fact

ALIAS_ATTRIBUTE = "alias"
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t\n\"'`.,;:!?()[]{}"


def normalize(text: str) -> str:
    """The matching form of a subject or value."""
    out = _SPACES.sub(" ", fold(text)).strip(_EDGE_PUNCTUATION)
    if out.startswith("the "):
        out = out[4:]
    return out


def normalize_attribute(name: str) -> str:
    """The matching form of an attribute name: ``"Birth place"`` -> ``birth_place``."""
    return re.sub(r"[\s\-]+", "_", fold(name.strip()))


class ClaimCheck(enum.StrEnum):
    """What the knowledge base says about one claim."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    UNKNOWN = "unknown"
    """The KB does not know the subject, or holds no value of that attribute for it."""


class KnowledgeBase:
    """Facts indexed by subject and attribute, with subject aliases."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self._values: dict[str, dict[str, dict[str, str]]] = {}  # subject -> attribute -> norm value -> value
        self._aliases: dict[str, str] = {}
        self._written: dict[str, str] = {}  # subject -> the subject as first written
        self._count = 0
        for index, fact in enumerate(facts):
            for name in ("subject", "attribute", "value"):
                value = getattr(fact, name)
                if not isinstance(value, str) or not normalize(value):
                    raise ValueError(f"fact {index}: {name} must be a non-empty string, got {value!r}")
            subject, attribute = normalize(fact.subject), normalize_attribute(fact.attribute)
            self._written.setdefault(subject, fact.subject.strip())
            if attribute == ALIAS_ATTRIBUTE:
                self._aliases[normalize(fact.value)] = subject
                self._values.setdefault(subject, {})
            else:
                self._values.setdefault(subject, {}).setdefault(attribute, {})[normalize(fact.value)] = (
                    fact.value
                )
            self._count += 1

    @classmethod
    def from_jsonl(cls, path: Path | str) -> KnowledgeBase:
        path = Path(path)
        facts: list[Fact] = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("expected a JSON object")
                    missing = [
                        key for key in ("subject", "attribute", "value") if not isinstance(row.get(key), str)
                    ]
                    if missing:
                        raise ValueError(f"missing or non-string field(s): {', '.join(missing)}")
                    facts.append(Fact(row["subject"], row["attribute"], row["value"]))
                except ValueError as error:
                    raise ValueError(f"{path}:{number}: {error}") from error
        try:
            return cls(facts)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def __len__(self) -> int:
        return self._count

    def resolve(self, subject: str) -> str | None:
        """The canonical (normalised) subject named by ``subject`` or one of its aliases; None if unknown."""
        key = normalize(subject)
        if key in self._values:
            return key
        return self._aliases.get(key)

    def attributes(self) -> frozenset[str]:
        """Every (normalised) attribute name the KB holds, aliases excluded."""
        return frozenset(attribute for by_attribute in self._values.values() for attribute in by_attribute)

    def names(self) -> dict[str, str]:
        """Every (normalised) name of a subject, aliases included -> the canonical subject it names."""
        return {**{subject: subject for subject in self._values}, **self._aliases}

    def written(self, subject: str) -> str:
        """A known subject (or alias) as first written in the KB ("åsa lind" -> "Åsa Lind"); else as given."""
        canonical = self.resolve(subject)
        return self._written.get(canonical, subject) if canonical else subject

    def attribute_values(self, attribute: str) -> frozenset[str]:
        """The values of an attribute across all subjects (as written in the KB)."""
        key = normalize_attribute(attribute)
        return frozenset(
            value for by_attribute in self._values.values() for value in by_attribute.get(key, {}).values()
        )

    def values(self, subject: str, attribute: str) -> frozenset[str] | None:
        """The stored values of an attribute of a subject (as written in the KB), or None if not held."""
        canonical = self.resolve(subject)
        if canonical is None:
            return None
        held = self._values[canonical].get(normalize_attribute(attribute))
        return frozenset(held.values()) if held else None

    def check(self, claim: Fact) -> ClaimCheck:
        """Supported, contradicted or unknown (see the module docstring)."""
        canonical = self.resolve(claim.subject)
        if canonical is None:
            return ClaimCheck.UNKNOWN
        held = self._values[canonical].get(normalize_attribute(claim.attribute))
        if not held:
            return ClaimCheck.UNKNOWN
        claimed = normalize(claim.value)
        if claimed in held:
            return ClaimCheck.SUPPORTED
        claimed_entity = self._aliases.get(claimed, claimed)
        if any(self._aliases.get(value, value) == claimed_entity for value in held):
            return ClaimCheck.SUPPORTED
        return ClaimCheck.CONTRADICTED

    def explain(self, claim: Fact, check: ClaimCheck) -> str:
        """A one-line evidence text for a checked claim."""
        said = f"{claim.subject} / {claim.attribute} = {claim.value!r}"
        if check is ClaimCheck.SUPPORTED:
            return f"{said}: supported"
        if check is ClaimCheck.CONTRADICTED:
            held = sorted(self.values(claim.subject, claim.attribute) or ())
            return f"{said}: contradicted (KB: {', '.join(held)})"
        if self.resolve(claim.subject) is None:
            return f"{said}: unknown subject"
        return f"{said}: attribute not in KB"
