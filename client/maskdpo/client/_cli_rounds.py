"""The ``maskdpo round`` commands: create (and chain), watch with a live progress line, list, get, cancel.

maskdpo round create --model toy [--prompts N] [--eval-prompts N] [--steps N] [--rounds K] [--no-watch]
                     [--dataset toyworld/alignment] [--eval-dataset toyworld/validation] [--config FILE.json]
                     [--nll-alpha A] [--mask-unit sentence|claim] [--pair-rule precision|...] [--metric M]
maskdpo round watch ROUND [--after N]
maskdpo round list [--state RUNNING] [--model toy]
maskdpo round get ROUND [--json]
maskdpo round cancel ROUND

``--rounds K`` chains K rounds: each starts from the previous one's candidate (its reference model is its
starting policy); the chain stops at the first round that does not succeed. ``--config`` reads a
RoundConfig in protobuf JSON; the flags given override its fields.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from maskdpo.client._client import Client
from maskdpo.client._rounds import round_of, toy_round_config
from maskdpo.client.display import follow, rounds_table
from maskdpo.v1 import alignment_pb2

State = alignment_pb2.AlignmentRound.State
STATES = {name: value for name, value in State.items() if value}


def _choices(enum: Any, prefix: str) -> dict[str, int]:
    """Command-line names of a contract enum: ``MASK_UNIT_CLAIM`` -> ``claim``."""
    return {name.removeprefix(prefix).lower(): v for name, v in enum.items() if v}


MASK_UNITS = _choices(alignment_pb2.MaskUnit, "MASK_UNIT_")
PAIR_RULES = _choices(alignment_pb2.PairRule, "PAIR_RULE_")


def add_parsers(sub: Any, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    rnd = sub.add_parser("round", help="alignment rounds: create, watch, list, get, cancel")
    rsub = rnd.add_subparsers(dest="round_command", required=True)
    create = rsub.add_parser("create", help="start a round (or --rounds K chained rounds)")
    create.add_argument("--model", default="toy")
    create.add_argument("--config", type=Path, help="RoundConfig as protobuf JSON")
    create.add_argument("--dataset", default="toyworld/alignment")
    create.add_argument("--eval-dataset", default="toyworld/validation")
    toy = {name: p.default for name, p in inspect.signature(toy_round_config).parameters.items()}
    create.add_argument("--prompts", type=int, default=toy["prompts"], help="prompts to sample (0 = all)")
    create.add_argument("--eval-prompts", type=int, default=toy["eval_prompts"],
                        help="evaluation prompts (0 = the server's rounds_eval_prompts)")
    create.add_argument("--samples", type=int, default=toy["samples_per_prompt"], help="samples per prompt")
    create.add_argument("--steps", type=int, default=toy["steps"], help="training steps (cap)")
    create.add_argument("--lr", type=float, default=toy["learning_rate"])
    create.add_argument("--loss", choices=["maskdpo", "dpo"], default="maskdpo")
    create.add_argument("--nll-alpha", type=float, help="NLL anchor on the chosen answers' kept tokens")
    create.add_argument("--mask-unit", choices=sorted(MASK_UNITS), help="claim: only the wrong values' tokens")
    create.add_argument("--pair-rule", choices=sorted(PAIR_RULES))
    create.add_argument("--metric", help="promotion metric: anah_score, factscore, f1_at_k")
    create.add_argument("--min-improvement", type=float)
    create.add_argument("--max-correct-drop", type=float)
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--start-from", default="", help="rounds/<id> to start from")
    create.add_argument("--rounds", type=int, default=1, help="chain this many rounds")
    create.add_argument("--request-id", default="", help="idempotency key (first round only)")
    create.add_argument("--no-watch", action="store_true", help="print the operation and return")
    watch = rsub.add_parser("watch", help="follow a round's events with a progress line")
    watch.add_argument("round")
    watch.add_argument("--after", type=int, default=0, help="start after this sequence number")
    lst = rsub.add_parser("list", help="list rounds, newest first")
    lst.add_argument("--state", choices=sorted(STATES))
    lst.add_argument("--model", default="")
    get = rsub.add_parser("get", help="show one round")
    get.add_argument("round")
    get.add_argument("--json", action="store_true")
    cancel = rsub.add_parser("cancel", help="cancel a round (stops within one training step)")
    cancel.add_argument("round")
    for p in (create, watch, lst, get, cancel):
        connection_args(p)


def _name(value: str) -> str:
    return value if value.startswith("rounds/") else f"rounds/{value}"


def _config(args: argparse.Namespace, start_from: str, seed: int) -> alignment_pb2.RoundConfig:
    config = toy_round_config(
        args.model,
        prompts=args.prompts,
        eval_prompts=args.eval_prompts,
        samples_per_prompt=args.samples,
        steps=args.steps,
        learning_rate=args.lr,
        seed=seed,
        loss=alignment_pb2.DPO if args.loss == "dpo" else alignment_pb2.MASK_DPO,
    )
    config.prompts.dataset, config.eval_prompts.dataset = args.dataset, args.eval_dataset
    if args.config:
        json_format.Parse(args.config.read_text(), config)
    if args.nll_alpha is not None:
        config.training.nll_alpha = args.nll_alpha
    if args.mask_unit:
        config.mask_unit = MASK_UNITS[args.mask_unit]  # type: ignore[assignment]
    if args.pair_rule:
        config.pairs.rule = PAIR_RULES[args.pair_rule]  # type: ignore[assignment]
    if args.metric:
        config.promotion.metric = args.metric
    if args.min_improvement is not None:
        config.promotion.min_improvement = args.min_improvement
    if args.max_correct_drop is not None:
        config.promotion.max_correct_drop = args.max_correct_drop
    config.start_from_round = start_from
    return config


def _create(client: Client, args: argparse.Namespace) -> int:
    done: list[alignment_pb2.AlignmentRound] = []
    start = args.start_from and _name(args.start_from)
    for k in range(args.rounds):
        op = client.create_round(
            _config(args, start, args.seed + k), request_id=args.request_id if k == 0 else ""
        )
        name = round_of(op)
        print(f"round {k + 1}/{args.rounds}: {name} (operation {op.name})")
        if args.no_watch:
            return 0
        r = follow(client, name)
        done.append(r)
        print(f"{name}: {State.Name(r.state)}: {r.reason}")
        if r.report_path:
            print(f"report: {r.report_path}")
        if r.state != State.SUCCEEDED:
            break
        start = name
    rounds_table(done)
    return 0 if done and all(r.state == State.SUCCEEDED for r in done) else 1


def run(client: Client, args: argparse.Namespace) -> int:
    command = args.round_command
    if command == "create":
        return _create(client, args)
    if command == "watch":
        r = follow(client, _name(args.round), args.after)
        print(f"{r.name}: {State.Name(r.state)}: {r.reason}")
        return 0
    if command == "list":
        rounds_table(
            client.list_rounds(
                state=STATES.get(args.state or "", State.STATE_UNSPECIFIED),
                model=args.model and f"models/{args.model.removeprefix('models/')}",
            )
        )
        return 0
    if command == "get":
        r = client.get_round(_name(args.round))
        if args.json:
            print(json_format.MessageToJson(r))
        else:
            rounds_table([r])
            print(
                f"phase {alignment_pb2.RoundPhase.Name(r.phase)}; done: "
                f"{', '.join(alignment_pb2.RoundPhase.Name(p) for p in r.done_phases) or '-'}\nreason: {r.reason}"
            )
            if r.report_path:
                print(f"report: {r.report_path}")
        return 0
    r = client.cancel_round(_name(args.round))
    print(f"{r.name}: cancellation requested ({State.Name(r.state)})")
    return 0
