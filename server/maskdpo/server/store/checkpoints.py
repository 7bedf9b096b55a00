"""The checkpoint registry: which weight folders each served model knows, and the version each was served as.

Kept in SQLite (``<data_dir>/models.sqlite``) so a checkpoint registered once can be deployed again by its
resource name (``models/{model}/checkpoints/{id}``) after a restart. Weight versions count from 1 per
engine start (the engine always starts on its base folder), so at start-up :meth:`CheckpointStore.reset`
sets every checkpoint of the model to "not served by this engine" (version 0) and the base to version 1.
A checkpoint is registered when a deploy of it succeeds; rejected folders are not registered (the
deploy's operation records them).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from maskdpo.server.errors import NotFound
from maskdpo.server.generation.types import WeightVersion
from maskdpo.server.store.sqlite import connect

BASE_ID = "base"
MIGRATIONS = [
    """
    CREATE TABLE checkpoints (
        model TEXT NOT NULL,
        id TEXT NOT NULL,
        path TEXT NOT NULL,
        weight_version INTEGER NOT NULL DEFAULT 0,
        round TEXT NOT NULL DEFAULT '',
        create_time REAL NOT NULL,
        update_time REAL NOT NULL,
        PRIMARY KEY (model, id)
    );
    CREATE UNIQUE INDEX checkpoints_path ON checkpoints(model, path)
    """,
    # a LoRA adapter is served on top of base weights: the folder of those (empty for full weights)
    "ALTER TABLE checkpoints ADD COLUMN base TEXT NOT NULL DEFAULT ''",
]


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    model: str
    id: str
    path: Path
    weight_version: int
    round: str
    create_time: float
    base: Path | None = None
    """For a LoRA adapter: the base weights it is served on (None: ``path`` holds full weights)."""

    @property
    def name(self) -> str:
        return f"models/{self.model}/checkpoints/{self.id}"

    def weights(self) -> WeightVersion:
        """The weights this record serves as (an adapter on its base, or full weights)."""
        if self.base is not None:
            return WeightVersion(self.weight_version, self.base, self.path)
        return WeightVersion(self.weight_version, self.path)


def checkpoint_id(path: Path) -> str:
    """A readable, stable id for a folder: its sanitised name and a short hash of its full path."""
    stem = re.sub(r"[^a-z0-9-]+", "-", path.name.lower()).strip("-")[:40] or "checkpoint"
    return f"{stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


class CheckpointStore:
    """Register, mark served, read and list checkpoints. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, MIGRATIONS)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def reset(self, model: str, base: Path) -> CheckpointRecord:
        """Start of an engine on ``base``: every checkpoint of ``model`` unserved, the base at version 1."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("UPDATE checkpoints SET weight_version = 0 WHERE model = ?", (model,))
                self._conn.execute(
                    "DELETE FROM checkpoints WHERE model = ? AND (id = ? OR path = ?)",
                    (model, BASE_ID, str(base)),
                )
                self._conn.execute(
                    "INSERT INTO checkpoints (model, id, path, weight_version, create_time, update_time) "
                    "VALUES (?, ?, ?, 1, ?, ?)",
                    (model, BASE_ID, str(base), now, now),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get(model, BASE_ID)

    def served(self, model: str, path: Path, version: int, round_name: str = "",
               base: Path | None = None) -> CheckpointRecord:
        """Record that ``path`` now serves as ``version`` (registering it if new; ``base``: the weights a
        LoRA adapter at ``path`` is served on); returns its record."""
        now = time.time()
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM checkpoints WHERE model = ? AND path = ?", (model, str(path))
            ).fetchone()
            if row is None:
                ident = checkpoint_id(path)
                self._conn.execute(
                    "INSERT INTO checkpoints (model, id, path, weight_version, round, create_time, update_time, "
                    "base) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (model, ident, str(path), version, round_name, now, now, str(base or "")),
                )
            else:
                ident = row["id"]
                self._conn.execute(
                    "UPDATE checkpoints SET weight_version = ?, update_time = ?, base = ? WHERE model = ? AND id = ?",
                    (version, now, str(base or ""), model, ident),
                )
        return self.get(model, ident)

    def current(self, model: str) -> CheckpointRecord | None:
        """What ``model`` serves now: the checkpoint with the highest weight version (None before its engine
        first started)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM checkpoints WHERE model = ? AND weight_version > 0 "
                "ORDER BY weight_version DESC, update_time DESC LIMIT 1", (model,)
            ).fetchone()
        return None if row is None else self._record(row)

    def latest_served(self, model: str) -> CheckpointRecord | None:
        """The checkpoint served last (highest weight version above the base's), if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM checkpoints WHERE model = ? AND id != ? AND weight_version > 1 "
                "ORDER BY weight_version DESC, update_time DESC LIMIT 1", (model, BASE_ID)
            ).fetchone()
        return None if row is None else self._record(row)

    def get(self, model: str, ident: str) -> CheckpointRecord:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM checkpoints WHERE model = ? AND id = ?", (model, ident)
            ).fetchone()
        if row is None:
            raise NotFound(f"models/{model}/checkpoints/{ident}")
        return self._record(row)

    def page(self, model: str, offset: int, limit: int) -> tuple[list[CheckpointRecord], bool]:
        """Checkpoints of ``model``, most recently served or registered first; the bool: more follow."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM checkpoints WHERE model = ? ORDER BY update_time DESC, id LIMIT ? OFFSET ?",
                (model, limit + 1, offset),
            ).fetchall()
        return [self._record(r) for r in rows[:limit]], len(rows) > limit

    @staticmethod
    def _record(row: sqlite3.Row) -> CheckpointRecord:
        return CheckpointRecord(
            model=row["model"],
            id=row["id"],
            path=Path(row["path"]),
            weight_version=int(row["weight_version"]),
            round=row["round"],
            create_time=float(row["create_time"]),
            base=Path(row["base"]) if row["base"] else None,
        )
