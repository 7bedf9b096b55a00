"""The RoundController as a detached, restartable Ray actor, and the server's handle on it.

:func:`get_or_create_controller` returns the controller of the server's data folder (one per folder, as it
owns that folder's rounds: named ``maskdpo-round-controller-<hash of the folder>`` in namespace
``maskdpo``), creating it when missing: ``lifetime="detached"`` keeps it (and its running rounds) alive
when the gRPC server restarts, ``max_restarts=-1`` makes Ray start it again after a crash; every method
first resumes unfinished rounds, so a restarted actor picks up on its first call. A controller left by an
earlier server with other settings (or older code) is replaced, so a changed setting takes effect at the
server's restart; its running rounds resume in the new one, as after a crash.
Errors cross the actor boundary as google.rpc.Status bytes and are rebuilt by :func:`raise_remote`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import logging
import os
from pathlib import Path
from typing import Any

import grpc
import ray
from google.rpc import error_details_pb2, status_pb2

from maskdpo.server.errors import ServiceError
from maskdpo.server.rounds.controller import ACTOR_NAME, NAMESPACE, ControllerSettings, RoundController
from maskdpo.server.rounds.workers import RayGenerator
from maskdpo.server.workers.judge_pool import await_ray
from maskdpo.server.workers.placement import pinned_here
from maskdpo.v1 import alignment_pb2

log = logging.getLogger("maskdpo.server")
Result = tuple[bool, bytes]
"""(ok, payload): the serialized reply, or a serialized google.rpc.Status."""


def _code_version() -> str:
    try:
        return importlib.metadata.version("maskdpo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


CODE_VERSION = _code_version()
"""The installed maskdpo's version, as the process that imported this module sees it."""


def _error(exc: ServiceError) -> Result:
    return False, exc.to_status().SerializeToString()


class RoundControllerActorImpl:
    def __init__(self, settings: ControllerSettings) -> None:
        self._controller = RoundController(settings)

    async def ready(self) -> list[str]:
        """Resume unfinished rounds (the first call after a (re)start); returns the rounds resumed."""
        return await self._controller.start()

    async def attach(self, model_id: str, generator: Any) -> None:
        self._controller.attach(model_id, RayGenerator(generator))

    async def create(self, config: bytes, request_id: str) -> Result:
        try:
            op = await self._controller.create(alignment_pb2.RoundConfig.FromString(config), request_id)
        except ServiceError as exc:
            return _error(exc)
        return True, op.SerializeToString()

    async def cancel(self, name: str) -> Result:
        try:
            return True, (await self._controller.cancel(name)).SerializeToString()
        except ServiceError as exc:
            return _error(exc)

    async def pid(self) -> int:
        return os.getpid()

    async def settings(self) -> tuple[str, ControllerSettings]:
        """The code version and the settings this controller runs with (to tell whether it is stale)."""
        return CODE_VERSION, self._controller.settings


RoundControllerActor = ray.remote(RoundControllerActorImpl)


def controller_name(data_dir: Path) -> str:
    """The actor name of the controller that owns ``data_dir`` (resolved)."""
    return f"{ACTOR_NAME}-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]}"


def _create(settings: ControllerSettings) -> Any:
    actor_class: Any = RoundControllerActor
    return actor_class.options(
        name=controller_name(settings.data_dir),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=0,
        num_cpus=0,
        max_concurrency=64,
        # the controller shares the server's data folder (store, round artifacts): keep it on this node
        **pinned_here(),
    ).remote(settings)


async def get_or_create_controller(settings: ControllerSettings, timeout_s: float = 120.0) -> Any:
    """The controller of ``settings.data_dir``, created when missing or replaced when it runs with other
    settings or other code than this server's."""
    handle = _create(settings)
    current = await await_ray(handle.settings.remote(), timeout_s, "the round controller's start")
    if current == (CODE_VERSION, settings):
        return handle
    log.warning("the round controller of %s ran with other settings or code; replacing it (its running rounds "
                "resume in the new one from their last finished phase or checkpoint)", settings.data_dir)
    ray.kill(handle, no_restart=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:  # the name is free once the old actor is dead
        try:
            ray.get_actor(controller_name(settings.data_dir), namespace=NAMESPACE)
        except ValueError:
            break
        await asyncio.sleep(0.2)
    return _create(settings)


def raise_remote(status_bytes: bytes) -> None:
    """Raise the ServiceError a controller reported (same code, reason, message and metadata)."""
    status = status_pb2.Status.FromString(status_bytes)
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Unpack(info):
            break
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    remote = type(
        "ControllerError",
        (ServiceError,),
        {"code": code, "reason": info.reason or "ERROR_REASON_UNSPECIFIED"},
    )
    raise remote(status.message, **dict(info.metadata))
