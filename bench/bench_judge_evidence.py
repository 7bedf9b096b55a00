"""Heuristic judging speed on real evidence (WiCE claims against their cited pages), three paths in one run.

    python bench/bench_judge_evidence.py [--claims 40] [--set ../shared/data/wice-dev/dev.jsonl]

Each claim is one Score-sized call (``judge_batch`` with one request) against its page, given as passages
of five sentences (about 120 sentences per page). Per claim, in turn:

(a) every chunk embedded: the judge as it was before BM25 narrowing -- every chunk of the reference
    embedded in float32 before anything is ranked (``candidates`` unbounded, ``embedding_dtype=float32``;
    its chunks come from the current rule, which is faster than the pysbd splitting the old path used, so
    this baseline is if anything faster than the old code);
(b) narrowed (the defaults): BM25 picks the ``candidates`` chunks per sentence, only they are embedded,
    in bfloat16 where the CPU has it;
(c) registered source: the page's chunk vectors were computed once beforehand (as CreateKnowledgeSource
    does; that time is printed apart) and come with the request.

Prints sentences per second of each path by wall clock and by this process's CPU time (the machine is
shared: CPU time is the steadier figure), the ratios (b)/(a) and (c)/(a), and how the labels compare:
identical labels and balanced accuracy of each path on these claims. Target: (b) >= 20 sentences/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from maskdpo.server.judge.agreement import measure, text_verdict
from maskdpo.server.judge.embedding import MiniLMEncoder
from maskdpo.server.judge.heuristic import HeuristicJudge
from maskdpo.server.judge.labelled_sets import load_set
from maskdpo.server.judge.types import JudgeRequest, Judgment
from maskdpo.trainer.labels import SentenceLabel

WICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "wice-dev" / "dev.jsonl"


@dataclass
class Timed:
    name: str
    judge: HeuristicJudge
    wall: float = 0.0
    cpu: float = 0.0
    verdicts: list[SentenceLabel] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, request: JudgeRequest) -> Judgment:
        wall, cpu = time.perf_counter(), time.process_time()
        [judgment] = self.judge.judge_batch([request])
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.verdicts.append(text_verdict([s.label for s in judgment.sentences]))
        self.labels.append(tuple(s.label.value for s in judgment.sentences))
        return judgment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=40)
    parser.add_argument("--set", type=Path, default=WICE)
    args = parser.parse_args()
    if not args.set.is_file():
        print(f"WiCE not found at {args.set} (shared data absent): nothing to measure")
        return 0
    _, items = load_set(args.set)
    items = [i for i in items if i.gold_class != "partial"][: args.claims]
    threads = HeuristicJudge().settings.threads
    every = Timed("every chunk embedded (float32)",
                  HeuristicJudge(candidates=10**9, encoder=MiniLMEncoder(threads=threads, dtype="float32")))
    narrowed = Timed("BM25-narrowed (defaults)", HeuristicJudge())
    source = Timed("registered source (stored vectors)", HeuristicJudge(encoder=narrowed.judge.encoder))
    warm = JudgeRequest("Ada Lind was born in 1901.", passages=items[0].passages[:1])
    for path in (every, narrowed):
        path.judge.judge_batch([warm])  # model load
    indexing = 0.0
    sentences = 0
    for number, item in enumerate(items, start=1):
        request = JudgeRequest(item.text, topic=item.topic, passages=item.passages)
        started = time.perf_counter()
        vectors = source.judge.index(item.passages)
        indexing += time.perf_counter() - started
        every.run(request)
        judgment = narrowed.run(request)
        source.run(JudgeRequest(item.text, topic=item.topic, passages=item.passages, chunk_vectors=vectors))
        sentences += len(judgment.verdicts)
        print(f"\r{number}/{len(items)} claims", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    pages = sum(len(i.passages) for i in items) * 5 / len(items)
    print(f"{len(items)} WiCE claims ({sentences} sentences), about {pages:.0f} evidence sentences per claim, "
          f"one claim per call; encoder threads {threads}, dtype of (b) and (c): {narrowed.judge.encoder.dtype}")
    print(f"{'path':<40}{'wall s':>9}{'cpu s':>9}{'sent/s wall':>13}{'sent/s cpu':>12}")
    for path in (every, narrowed, source):
        print(f"{path.name:<40}{path.wall:>9.1f}{path.cpu:>9.1f}{sentences / path.wall:>13.1f}"
              f"{sentences / path.cpu:>12.1f}")
    print(f"registering the pages (chunk vectors, once per source): {indexing:.1f} s wall")
    for path in (narrowed, source):
        print(f"ratio {path.name} / {every.name}: wall {every.wall / path.wall:.1f}x, "
              f"cpu {every.cpu / path.cpu:.1f}x")
    gold = [i.gold for i in items]
    for path in (every, narrowed, source):
        a = measure(gold, path.verdicts, resamples=0)
        same = sum(x == y for x, y in zip(path.labels, every.labels, strict=True))
        print(f"{path.name:<40} balanced accuracy {a.balanced_accuracy:.3f} (supported {a.supported_ok}/"
              f"{a.supported}, not supported flagged {a.not_supported_flagged}/{a.not_supported}); "
              f"same labels as (a): {same}/{len(items)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
