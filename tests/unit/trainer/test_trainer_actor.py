"""The Trainer actor's cancel flag: a run stops within a step of ``cancel()`` and saves no final model."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from maskdpo.server.workers.trainer_actor import TrainingJob, create_trainer_actor
from maskdpo.trainer.run import TrainOptions
from tests.unit.trainer.test_trainer_cli import write_judged


def _options(model: Path, tmp: Path) -> TrainOptions:
    return TrainOptions(
        data=write_judged(tmp / "judged.jsonl"),
        model=model,
        out=tmp / "run",
        steps=200,
        learning_rate=1e-3,
        batch_size=2,
        progress_bar=False,
    )


def _wait_for_step(events: Any, step: int, timeout: float = 240) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = events()
        if any(e["kind"] == "step" and e["step"] >= step for e in got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"no step {step} event within {timeout} s")


def test_job_cancel_stops_within_a_step(tiny_model_dir: Path, tmp_path: Path) -> None:
    job = TrainingJob(_options(tiny_model_dir, tmp_path))
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(job.train()))
    thread.start()
    _wait_for_step(job.events, 2)
    job.cancel()
    thread.join(timeout=120)
    assert not thread.is_alive()
    kinds = [e["kind"] for e in job.events()]
    cancel_at = kinds.index("cancel_requested")
    assert kinds.count("step") <= kinds[:cancel_at].count("step") + 1  # at most one more step after cancel
    assert result["cancelled"] and result["final_dir"] is None and result["steps"] < 200
    assert job.state == "cancelled" and "pairs" in kinds and kinds[-1] == "done"
    seqs = [e["seq"] for e in job.events()]
    assert seqs == list(range(1, len(seqs) + 1)) and job.events(after=seqs[-2]) == job.events()[-1:]
    assert not (tmp_path / "run" / "final").exists()


@pytest.mark.integration
def test_ray_actor_cancel(tiny_model_dir: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, num_cpus=2)  # never join a cluster already running
    try:
        actor = create_trainer_actor(_options(tiny_model_dir, tmp_path))
        running = actor.train.remote()
        _wait_for_step(lambda: ray.get(actor.events.remote(0)), 1)
        ray.get(actor.cancel.remote())
        result = ray.get(running, timeout=120)
        assert result["cancelled"] and result["steps"] < 200
        assert ray.get(actor.state.remote()) == "cancelled"
    finally:
        ray.shutdown()
