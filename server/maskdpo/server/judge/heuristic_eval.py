"""Sentence accuracy of the heuristic judge on a labelled set (overall, per label, confusion matrix).

The set is JSONL, one sentence per line: ``{"id", "title", "passage", "sentence", "label", "note",
"split"}`` (``label`` one of ok / contradictory / unverifiable / nofact; ``split`` "dev" for the sentences
the rules were tuned on, "heldout" for those written after the rules were frozen). Each sentence is judged
as a one-sentence response against its passage, all in one batch.

Run: ``python -m maskdpo.server.judge.heuristic_eval [PATH] [--split dev|heldout] [--errors]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from maskdpo.server.judge.heuristic import HeuristicJudge
from maskdpo.server.judge.types import JudgeRequest, Passage
from maskdpo.trainer.labels import SentenceLabel

DEFAULT_SET = Path(__file__).resolve().parents[4] / "tests" / "data" / "heuristic_labeled.jsonl"
_FIELDS = ("id", "title", "passage", "sentence", "label")


@dataclass(frozen=True, slots=True)
class LabeledExample:
    id: str
    title: str
    passage: str
    sentence: str
    label: SentenceLabel
    note: str = ""
    split: str = "dev"


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    """Gold vs predicted labels of every example, with the derived accuracies."""

    examples: tuple[LabeledExample, ...]
    predicted: tuple[SentenceLabel, ...]
    evidence: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        hits = sum(e.label is p for e, p in zip(self.examples, self.predicted, strict=True))
        return hits / len(self.examples) if self.examples else 0.0

    def per_label(self) -> dict[SentenceLabel, tuple[int, int]]:
        """Gold label -> (correct, total)."""
        out: dict[SentenceLabel, tuple[int, int]] = {}
        for label in SentenceLabel:
            pairs = [(e, p) for e, p in zip(self.examples, self.predicted, strict=True) if e.label is label]
            out[label] = (sum(e.label is p for e, p in pairs), len(pairs))
        return out

    def confusion(self) -> Counter[tuple[SentenceLabel, SentenceLabel]]:
        """(gold, predicted) -> count."""
        return Counter((e.label, p) for e, p in zip(self.examples, self.predicted, strict=True))

    def subset(self, split: str) -> AccuracyReport:
        keep = [i for i, e in enumerate(self.examples) if e.split == split]
        return AccuracyReport(
            tuple(self.examples[i] for i in keep),
            tuple(self.predicted[i] for i in keep),
            tuple(self.evidence[i] for i in keep),
        )

    def format(self, errors: bool = False) -> str:
        labels = list(SentenceLabel)
        lines = [f"sentence accuracy: {self.accuracy:.3f} ({len(self.examples)} sentences)"]
        for label, (correct, total) in self.per_label().items():
            share = correct / total if total else 0.0
            lines.append(f"  {label.value:<14} {correct:>3}/{total:<3} {share:.3f}")
        lines.append("confusion (rows gold, columns predicted):")
        lines.append(" " * 15 + "".join(f"{p.value[:6]:>8}" for p in labels))
        matrix = self.confusion()
        for gold in labels:
            lines.append(f"  {gold.value:<13}" + "".join(f"{matrix[(gold, p)]:>8}" for p in labels))
        if errors:
            for e, p, ev in zip(self.examples, self.predicted, self.evidence, strict=True):
                if e.label is not p:
                    lines.append(f"  {e.id} gold={e.label.value} got={p.value}: {e.sentence} [{ev}]")
        return "\n".join(lines)


def load_examples(path: Path) -> list[LabeledExample]:
    """Read and validate the labelled set; errors name the line and the field."""
    examples: list[LabeledExample] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        for name in _FIELDS:
            if not isinstance(record.get(name), str) or not record[name].strip():
                raise ValueError(f"{path}:{number}: field {name!r} must be a non-empty string")
        try:
            label = SentenceLabel.parse(record["label"])
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        examples.append(
            LabeledExample(
                record["id"],
                record["title"],
                record["passage"],
                record["sentence"],
                label,
                record.get("note", ""),
                record.get("split", "dev"),
            )
        )
    return examples


def evaluate(judge: HeuristicJudge, examples: list[LabeledExample]) -> AccuracyReport:
    """Judge every example's sentence against its passage, in one batch."""
    requests = [
        JudgeRequest(response=e.sentence, topic=e.title, passages=(Passage(e.passage, e.title),))
        for e in examples
    ]
    judgments = judge.judge_batch(requests)
    predicted, evidence = [], []
    for example, judgment in zip(examples, judgments, strict=True):
        if len(judgment.verdicts) != 1:
            raise ValueError(f"example {example.id}: the splitter found {len(judgment.verdicts)} sentences")
        predicted.append(judgment.verdicts[0].sentence.label)
        evidence.append(judgment.verdicts[0].evidence)
    return AccuracyReport(tuple(examples), tuple(predicted), tuple(evidence))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--split", default="", help="only this split (default: all, then each split)")
    parser.add_argument("--errors", action="store_true", help="list the misjudged sentences")
    args = parser.parse_args(argv)
    examples = load_examples(args.path)
    if args.split:
        examples = [e for e in examples if e.split == args.split]
        if not examples:
            parser.error(f"no examples in split {args.split!r}")
    report = evaluate(HeuristicJudge(), examples)
    print(report.format(errors=args.errors))
    if not args.split:
        for split in sorted({e.split for e in examples}):
            part = report.subset(split)
            print(f"split {split}: {part.accuracy:.3f} ({len(part.examples)} sentences)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
