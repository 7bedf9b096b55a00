"""Score throughput through gRPC against the same judge called in-process, measured in one run.

    python bench/bench_score.py [--answers 96] [--clients 16]

(a) heuristic judge: sentences per second of 16 concurrent SDK clients calling Score on a ``maskdpo serve``
process (its judge in a Ray actor) versus ``HeuristicJudge.judge_batch`` in this process on the same answers
(one batch: the baseline's best case). Prints the ratio; the target is >= 0.8.
(b) kb judge: median per-call latency of Score through the service versus the in-process call, and the
service path's overhead in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from maskdpo.client import Client, Knowledge
from maskdpo.server.judge.registry import build_backend
from maskdpo.server.judge.types import Fact, JudgeRequest, Passage
from maskdpo.server.launcher import ServerProcess

CITIES = ["Oslo", "Bergen", "Lyon", "Porto", "Turku", "Ghent", "Split", "Cork"]
JOBS = ["chemist", "painter", "architect", "surveyor", "composer", "botanist"]


def make_answers(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(topic, passage, answer) triples: 4-6 sentences each, a mix of correct, wrong and filler."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, city, job, year = f"Person {i}", rng.choice(CITIES), rng.choice(JOBS), rng.randint(1850, 1990)
        passage = (f"{name} (born {year} in {city}) is a {job}. {name} studied in {rng.choice(CITIES)} and "
                   f"received the Civic Prize in {year + 40}. {name} later taught for {rng.randint(5, 30)} years.")
        sentences = [f"{name} is a {job} born in {year if rng.random() < 0.7 else year + 3}.",
                     f"{name} was born in {city if rng.random() < 0.7 else rng.choice(CITIES)}.",
                     f"{name} received the Civic Prize in {year + 40}.",
                     "Many people admire this work.",
                     f"{name} also won the Harbour Medal in {year + 20}."][: rng.randint(4, 5)]
        out.append((name, passage, " ".join(sentences)))
    return out


def in_process_heuristic(answers: list[tuple[str, str, str]]) -> tuple[float, int]:
    judge = build_backend("heuristic")
    requests = [JudgeRequest(response=a, topic=t, passages=(Passage(p, t),)) for t, p, a in answers]
    judge.judge_batch(requests[:4])  # warm-up: model load
    started = time.perf_counter()
    judgments = judge.judge_batch(requests)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(j.verdicts) for j in judgments)


def service_heuristic(target: str, answers: list[tuple[str, str, str]], clients: int) -> tuple[float, int]:
    def one(item: tuple[str, str, str], client: Client) -> int:
        t, p, a = item
        return len(client.score(a, topic=t, knowledge=Knowledge(passages=[(t, p)])).answer.sentences)

    pool = [Client(target, timeout=600) for _ in range(clients)]
    with ThreadPoolExecutor(clients) as executor:
        list(executor.map(lambda i: one(answers[i], pool[i % clients]), range(min(clients, len(answers)))))  # warm
        started = time.perf_counter()
        counts = list(executor.map(lambda i: one(answers[i], pool[i % clients]), range(len(answers))))
        elapsed = time.perf_counter() - started
    for c in pool:
        c.close()
    return elapsed, sum(counts)


def kb_overhead(target: str, calls: int) -> tuple[float, float]:
    facts = [("Ada Lind", "birthplace", "Oslo"), ("Ada Lind", "birth_year", "1901")]
    text = "The birthplace of Ada Lind is Oslo. Her birth year was 1901."
    judge = build_backend("kb")
    request = JudgeRequest(response=text, topic="Ada Lind", facts=tuple(Fact(*f) for f in facts))
    local = []
    for _ in range(calls):
        started = time.perf_counter()
        judge.judge_batch([request])
        local.append(time.perf_counter() - started)
    remote = []
    with Client(target) as client:
        client.score(text, topic="Ada Lind", judge="kb", knowledge=Knowledge(facts=facts))
        for _ in range(calls):
            started = time.perf_counter()
            client.score(text, topic="Ada Lind", judge="kb", knowledge=Knowledge(facts=facts))
            remote.append(time.perf_counter() - started)
    return statistics.median(local) * 1000, statistics.median(remote) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=96)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--kb-calls", type=int, default=200)
    args = parser.parse_args()
    answers = make_answers(args.answers)
    base_s, base_sentences = in_process_heuristic(answers)
    base_rate = base_sentences / base_s
    print(f"in-process heuristic: {base_sentences} sentences in {base_s:.2f} s = {base_rate:.1f} sentences/s")
    with tempfile.TemporaryDirectory() as tmp, ServerProcess.start(
        Path(tmp), ["--judge", "kb", "--judge", "heuristic"],
        {"MASKDPO_JUDGE_MAX_BATCH": "64"},
    ) as server:
        svc_s, svc_sentences = service_heuristic(server.target, answers, args.clients)
        svc_rate = svc_sentences / svc_s
        print(f"gRPC service, {args.clients} clients: {svc_sentences} sentences in {svc_s:.2f} s = "
              f"{svc_rate:.1f} sentences/s")
        print(f"RATIO service / in-process = {svc_rate / base_rate:.2f}  (target >= 0.80)")
        local_ms, remote_ms = kb_overhead(server.target, args.kb_calls)
        print(f"kb judge per call: in-process {local_ms:.2f} ms, through the service {remote_ms:.2f} ms, "
              f"service-path overhead {remote_ms - local_ms:.2f} ms (median of {args.kb_calls})")


if __name__ == "__main__":
    main()
