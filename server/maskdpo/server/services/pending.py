"""Servicers whose behaviour is not in this server build yet: every method answers UNIMPLEMENTED
with a message that says what is missing -- never a made-up result.

Generation, model management and alignment rounds are served once their Ray actors are configured; until
then these stand in.
"""

from __future__ import annotations

from typing import Any, NoReturn

from maskdpo.server.edge.rpc import Ctx, streaming, unary
from maskdpo.server.errors import NotImplementedYet
from maskdpo.v1 import alignment_pb2_grpc, generation_pb2_grpc, models_pb2_grpc


def _missing(what: str) -> NoReturn:
    raise NotImplementedYet(f"{what} is not available in this server: no generator engine is configured")


class PendingGenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    @unary
    async def Generate(self, request: Any, context: Ctx) -> Any:
        _missing("GenerationService.Generate")

    @unary
    async def BatchGenerate(self, request: Any, context: Ctx) -> Any:
        _missing("GenerationService.BatchGenerate")

    @streaming
    async def StreamGenerate(self, request: Any, context: Ctx) -> Any:
        _missing("GenerationService.StreamGenerate")
        yield


class PendingModelServicer(models_pb2_grpc.ModelServiceServicer):
    @unary
    async def ListModels(self, request: Any, context: Ctx) -> Any:
        _missing("ModelService.ListModels")

    @unary
    async def GetModel(self, request: Any, context: Ctx) -> Any:
        _missing("ModelService.GetModel")

    @unary
    async def ListCheckpoints(self, request: Any, context: Ctx) -> Any:
        _missing("ModelService.ListCheckpoints")

    @unary
    async def DeployCheckpoint(self, request: Any, context: Ctx) -> Any:
        _missing("ModelService.DeployCheckpoint")


class PendingAlignmentServicer(alignment_pb2_grpc.AlignmentServiceServicer):
    @unary
    async def CreateAlignmentRound(self, request: Any, context: Ctx) -> Any:
        _missing("AlignmentService.CreateAlignmentRound")

    @unary
    async def GetAlignmentRound(self, request: Any, context: Ctx) -> Any:
        _missing("AlignmentService.GetAlignmentRound")

    @unary
    async def ListAlignmentRounds(self, request: Any, context: Ctx) -> Any:
        _missing("AlignmentService.ListAlignmentRounds")

    @streaming
    async def WatchAlignmentRound(self, request: Any, context: Ctx) -> Any:
        _missing("AlignmentService.WatchAlignmentRound")
        yield

    @unary
    async def CancelAlignmentRound(self, request: Any, context: Ctx) -> Any:
        _missing("AlignmentService.CancelAlignmentRound")
