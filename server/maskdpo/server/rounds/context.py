"""What every phase of a round gets: its round, spec, folders, store, workers, cancel flag and progress."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskdpo.server.judge.types import JudgeBackend
from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import PromptItem, PromptSource, RoundSpec
from maskdpo.server.rounds.round_judge import RemoteJudge, build_round_judge, judge_key
from maskdpo.server.rounds.workers import Generator, Workers
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.rounds import RoundStore
from maskdpo.server.workers.placement import PlacementTimeout


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
    default_judge: str = "kb"
    judge_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    workers: Workers = field(default_factory=Workers)
    save_steps: int = 0
    dataset_modules: tuple[str, ...] = ()
    _judges: dict[tuple[str, str], JudgeBackend] = field(default_factory=dict)

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

    async def judge_for(self, dataset: datasets.Dataset | None) -> JudgeBackend:
        """The dataset's own judge when the round asks for ``kb`` (or nothing), else the named backend; on
        the judge node group when the workers say so (then the phase event says which node)."""
        key = judge_key(self.spec.judge, self.default_judge, dataset)
        if key not in self._judges:
            placement = self.workers.judge
            if placement is None:
                self._judges[key] = build_round_judge(key, self.judge_options)
            else:
                try:
                    remote = await RemoteJudge.start(key, self.judge_options, self.dataset_modules, placement,
                                                     self.workers.placement_timeout_s)
                except PlacementTimeout as exc:
                    raise PhaseFailed(str(exc)) from None
                self.log(f"judge {key[1]} runs on node {remote.node}")
                self._judges[key] = remote
        return self._judges[key]

    def log(self, message: str) -> None:
        self.store.record(self.rid, "LOG", self.store.row(self.rid)["phase"], message)

    def close(self) -> None:
        """Release the actors the round started (remote judges)."""
        for judge in self._judges.values():
            if isinstance(judge, RemoteJudge):
                judge.close()
        self._judges.clear()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
