"""The training job's cancel flag: a run stops within a step of ``cancel()`` and saves no final model."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from maskdpo.server.workers.trainer_actor import TrainingJob
from tests.helpers.training import cancellable_options, wait_for_step


def test_job_cancel_stops_within_a_step(tiny_model_dir: Path, tmp_path: Path) -> None:
    job = TrainingJob(cancellable_options(tiny_model_dir, tmp_path))
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(job.train()))
    thread.start()
    wait_for_step(job.events, 2)
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
