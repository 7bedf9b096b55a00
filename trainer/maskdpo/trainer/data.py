"""Training data in and out: Mask-DPO records, FActScore human labels, judged samples, pair files.

Formats (one JSON object per line):

- ``maskdpo`` -- the released Mask-DPO record: ``prompt`` (chat messages or text), ``chosen`` /
  ``rejected`` (one assistant message, a list holding it, or text), ``chosen_item`` / ``rejected_item`` =
  ``{"sents": [...], "type": [...]}``. Each sentence is located in the response by character search, in
  order; ``no_hallucination`` -> ok, ``hallucination`` -> contradictory, any other type -> nofact (our four
  label names are accepted too).
- ``factscore`` -- a folder with the FActScore human-labelled ``InstructGPT.jsonl`` and ``ChatGPT.jsonl``.
  Sentence label from its human atomic facts (IR ignored): any NS -> contradictory, else any S -> ok, else
  nofact. One prompt = one entity; the two models' answers are paired by preference score.
- ``judged`` -- the project's judged samples: ``{"prompt", "response", "sentences": [{"start", "end",
  "label"}], "prompt_id"?: str, "sample_id"?: str, "facts"?: {"correct", "incorrect"}}``; samples are
  grouped by ``prompt_id`` (else by prompt) and paired best vs worst (:mod:`maskdpo.trainer.pairs`;
  ``facts``, the judge's fact counts, are read by the fact-aware pair rules).
- ``pairs`` -- what :func:`write_pairs` writes: TRL's preference format plus ``chosen_sentences`` /
  ``rejected_sentences`` (the dataset the trainer reads).

Bad input raises :class:`DataError` naming the file, line and field. Nothing is dropped silently: every
left-out sample or pair is counted by reason in the returned :class:`PairStats`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from maskdpo.trainer.labels import LabeledSentence, SentenceLabel, Span
from maskdpo.trainer.pairs import (
    JudgedSample,
    PairConfig,
    PairStats,
    PreferencePair,
    admit_pair,
    build_pairs,
    pair_for_prompt,
    sentences_from_rows,
)

FORMATS = ("maskdpo", "factscore", "judged", "pairs")
_RELEASED_TYPES = {"no_hallucination": SentenceLabel.OK, "hallucination": SentenceLabel.CONTRADICTORY}
FACTSCORE_FILES = ("InstructGPT.jsonl", "ChatGPT.jsonl")


class DataError(ValueError):
    def __init__(self, file: Path | str, line: int, field: str, problem: str) -> None:
        super().__init__(f"{file}:{line}: field {field!r}: {problem}")
        self.file, self.line, self.field = str(file), line, field


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(path, n, "<line>", f"not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(path, n, "<line>", "not a JSON object")
            yield n, row


def _field(row: dict[str, Any], name: str, path: Path, n: int, kind: type | tuple[type, ...]) -> Any:
    if name not in row:
        raise DataError(path, n, name, "missing")
    value = row[name]
    if not isinstance(value, kind):
        raise DataError(
            path, n, name, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}"
        )
    return value


def _message_text(value: Any, path: Path, n: int, name: str) -> str:
    if isinstance(value, list):
        if len(value) != 1:
            raise DataError(path, n, name, f"expected one assistant message, got {len(value)}")
        value = value[0]
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        raise DataError(path, n, name, "expected text or an assistant message with text content")
    return value


def _prompt(value: Any, path: Path, n: int) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return value
    raise DataError(path, n, "prompt", "expected text or a list of {role, content} messages")


def locate_sentences(
    text: str, sents: list[str], labels: list[SentenceLabel], path: Path, n: int, name: str
) -> tuple[LabeledSentence, ...]:
    """Place each sentence in ``text`` by character search, in order (whitespace at its edges ignored)."""
    out, cursor = [], 0
    for i, (sent, label) in enumerate(zip(sents, labels, strict=True)):
        needle = sent.strip()
        at = text.find(needle, cursor)
        if at < 0 or not needle:
            raise DataError(
                path,
                n,
                f"{name}[{i}]",
                f"sentence not found in the response after char {cursor}: {sent[:60]!r}",
            )
        out.append(LabeledSentence(Span(at, at + len(needle)), label, needle))
        cursor = at + len(needle)
    return tuple(out)


def load_maskdpo_records(
    path: Path, config: PairConfig | None = None
) -> tuple[list[PreferencePair], PairStats]:
    config, stats, pairs = config or PairConfig(), PairStats(), []
    for n, row in _jsonl(path):
        prompt = _prompt(row.get("prompt"), path, n)
        sides = {}
        for role in ("chosen", "rejected"):
            text = _message_text(row.get(role), path, n, role)
            item = _field(row, f"{role}_item", path, n, dict)
            sents, types = item.get("sents"), item.get("type")
            if not isinstance(sents, list) or not isinstance(types, list) or len(sents) != len(types):
                raise DataError(path, n, f"{role}_item", "needs lists 'sents' and 'type' of equal length")
            labels = []
            for t in types:
                key = str(t).strip().lower()
                labels.append(
                    _RELEASED_TYPES.get(key)
                    or (SentenceLabel(key) if key in set(SentenceLabel) else SentenceLabel.NOFACT)
                )
            sides[role] = (
                text,
                locate_sentences(text, [str(s) for s in sents], labels, path, n, f"{role}_item.sents"),
            )
        stats.prompts += 1
        pair = PreferencePair(
            prompt,
            sides["chosen"][0],
            sides["rejected"][0],
            sides["chosen"][1],
            sides["rejected"][1],
            source=f"{path}:{n}",
        )
        if (kept := admit_pair(pair, config, stats)) is not None:
            pairs.append(kept)
    return pairs, stats


def factscore_label(facts: list[dict[str, Any]] | None) -> SentenceLabel:
    labels = {str(f.get("label", "")).upper() for f in facts or []}
    if "NS" in labels:
        return SentenceLabel.CONTRADICTORY
    return SentenceLabel.OK if "S" in labels else SentenceLabel.NOFACT


def load_factscore(
    folder: Path, config: PairConfig | None = None, chat: bool = True
) -> tuple[list[PreferencePair], PairStats]:
    config, stats = config or PairConfig(), PairStats()
    by_topic: dict[str, list[JudgedSample]] = {}
    for name in FACTSCORE_FILES:
        path = folder / name
        if not path.exists():
            raise DataError(path, 0, "<file>", "missing FActScore file")
        for n, row in _jsonl(path):
            topic = _field(row, "topic", path, n, str)
            question = _field(row, "input", path, n, str)
            output = _field(row, "output", path, n, str)
            annotations = row.get("annotations")
            if annotations is None:
                stats.skipped_samples["abstained"] += 1
                continue
            if not isinstance(annotations, list):
                raise DataError(path, n, "annotations", "expected a list or null")
            texts = [str(a.get("text", "")) for a in annotations]
            labels = [factscore_label(a.get("human-atomic-facts")) for a in annotations]
            sentences = locate_sentences(output, texts, labels, path, n, "annotations")
            prompt: Any = [{"role": "user", "content": question}] if chat else question
            by_topic.setdefault(topic, []).append(JudgedSample(prompt, output, sentences, f"{path.name}:{n}"))
    pairs = [
        p for topic, samples in by_topic.items() if (p := pair_for_prompt(samples, config, stats, topic))
    ]
    return pairs, stats


def load_judged_samples(
    path: Path, config: PairConfig | None = None
) -> tuple[list[PreferencePair], PairStats]:
    groups: dict[str, list[JudgedSample]] = {}
    for n, row in _jsonl(path):
        prompt = _prompt(row.get("prompt"), path, n)
        response = _field(row, "response", path, n, str)
        rows = _field(row, "sentences", path, n, list)
        try:
            sentences = sentences_from_rows(rows, response)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(path, n, "sentences", str(exc)) from None
        if sentences and sentences[-1].span.end > len(response):
            raise DataError(path, n, "sentences", "a span runs past the response")
        key = str(row.get("prompt_id") or json.dumps(prompt, sort_keys=True))
        facts = row.get("facts")
        try:
            counts = None if facts is None else (int(facts["correct"]), int(facts["incorrect"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(path, n, "facts", f"expected {{correct, incorrect}} counts: {exc}") from None
        groups.setdefault(key, []).append(
            JudgedSample(prompt, response, sentences, str(row.get("sample_id", f"{path}:{n}")), counts)
        )
    return build_pairs(list(groups.items()), config)


def load_pairs(path: Path, config: PairConfig | None = None) -> tuple[list[PreferencePair], PairStats]:
    config, stats, pairs = config or PairConfig(), PairStats(), []
    for n, row in _jsonl(path):
        prompt = _prompt(row.get("prompt"), path, n)
        texts = {r: _message_text(row.get(r), path, n, r) for r in ("chosen", "rejected")}
        sents = {}
        for r in ("chosen", "rejected"):
            try:
                sents[r] = sentences_from_rows(_field(row, f"{r}_sentences", path, n, list), texts[r])
            except (KeyError, ValueError, TypeError) as exc:
                raise DataError(path, n, f"{r}_sentences", str(exc)) from None
        stats.prompts += 1
        pair = PreferencePair(
            prompt,
            texts["chosen"],
            texts["rejected"],
            sents["chosen"],
            sents["rejected"],
            source=f"{path}:{n}",
        )
        if (kept := admit_pair(pair, config, stats)) is not None:
            pairs.append(kept)
    return pairs, stats


def write_pairs(path: Path, pairs: list[PreferencePair], conversational: bool | None = None) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_record(conversational), ensure_ascii=False) + "\n")


def load_training_data(
    path: Path, fmt: str = "auto", config: PairConfig | None = None
) -> tuple[list[PreferencePair], PairStats]:
    """Load any supported format (``auto`` guesses from the folder / first record's keys)."""
    path = Path(path)
    if fmt == "auto":
        fmt = _guess_format(path)
    loaders: dict[str, Callable[[Path, PairConfig | None], tuple[list[PreferencePair], PairStats]]] = {
        "maskdpo": load_maskdpo_records,
        "factscore": load_factscore,
        "judged": load_judged_samples,
        "pairs": load_pairs,
    }
    if fmt not in loaders:
        raise ValueError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)} or auto")
    return loaders[fmt](path, config)


def _guess_format(path: Path) -> str:
    if path.is_dir():
        return "factscore"
    for _, row in _jsonl(path):
        if "chosen_item" in row:
            return "maskdpo"
        if "chosen_sentences" in row:
            return "pairs"
        if "response" in row and "sentences" in row:
            return "judged"
        raise DataError(path, 1, "<line>", "cannot tell the format; pass --format")
    raise DataError(path, 0, "<file>", "empty file")
