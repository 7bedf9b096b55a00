"""The round store: rounds, their phases, their events and their artifacts, in SQLite (WAL, versioned).

Every change of a round's state is written together with the event that reports it, in one transaction,
so the event stream and the round never disagree. Events get strictly increasing sequence numbers per
round (1, 2, ...). Phases are ``running`` or ``done``; a phase marked done lists the artifacts it wrote.
At most one round per model is PENDING or RUNNING: a partial unique index enforces it, and a second
:meth:`RoundStore.insert` raises :class:`~maskdpo.server.errors.Conflict` (ABORTED).

The controller writes; the gRPC server only reads (Get, List, Watch), from its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from maskdpo.server.errors import Conflict, NotFound
from maskdpo.server.store.sqlite import connect
from maskdpo.server.wire import timestamp
from maskdpo.v1 import alignment_pb2, common_pb2

State = alignment_pb2.AlignmentRound.State
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    State.PENDING,
    State.RUNNING,
    State.SUCCEEDED,
    State.FAILED,
    State.CANCELLED,
)
ACTIVE = (PENDING, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
PREFIX = "rounds/"

MIGRATIONS = [
    """
    CREATE TABLE rounds (
        id TEXT PRIMARY KEY,
        operation TEXT NOT NULL,
        model TEXT NOT NULL,
        config BLOB NOT NULL,
        state INTEGER NOT NULL,
        phase INTEGER NOT NULL DEFAULT 0,
        start_version INTEGER NOT NULL DEFAULT 0,
        promoted INTEGER NOT NULL DEFAULT 0,
        promoted_version INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        before BLOB,
        after BLOB,
        checkpoint TEXT NOT NULL DEFAULT '',
        report_path TEXT NOT NULL DEFAULT '',
        judge BLOB,
        create_time REAL NOT NULL,
        end_time REAL,
        last_sequence INTEGER NOT NULL DEFAULT 0,
        progress_done INTEGER NOT NULL DEFAULT 0,
        progress_total INTEGER NOT NULL DEFAULT 0,
        metrics TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX rounds_one_active_per_model ON rounds(model) WHERE state IN (1, 2);
    CREATE INDEX rounds_created ON rounds(create_time);
    CREATE TABLE phases (
        round_id TEXT NOT NULL REFERENCES rounds(id),
        phase INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        started REAL NOT NULL,
        finished REAL,
        summary TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (round_id, phase)
    );
    CREATE TABLE events (
        round_id TEXT NOT NULL REFERENCES rounds(id),
        sequence INTEGER NOT NULL,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        phase INTEGER NOT NULL,
        message TEXT NOT NULL,
        progress_done INTEGER NOT NULL,
        progress_total INTEGER NOT NULL,
        metrics TEXT NOT NULL,
        state INTEGER NOT NULL,
        PRIMARY KEY (round_id, sequence)
    );
    CREATE TABLE artifacts (
        round_id TEXT NOT NULL REFERENCES rounds(id),
        phase INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (round_id, phase, name)
    )
    """,
    """
    ALTER TABLE rounds ADD COLUMN chain_start BLOB;
    ALTER TABLE rounds ADD COLUMN decision BLOB
    """,
]

_ROUND_COLUMNS = frozenset(
    {
        "state",
        "phase",
        "start_version",
        "promoted",
        "promoted_version",
        "reason",
        "before",
        "after",
        "chain_start",
        "decision",
        "checkpoint",
        "report_path",
        "judge",
        "end_time",
        "progress_done",
        "progress_total",
        "metrics",
    }
)


def phase_name(phase: int) -> str:
    return alignment_pb2.RoundPhase.Name(phase)  # type: ignore[arg-type]


def state_name(state: int) -> str:
    return alignment_pb2.AlignmentRound.State.Name(state)  # type: ignore[arg-type]


def round_id(name: str) -> str:
    return name.removeprefix(PREFIX)


class RoundStore:
    """Thread-safe; one instance per process (several processes may open the same file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path, MIGRATIONS)
        self._lock = threading.Lock()
        self.listener: Callable[[str], None] | None = None
        """Called with the round id after every committed event (the controller mirrors the operation)."""

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- rounds -----------------------------------------------------------------------------------------
    def insert(self, rid: str, operation: str, config: alignment_pb2.RoundConfig) -> None:
        """A new PENDING round with its first event; Conflict if the model has an active round."""
        now = time.time()
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO rounds (id, operation, model, config, state, create_time) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (rid, operation, config.model, config.SerializeToString(), PENDING, now),
                )
            except sqlite3.IntegrityError:
                row = db.execute(
                    "SELECT id FROM rounds WHERE model = ? AND state IN (1, 2)", (config.model,)
                ).fetchone()
                other = f"{PREFIX}{row['id']}" if row else "another round"
                raise Conflict(
                    f"{config.model} already has a running round ({other}); wait for it or cancel it",
                    round=other,
                ) from None
            self._event(db, rid, "LOG", 0, "round accepted", state=PENDING)

    def row(self, rid: str) -> sqlite3.Row:
        rows = self._read("SELECT * FROM rounds WHERE id = ?", (rid,))
        if not rows:
            raise NotFound(PREFIX + rid)
        return rows[0]

    def exists(self, rid: str) -> bool:
        return bool(self._read("SELECT 1 FROM rounds WHERE id = ?", (rid,)))

    def config(self, rid: str) -> alignment_pb2.RoundConfig:
        return alignment_pb2.RoundConfig.FromString(self.row(rid)["config"])

    def get(self, rid: str) -> alignment_pb2.AlignmentRound:
        return self._to_proto(self.row(rid))

    def page(
        self, state: int, model: str, offset: int, limit: int
    ) -> tuple[list[alignment_pb2.AlignmentRound], bool]:
        where: list[str] = []
        args: list[Any] = []
        if state:
            where.append("state = ?")
            args.append(state)
        if model:
            where.append("model = ?")
            args.append(model)
        sql = (
            "SELECT * FROM rounds"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY create_time DESC, id LIMIT ? OFFSET ?"
        )
        rows = self._read(sql, (*args, limit + 1, offset))
        return [self._to_proto(r) for r in rows[:limit]], len(rows) > limit

    def active(self) -> list[str]:
        """Ids of PENDING / RUNNING rounds, oldest first."""
        return [
            r["id"] for r in self._read("SELECT id FROM rounds WHERE state IN (1, 2) ORDER BY create_time")
        ]

    def metadata(self, rid: str) -> alignment_pb2.AlignmentRoundMetadata:
        r = self.row(rid)
        return alignment_pb2.AlignmentRoundMetadata(
            round=PREFIX + rid,
            state=r["state"],
            phase=r["phase"],
            progress_done=r["progress_done"],
            progress_total=r["progress_total"],
            metrics=json.loads(r["metrics"]),
            last_sequence=r["last_sequence"],
        )

    # -- events and state changes -------------------------------------------------------------------------
    def record(
        self,
        rid: str,
        kind: str,
        at: int,
        message: str = "",
        *,
        done: int = 0,
        total: int = 0,
        metrics: Mapping[str, float] | None = None,
        **updates: Any,
    ) -> int:
        """Apply ``updates`` to the round and append one event (of phase ``at``), atomically; returns its
        sequence number."""
        with self._tx() as db:
            sequence = self._event(db, rid, kind, at, message, done, total, metrics, **updates)
        self._notify(rid)
        return sequence

    def _notify(self, rid: str) -> None:
        if self.listener is not None:
            self.listener(rid)

    def _event(
        self,
        db: sqlite3.Connection,
        rid: str,
        kind: str,
        at: int,
        message: str,
        done: int = 0,
        total: int = 0,
        metrics: Mapping[str, float] | None = None,
        **updates: Any,
    ) -> int:
        unknown = set(updates) - _ROUND_COLUMNS
        if unknown:
            raise ValueError(f"unknown round columns {sorted(unknown)}")
        row = db.execute("SELECT last_sequence, state, metrics FROM rounds WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise NotFound(PREFIX + rid)
        sequence = row["last_sequence"] + 1
        state = updates.get("state", row["state"])
        metric_map = {k: float(v) for k, v in (metrics or {}).items()}
        if metric_map:
            updates["metrics"] = json.dumps({**json.loads(row["metrics"]), **metric_map})
        if kind in ("PROGRESS", "PHASE_STARTED"):
            updates.setdefault("progress_done", done)
            updates.setdefault("progress_total", total)
        updates["last_sequence"] = sequence
        db.execute(
            "UPDATE rounds SET " + ", ".join(f"{k} = ?" for k in updates) + " WHERE id = ?",
            (*updates.values(), rid),
        )
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rid, sequence, time.time(), kind, at, message, done, total, json.dumps(metric_map), state),
        )
        return int(sequence)

    def events(self, rid: str, after: int, limit: int = 500) -> list[alignment_pb2.RoundEvent]:
        rows = self._read(
            "SELECT * FROM events WHERE round_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (rid, after, limit),
        )
        return [
            alignment_pb2.RoundEvent(
                sequence=r["sequence"],
                time=timestamp(r["time"]),
                round=PREFIX + rid,
                kind=r["kind"],
                phase=r["phase"],
                message=r["message"],
                progress_done=r["progress_done"],
                progress_total=r["progress_total"],
                metrics=json.loads(r["metrics"]),
                state=r["state"],
            )
            for r in rows
        ]

    # -- phases ------------------------------------------------------------------------------------------
    def start_phase(self, rid: str, phase: int, total: int = 0) -> int:
        """Mark ``phase`` running (RUNNING round) and report it; returns the attempt number (1 = first)."""
        name = phase_name(phase)
        with self._tx() as db:
            row = db.execute(
                "SELECT attempts, state FROM phases WHERE round_id = ? AND phase = ?", (rid, phase)
            ).fetchone()
            if row is not None and row["state"] == "done":
                raise ValueError(f"phase {name} of {PREFIX}{rid} is already done")
            attempts = 1 if row is None else row["attempts"] + 1
            db.execute(
                "INSERT INTO phases (round_id, phase, state, attempts, started) VALUES (?, ?, 'running', ?, ?) "
                "ON CONFLICT(round_id, phase) DO UPDATE SET state = 'running', attempts = excluded.attempts, "
                "started = excluded.started",
                (rid, phase, attempts, time.time()),
            )
            note = "" if attempts == 1 else f" (attempt {attempts}: resumed after a restart)"
            self._event(
                db, rid, "PHASE_STARTED", phase, f"{name} started{note}", 0, total, state=RUNNING, phase=phase
            )
        self._notify(rid)
        return attempts

    def finish_phase(
        self,
        rid: str,
        phase: int,
        summary: Mapping[str, Any],
        artifacts: Mapping[str, Path],
        metrics: Mapping[str, float] | None = None,
        **updates: Any,
    ) -> None:
        """Mark ``phase`` done with its artifacts, summary and round updates, in one transaction."""
        name = phase_name(phase)
        now = time.time()
        with self._tx() as db:
            started = db.execute(
                "SELECT started FROM phases WHERE round_id = ? AND phase = ?", (rid, phase)
            ).fetchone()
            if started is None:
                raise ValueError(f"phase {name} of {PREFIX}{rid} was never started")
            db.execute(
                "UPDATE phases SET state = 'done', finished = ?, summary = ? WHERE round_id = ? AND phase = ?",
                (now, json.dumps(dict(summary), default=str), rid, phase),
            )
            for key, path in artifacts.items():
                size = (
                    path.stat().st_size
                    if path.is_file()
                    else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                )
                db.execute(
                    "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                    (rid, phase, key, str(path), size),
                )
            seconds = now - started["started"]
            self._event(
                db, rid, "PHASE_DONE", phase, f"{name} done in {seconds:.1f} s", metrics=metrics, **updates
            )
        self._notify(rid)

    def done_phases(self, rid: str) -> list[int]:
        return [
            r["phase"]
            for r in self._read(
                "SELECT phase FROM phases WHERE round_id = ? AND state = 'done' ORDER BY phase", (rid,)
            )
        ]

    def phase_summary(self, rid: str, phase: int) -> dict[str, Any]:
        rows = self._read("SELECT summary FROM phases WHERE round_id = ? AND phase = ?", (rid, phase))
        return json.loads(rows[0]["summary"]) if rows else {}

    def phase_rows(self, rid: str) -> list[sqlite3.Row]:
        return self._read("SELECT * FROM phases WHERE round_id = ? ORDER BY phase", (rid,))

    def artifacts(self, rid: str) -> dict[str, str]:
        return {
            f"{phase_name(r['phase'])}/{r['name']}": r["path"]
            for r in self._read("SELECT * FROM artifacts WHERE round_id = ? ORDER BY phase, name", (rid,))
        }

    # -- the proto ---------------------------------------------------------------------------------------
    def _to_proto(self, r: sqlite3.Row) -> alignment_pb2.AlignmentRound:
        rid = r["id"]
        out = alignment_pb2.AlignmentRound(
            name=PREFIX + rid,
            config=alignment_pb2.RoundConfig.FromString(r["config"]),
            state=r["state"],
            phase=r["phase"],
            done_phases=self.done_phases(rid),  # type: ignore[arg-type]
            start_weight_version=r["start_version"],
            promoted_weight_version=r["promoted_version"],
            promoted=bool(r["promoted"]),
            reason=r["reason"],
            checkpoint=r["checkpoint"],
            report_path=r["report_path"],
            create_time=timestamp(r["create_time"]),
            operation=r["operation"],
        )
        if r["before"]:
            out.before.ParseFromString(r["before"])
        if r["after"]:
            out.after.ParseFromString(r["after"])
        if r["chain_start"]:
            out.chain_start.ParseFromString(r["chain_start"])
        if r["decision"]:
            out.decision.ParseFromString(r["decision"])
        if r["judge"]:
            out.judge.CopyFrom(common_pb2.JudgeIdentity.FromString(r["judge"]))
        if r["end_time"] is not None:
            out.end_time.CopyFrom(timestamp(r["end_time"]))
        return out
