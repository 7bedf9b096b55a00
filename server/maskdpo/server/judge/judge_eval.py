"""``maskdpo judge-eval``: how well a judge backend agrees with human labels on a labelled set.

    maskdpo judge-eval                                     # heuristic on the project's labelled sentences
    maskdpo judge-eval ../shared/data/wice-dev/dev.jsonl   # WiCE claims against their cited pages
    maskdpo judge-eval SET --judge llm --limit 20          # the bundled SmolLM2 judge on a subset
    maskdpo judge-eval SET --option top_k=5 --split b --errors --json
    python -m maskdpo.server.judge.judge_eval ...           # the same command

Each labelled text is judged as a whole response against its passages (sets and their formats:
:mod:`maskdpo.server.judge.labelled_sets`); the report (:mod:`maskdpo.server.judge.agreement`) gives the
balanced accuracy of supported vs not supported with its bootstrap interval, both recalls, the binary
agreement, the exact-label agreement where the gold labels are the judge's own, the confusion table, how
partially supported texts were judged (apart), each split of the set, and the judging speed. The ``kb``
judge reads structured facts, which none of these sets has: it is refused with that reason, as is a
FActScore file without passages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskdpo.server.judge.agreement import Agreement, measure, text_verdict
from maskdpo.server.judge.labelled_sets import (
    DEFAULT_SENTENCES,
    PASSAGE_SENTENCES,
    LabelledItem,
    NoPassages,
    SetKind,
    load_set,
)
from maskdpo.server.judge.registry import READS_FACTS_ONLY, backend_names, build_backend
from maskdpo.server.judge.types import JudgeBackend, JudgeRequest, Judgment
from maskdpo.trainer.labels import SentenceLabel

_COLUMNS = tuple(SentenceLabel)


@dataclass(frozen=True, slots=True)
class EvalRun:
    """One backend's verdicts on one labelled set, with the agreement figures."""

    kind: SetKind
    items: tuple[LabelledItem, ...]
    judgments: tuple[Judgment, ...]
    seconds: float
    agreement: Agreement

    @property
    def verdicts(self) -> list[SentenceLabel]:
        return [text_verdict([s.label for s in j.sentences]) for j in self.judgments]

    @property
    def sentences(self) -> int:
        return sum(len(j.verdicts) for j in self.judgments)

    def split(self, name: str, *, resamples: int = 0, seed: int = 0) -> Agreement:
        keep = [i for i, item in enumerate(self.items) if item.split == name]
        verdicts = self.verdicts
        return measure([self.items[i].gold for i in keep], [verdicts[i] for i in keep],
                       resamples=resamples, seed=seed)


def evaluate(backend: JudgeBackend, items: Sequence[LabelledItem], kind: SetKind = "sentences", *,
             batch: int = 64, resamples: int = 1000, seed: int = 0) -> EvalRun:
    """Judge every item (``batch`` per backend call) and measure the verdicts against the gold labels."""
    requests = [JudgeRequest(response=i.text, topic=i.topic, passages=i.passages) for i in items]
    judgments: list[Judgment] = []
    started = time.perf_counter()
    for lo in range(0, len(requests), batch):
        judgments.extend(backend.judge_batch(requests[lo : lo + batch]))
    seconds = time.perf_counter() - started
    verdicts = [text_verdict([s.label for s in j.sentences]) for j in judgments]
    agreement = measure([i.gold for i in items], verdicts, resamples=resamples, seed=seed)
    return EvalRun(kind, tuple(items), tuple(judgments), seconds, agreement)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_interval(agreement: Agreement, name: str, value: float | None) -> str:
    interval = agreement.intervals.get(name)
    bounds = f"  [{interval.low:.3f}, {interval.high:.3f}]" if interval is not None else ""
    return _share(value) + bounds


def format_agreement(a: Agreement) -> list[str]:
    lines = [
        f"balanced accuracy (supported vs not supported): "
        f"{_with_interval(a, 'balanced_accuracy', a.balanced_accuracy)}",
        f"  supported judged ok:        {a.supported_ok}/{a.supported}  "
        f"{_with_interval(a, 'supported_recall', a.supported_recall)}",
        f"  not supported flagged:      {a.not_supported_flagged}/{a.not_supported}  "
        f"{_with_interval(a, 'not_supported_recall', a.not_supported_recall)}",
        f"  agreement (binary):         {_with_interval(a, 'agreement', a.agreement)}",
    ]
    if a.exact_total:
        lines.append(f"exact label agreement:        {a.exact_hits}/{a.exact_total}  "
                     f"{_with_interval(a, 'exact', a.exact)}")
    return lines


def format_run(run: EvalRun, backend: JudgeBackend, errors: bool = False) -> str:
    a = run.agreement
    identity = backend.identity()
    rate = len(run.items) / run.seconds if run.seconds else 0.0
    lines = [
        f"judge {identity.backend} ({identity.model}, {identity.prompt_version}) on {len(run.items)} "
        f"{run.kind}: {run.sentences} sentences judged in {run.seconds:.1f} s ({rate:.1f} texts/s)",
        *format_agreement(a),
    ]
    level = next(iter(a.intervals.values())).level if a.intervals else None
    if level is not None:
        lines.append(f"  (intervals: {level:.0%} percentile bootstrap over texts)")
    golds = sorted({g for g, _ in a.confusion}, key=lambda g: (g not in ("supported", "ok"), g))
    partial = a.verdicts_of("partially_supported")
    if partial:
        total = sum(partial.values())
        shares = ", ".join(f"{label.value} {partial[label] / total:.1%}" for label in _COLUMNS if partial[label])
        lines.append(f"partially supported (apart, {total} texts): judged {shares}")
    lines.append("confusion (rows gold, columns verdict):")
    lines.append(" " * 22 + "".join(f"{c.value[:7]:>9}" for c in _COLUMNS))
    for gold in golds:
        counts = a.verdicts_of(gold)
        lines.append(f"  {gold:<20}" + "".join(f"{counts[c]:>9}" for c in _COLUMNS))
    for name in sorted({i.split for i in run.items} - {""}):
        part = run.split(name)
        lines.append(f"split {name}: balanced accuracy {_share(part.balanced_accuracy)}, supported "
                     f"{part.supported_ok}/{part.supported}, not supported flagged "
                     f"{part.not_supported_flagged}/{part.not_supported}"
                     + (f", exact {_share(part.exact)}" if part.exact_total else ""))
    if errors:
        for item, judgment, verdict in zip(run.items, run.judgments, run.verdicts, strict=True):
            if _wrong(item, verdict):
                evidence = "; ".join(v.evidence for v in judgment.verdicts)[:300]
                lines.append(f"  {item.id} gold={item.gold} got={verdict.value}: {item.text[:200]} [{evidence}]")
    return "\n".join(lines)


def _wrong(item: LabelledItem, verdict: SentenceLabel) -> bool:
    if item.gold in {label.value for label in SentenceLabel}:
        return item.gold != verdict.value
    if item.gold_class == "partial":
        return False
    return (item.gold_class == "supported") != (verdict is SentenceLabel.OK)


def as_dict(run: EvalRun, backend: JudgeBackend) -> dict[str, Any]:
    a = run.agreement
    return {
        "judge": backend.identity().backend,
        "settings": dict(backend.identity().settings),
        "kind": run.kind,
        "texts": len(run.items),
        "sentences": run.sentences,
        "seconds": round(run.seconds, 2),
        "balanced_accuracy": a.balanced_accuracy,
        "supported_recall": a.supported_recall,
        "not_supported_recall": a.not_supported_recall,
        "agreement": a.agreement,
        "exact": a.exact,
        "intervals": {k: [v.low, v.high] for k, v in a.intervals.items()},
        "confusion": {f"{g}/{p.value}": c for (g, p), c in sorted(a.confusion.items())},
        "splits": {name: run.split(name).balanced_accuracy for name in sorted({i.split for i in run.items} - {""})},
    }


def _option(raw: str) -> tuple[str, Any]:
    name, eq, value = raw.partition("=")
    if not (name and eq):
        raise ValueError(f"--option {raw!r}: expected NAME=VALUE")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskdpo judge-eval", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_SENTENCES,
                        help="labelled set (JSONL; default: the project's labelled sentences)")
    parser.add_argument("--judge", default="heuristic", help=f"backend: {', '.join(backend_names())}")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="backend setting (repeat); VALUE is read as JSON when it parses")
    parser.add_argument("--split", default="", help="only this split of the set (e.g. a, b, dev, heldout)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N texts (after --split)")
    parser.add_argument("--passage-sentences", type=int, default=PASSAGE_SENTENCES,
                        help="evidence sentences per passage (claims sets)")
    parser.add_argument("--batch", type=int, default=64, help="texts per backend call")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--errors", action="store_true", help="list the texts the judge got wrong")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.judge in READS_FACTS_ONLY:
        print(f"maskdpo judge-eval: the {args.judge} judge reads structured facts (subject, attribute, "
              "value); the labelled sets here give passages only, so it has nothing to judge against",
              file=sys.stderr)
        return 2
    try:
        kind, items = load_set(args.path, passage_sentences=args.passage_sentences)
        options = dict(_option(raw) for raw in args.option)
    except NoPassages as exc:
        print(f"maskdpo judge-eval: cannot judge this set: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"maskdpo judge-eval: {exc}", file=sys.stderr)
        return 2
    if args.split:
        items = [i for i in items if i.split == args.split]
    if args.limit:
        items = items[: args.limit]
    if not items:
        parser.error("no texts to judge (check --split / --limit)")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout carries the report alone
    backend = build_backend(args.judge, **options)
    try:
        run = evaluate(backend, items, kind, batch=args.batch, resamples=args.resamples, seed=args.seed)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    print(json.dumps(as_dict(run, backend)) if args.json else format_run(run, backend, errors=args.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
