"""The judge options of the ``maskdpo`` command line, shared by ``score`` and ``generate``: the flags, and
how they become a Knowledge and ScoreOptions.

    --judge NAME --topic "Ada Lind" [--passage TEXT ...] [--passages-file F] [--fact S|A|V ...] [--source ID]
    [--mask-rule default|released] [--gamma G]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from maskdpo.client._requests import Knowledge, ScoreOptions


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge", default="", help="judge backend (default: the server's)")
    parser.add_argument("--topic", default="", help="the entity the answer is about")
    parser.add_argument("--passage", action="append", default=[], help="reference passage text (repeat)")
    parser.add_argument("--passages-file", type=Path, help="reference passages: JSONL of {title, text}")
    parser.add_argument("--fact", action="append", default=[], metavar="SUBJECT|ATTRIBUTE|VALUE")
    parser.add_argument("--source", help="registered knowledge source id")
    parser.add_argument("--mask-rule", choices=["default", "released"], default="default")
    parser.add_argument("--gamma", type=float)


def knowledge_of(args: argparse.Namespace) -> Knowledge:
    passages: list[Any] = list(args.passage)
    if args.passages_file:
        passages += [json.loads(line) for line in args.passages_file.read_text().splitlines() if line.strip()]
    facts = []
    for raw in args.fact:
        parts = raw.split("|")
        if len(parts) != 3:
            raise ValueError(f"--fact {raw!r}: expected SUBJECT|ATTRIBUTE|VALUE")
        facts.append((parts[0], parts[1], parts[2]))
    return Knowledge(passages=passages, facts=facts, source=args.source or "")


def options_of(args: argparse.Namespace) -> ScoreOptions:
    return ScoreOptions(mask_rule=args.mask_rule, gamma=args.gamma)
