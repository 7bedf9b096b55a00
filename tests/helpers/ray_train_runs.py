"""Runs of the tiny model for the Ray Train tests (CPU workers in tests/integration, GPU workers in
tests/gpu): options for a short run of 4 pairs per step, a run through the round's ``run_trainer`` on a
worker group, and the figures runs are compared by (per-step losses, the largest weight difference)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from maskdpo.server.rounds.workers import Workers, run_trainer
from maskdpo.server.workers.placement import Placement
from maskdpo.trainer.run import TrainOptions
from tests.helpers.training import write_judged


def short_options(model: Path, tmp: Path, name: str, **kw: Any) -> TrainOptions:
    """4 steps of the 4 pairs of :func:`write_judged` (``batch_size`` is per process)."""
    settings: dict[str, Any] = {"steps": 4, "learning_rate": 1e-3, "batch_size": 4, "progress_bar": False, **kw}
    return TrainOptions(data=write_judged(tmp / "judged.jsonl"), model=model, out=tmp / name, **settings)


def on_ray_train(options: TrainOptions, workers: int, per_worker: Placement
                 ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Train on ``workers`` Ray Train workers as a round's TRAIN does: (summary, events, where it ran)."""
    events: list[dict[str, Any]] = []
    placed: list[str] = []
    group = Workers(on_ray=True, trainer=per_worker, trainer_workers=workers)
    summary = asyncio.run(run_trainer(options, lambda: False, events.append, group, placed.append))
    return summary, events, placed


def losses(run: Path) -> list[float]:
    """The training loss of every step, from the run's metrics.jsonl."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def max_weight_diff(a: Path, b: Path) -> float:
    """The largest absolute difference between two model folders' weights."""
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
