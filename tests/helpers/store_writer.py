"""A child process that writes to the server's stores as fast as it can and reports every acknowledged write.

    python -m tests.helpers.store_writer DATA_DIR FIRST_ITERATION

Iteration ``i`` creates an operation, a round with its events (the round store's transactions), finishes
both, records a served checkpoint and creates a knowledge source of a few hundred KB (folder written,
flushed, renamed). After each call returns it prints one line on stdout, ``ack <kind> <key> [<value>]``:
a line the parent has read is a write that was acknowledged. The parent SIGKILLs this process at a random
moment and checks that every acknowledged write is there and complete (tests/reliability/test_power_cut.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import empty_pb2

from maskdpo.server.judge.types import Fact, Passage
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.knowledge_sources import KnowledgeStore
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.store.rounds import RUNNING, SUCCEEDED, RoundStore
from maskdpo.v1 import alignment_pb2

EVENTS_PER_ROUND = 5
SOURCE_PASSAGES = 60
PASSAGE_CHARS = 5_000


def source_id(iteration: int) -> str:
    return f"w{iteration}"


def source_content(iteration: int) -> tuple[list[Passage], list[Fact]]:
    """What iteration ``iteration`` stores as its knowledge source (the parent rebuilds it to compare)."""
    passages = [Passage(text=f"{iteration}-{n} " + "x" * PASSAGE_CHARS, title=f"p{n}") for n in range(SOURCE_PASSAGES)]
    facts = [Fact(subject=f"Person {iteration}", attribute="born_in", value=f"City {n}") for n in range(3)]
    return passages, facts


def _ack(*fields: object) -> None:
    print("ack", *fields, flush=True)


def main(data_dir: Path, first: int) -> None:
    operations = OperationStore(data_dir / "operations.sqlite")
    rounds = RoundStore(data_dir / "rounds.sqlite")
    checkpoints = CheckpointStore(data_dir / "models.sqlite")
    knowledge = KnowledgeStore(data_dir)
    print("ready", flush=True)
    iteration = first
    while True:
        op, _ = operations.create("round", empty_pb2.Empty(), request_id=f"r{iteration}")
        _ack("operation", op)
        rid = f"{iteration:08x}"
        rounds.insert(rid, op, alignment_pb2.RoundConfig(model=f"models/m{iteration}"))
        _ack("round", rid, 1)
        for n in range(EVENTS_PER_ROUND):
            sequence = rounds.record(rid, "PROGRESS", 1, f"step {n}", done=n, total=EVENTS_PER_ROUND,
                                     state=RUNNING)
            _ack("event", rid, sequence)
        sequence = rounds.record(rid, "ROUND_ENDED", 1, "done", state=SUCCEEDED)
        _ack("event", rid, sequence)
        operations.finish(op, response=empty_pb2.Empty())
        _ack("finished", op)
        record = checkpoints.served("toy", data_dir / "checkpoints" / str(iteration), iteration + 2)
        _ack("checkpoint", record.id, record.weight_version)
        passages, facts = source_content(iteration)
        knowledge.create(source_id(iteration), f"iteration {iteration}", passages, facts)
        _ack("source", source_id(iteration))
        iteration += 1


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
