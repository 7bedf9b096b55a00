"""The ``maskdpo round`` commands: create (and chain), watch with a live progress line, list, get, cancel.

maskdpo round create --model toy [--prompts N] [--eval-prompts N] [--steps N] [--rounds K] [--no-watch]
                     [--dataset toyworld/alignment] [--eval-dataset toyworld/validation] [--config FILE.json]
                     [--validate-only] [--precision bf16] [--precompute-ref] [--lora [--lora-r 16]]
                     [--gpus 8 [--fsdp]] [--batch-size 8] [--grad-accum 1] [--max-length 1024]
                     [--no-gradient-checkpointing]
                     [--nll-alpha A] [--mask-unit sentence|claim] [--pair-rule precision|...] [--metric M]
maskdpo round watch ROUND [--after N]
maskdpo round list [--state RUNNING] [--model toy]
maskdpo round get ROUND [--json]
maskdpo round cancel ROUND

``--rounds K`` chains K rounds: each starts from the previous one's candidate (its reference model is its
starting policy); the chain stops at the first round that does not succeed. ``--config`` reads a
RoundConfig in protobuf JSON; the flags given override its fields. ``--validate-only`` creates nothing and
prints the round's memory plan (what TRAIN needs on each device) as a table; a round refused because its
plan does not fit prints the table too, and exits 1.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.longrunning import operations_proto_pb2
from google.protobuf import json_format

from maskdpo.client._client import Client
from maskdpo.client._rounds import planned_round, round_of, toy_round_config
from maskdpo.client.display import follow, print_memory_plan, rounds_table
from maskdpo.client.errors import FailedPreconditionError
from maskdpo.v1 import alignment_pb2, memory_plan_pb2

State = alignment_pb2.AlignmentRound.State
STATES = {name: value for name, value in State.items() if value}
PRECISIONS = {name.removeprefix("PRECISION_").lower(): value
              for name, value in memory_plan_pb2.Precision.items() if value}


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
    create.add_argument("--validate-only", action="store_true", help="print the memory plan; create nothing")
    recipe = create.add_argument_group("training recipe (what the memory plan reads)")
    recipe.add_argument("--precision", choices=sorted(PRECISIONS), help="default float32")
    recipe.add_argument("--precompute-ref", action="store_true", help="reference log-probs computed once")
    recipe.add_argument("--lora", action="store_true",
                        help="train a LoRA adapter, evaluated on and promoted into the serving engine")
    recipe.add_argument("--lora-r", type=int, help="LoRA rank (default 8)")
    recipe.add_argument("--gpus", type=int, help="GPUs training runs on (default 1)")
    recipe.add_argument("--fsdp", action="store_true", help="shard the training state over the GPUs")
    recipe.add_argument("--batch-size", type=int, help="pairs per optimiser step (default 4 here)")
    recipe.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step (default 1)")
    recipe.add_argument("--max-length", type=int, help="prompt + response tokens (default 1024)")
    recipe.add_argument("--no-gradient-checkpointing", action="store_true", help="keep all activations")
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
    _recipe(args, config.training)
    return config


def _recipe(args: argparse.Namespace, t: alignment_pb2.TrainingConfig) -> None:
    """The recipe flags given, onto ``t``."""
    if args.precision:
        t.precision = PRECISIONS[args.precision]
    for flag in ("precompute_ref", "lora", "fsdp"):
        if getattr(args, flag):
            setattr(t, flag, True)
    for flag in ("lora_r", "gpus", "batch_size", "grad_accum", "max_length"):
        if getattr(args, flag) is not None:
            setattr(t, flag, getattr(args, flag))
    if args.no_gradient_checkpointing:
        t.gradient_checkpointing = False


def _submit(client: Client, config: alignment_pb2.RoundConfig, request_id: str = "",
            validate_only: bool = False) -> operations_proto_pb2.Operation:
    """CreateAlignmentRound; a round refused for memory prints its plan before the error is raised on."""
    try:
        return client.create_round(config, request_id=request_id, validate_only=validate_only)
    except FailedPreconditionError as exc:
        plan = exc.detail(memory_plan_pb2.MemoryPlan)
        if plan is not None:
            print_memory_plan(plan)
        raise


def _create(client: Client, args: argparse.Namespace) -> int:
    done: list[alignment_pb2.AlignmentRound] = []
    start = args.start_from and _name(args.start_from)
    if args.validate_only:
        print_memory_plan(planned_round(_submit(client, _config(args, start, args.seed), validate_only=True))
                          .memory_plan)
        return 0
    for k in range(args.rounds):
        op = _submit(client, _config(args, start, args.seed + k), args.request_id if k == 0 else "")
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
