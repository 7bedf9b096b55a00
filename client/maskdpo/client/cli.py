"""The ``maskdpo`` command line.

    maskdpo score "Text to judge." --passage "Reference text." [--judge heuristic] [--json]
    maskdpo score --file answer.txt --source bios --topic "Ada Lovelace"
    maskdpo score --jsonl answers.jsonl          # one {"response", "passages"?, "topic"?, ...} per line
    maskdpo judges | health
    maskdpo knowledge list | get SOURCE | delete SOURCE   # registered knowledge sources (delete: operator)
    maskdpo generate "Tell me about Ada Lind." [--model toy] [-n 4] [--stream]    # see _cli_generation.py
    maskdpo generate "Tell me a bio of Taia Zandal." --best-of 8 --judge toyworld --topic "Taia Zandal"
    maskdpo models list | get MODEL | checkpoints MODEL
    maskdpo deploy MODEL CHECKPOINT [--wait]
    maskdpo round create|watch|list|get|cancel   # alignment rounds, see _cli_rounds.py
    maskdpo serve ...                            # needs the 'server' extra
    maskdpo train ...                            # needs the 'server' extra
    maskdpo judge-eval [SET] [--judge heuristic]  # a judge's agreement with human labels ('server' extra)

Connection: ``--target host:port`` (or MASKDPO_TARGET), ``--token`` (or MASKDPO_TOKEN), ``--tls``;
``--root-ca ca.pem`` trusts a private CA (implies TLS); ``--client-cert`` and ``--client-key`` present a
client certificate to a server that requires one (mutual TLS).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import json_format

from maskdpo.client import _cli_generation, _cli_rounds
from maskdpo.client._channel import DEFAULT_TARGET
from maskdpo.client._cli_judging import add_judge_args, knowledge_of, options_of
from maskdpo.client._client import Client
from maskdpo.client._requests import Item, Knowledge
from maskdpo.client.display import judge_line, print_answer, print_batch
from maskdpo.client.errors import MaskdpoError

_LAZY = {"serve": "maskdpo.server.cli", "train": "maskdpo.trainer.cli",
         "judge-eval": "maskdpo.server.judge.judge_eval"}



def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=os.environ.get("MASKDPO_TARGET", DEFAULT_TARGET))
    parser.add_argument("--token", default=os.environ.get("MASKDPO_TOKEN"))
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--root-ca", type=Path, help="CA certificate to trust (PEM); implies --tls")
    parser.add_argument("--client-cert", type=Path, help="client certificate chain for mutual TLS (PEM)")
    parser.add_argument("--client-key", type=Path, help="private key of --client-cert (PEM)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskdpo", description="Sentence-level factuality and Mask-DPO.")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="judge an answer, a file, or a JSONL batch")
    score.add_argument("text", nargs="?", help="the answer text")
    score.add_argument("--file", type=Path, help="read the answer from a file")
    score.add_argument("--jsonl", type=Path, help="a batch: one JSON object per line")
    add_judge_args(score)
    score.add_argument("--prompt", default="")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _connection_args(score)
    for name, text in (("judges", "list the server's judges"), ("health", "check the server's health")):
        _connection_args(sub.add_parser(name, help=text))
    knowledge = sub.add_parser("knowledge", help="list, show or delete registered knowledge sources")
    knowledge.add_argument("action", choices=["list", "get", "delete"])
    knowledge.add_argument("source", nargs="?", default="", help="source id or knowledgeSources/ID")
    knowledge.add_argument("--json", action="store_true")
    _connection_args(knowledge)
    _cli_generation.add_parsers(sub, _connection_args)
    _cli_rounds.add_parsers(sub, _connection_args)
    for name in _LAZY:
        sub.add_parser(name, help=f"see `maskdpo {name} --help` (needs the 'server' extra)", add_help=False)
    return parser


def _items(path: Path) -> list[Item]:
    items = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            own = Knowledge(passages=row.get("passages", ()), facts=[tuple(f) if isinstance(f, list) else f
                                                                      for f in row.get("facts", ())],
                            source=row.get("knowledge_source", ""))
            has_own = bool(own.passages or own.facts or own.source)
            items.append(Item(response=row["response"], prompt=row.get("prompt", ""), topic=row.get("topic", ""),
                              groups=row.get("groups", ()), knowledge=own if has_own else None))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: bad record ({type(exc).__name__}: {exc})") from None
    return items


def _run_score(client: Client, args: argparse.Namespace) -> int:
    knowledge = knowledge_of(args)
    options = options_of(args)
    if args.jsonl:
        batch = client.batch_score(_items(args.jsonl), knowledge=knowledge, judge=args.judge, options=options)
        if args.json:
            print(json_format.MessageToJson(batch))
        else:
            print_batch(batch)
            print(judge_line(batch.judge))
        return 0
    text = args.file.read_text() if args.file else args.text
    if not text:
        print("maskdpo score: give the answer text, --file or --jsonl", file=sys.stderr)
        return 2
    result = client.score(text, knowledge=knowledge, prompt=args.prompt, topic=args.topic, judge=args.judge,
                          options=options)
    if args.json:
        print(json_format.MessageToJson(result))
    else:
        print_answer(result.answer)
        print(judge_line(result.judge))
    return 0


def _run_knowledge(client: Client, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.source:
        print(f"maskdpo knowledge {args.action}: give the source", file=sys.stderr)
        return 2
    if args.action == "delete":
        client.delete_knowledge_source(args.source)
        print(f"deleted {args.source}")
        return 0
    sources = client.list_knowledge_sources() if args.action == "list" else [client.get_knowledge_source(args.source)]
    for s in sources:
        print(json_format.MessageToJson(s, indent=None) if args.json
              else f"{s.name:<40} passages {s.passage_count:<6} facts {s.fact_count:<6} {s.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _LAZY:
        try:
            module = importlib.import_module(_LAZY[argv[0]])
        except ImportError as exc:
            print(f"maskdpo {argv[0]}: needs the 'server' extra ({exc}); pip install 'maskdpo[server]'",
                  file=sys.stderr)
            return 2
        result: int = module.main(argv[1:])
        return result
    args = _parser().parse_args(argv)
    try:
        with Client(args.target, token=args.token, tls=args.tls, root_ca=args.root_ca,
                    client_cert=args.client_cert, client_key=args.client_key, timeout=args.timeout) as client:
            if args.command == "score":
                return _run_score(client, args)
            if args.command in _cli_generation.COMMANDS:
                return _cli_generation.run(client, args)
            if args.command == "round":
                return _cli_rounds.run(client, args)
            if args.command == "knowledge":
                return _run_knowledge(client, args)
            if args.command == "judges":
                for judge in client.list_judges().judges:
                    print(("* " if judge.is_default else "  ") + judge_line(judge.identity))
                return 0
            print(client.health())
            return 0
    except MaskdpoError as exc:
        field = f" (field: {exc.metadata['field']})" if "field" in exc.metadata else ""
        print(f"maskdpo {args.command}: {exc.code.name}: {exc.message}{field}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"maskdpo {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
