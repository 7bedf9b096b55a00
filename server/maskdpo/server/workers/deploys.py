"""Deploys: the one path that changes what a model serves.

DeployCheckpoint (a long-running operation the server starts, :class:`DeployManager`) and a round's PROMOTE
(awaited in the round controller) both go through :func:`deploy`: the model's Generator actor checks the
folder, reloads the weights in place, verifies them against transformers and rolls back on any failure
(docs/generation.md); the version it now serves is then recorded in the checkpoint store (``models.sqlite``),
which ModelService reads and a restarted server restores from. A deploy while another runs on the same
model is refused by the actor itself (ABORTED, ``CONFLICT``), whichever process started either.

Operations (kind ``deploy``):
- Metadata (``DeployCheckpointMetadata``): stage ``VALIDATING`` (accepted, not yet sent), ``LOADING``
  (the actor checks, reloads and verifies: one call, so its inner steps are not reported separately),
  ``DONE`` (finished, either way).
- Response (``DeployCheckpointResponse``): the model after the deploy (new weight version), the probe's
  largest absolute difference, the tolerance and the reload seconds.
- Error: the ``google.rpc.Status`` of the ServiceError -- ``CHECKPOINT_REJECTED`` (FAILED_PRECONDITION)
  for a broken checkpoint or a failed verification (the previous version keeps serving), UNAVAILABLE if
  the engine died.
- The same ``request_id`` again returns the first operation (also while it runs).
- A started deploy runs to its end (a half-swapped engine is never left behind): CancelOperation is
  recorded but not honoured. Operations left unfinished by a previous server process are failed at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from google.longrunning import operations_proto_pb2

from maskdpo.server.errors import Conflict, ServiceError, Unavailable, to_service_error
from maskdpo.server.generation.types import DeployReport
from maskdpo.server.store.checkpoints import CheckpointRecord, CheckpointStore
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.wire import timestamp
from maskdpo.server.workers.generator_pool import GeneratorPool, ServedModel
from maskdpo.v1 import models_pb2

log = logging.getLogger("maskdpo.server")
KIND = "deploy"
ActorDeploy = Callable[[str, Path, float | None], Awaitable[DeployReport]]
"""Asks the Generator actor of a model to deploy a folder (with a tolerance; None = the engine's)."""


async def deploy(call: ActorDeploy, checkpoints: CheckpointStore, model: str, folder: Path,
                 tolerance: float | None = None, round_name: str = "") -> tuple[DeployReport, CheckpointRecord]:
    """Deploy ``folder`` into ``model`` and record the version it serves now; raises the actor's
    ServiceError (CHECKPOINT_REJECTED, CONFLICT, UNAVAILABLE) with nothing recorded when it refuses."""
    report = await call(model, folder, tolerance)
    served = report.served
    record = await asyncio.to_thread(checkpoints.served, model, served.folder, served.version, round_name,
                                     served.checkpoint if served.adapter else None)
    return report, record


class DeployManager:
    """DeployCheckpoint: deploys as operations, answered at once and run in a task of the server's loop."""

    def __init__(self, pool: GeneratorPool, operations: OperationStore) -> None:
        self.pool = pool
        self.operations = operations
        self._running: dict[str, tuple[str, str]] = {}
        """model -> (operation name, request id) of its running deploy ("" name while being created)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def fail_leftovers(self) -> None:
        """Fail deploy operations a previous server process left unfinished."""
        for name in self.operations.unfinished(KIND):
            self.operations.finish(
                name,
                error=Unavailable(
                    "the server stopped during this deploy; the engine restarted on its base weights"
                ),
            )

    async def start(
        self, model: ServedModel, folder: Path, given: str, tolerance: float | None, request_id: str
    ) -> operations_proto_pb2.Operation:
        running = self._running.get(model.name)
        if running is not None:
            op_name, running_request = running
            if op_name and request_id and request_id == running_request:
                return await asyncio.to_thread(self.operations.get, op_name)
            raise Conflict(
                f"a deploy is already running on models/{model.name}"
                + (f" ({op_name})" if op_name else "")
                + "; wait for it, then retry",
                operation=op_name,
            )
        self._running[model.name] = ("", request_id)
        try:
            metadata = models_pb2.DeployCheckpointMetadata(
                stage="VALIDATING", model=f"models/{model.name}", checkpoint=given, start_time=timestamp(time.time())
            )
            name, created = await asyncio.to_thread(self.operations.create, KIND, metadata, request_id)
        except BaseException:
            del self._running[model.name]
            raise
        if not created:  # a retry of a finished deploy: the same operation
            del self._running[model.name]
            return await asyncio.to_thread(self.operations.get, name)
        self._running[model.name] = (name, request_id)
        task = asyncio.create_task(self._run(name, model, folder, metadata, tolerance))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.to_thread(self.operations.get, name)

    async def _run(
        self,
        name: str,
        model: ServedModel,
        folder: Path,
        metadata: models_pb2.DeployCheckpointMetadata,
        tolerance: float | None,
    ) -> None:
        metadata.stage = "LOADING"
        try:
            await asyncio.to_thread(self.operations.update_metadata, name, metadata)
            report, record = await deploy(self.pool.deploy, self.pool.checkpoints, model.name, folder, tolerance)
            response = models_pb2.DeployCheckpointResponse(
                model=await self.pool.describe(model),
                verify_max_abs_diff=report.max_abs_diff,
                verify_tolerance=report.tolerance,
                swap_seconds=report.load_s,
            )
            log.info("deploy %s: models/%s now serves version %d (%s; max |diff| %.3g)",
                     name, model.name, record.weight_version, folder, report.max_abs_diff)
            error: ServiceError | None = None
        except Exception as exc:
            error = to_service_error(exc)
            log.warning("deploy %s of %s into models/%s rejected: %s", name, folder, model.name, error.message)
        finally:
            del self._running[model.name]
        metadata.stage = "DONE"
        try:
            if error is None:
                await asyncio.to_thread(self.operations.finish, name, response=response, metadata=metadata)
            else:
                await asyncio.to_thread(self.operations.finish, name, error=error, metadata=metadata)
        except Exception:
            log.exception("deploy %s: could not record its result", name)

    async def stop(self) -> None:
        """Wait for running deploys (they are short; an interrupted swap would leave unknown weights)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=120)
