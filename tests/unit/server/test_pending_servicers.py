"""The stand-in servicers of a server without an engine answer every RPC of their service, read from the
proto, with UNIMPLEMENTED naming the method -- including RPCs added later, with no list to update."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import grpc
import pytest

from maskdpo.server.services.pending import pending_servicer
from maskdpo.v1 import (
    alignment_pb2,
    alignment_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
)

SERVICES = [
    (generation_pb2, generation_pb2_grpc, "GenerationService"),
    (models_pb2, models_pb2_grpc, "ModelService"),
    (alignment_pb2, alignment_pb2_grpc, "AlignmentService"),
]


class Aborted(Exception):
    pass


class RecordingContext:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, message: str, trailing_metadata: Any = ()) -> None:
        self.aborted = (code, message)
        raise Aborted


async def _call(method: Any, streams: bool, context: RecordingContext) -> None:
    with pytest.raises(Aborted):
        if streams:
            async for _ in method(None, context):
                pass
        else:
            await method(None, context)


@pytest.mark.parametrize(("messages", "stubs", "service"), SERVICES)
def test_every_rpc_of_the_service_answers_unimplemented(messages: ModuleType, stubs: ModuleType, service: str) -> None:
    servicer = pending_servicer(messages, stubs, service)
    methods = messages.DESCRIPTOR.services_by_name[service].methods
    assert methods
    for method in methods:
        context = RecordingContext()
        asyncio.run(_call(getattr(servicer, method.name), method.server_streaming, context))
        assert context.aborted is not None, method.name
        code, message = context.aborted
        assert code is grpc.StatusCode.UNIMPLEMENTED
        assert message.startswith(f"{service}.{method.name} is not available") and "no generator engine" in message
