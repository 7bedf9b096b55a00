"""Placement on a real (local) Ray: the bounded wait for an actor no node can take, and an actor that fits."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray

from maskdpo.server.workers import placement
from maskdpo.server.workers.placement import Placement, PlacementTimeout, wait_placed


@ray.remote
class _Idle:
    def ping(self) -> str:
        return placement.node_id()


def test_an_actor_no_node_can_take_times_out_and_names_what_it_asked_for(local_ray: None) -> None:
    wanted = Placement(0.1, 0.0, None, {"maskdpo-nowhere": 1})
    actor = _Idle.options(**wanted.ray_options()).remote()  # type: ignore[attr-defined]
    start = time.monotonic()
    with pytest.raises(PlacementTimeout, match="maskdpo-nowhere"):
        asyncio.run(wait_placed(actor, 2.0, "trainer", wanted.describe()))
    assert 1.9 < time.monotonic() - start < 20


def test_an_actor_that_fits_is_placed_on_this_node(local_ray: None) -> None:
    actor = _Idle.options(**Placement(0.1, 0.0).ray_options()).remote()  # type: ignore[attr-defined]
    asyncio.run(wait_placed(actor, 60.0, "judge", "num_cpus=0.1"))
    assert ray.get(actor.ping.remote()) == ray.get_runtime_context().get_node_id()
