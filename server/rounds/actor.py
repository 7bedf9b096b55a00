"""The RoundController as a detached, restartable Ray actor, and the server's handle on it.

:func:`get_or_create_controller` returns the one controller of the cluster (named ``maskdpo-round-controller``
in namespace ``maskdpo``), creating it when missing: ``lifetime="detached"`` keeps it (and its running
rounds) alive when the gRPC server restarts, ``max_restarts=-1`` makes Ray start it again after a crash;
every method first resumes unfinished rounds, so a restarted actor picks up on its first call.
Errors cross the actor boundary as google.rpc.Status bytes and are rebuilt by :func:`raise_remote`.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
import ray
from google.rpc import error_details_pb2, status_pb2

from maskdpo.server.errors import ServiceError
from maskdpo.server.placement import pinned_here
from maskdpo.server.rounds.controller import ACTOR_NAME, NAMESPACE, ControllerSettings, RoundController
from maskdpo.server.rounds.workers import RayGenerator
from maskdpo.v1 import alignment_pb2

Result = tuple[bool, bytes]
"""(ok, payload): the serialized reply, or a serialized google.rpc.Status."""


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


RoundControllerActor = ray.remote(RoundControllerActorImpl)


def get_or_create_controller(settings: ControllerSettings) -> Any:
    actor_class: Any = RoundControllerActor
    return actor_class.options(
        name=ACTOR_NAME,
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
