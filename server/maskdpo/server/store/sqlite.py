"""Opening SQLite files the way every store here needs them: WAL, a busy timeout, versioned schema.

``synchronous=FULL``: every commit is on disk before it returns, so whatever a client was told was saved
survives a power cut (with WAL, NORMAL only guarantees a consistent file, possibly without the last
commits). The stores commit rarely (operations, round events), so the extra fsync per commit is cheap.

A schema is a list of migration scripts; ``PRAGMA user_version`` records how many ran, so opening an old
file brings it up to date and opening a newer file than this code knows is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


def connect(path: Path, migrations: Sequence[str]) -> sqlite3.Connection:
    """Open (creating if needed) ``path`` in WAL mode and apply the migrations it has not seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # NORMAL may lose the last commits to a power cut (WAL)
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(f"{path} has schema version {version}; this code knows up to {len(migrations)}")
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn
