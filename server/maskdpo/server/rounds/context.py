"""What every phase of a round gets: its round, spec, folders, store, workers, cancel flag and progress."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import PromptItem, PromptSource, RoundSpec
from maskdpo.server.rounds.workers import Generator, Judges, Workers
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.rounds import RoundStore


class RoundCancelled(Exception):
    """The round's cancellation was requested; it ends CANCELLED and promotes nothing."""


class PhaseFailed(Exception):
    """The phase cannot complete; the round ends FAILED with this reason."""


@dataclass
class PhaseOutput:
    summary: dict[str, Any]
    artifacts: dict[str, str]
    """Artifact name -> path relative to the phase folder."""
    updates: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RoundContext:
    rid: str
    spec: RoundSpec
    root: Path
    store: RoundStore
    generator: Generator
    checkpoints: CheckpointStore
    cancel_requested: Callable[[], bool]
    judges: Judges
    default_judge: str = "kb"
    workers: Workers = field(default_factory=Workers)
    save_steps: int = 0
    keep_checkpoints: int = 2
    serving_dtype: str = "auto"
    spare_engine: Any = None
    """An engine TRAIN started and left for EVALUATE (a :class:`~maskdpo.server.rounds.decoding.RoundEngine`
    holding the candidate); whoever takes it stops it, and the round's end stops one nobody took."""

    def check_cancel(self) -> None:
        if self.cancel_requested():
            raise RoundCancelled("cancelled on request")

    def progress(
        self, phase: int, done: int, total: int, message: str = "", metrics: Mapping[str, float] | None = None
    ) -> None:
        self.store.record(self.rid, "PROGRESS", phase, message, done=done, total=total, metrics=metrics)

    def metrics(self, phase: int, values: Mapping[str, float], message: str = "") -> None:
        self.store.record(self.rid, "METRICS", phase, message, metrics=values)

    def phase_dir(self, phase_name: str) -> Path:
        return self.root / phase_name

    def prompts(self, source: PromptSource) -> tuple[list[PromptItem], datasets.Dataset | None]:
        items, dataset = datasets.resolve(source)
        if not items:
            raise PhaseFailed(f"prompt set {source.dataset or 'inline'} is empty")
        return items, dataset

    def judge_for(self, dataset: datasets.Dataset | None) -> str:
        """The judge backend of this round's answers: the prompt set's own judge when the round asks for
        ``kb`` or names none, else the named backend (or the server's default)."""
        if dataset is not None and dataset.judge and self.spec.judge in ("", "kb"):
            return dataset.judge
        return self.spec.judge or self.default_judge

    def log(self, message: str) -> None:
        self.store.record(self.rid, "LOG", self.store.row(self.rid)["phase"], message)

    def close(self) -> None:
        """Nothing to release: the judges and the generator belong to the server."""

    async def release(self) -> None:
        """Stop what a phase left for a later one that did not run (the round ended or failed first)."""
        spare, self.spare_engine = self.spare_engine, None
        if spare is not None:
            await spare.stop()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
