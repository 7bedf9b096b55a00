"""The judges of a server: Judge actors (one or more replicas per backend), called by Score and by rounds.

The server starts them (:meth:`JudgePool.start`); each actor is named after the server's data folder, the
backend and its replica, so the round controller -- which outlives the server -- reaches the same workers
by name (:meth:`JudgePool.named`): an llm judge is loaded once per server, and Score and rounds label with
the same code. Calls pass the caller's deadline down to Ray and cancel the Ray task when the client
cancels or the deadline passes. A lost actor (the server restarted and started new ones) is looked up again
at the next call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray

from maskdpo.server.errors import InvalidArgument, Unavailable
from maskdpo.server.judge.types import ChunkVectors, JudgeIdentity, JudgeRequest, Judgment, Passage
from maskdpo.server.workers.placement import Placement, wait_placed
from maskdpo.server.workers.ray_runtime import (
    NAMESPACE,
    actor_lost,
    actor_name,
    await_ray,
    call_error,
    find_actor,
    wait_name_free,
)


def NO_PLACEMENT(backend: str) -> tuple[Placement, float]:
    """No GPU and the default CPUs, for every backend."""
    return Placement(), 0.0


def judge_name(data_dir: Path, backend: str, replica: int) -> str:
    """The Ray name of a Judge actor of the server of ``data_dir``."""
    return actor_name(data_dir, f"judge-{backend}-{replica}")


class JudgePool:
    """Round-robin over the replicas of each judge backend."""

    def __init__(self, names: dict[str, list[str]], identities: dict[str, JudgeIdentity], default: str,
                 actors: dict[str, list[Any]] | None = None, wait_s: float = 0.0) -> None:
        self._names = names
        self._actors: dict[str, list[Any]] = actors or {}
        self._next = {backend: itertools.count() for backend in names}
        self.identities = identities
        self.default = default
        self._wait_s = wait_s

    @classmethod
    async def start(cls, data_dir: Path, backends: Sequence[str], default: str, replicas: int,
                    options: Callable[[str], dict[str, Any]], batch_window_ms: float, max_batch: int,
                    queue_limit: int, placement: Callable[[str], tuple[Placement, float]] = NO_PLACEMENT,
                    placement_timeout_s: float = 600.0) -> JudgePool:
        """Start ``replicas`` actors per backend, built with ``options(backend)`` and placed by
        ``placement(backend)`` (its Placement, and the GPUs it takes when its count is unset);
        PlacementTimeout when no node takes one within ``placement_timeout_s``."""
        from maskdpo.server.workers.judge_actor import JudgeActor

        names = {backend: [judge_name(data_dir, backend, i) for i in range(replicas)] for backend in backends}
        actors: dict[str, list[Any]] = {}
        for backend, replica_names in names.items():
            where, auto_gpus = placement(backend)
            ray_options = {**where.ray_options(auto_gpus), "max_concurrency": 1000, "namespace": NAMESPACE}
            actors[backend] = []
            for name in replica_names:
                await wait_name_free(name, 30.0)  # an actor of a server that just stopped
                actors[backend].append(JudgeActor.options(name=name, **ray_options).remote(  # type: ignore[attr-defined]
                    backend, options(backend), batch_window_ms, max_batch, queue_limit))
            for actor in actors[backend]:
                await wait_placed(actor, placement_timeout_s, f"judge {backend!r}", where.describe(auto_gpus))
        identities = {}
        for backend, replicas_of in actors.items():
            identities[backend] = await asyncio.wrap_future(replicas_of[0].identity.remote().future())
        return cls(names, identities, default, actors)

    @classmethod
    def named(cls, data_dir: Path, backends: Sequence[str], replicas: int, wait_s: float) -> JudgePool:
        """The judges a server of ``data_dir`` started, found by name at first use (waiting up to ``wait_s``
        for a server that is still starting)."""
        names = {backend: [judge_name(data_dir, backend, i) for i in range(replicas)] for backend in backends}
        return cls(names, {}, "", wait_s=wait_s)

    @property
    def backends(self) -> list[str]:
        return sorted(self._names)

    def resolve(self, name: str, field: str = "judge") -> str:
        name = name or self.default
        if name not in self._names:
            raise InvalidArgument(field, f"unknown judge {name!r}; this server hosts {self.backends}")
        return name

    async def _actor(self, backend: str) -> Any:
        if backend not in self._names:
            raise Unavailable(f"the server hosts no judge {backend!r} (it hosts {self.backends})")
        replicas = self._actors.setdefault(backend, [])
        if not replicas:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait_s
            while True:
                found = [find_actor(name) for name in self._names[backend]]
                if all(actor is not None for actor in found):
                    replicas.extend(found)
                    break
                if loop.time() >= deadline:
                    raise Unavailable(f"the judge {backend!r} is not running (is the server up?)")
                await asyncio.sleep(1.0)
        return replicas[next(self._next[backend]) % len(replicas)]

    async def judge(self, backend: str, requests: list[JudgeRequest], timeout: float | None = None
                    ) -> list[Judgment]:
        actor = await self._actor(backend)
        try:
            result: list[Judgment] = await await_ray(actor.judge.remote(requests), timeout, f"judge {backend!r}")
        except Exception as exc:
            if actor_lost(exc):
                self._actors.pop(backend, None)  # the next call finds the server's new actors
            raise call_error(exc, f"the judge {backend!r}") from None
        return result

    async def where(self, backend: str) -> str:
        """The Ray node of (a replica of) ``backend``."""
        actor = await self._actor(backend)
        node: str = await await_ray(actor.node_id.remote(), 60.0, f"judge {backend!r}")
        return node

    async def index(self, passages: list[Passage], timeout: float | None = None) -> ChunkVectors | None:
        """The passages' chunks and vectors from the first hosted judge that embeds passages (None when
        none does), for a knowledge source to keep."""
        for backend in self.backends:
            actor = await self._actor(backend)
            try:
                found: ChunkVectors | None = await await_ray(actor.index.remote(passages), timeout,
                                                             f"judge {backend!r}")
            except Exception as exc:
                if actor_lost(exc):
                    self._actors.pop(backend, None)
                raise call_error(exc, f"the judge {backend!r}") from None
            if found is not None:
                return found
        return None

    async def identity(self, backend: str) -> JudgeIdentity:
        if backend not in self.identities:
            actor = await self._actor(backend)
            self.identities[backend] = await await_ray(actor.identity.remote(), 60.0, f"judge {backend!r}")
        return self.identities[backend]

    def shutdown(self) -> None:
        for replicas in self._actors.values():
            for actor in replicas:
                ray.kill(actor)
