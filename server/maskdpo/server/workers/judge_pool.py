"""The server's handle on its Judge actors: picks a replica, passes the call's deadline down to Ray, and
cancels the Ray task when the client cancels or the deadline passes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from maskdpo.server.errors import InvalidArgument
from maskdpo.server.judge.types import JudgeIdentity, JudgeRequest, Judgment
from maskdpo.server.workers.placement import Placement, wait_placed
from maskdpo.server.workers.ray_runtime import await_ray


class JudgePool:
    """Round-robin over the replicas of each judge backend."""

    def __init__(self, actors: dict[str, list[Any]], identities: dict[str, JudgeIdentity], default: str) -> None:
        self._actors = actors
        self._cycle: dict[str, Iterator[Any]] = {name: itertools.cycle(a) for name, a in actors.items()}
        self.identities = identities
        self.default = default

    @classmethod
    async def start(cls, names: Sequence[str], default: str, replicas: int, options: dict[str, dict[str, Any]],
                    batch_window_ms: float, max_batch: int, queue_limit: int,
                    placement: Placement | None = None, placement_timeout_s: float = 600.0) -> JudgePool:
        """Start ``replicas`` actors per backend, placed by ``placement``; PlacementTimeout when no node
        takes one within ``placement_timeout_s``."""
        from maskdpo.server.workers.judge_actor import JudgeActor

        placement = placement or Placement()
        ray_options = {**placement.ray_options(auto_gpus=0.0), "max_concurrency": 1000}
        actors: dict[str, list[Any]] = {}
        for name in names:
            actors[name] = [
                JudgeActor.options(**ray_options).remote(  # type: ignore[attr-defined]
                    name, options.get(name, {}), batch_window_ms, max_batch, queue_limit)
                for _ in range(replicas)
            ]
        for name, replicas_of in actors.items():
            for actor in replicas_of:
                await wait_placed(actor, placement_timeout_s, f"judge {name!r}", placement.describe(0.0))
        identities = {}
        for name, replicas_of in actors.items():
            identities[name] = await asyncio.wrap_future(replicas_of[0].identity.remote().future())
        return cls(actors, identities, default)

    def resolve(self, name: str, field: str = "judge") -> str:
        name = name or self.default
        if name not in self._actors:
            raise InvalidArgument(field, f"unknown judge {name!r}; this server hosts {sorted(self._actors)}")
        return name

    async def judge(self, name: str, requests: list[JudgeRequest], timeout: float | None) -> list[Judgment]:
        actor = next(self._cycle[name])
        result: list[Judgment] = await await_ray(actor.judge.remote(requests), timeout, f"judge {name!r}")
        return result

    def shutdown(self) -> None:
        for replicas in self._actors.values():
            for actor in replicas:
                ray.kill(actor)
