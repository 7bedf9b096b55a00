"""The generation and model commands of the ``maskdpo`` command line.

maskdpo generate "Tell me about Ada Lind." [--model toy] [-n 4] [--temperature 0.7] [--max-tokens 128]
                 [--stream] [--raw] [--system TEXT] [--logprobs] [--seed 1] [--stop STR] [--json]
maskdpo generate "Tell me a bio of Taia Zandal." --best-of 8 --judge toyworld --topic "Taia Zandal"
                 # the 8 answers judged, ranked best first, with their sentence tables
maskdpo generate "..." --stream --judge kb --topic T --fact "T|birthplace|Oslo"
                 # text as it is sampled, then each sample's streamed verdicts as a table
maskdpo models list | get MODEL | checkpoints MODEL
maskdpo deploy MODEL CHECKPOINT [--wait] [--tolerance 1e-3] [--request-id ID]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from maskdpo.client._cli_judging import add_judge_args, knowledge_of, options_of
from maskdpo.client._client import Client
from maskdpo.client._generation import Judging, PromptLike, Sampling, deploy_metadata, deploy_result
from maskdpo.client.display import judge_line, print_answer
from maskdpo.v1 import factuality_pb2, generation_pb2, models_pb2

COMMANDS = ("generate", "models", "deploy")
STATES = {v: k for k, v in models_pb2.Model.State.items()}


def add_parsers(sub: Any, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    gen = sub.add_parser("generate", help="sample answers from a served model")
    gen.add_argument("prompt")
    gen.add_argument("--model", default="", help="served model (default: the server's default)")
    gen.add_argument("--raw", action="store_true", help="send the prompt as raw text (no chat template)")
    gen.add_argument("--system", default="", help="a system message before the prompt (chat only)")
    gen.add_argument("-n", type=int, default=1, help="samples")
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--max-tokens", type=int, default=0)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--stop", action="append", default=[])
    gen.add_argument("--logprobs", action="store_true", help="print each token's log-prob")
    gen.add_argument("--stream", action="store_true", help="print text as it is sampled")
    gen.add_argument("--best-of", type=int, default=0, metavar="N",
                     help="sample N answers, judge each (--judge, knowledge) and print them ranked, best first")
    gen.add_argument("--rank-by", default="", metavar="METRIC",
                     help="what --best-of ranks by: anah_score (default) or f1_at_k (more correct facts win at "
                          "equal precision)")
    add_judge_args(gen)
    gen.add_argument("--json", action="store_true")
    connection_args(gen)
    models = sub.add_parser("models", help="list served models or a model's checkpoints")
    models.add_argument("action", choices=["list", "get", "checkpoints"])
    models.add_argument("model", nargs="?", default="")
    models.add_argument("--json", action="store_true")
    connection_args(models)
    deploy = sub.add_parser("deploy", help="hot-swap a checkpoint into a served model (operator role)")
    deploy.add_argument("model")
    deploy.add_argument("checkpoint", help="folder path (on the server) or models/M/checkpoints/ID")
    deploy.add_argument("--wait", action="store_true", help="wait for the result")
    deploy.add_argument("--tolerance", type=float, default=0.0, help="verification tolerance (0: server's)")
    deploy.add_argument("--request-id", default="")
    connection_args(deploy)


def _prompt(args: argparse.Namespace) -> PromptLike:
    if args.raw:
        return str(args.prompt)
    return ([("system", args.system)] if args.system else []) + [("user", args.prompt)]


def _sample_header(sample: generation_pb2.Sample) -> str:
    mean = sum(t.logprob for t in sample.tokens) / len(sample.tokens) if sample.tokens else None
    extra = f", mean log-prob {mean:.3f}" if mean is not None else ""
    return f"sample {sample.index} (weight version {sample.weight_version}, {sample.finish_reason}{extra})"


def _judging(args: argparse.Namespace) -> Judging | None:
    """How to judge: asked for by --best-of or --judge; knowledge flags alone are a mistake."""
    knowledge = knowledge_of(args)
    if args.rank_by and not args.best_of:
        raise ValueError("--rank-by orders the answers of --best-of N: add --best-of")
    if not (args.best_of or args.judge):
        if knowledge.passages or knowledge.facts or knowledge.source or args.topic:
            raise ValueError("knowledge and --topic are for judging: add --judge NAME (or --best-of N)")
        return None
    return Judging(judge=args.judge, knowledge=knowledge, topic=args.topic, options=options_of(args),
                   rank_by=args.rank_by)


def _ranked(result: generation_pb2.GenerateResponse) -> None:
    for rank, sample in enumerate(result.samples, start=1):
        print(f"=== #{rank}: {_sample_header(sample)}")
        print_answer(sample.judged)
    print(judge_line(result.judge))


def _generate(client: Client, args: argparse.Namespace) -> int:
    judging = _judging(args)
    sampling = Sampling(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_tokens=args.max_tokens,
        stop=args.stop,
        seed=args.seed,
        logprobs=args.logprobs,
    )
    if not args.stream:
        result = client.generate(_prompt(args), model=args.model, sampling=sampling, best_of=args.best_of,
                                 judging=judging)
        if args.json:
            print(json_format.MessageToJson(result))
            return 0
        if args.best_of:
            _ranked(result)
            return 0
        for sample in result.samples:
            print(f"--- {_sample_header(sample)}")
            print(sample.text)
            if args.logprobs:
                print("  " + " ".join(f"{t.token!r}:{t.logprob:.2f}" for t in sample.tokens))
        print(
            f"({result.model}; prompt {result.usage.prompt_tokens} tokens, "
            f"completion {result.usage.completion_tokens})",
            file=sys.stderr,
        )
        return 0
    ends: dict[int, str] = {}
    judged: dict[int, factuality_pb2.ScoredAnswer] = {}
    identity = None
    with client.stream_generate(_prompt(args), model=args.model, sampling=sampling, judging=judging) as stream:
        for chunk in stream:
            if args.json:
                print(json_format.MessageToJson(chunk, indent=None), flush=True)
            elif chunk.delta and args.n > 1:
                print(f"[{chunk.index}] {chunk.delta}", flush=True)
            elif chunk.delta:
                print(chunk.delta, end="", flush=True)
            answer = judged.setdefault(chunk.index, factuality_pb2.ScoredAnswer())
            answer.sentences.extend(chunk.verdicts)
            if chunk.HasField("metrics"):
                answer.metrics.CopyFrom(chunk.metrics)
                identity = chunk.judge
            if chunk.finish_reason:
                ends[chunk.index] = (
                    f"{chunk.index}: {chunk.finish_reason}, weight version {chunk.weight_version}"
                )
    if not args.json:
        print()
        print("(" + "; ".join(ends[i] for i in sorted(ends)) + ")", file=sys.stderr)
        if identity is not None:
            for index in sorted(judged):
                print(f"--- verdicts of sample {index}")
                print_answer(judged[index])
            print(judge_line(identity))
    return 0


def _print_model(m: models_pb2.Model) -> None:
    print(
        f"{m.name:<24} {STATES.get(m.state, '?'):<9} v{m.weight_version:<4} {m.max_model_len:>6}  "
        f"{m.engine:<16} {m.checkpoint}"
    )


def _models(client: Client, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.model:
        print(f"maskdpo models {args.action}: give the model", file=sys.stderr)
        return 2
    if args.action == "checkpoints":
        checkpoints = client.list_checkpoints(args.model)
        for c in checkpoints:
            print(
                json_format.MessageToJson(c, indent=None)
                if args.json
                else f"{c.name:<48} v{c.weight_version:<4} {c.path}"
            )
        return 0
    models = client.list_models() if args.action == "list" else [client.get_model(args.model)]
    if not args.json:
        print(f"{'model':<24} {'state':<9} {'ver':<5} {'maxlen':>6}  {'engine':<16} checkpoint")
    for m in models:
        if args.json:
            print(json_format.MessageToJson(m, indent=None))
        else:
            _print_model(m)
    return 0


def _deploy(client: Client, args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint
    if not checkpoint.startswith("models/") and os.path.isdir(checkpoint):
        checkpoint = os.path.abspath(checkpoint)  # the CLI usually runs beside the server
    op = client.deploy_checkpoint(
        args.model, checkpoint, verify_tolerance=args.tolerance, request_id=args.request_id
    )
    print(op.name)
    if not args.wait:
        return 0
    op = client.wait_operation(op.name, timeout=max(args.timeout, 600.0))
    if not op.done:
        print(f"still running (stage {deploy_metadata(op).stage}); see maskdpo's operations", file=sys.stderr)
        return 1
    result = deploy_result(op)  # raises the operation's error
    print(
        f"deployed: {result.model.name} serves weight version {result.model.weight_version} "
        f"({result.model.checkpoint}); verification max |diff| {result.verify_max_abs_diff:.3g} "
        f"(tolerance {result.verify_tolerance:.3g}); swap {result.swap_seconds:.2f} s"
    )
    return 0


def run(client: Client, args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; a failed call raises MaskdpoError (the caller prints it)."""
    handlers = {"generate": _generate, "models": _models, "deploy": _deploy}
    return handlers[args.command](client, args)
