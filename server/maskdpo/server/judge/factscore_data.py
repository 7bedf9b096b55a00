"""Read FActScore's human-labelled biographies into metric records (the golden data of the metric code).

File format (one JSON object per line): ``topic``, ``output``, ``cat`` = [rarity, region] and
``annotations``: null when the model abstained, else a list of sentences, each with ``text`` and
``human-atomic-facts`` = [{text, label}] with label ``S`` (supported), ``NS`` (not supported) or ``IR``
(irrelevant); ``human-atomic-facts`` is null for a sentence the annotators did not label.

Mapping to :class:`~maskdpo.server.judge.records.ResponseFacts`:

- supported = S facts; unsupported = NS + IR facts (FActScore divides by S + NS + IR);
- ``annotations`` null -> abstained;
- annotations present but no sentence labelled at all -> ``judged=False`` (the model answered, the
  annotators gave no verdict: responding, but not scored);
- sentence labels: any NS -> unverifiable; else at least one S -> ok; else (only IR, none, or unlabelled)
  -> nofact;
- buckets: ``rarity`` and ``region`` from ``cat``.

Preference pairs from these files are the trainer's business; this module only feeds the metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maskdpo.server.judge.records import ResponseFacts
from maskdpo.trainer.labels import LabelCounts, SentenceLabel

_FACT_LABELS = ("S", "NS", "IR")


def read_factscore_file(path: Path | str) -> list[ResponseFacts]:
    """One record per line of a FActScore labelled-data JSONL file; errors name the file and line."""
    path = Path(path)
    records: list[ResponseFacts] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from_row(json.loads(line)))
            except (ValueError, TypeError, KeyError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return records


def record_from_row(row: dict[str, Any]) -> ResponseFacts:
    """Map one FActScore row to a metric record (see the module docstring)."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    topic = str(row.get("topic", ""))
    buckets = _buckets(row.get("cat"))
    annotations = row.get("annotations")
    if annotations is None:
        return ResponseFacts(0, 0, abstained=True, topic=topic, buckets=buckets)
    if not isinstance(annotations, list):
        raise ValueError(f"'annotations' must be a list or null, got {type(annotations).__name__}")
    supported = unsupported = 0
    labelled_any = False
    labels: list[SentenceLabel] = []
    for index, sentence in enumerate(annotations):
        facts = sentence.get("human-atomic-facts") if isinstance(sentence, dict) else None
        if facts is None:
            labels.append(SentenceLabel.NOFACT)
            continue
        labelled_any = True
        tally = dict.fromkeys(_FACT_LABELS, 0)
        for fact in facts:
            label = fact.get("label") if isinstance(fact, dict) else None
            if label not in tally:
                raise ValueError(f"sentence {index}: fact label {label!r} is not one of {_FACT_LABELS}")
            tally[label] += 1
        supported += tally["S"]
        unsupported += tally["NS"] + tally["IR"]
        if tally["NS"]:
            labels.append(SentenceLabel.UNVERIFIABLE)
        elif tally["S"]:
            labels.append(SentenceLabel.OK)
        else:
            labels.append(SentenceLabel.NOFACT)
    return ResponseFacts(
        supported,
        unsupported,
        counts=LabelCounts.of(labels),
        judged=labelled_any,
        topic=topic,
        buckets=buckets,
    )


def _buckets(cat: Any) -> dict[str, str]:
    if cat is None:
        return {}
    if isinstance(cat, list) and len(cat) == 2:
        return {"rarity": str(cat[0]), "region": str(cat[1])}
    raise ValueError(f"'cat' must be [rarity, region], got {cat!r}")
