"""Long-running operations (google.longrunning), persisted in SQLite so they outlive the server process.

An operation is created by the service that starts the work (a checkpoint deploy, an alignment round)
with a ``kind``, packed metadata and an optional ``request_id`` (creating twice with the same request id
returns the first operation). The worker updates the metadata and finally sets a response or an error.
Cancellation is a flag the worker polls; the store never stops work itself.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from google.longrunning import operations_proto_pb2
from google.protobuf import any_pb2, message
from google.rpc import status_pb2

from maskdpo.server.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from maskdpo.server.store.sqlite import connect

PREFIX = "operations/"
MIGRATIONS = [
    """
    CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        request_id TEXT,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        metadata BLOB,
        response BLOB,
        error BLOB
    );
    CREATE UNIQUE INDEX operations_request ON operations(kind, request_id) WHERE request_id IS NOT NULL;
    CREATE INDEX operations_created ON operations(create_time)
    """,
]


def _pack(msg: message.Message) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed.SerializeToString()


def parse_name(name: str, field: str = "name") -> str:
    if not name.startswith(PREFIX) or not name[len(PREFIX) :].replace("-", "").isalnum():
        raise InvalidArgument(field, f"expected 'operations/<id>', got {name[:80]!r}")
    return name[len(PREFIX) :]


class OperationStore:
    """Create, update, finish, cancel, read and list operations. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, MIGRATIONS)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []

    def close(self) -> None:
        self._conn.close()

    def create(self, kind: str, metadata: message.Message, request_id: str = "") -> tuple[str, bool]:
        """(operation name, created). With a known ``request_id`` of the same kind, the existing one."""
        now = time.time()
        op_id = uuid.uuid4().hex
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO operations (id, kind, request_id, create_time, update_time, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (op_id, kind, request_id or None, now, now, _pack(metadata)))
            except sqlite3.IntegrityError:
                row = self._conn.execute("SELECT id FROM operations WHERE kind = ? AND request_id = ?",
                                         (kind, request_id)).fetchone()
                return PREFIX + row["id"], False
        return PREFIX + op_id, True

    def update_metadata(self, name: str, metadata: message.Message) -> None:
        self._write("UPDATE operations SET metadata = ?, update_time = ? WHERE id = ? AND done = 0",
                    (_pack(metadata), time.time(), parse_name(name)))

    def finish(self, name: str, response: message.Message | None = None,
               error: ServiceError | None = None, metadata: message.Message | None = None) -> None:
        """Mark done with a response or an error (exactly one)."""
        if (response is None) == (error is None):
            raise ValueError("finish needs exactly one of response and error")
        blob_response = _pack(response) if response is not None else None
        blob_error = error.to_status().SerializeToString() if error is not None else None
        with self._lock:
            if metadata is not None:
                self._conn.execute("UPDATE operations SET metadata = ? WHERE id = ?",
                                   (_pack(metadata), parse_name(name)))
            self._conn.execute(
                "UPDATE operations SET done = 1, response = ?, error = ?, update_time = ? WHERE id = ?",
                (blob_response, blob_error, time.time(), parse_name(name)))

    def request_cancel(self, name: str) -> None:
        op = self.get(name)
        if op.done:
            return
        self._write("UPDATE operations SET cancel_requested = 1, update_time = ? WHERE id = ?",
                    (time.time(), parse_name(name)))
        for listener in list(self._listeners):
            listener(name)

    def on_cancel(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` whenever a cancel is requested in this process."""
        self._listeners.append(listener)

    def cancel_requested(self, name: str) -> bool:
        row = self._row(name)
        return bool(row["cancel_requested"])

    def delete(self, name: str) -> None:
        if not self.get(name).done:
            raise FailedPrecondition(f"{name} is still running; cancel it first")
        self._write("DELETE FROM operations WHERE id = ?", (parse_name(name),))

    def get(self, name: str) -> operations_proto_pb2.Operation:
        return self._to_proto(self._row(name))

    def kind_of(self, name: str) -> str:
        return str(self._row(name)["kind"])

    def page(self, kind: str | None, offset: int, limit: int) -> tuple[list[operations_proto_pb2.Operation], bool]:
        """A page of operations, newest first; the bool says whether more follow."""
        sql = "SELECT * FROM operations" + (" WHERE kind = ?" if kind else "") + \
            " ORDER BY create_time DESC, id LIMIT ? OFFSET ?"
        args: tuple[object, ...] = (kind, limit + 1, offset) if kind else (limit + 1, offset)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [self._to_proto(r) for r in rows[:limit]], len(rows) > limit

    def unfinished(self, kind: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT id FROM operations WHERE kind = ? AND done = 0 ORDER BY create_time",
                                      (kind,)).fetchall()
        return [PREFIX + r["id"] for r in rows]

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, args)

    def _row(self, name: str) -> sqlite3.Row:
        with self._lock:
            row = self._conn.execute("SELECT * FROM operations WHERE id = ?", (parse_name(name),)).fetchone()
        if row is None:
            raise NotFound(name)
        return row  # type: ignore[no-any-return]

    @staticmethod
    def _to_proto(row: sqlite3.Row) -> operations_proto_pb2.Operation:
        op = operations_proto_pb2.Operation(name=PREFIX + row["id"], done=bool(row["done"]))
        if row["metadata"]:
            op.metadata.ParseFromString(row["metadata"])
        if row["response"]:
            op.response.ParseFromString(row["response"])
        elif row["error"]:
            op.error.CopyFrom(status_pb2.Status.FromString(row["error"]))
        return op
