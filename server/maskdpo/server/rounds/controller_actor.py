"""The RoundController as a detached, restartable Ray actor, and the server's handle on it.

:func:`get_or_create_controller` returns the controller of the server's data folder (one per folder, as it
owns that folder's rounds: named after the folder, see :func:`controller_name`), creating it when missing:
``lifetime="detached"`` keeps it (and its running rounds) alive when the gRPC server restarts,
``max_restarts=-1`` makes Ray start it again after a crash. The actor resumes its unfinished rounds as soon
as it starts (also after such a restart), on its own: it finds the model's Generator actor and the judges by
their names, so it needs nothing from the server. A controller left by an earlier server with other settings
(or older code) is replaced, so a changed setting takes effect at the server's restart; its running rounds
resume in the new one, as after a crash. Errors cross the actor boundary as the service's own exceptions.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
from pathlib import Path
from typing import Any

import ray
from google.longrunning import operations_proto_pb2

from maskdpo.server.rounds.controller import ControllerSettings, RoundController
from maskdpo.server.workers.placement import NO_GPU, pinned_here
from maskdpo.server.workers.ray_runtime import NAMESPACE, actor_name, await_ray, wait_name_free
from maskdpo.v1 import alignment_pb2

log = logging.getLogger("maskdpo.server")


def _code_version() -> str:
    try:
        return importlib.metadata.version("maskdpo-server")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


CODE_VERSION = _code_version()
"""The installed maskdpo-server's version, as the process that imported this module sees it."""


class RoundControllerActorImpl:
    def __init__(self, settings: ControllerSettings) -> None:
        self._controller = RoundController(settings)
        # async actors construct on their event loop: resume unfinished rounds now, not at the first call
        self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        resumed = await self._controller.start()
        if resumed:
            log.info("round controller resumed %s", ", ".join(resumed))

    async def ready(self) -> bool:
        """True once the controller has resumed its unfinished rounds."""
        await asyncio.shield(self._resuming)
        return True

    async def create(self, config: alignment_pb2.RoundConfig, request_id: str) -> operations_proto_pb2.Operation:
        operation: operations_proto_pb2.Operation = await self._controller.create(config, request_id)
        return operation

    async def cancel(self, name: str) -> alignment_pb2.AlignmentRound:
        return await self._controller.cancel(name)

    async def pid(self) -> int:
        return os.getpid()

    async def models_loaded(self) -> int:
        """Models this controller loaded with transformers so far (none: rounds decode on engines)."""
        from maskdpo.server.rounds import local_model

        return local_model.LOADS[0]

    async def settings(self) -> tuple[str, ControllerSettings]:
        """The code version and the settings this controller runs with (to tell whether it is stale)."""
        return CODE_VERSION, self._controller.settings


RoundControllerActor = ray.remote(RoundControllerActorImpl)


def controller_name(data_dir: Path) -> str:
    """The actor name of the controller that owns ``data_dir``."""
    return actor_name(data_dir, "round-controller")


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
        runtime_env=NO_GPU,  # it holds no GPU: it must not see the generator's
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
    await wait_name_free(controller_name(settings.data_dir), timeout_s)
    return _create(settings)
