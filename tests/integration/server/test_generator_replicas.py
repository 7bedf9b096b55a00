"""A model served by several replicas: requests go to them in turn, a deploy reaches every one under the
same version, a replica that refuses a deploy sends the others back to what they all served, and a deploy
the server did not start shows as SWAPPING.

Real Ray; the replicas are stand-in actors that record what they are asked (tests/integration/
test_generation_service.py runs real engines)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import ray

from maskdpo.server.errors import CheckpointRejected
from maskdpo.server.generation.types import (
    DeployReport,
    GenerationResult,
    Prompt,
    Sample,
    SamplingOptions,
    WeightVersion,
)
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.workers.generator_pool import GeneratorPool, Replica, ServedModel, State

BASE, GOOD, BAD = Path("/m/base"), Path("/m/good"), Path("/m/bad")


@ray.remote(num_cpus=0)
class _Replica:
    def __init__(self, index: int, refuses: Path | None = None) -> None:
        self.index, self.refuses = index, refuses
        self.version = WeightVersion(1, BASE)
        self.served: list[int] = []
        self.deploying = False

    def generate(self, prompt: Prompt, options: SamplingOptions, request_id: str) -> GenerationResult:
        self.served.append(self.version.version)
        return GenerationResult(request_id, 1, (Sample(0, f"replica {self.index}", (), (), "stop", 0),), 0)

    def current_version(self) -> WeightVersion:
        return self.version

    def deploy(self, checkpoint: str, tolerance: float | None, version: int) -> DeployReport:
        if Path(checkpoint) == self.refuses:
            raise CheckpointRejected(f"replica {self.index} refuses {checkpoint}")
        self.version = WeightVersion(version, Path(checkpoint))
        return DeployReport(True, self.version, Path(checkpoint), 0.0, 1e-3, 8, 0.0, 0.0, 0.0)

    def restore(self, weights: WeightVersion) -> WeightVersion:
        self.version = weights
        return weights

    def load(self) -> dict[str, Any]:
        return {"deploying": self.deploying}

    def set_deploying(self, value: bool) -> None:
        self.deploying = value


def pool_of(tmp_path: Path, refuses: Path | None = None) -> tuple[GeneratorPool, list[Any]]:
    actors = [_Replica.remote(0), _Replica.remote(1, refuses)]  # type: ignore[attr-defined]
    model = ServedModel("toy", str(BASE), BASE, [Replica(a, state=State.READY) for a in actors])
    return GeneratorPool({"toy": model}, "toy", CheckpointStore(tmp_path / "models.sqlite"), 30), actors


def test_requests_go_to_the_replicas_in_turn(local_ray: None, tmp_path: Path) -> None:
    pool, _ = pool_of(tmp_path)

    async def run() -> list[str]:
        model = pool.get("toy")
        results = [await pool.generate(model, Prompt(text="x"), SamplingOptions(), 10) for _ in range(4)]
        return [r.samples[0].text for r in results]

    assert asyncio.run(run()) == ["replica 0", "replica 1", "replica 0", "replica 1"]


def test_a_deploy_reaches_every_replica_under_one_version(local_ray: None, tmp_path: Path) -> None:
    pool, actors = pool_of(tmp_path)
    report = asyncio.run(pool.deploy("toy", GOOD, None))
    assert report.served == WeightVersion(2, GOOD)
    assert [ray.get(a.current_version.remote()) for a in actors] == [WeightVersion(2, GOOD)] * 2


def test_a_refusing_replica_sends_the_others_back(local_ray: None, tmp_path: Path) -> None:
    pool, actors = pool_of(tmp_path, refuses=BAD)
    with pytest.raises(CheckpointRejected, match="replica 1 refuses"):
        asyncio.run(pool.deploy("toy", BAD, None))
    assert [ray.get(a.current_version.remote()) for a in actors] == [WeightVersion(1, BASE)] * 2


def test_a_deploy_the_server_did_not_start_shows_as_swapping(local_ray: None, tmp_path: Path) -> None:
    """A round's PROMOTE deploys through the engines, not through this server: GetModel still says SWAPPING."""
    pool, actors = pool_of(tmp_path)
    model = pool.get("toy")
    assert asyncio.run(pool.describe(model)).state == State.READY
    ray.get(actors[1].set_deploying.remote(True))
    assert asyncio.run(pool.describe(model)).state == State.SWAPPING
    ray.get(actors[1].set_deploying.remote(False))
    assert asyncio.run(pool.describe(model)).state == State.READY
