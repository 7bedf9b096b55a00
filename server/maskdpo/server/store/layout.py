"""Where everything lives inside a server's data folder: the one map of it.

    <data_dir>/server.lock        the running server's claim (ownership.py)
    <data_dir>/operations.sqlite  long-running operations (deploys, rounds)
    <data_dir>/models.sqlite      checkpoints of the served models and the version each serves as
    <data_dir>/rounds.sqlite      alignment rounds, their phases and events
    <data_dir>/rounds/<id>/       a round's artifacts, one folder per phase, and its report
    <data_dir>/knowledge/<id>/    registered knowledge sources
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    """The paths of a data folder (``root`` as given; resolve it first where processes share it)."""

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "server.lock"

    @property
    def operations(self) -> Path:
        return self.root / "operations.sqlite"

    @property
    def models(self) -> Path:
        return self.root / "models.sqlite"

    @property
    def rounds_db(self) -> Path:
        return self.root / "rounds.sqlite"

    def round_folder(self, rid: str) -> Path:
        return self.root / "rounds" / rid

    @property
    def knowledge(self) -> Path:
        return self.root / "knowledge"
