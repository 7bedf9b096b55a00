"""Power cuts: SIGKILL everything at a random moment while writes are in flight, restart on the same data
folder, and check that nothing acknowledged was lost and nothing half-written is visible.

Two levels. End to end: a real ``maskdpo serve`` (kb judge, no model) takes knowledge-source creations
and deletions from several clients and is killed with its whole session (server, Ray, actors: what a
power cut does), ``scale.power_cuts`` times. Store level: a child process writing operations, rounds with
their events, checkpoints and knowledge sources through the stores' own code as fast as it can
(tests/helpers/store_writer.py), killed many times more often since it restarts in about a second.

A SIGKILL loses the process, not the kernel's page cache, so it cannot show a missing fsync; that part of
durability is what ``synchronous=FULL`` and the flushes of server/maskdpo/server/store/knowledge_sources.py are for (checked below).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
import pytest

from maskdpo.client import Client, Knowledge
from maskdpo.server.judge.types import Passage
from maskdpo.server.launcher import ServerProcess
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.knowledge_sources import KnowledgeStore
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.store.rounds import RoundStore
from maskdpo.server.store.sqlite import connect
from maskdpo.trainer import durable
from maskdpo.v1 import factuality_pb2, factuality_pb2_grpc
from tests.helpers import store_writer
from tests.reliability.conftest import OPERATOR, READER, TOKENS_ENV, Scale

REPO = Path(__file__).resolve().parents[2]
SERVER_ARGS = ["--judge", "kb", "--default-judge", "kb"]
WRITERS = 3
STORE_CUTS_PER_SERVER_CUT = 4


# --- killing and checking ------------------------------------------------------------------------------


def _live_session_of(pid: int) -> int | None:
    """The session id of a running process (None when it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, _ppid, _group, session = stat.rsplit(")", 1)[1].split()[:4]  # the fields after the command
    return None if state in ("Z", "X") else int(session)


def _session_members(session: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _live_session_of(int(p.name)) == session]


def power_cut(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``process`` (a session leader) and every other process of its session
    (Ray's workers have their own groups), all at once; return when they are gone."""
    session = process.pid
    os.killpg(session, signal.SIGKILL)
    for pid in _session_members(session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(30)
    deadline = time.monotonic() + 30
    while _session_members(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _session_members(session), "processes survived the SIGKILL"


def assert_sqlite_intact(data_dir: Path) -> list[str]:
    """``PRAGMA integrity_check`` is ok on every SQLite file under ``data_dir``; returns their names."""
    files = sorted(data_dir.rglob("*.sqlite"))
    for path in files:
        with closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], path
    return [p.name for p in files]


def assert_sources_complete(data_dir: Path, known: Mapping[str, tuple[int, int]] | None = None
                            ) -> tuple[dict[str, tuple[int, int]], int]:
    """Every visible knowledge source on disk is whole: ({id: (passages, facts)}, hidden leftovers).
    Sources in ``known`` (checked before; a stored source never changes) are not read again."""
    root = data_dir / "knowledge"
    visible: dict[str, tuple[int, int]] = {}
    leftovers = 0
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            leftovers += 1  # a temporary or trash folder: never listed or resolved
            continue
        if known and folder.name in known:
            visible[folder.name] = known[folder.name]
            continue
        meta = json.loads((folder / "meta.json").read_text())
        passages = [json.loads(line) for line in (folder / "passages.jsonl").read_text().splitlines()]
        facts = [json.loads(line) for line in (folder / "facts.jsonl").read_text().splitlines()]
        assert (len(passages), len(facts)) == (meta["passage_count"], meta["fact_count"]), folder
        visible[folder.name] = (len(passages), len(facts))
    return visible, leftovers


def test_stores_commit_durably(tmp_path: Path) -> None:
    """A commit must survive a power cut, not only a crash: WAL with synchronous=NORMAL may lose the last
    commits when the machine loses power; FULL does not."""
    with closing(connect(tmp_path / "any.sqlite", [])) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_knowledge_sources_are_flushed_before_and_after_the_rename(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Files and their folder reach the disk before the rename publishes them (else a power cut can leave
    empty files under a visible name), and the rename before the call returns (else it can be undone)."""
    store = KnowledgeStore(tmp_path)
    steps: list[str] = []
    flush, rename = durable.flush, os.rename
    monkeypatch.setattr(durable, "flush", lambda path: (steps.append(f"flush {path.name}"), flush(path)))
    monkeypatch.setattr(os, "rename",
                        lambda src, dst: (steps.append(f"rename {Path(dst).name}"), rename(src, dst)))
    store.create("bios", "", [Passage(text="text")], [])
    assert [s.split()[0] for s in steps] == ["flush"] * 4 + ["rename", "flush"]
    assert {s.split()[1] for s in steps[:3]} == {"meta.json", "passages.jsonl", "facts.jsonl"}
    assert steps[3].startswith("flush .bios-") and steps[4:] == ["rename bios", "flush knowledge"]
    steps.clear()
    store.delete("bios")
    assert steps[0].startswith("rename .deleted-bios-") and steps[1] == "flush knowledge"


# --- end to end: a server killed while clients write ----------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told. ``live``: created and acknowledged (id -> (passages, facts));
    ``gone``: deletion acknowledged; ``unsure``: a call cut off by the kill (either outcome is fine)."""

    live: dict[str, tuple[int, int]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    unsure_creates: dict[str, tuple[int, int]] = field(default_factory=dict)
    unsure_deletes: dict[str, tuple[int, int]] = field(default_factory=dict)
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request(source: str, rng: random.Random) -> factuality_pb2.CreateKnowledgeSourceRequest:
    passages = [factuality_pb2.Passage(title=f"t{n}", text=f"{source} {n} " + "y" * rng.randint(100, 20_000))
                for n in range(rng.randint(1, 40))]
    facts = [factuality_pb2.Fact(subject=f"Person {source}", attribute="born_in", value=f"City {n}")
             for n in range(rng.randint(1, 5))]
    return factuality_pb2.CreateKnowledgeSourceRequest(knowledge_source_id=source, passages=passages, facts=facts)


def _acknowledged(call: Callable[[], object], cut: threading.Event, ledger: Ledger, what: str) -> bool:
    """True when the call returned; False when it failed (an error unless the server was being killed)."""
    try:
        call()
    except grpc.RpcError as error:
        if not cut.is_set():
            with ledger.lock:
                ledger.errors.append(f"{what}: {error.code().name} {error.details()}")
        return False
    return True


def _write_until_cut(target: str, name: str, ledger: Ledger, cut: threading.Event, seed: int) -> None:
    """Create sources (and delete some of this writer's own) until a call fails: the server is gone, and
    that last call's outcome is unknown."""
    rng = random.Random(seed)
    metadata = (("authorization", f"Bearer {OPERATOR}"),)
    mine: list[str] = []
    with grpc.insecure_channel(target) as channel:
        stub = factuality_pb2_grpc.FactualityServiceStub(channel)
        for n in itertools.count():
            if mine and rng.random() < 0.25:
                source = mine.pop(rng.randrange(len(mine)))
                with ledger.lock:
                    ledger.unsure_deletes[source] = ledger.live.pop(source)
                delete = factuality_pb2.DeleteKnowledgeSourceRequest(name=f"knowledgeSources/{source}")
                if not _acknowledged(partial(stub.DeleteKnowledgeSource, delete, metadata=metadata, timeout=60),
                                     cut, ledger, f"delete {source}"):
                    return
                with ledger.lock:
                    del ledger.unsure_deletes[source]
                    ledger.gone.add(source)
                    ledger.acknowledged += 1
            else:
                source = f"{name}-{n}"
                create = _request(source, rng)
                with ledger.lock:
                    ledger.unsure_creates[source] = (len(create.passages), len(create.facts))
                if not _acknowledged(partial(stub.CreateKnowledgeSource, create, metadata=metadata, timeout=60),
                                     cut, ledger, f"create {source}"):
                    return
                with ledger.lock:
                    ledger.live[source] = ledger.unsure_creates.pop(source)
                    ledger.acknowledged += 1
                mine.append(source)


def _list_sources(target: str) -> dict[str, tuple[int, int]]:
    listed: dict[str, tuple[int, int]] = {}
    with grpc.insecure_channel(target) as channel:
        stub = factuality_pb2_grpc.FactualityServiceStub(channel)
        token = ""
        while True:
            page = stub.ListKnowledgeSources(
                factuality_pb2.ListKnowledgeSourcesRequest(page_size=100, page_token=token),
                metadata=(("authorization", f"Bearer {READER}"),), timeout=60)
            listed.update({s.name.removeprefix("knowledgeSources/"): (s.passage_count, s.fact_count)
                           for s in page.knowledge_sources})
            token = page.next_page_token
            if not token:
                return listed


def _check_after_restart(server: ServerProcess, data_dir: Path, ledger: Ledger, rng: random.Random) -> int:
    """Everything acknowledged is there and whole, nothing else is; settles the unsure calls. Returns the
    number of hidden leftover folders."""
    assert "operations.sqlite" in assert_sqlite_intact(data_dir)
    on_disk, leftovers = assert_sources_complete(data_dir)
    listed = _list_sources(server.target)
    assert listed == on_disk
    lost = sorted(set(ledger.live) - set(listed))
    assert not lost, f"acknowledged sources lost: {lost}"
    assert not ledger.gone & set(listed), f"acknowledged deletions undone: {sorted(ledger.gone & set(listed))}"
    unknown = set(listed) - set(ledger.live) - set(ledger.unsure_creates) - set(ledger.unsure_deletes)
    assert not unknown, f"sources nobody created (or whose creation failed): {sorted(unknown)}"
    for source, counts in ledger.live.items():
        assert listed[source] == counts, f"{source}: {listed[source]} stored, {counts} sent"
    for unsure in (ledger.unsure_creates, ledger.unsure_deletes):  # cut off by the kill: all or nothing
        for source, counts in unsure.items():
            if source in listed:
                assert listed[source] == counts, f"{source}: {listed[source]} stored, {counts} sent"
                ledger.live[source] = counts
            elif unsure is ledger.unsure_deletes:
                ledger.gone.add(source)
        unsure.clear()
    with Client(server.target, token=READER, timeout=120) as client:  # stored sources are usable
        for source in rng.sample(sorted(ledger.live), min(3, len(ledger.live))):
            result = client.score(f"Person {source} was born in City 0.", knowledge=Knowledge(source=source),
                                  topic=f"Person {source}")
            assert len(result.answer.sentences) == 1
    return leftovers


def test_server_power_cuts_lose_no_acknowledged_write(tmp_path: Path, scale: Scale) -> None:
    rng = random.Random(7)
    ledger = Ledger()
    data_dir = tmp_path / "data"
    leftovers = 0
    started = time.monotonic()
    for cut_number in range(scale.power_cuts + 1):
        server = ServerProcess.start(tmp_path, SERVER_ARGS, TOKENS_ENV)
        try:
            leftovers = _check_after_restart(server, data_dir, ledger, rng)
            if cut_number == scale.power_cuts:
                break
            cut = threading.Event()
            writers = [threading.Thread(target=_write_until_cut, args=(server.target, f"c{cut_number}w{w}",
                                                                      ledger, cut, rng.random()))
                       for w in range(WRITERS)]
            for writer in writers:
                writer.start()
            time.sleep(rng.uniform(1.0, 3.0))
            cut.set()
            power_cut(server.process)
            for writer in writers:
                writer.join(120)
            assert not ledger.errors, ledger.errors
        finally:
            server.stop()
    assert ledger.acknowledged > 0
    print(f"\nserver power cuts: writes acknowledged {ledger.acknowledged}, lost 0, kills {scale.power_cuts}, "
          f"sources kept {len(ledger.live)}, hidden leftover folders {leftovers}, "
          f"{time.monotonic() - started:.0f} s")


# --- store level: the stores' own code in a child process killed mid-write --------------------------------


@dataclass
class Acks:
    """Acknowledged writes of the store writer, by kind."""

    operations: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    events: dict[str, int] = field(default_factory=dict)  # round id -> highest acknowledged sequence
    checkpoints: dict[str, int] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    count: int = 0

    def add(self, line: str) -> None:
        kind, *values = line.split()[1:]
        if kind == "operation":
            self.operations.add(values[0])
        elif kind == "finished":
            self.finished.add(values[0])
        elif kind in ("round", "event"):
            self.events[values[0]] = max(self.events.get(values[0], 0), int(values[1]))
        elif kind == "checkpoint":
            self.checkpoints[values[0]] = int(values[1])
        else:
            self.sources.add(values[0])
        self.count += 1


def _run_writer_until_cut(data_dir: Path, first: int, acks: Acks, rng: random.Random) -> None:
    """Start the store writer, let it write for a random moment, power-cut it, collect its acks."""
    errors = data_dir / "writer.err"
    with open(errors, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "tests.helpers.store_writer", str(data_dir), str(first)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    assert child.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda out: [lines.put(line.decode()) for line in out], args=(child.stdout,))
    reader.start()
    try:
        ready = lines.get(timeout=120)
    except queue.Empty:
        ready = ""
    assert ready == "ready\n", errors.read_text()[-3000:]
    time.sleep(rng.uniform(0.05, 1.0))
    power_cut(child)
    reader.join(30)
    assert "Traceback" not in errors.read_text(), errors.read_text()[-3000:]  # killed, never failed
    while not lines.empty():
        line = lines.get()
        if line.startswith("ack ") and line.endswith("\n"):  # a torn last line was never acknowledged
            acks.add(line)


def _check_stores(data_dir: Path, acks: Acks, verified: dict[str, tuple[int, int]]) -> int:
    """Every acknowledged write is there; ``verified``: sources whose content was compared already (updated).
    Returns the number of hidden leftover folders."""
    assert_sqlite_intact(data_dir)
    operations = OperationStore(data_dir / "operations.sqlite")
    rounds = RoundStore(data_dir / "rounds.sqlite")
    checkpoints = CheckpointStore(data_dir / "models.sqlite")
    try:
        for name in acks.operations:
            assert operations.get(name).done or name not in acks.finished, name
        for rid, sequence in acks.events.items():
            events = rounds.events(rid, 0)
            assert [e.sequence for e in events] == list(range(1, len(events) + 1)), rid  # no gaps
            assert rounds.row(rid)["last_sequence"] == len(events) >= sequence, rid
        for ident, version in acks.checkpoints.items():
            assert checkpoints.get("toy", ident).weight_version == version
    finally:
        operations.close()
        rounds.close()
        checkpoints.close()
    on_disk, leftovers = assert_sources_complete(data_dir, verified)
    assert acks.sources <= set(on_disk)
    store = KnowledgeStore(data_dir)
    for source in acks.sources - set(verified):
        passages, facts = store.resolve(source, "")
        assert (list(passages), list(facts)) == store_writer.source_content(int(source.removeprefix("w")))
    verified.update(on_disk)
    return leftovers


def test_store_writes_survive_sigkill_mid_write(tmp_path: Path, scale: Scale) -> None:
    rng = random.Random(11)
    acks = Acks()
    kills = scale.power_cuts * STORE_CUTS_PER_SERVER_CUT
    started = time.monotonic()
    verified: dict[str, tuple[int, int]] = {}
    leftovers = 0
    for kill in range(kills):
        _run_writer_until_cut(tmp_path, first=kill * 100_000, acks=acks, rng=rng)
        leftovers = _check_stores(tmp_path, acks, verified)
    assert acks.count > 0 and acks.sources
    print(f"\nstore power cuts: writes acknowledged {acks.count}, lost 0, kills {kills}, "
          f"hidden leftover folders {leftovers}, {time.monotonic() - started:.0f} s")
