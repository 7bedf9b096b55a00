"""Checkpoint deploys as long-running operations (kind ``deploy``) in the operation store.

:meth:`DeployManager.start` answers at once with the operation; the work runs in a task of the server's
event loop and calls the model's Generator actor, which checks the folder, reloads the weights in place,
verifies them against transformers and rolls back on any failure (docs/generation.md).

- Metadata (``DeployCheckpointMetadata``): stage ``VALIDATING`` (accepted, not yet sent), ``LOADING``
  (the actor checks, reloads and verifies: one call, so its inner steps are not reported separately),
  ``DONE`` (finished, either way).
- Response (``DeployCheckpointResponse``): the model after the deploy (new weight version), the probe's
  largest absolute difference, the tolerance and the reload seconds.
- Error: the ``google.rpc.Status`` of the ServiceError -- ``CHECKPOINT_REJECTED`` (FAILED_PRECONDITION)
  for a broken checkpoint or a failed verification (the previous version keeps serving), UNAVAILABLE if
  the engine died.
- A DeployCheckpoint call while another deploy runs on the same model is answered ABORTED (``CONFLICT``);
  the same ``request_id`` again returns the first operation (also while it runs).
- A started deploy runs to its end (a half-swapped engine is never left behind): CancelOperation is
  recorded but not honoured. Operations left unfinished by a previous server process are failed at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from google.longrunning import operations_proto_pb2

from maskdpo.server.edge.rpc import to_service_error
from maskdpo.server.errors import Conflict, ServiceError, Unavailable
from maskdpo.server.services import generation_convert as convert
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.workers.generator_pool import GeneratorPool, ServedModel, State
from maskdpo.v1 import models_pb2

log = logging.getLogger("maskdpo.server")
KIND = "deploy"


class DeployManager:
    """Starts deploys, one at a time per model, and records them as operations."""

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
                stage="VALIDATING",
                model=f"models/{model.name}",
                checkpoint=given,
                start_time=convert.timestamp(time.time()),
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
        model.state = State.SWAPPING
        try:
            await asyncio.to_thread(self.operations.update_metadata, name, metadata)
            report = await self.pool.deploy(model, folder, tolerance)
            record = await asyncio.to_thread(
                self.pool.checkpoints.served, model.name, report.served.checkpoint, report.served.version
            )
            model.version, model.checkpoint = report.served.version, record.name
            model.state = State.READY
            response = models_pb2.DeployCheckpointResponse(
                model=model.to_proto(self.pool.engine),
                verify_max_abs_diff=report.max_abs_diff,
                verify_tolerance=report.tolerance,
                swap_seconds=report.load_s,
            )
            log.info(
                "deploy %s: models/%s now serves version %d (%s; max |diff| %.3g)",
                name,
                model.name,
                model.version,
                folder,
                report.max_abs_diff,
            )
            error: ServiceError | None = None
        except Exception as exc:
            error = convert.service_error(exc, model=model.name) or to_service_error(exc)
            log.warning(
                "deploy %s of %s into models/%s rejected: %s", name, folder, model.name, error.message
            )
        finally:
            if model.state == State.SWAPPING:
                model.state = State.READY
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
