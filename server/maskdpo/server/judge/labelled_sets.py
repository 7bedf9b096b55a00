"""Labelled sets that measure a judge: texts to judge, the knowledge to judge them against, human labels.

Three formats, told apart by the fields of their first record (:func:`load_set`):

- **claims** (WiCE-style, e.g. ``../shared/data/wice-dev/dev.jsonl``): ``claim`` (one sentence),
  ``evidence`` (the cited page as a list of sentences), ``label`` supported / partially_supported /
  not_supported, ``meta.id``. The evidence is given to the judge as passages of ``passage_sentences``
  consecutive sentences (5 by default), as a caller would send a fetched page.
- **sentences** (the project's own, ``tests/data/heuristic_labeled.jsonl``): ``id``, ``title``,
  ``passage``, ``sentence``, ``label`` (the judge's own four labels), ``note``, ``split`` ("dev" for the
  sentences the rules were tuned on, "heldout" for those written after the rules were frozen).
- **facts** (FActScore-style): ``topic`` and ``annotations`` = sentences with ``human-atomic-facts`` =
  [{text, label S / NS / IR}]; each fact is judged as a one-sentence answer against the row's
  ``passages`` (strings or {title, text}). FActScore's released files have no passages (their knowledge
  source was a 2023 Wikipedia dump): loading one raises :class:`NoPassages`, which says so.

Every item becomes a :class:`LabelledItem` whose gold label falls in one of :data:`GOLD_CLASSES`:
``supported``, ``not_supported``, ``partial`` (reported apart) or ``nofact`` (no fact to check).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maskdpo.server.judge.types import Passage
from maskdpo.trainer.labels import SentenceLabel

SetKind = Literal["claims", "sentences", "facts"]
GoldClass = Literal["supported", "not_supported", "partial", "nofact"]

DEFAULT_SENTENCES = Path(__file__).resolve().parents[4] / "tests" / "data" / "heuristic_labeled.jsonl"
"""The project's own labelled sentences (the default set of ``maskdpo judge-eval``)."""
PASSAGE_SENTENCES = 5
"""Evidence sentences per passage when a claims set is judged."""

GOLD_CLASSES: dict[str, GoldClass] = {
    "supported": "supported",
    "partially_supported": "partial",
    "not_supported": "not_supported",
    SentenceLabel.OK.value: "supported",
    SentenceLabel.CONTRADICTORY.value: "not_supported",
    SentenceLabel.UNVERIFIABLE.value: "not_supported",
    SentenceLabel.NOFACT.value: "nofact",
    "S": "supported",
    "NS": "not_supported",
    "IR": "not_supported",
}
"""Every gold label a set may carry -> the class it counts in (FActScore counts IR as not supported)."""


class NoPassages(ValueError):
    """The set has labels but no reference text to judge against."""


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One text to judge (as a whole response) with its knowledge and its human label."""

    id: str
    text: str
    gold: str
    """The set's own label (a key of :data:`GOLD_CLASSES`)."""
    passages: tuple[Passage, ...]
    topic: str = ""
    split: str = ""
    note: str = ""

    @property
    def gold_class(self) -> GoldClass:
        return GOLD_CLASSES[self.gold]


def split_of(item_id: str) -> str:
    """A stable half of a set by id: ``"a"`` or ``"b"`` (CRC32 of the id, so runs and machines agree).

    Tuning on one half and reading the other is how overfitting to a set shows up."""
    return "ab"[zlib.crc32(item_id.encode()) % 2]


def detect_kind(record: dict[str, Any]) -> SetKind:
    if "claim" in record and "evidence" in record:
        return "claims"
    if "sentence" in record and "passage" in record:
        return "sentences"
    if "annotations" in record:
        return "facts"
    raise ValueError(f"unknown labelled-set format (fields: {sorted(record)[:8]}); expected a claims, "
                     "sentences or facts file (see maskdpo.server.judge.labelled_sets)")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        yield number, record


def load_set(path: Path, *, passage_sentences: int = PASSAGE_SENTENCES) -> tuple[SetKind, list[LabelledItem]]:
    """The kind of the set at ``path`` and its items; errors name the file, the line and the field."""
    records = list(_records(path))
    if not records:
        raise ValueError(f"{path}: no records")
    kind = detect_kind(records[0][1])
    items: list[LabelledItem] = []
    for number, record in records:
        try:
            if kind == "claims":
                items.append(_claim(record, number, passage_sentences))
            elif kind == "sentences":
                items.append(_sentence(record))
            else:
                items.extend(_facts(record, number))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, NoPassages):
                raise NoPassages(f"{path}: {exc}") from None
            raise ValueError(f"{path}:{number}: {exc}") from None
    return kind, items


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {name!r} must be a non-empty string")
    return value


def _gold(value: Any) -> str:
    if value not in GOLD_CLASSES:
        raise ValueError(f"unknown label {value!r}; expected one of: {', '.join(GOLD_CLASSES)}")
    return str(value)


def _claim(record: dict[str, Any], number: int, passage_sentences: int) -> LabelledItem:
    evidence = record["evidence"]
    if not isinstance(evidence, list) or not all(isinstance(s, str) for s in evidence):
        raise ValueError("field 'evidence' must be a list of sentences")
    meta = record.get("meta") or {}
    item_id = str(meta.get("id") or f"line{number}")
    passages = tuple(
        Passage(" ".join(evidence[i : i + passage_sentences]))
        for i in range(0, len(evidence), passage_sentences)
    )
    return LabelledItem(item_id, _text(record, "claim"), _gold(record.get("label")), passages,
                        split=split_of(item_id))


def _sentence(record: dict[str, Any]) -> LabelledItem:
    label = SentenceLabel.parse(_text(record, "label"))
    title = _text(record, "title")
    return LabelledItem(
        _text(record, "id"),
        _text(record, "sentence"),
        label.value,
        (Passage(_text(record, "passage"), title),),
        topic=title,
        split=str(record.get("split", "dev")),
        note=str(record.get("note", "")),
    )


def _passages(raw: Any) -> tuple[Passage, ...]:
    if not isinstance(raw, list):
        raise ValueError("field 'passages' must be a list of strings or {title, text} objects")
    return tuple(Passage(p) if isinstance(p, str) else Passage(str(p["text"]), str(p.get("title", "")))
                 for p in raw)


def _facts(record: dict[str, Any], number: int) -> list[LabelledItem]:
    topic = str(record.get("topic", ""))
    if not record.get("passages"):
        raise NoPassages(
            f"line {number} ({topic or 'no topic'}) has per-fact labels but no 'passages': these labels "
            "were given against a knowledge source the file does not carry (FActScore's: a 2023 Wikipedia "
            "dump), so there is nothing to judge its facts against; they test the metric code instead "
            "(maskdpo.server.judge.factscore_data)")
    passages = _passages(record["passages"])
    items: list[LabelledItem] = []
    for s, sentence in enumerate(record.get("annotations") or []):
        for f, fact in enumerate(sentence.get("human-atomic-facts") or []):
            items.append(LabelledItem(f"{topic}#{s}.{f}", _text(fact, "text"), _gold(fact.get("label")),
                                      passages, topic=topic, split=split_of(topic)))
    return items
