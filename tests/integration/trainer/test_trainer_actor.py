"""The Trainer actor's cancel flag through Ray: a run stops within a step of ``cancel()``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maskdpo.server.workers.trainer_actor import create_trainer_actor
from tests.helpers.training import cancellable_options, wait_for_step


def test_ray_actor_cancel(tiny_model_dir: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, num_cpus=2)  # never join a cluster already running
    try:
        actor = create_trainer_actor(cancellable_options(tiny_model_dir, tmp_path))
        running = actor.train.remote()
        wait_for_step(lambda: ray.get(actor.events.remote(0)), 1)
        ray.get(actor.cancel.remote())
        result = ray.get(running, timeout=120)
        assert result["cancelled"] and result["steps"] < 200
        assert ray.get(actor.state.remote()) == "cancelled"
    finally:
        ray.shutdown()
