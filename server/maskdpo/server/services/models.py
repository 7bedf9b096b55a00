"""ModelService: the served models, their checkpoints (:mod:`maskdpo.server.store.checkpoints`: what each
model serves now) and verified deploys (:mod:`maskdpo.server.workers.deploys`: an operation per deploy)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from google.longrunning import operations_proto_pb2

from maskdpo.server.edge.names import parse_checkpoint_name
from maskdpo.server.edge.paging import page
from maskdpo.server.edge.rpc import Ctx, unary
from maskdpo.server.errors import InvalidArgument
from maskdpo.server.services import generation_convert as convert
from maskdpo.server.workers.deploys import DeployManager
from maskdpo.server.workers.generator_pool import GeneratorPool, ServedModel
from maskdpo.v1 import models_pb2, models_pb2_grpc


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(self, pool: GeneratorPool, deploys: DeployManager) -> None:
        self.pool = pool
        self.deploys = deploys

    def _model(self, name: str, field: str) -> ServedModel:
        if not name:
            raise InvalidArgument(field, "required ('models/<model>')")
        return self.pool.get(convert.model_id(name, field))

    @unary
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: Ctx
    ) -> models_pb2.ListModelsResponse:
        size, offset = page(request.page_size, request.page_token)
        names = sorted(self.pool.models)
        chunk = names[offset : offset + size]
        return models_pb2.ListModelsResponse(
            models=[await self.pool.describe(self.pool.models[n]) for n in chunk],
            next_page_token=str(offset + size) if offset + size < len(names) else "",
        )

    @unary
    async def GetModel(self, request: models_pb2.GetModelRequest, context: Ctx) -> models_pb2.Model:
        return await self.pool.describe(self._model(request.name, "name"))

    @unary
    async def ListCheckpoints(
        self, request: models_pb2.ListCheckpointsRequest, context: Ctx
    ) -> models_pb2.ListCheckpointsResponse:
        model = self._model(request.parent, "parent")
        size, offset = page(request.page_size, request.page_token)
        records, more = await asyncio.to_thread(self.pool.checkpoints.page, model.name, offset, size)
        return models_pb2.ListCheckpointsResponse(
            checkpoints=[convert.checkpoint(r) for r in records],
            next_page_token=str(offset + size) if more else "",
        )

    async def _folder(self, model: ServedModel, checkpoint: str) -> Path:
        """The folder of a checkpoint resource name (of this model) or a folder path on the server."""
        if checkpoint.startswith("models/"):
            owner, ident = parse_checkpoint_name(checkpoint, "checkpoint")
            if owner != model.name:
                raise InvalidArgument(
                    "checkpoint", f"{checkpoint} belongs to models/{owner}, not models/{model.name}"
                )
            return (await asyncio.to_thread(self.pool.checkpoints.get, owner, ident)).path
        folder = Path(checkpoint).expanduser()
        if not folder.is_absolute():
            raise InvalidArgument(
                "checkpoint", "give an absolute folder path or 'models/<model>/checkpoints/<id>'"
            )
        if not folder.is_dir():
            raise InvalidArgument("checkpoint", f"{folder} is not a folder on the server")
        return folder.resolve()

    @unary
    async def DeployCheckpoint(
        self, request: models_pb2.DeployCheckpointRequest, context: Ctx
    ) -> operations_proto_pb2.Operation:
        model = self._model(request.model, "model")
        if not request.checkpoint:
            raise InvalidArgument("checkpoint", "required (a checkpoint name or a folder path)")
        tolerance = request.verify_tolerance
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InvalidArgument("verify_tolerance", f"{tolerance}; must be >= 0 (0: the server default)")
        if len(request.request_id) > 200:
            raise InvalidArgument("request_id", "at most 200 characters")
        self.pool.serving(model.name)
        folder = await self._folder(model, request.checkpoint)
        return await self.deploys.start(
            model, folder, request.checkpoint, tolerance or None, request.request_id
        )
