"""Servicers whose behaviour is not in this server build yet: every method answers UNIMPLEMENTED
with a message that says what is missing -- never a made-up result.

Generation, model management and alignment rounds are served once their Ray actors are configured; until
then these stand in. Their methods are read from the service descriptors, so an RPC added to a proto is
answered here without a second list to keep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, NoReturn

from google.protobuf.descriptor import MethodDescriptor

from maskdpo.server.edge.rpc import Ctx, streaming, unary
from maskdpo.server.errors import NotImplementedYet

REASON = "no generator engine is configured"


def _missing(what: str) -> NoReturn:
    raise NotImplementedYet(f"{what} is not available in this server: {REASON}")


def _stand_in(method: MethodDescriptor) -> Any:
    what = f"{method.containing_service.name}.{method.name}"
    if method.server_streaming:

        async def stream(self: Any, request: Any, context: Ctx) -> AsyncIterator[Any]:
            _missing(what)
            yield  # pragma: no cover - makes this an async generator

        return streaming(stream)

    async def call(self: Any, request: Any, context: Ctx) -> Any:
        _missing(what)

    return unary(call)


def pending_servicer(messages: ModuleType, stubs: ModuleType, service: str) -> Any:
    """A servicer of ``service`` (generated in ``messages``/``stubs``, e.g. generation_pb2 and
    generation_pb2_grpc) whose every RPC answers UNIMPLEMENTED, naming the method and why."""
    methods = {m.name: _stand_in(m) for m in messages.DESCRIPTOR.services_by_name[service].methods}
    return type(f"Pending{service}", (getattr(stubs, f"{service}Servicer"),), methods)()
