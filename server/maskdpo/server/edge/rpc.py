"""Error mapping for servicer methods: the only place exceptions become gRPC statuses.

Wrap every servicer method with :func:`unary` or :func:`streaming`. A :class:`ServiceError` is sent with
its code, message and a ``google.rpc.Status`` (ErrorInfo reason) in the trailing metadata. Anything else
is logged with an incident id and sent as INTERNAL with only that id: no stack trace reaches a client.
Request bytes that do not parse never reach these methods (:mod:`maskdpo.server.edge.decode_guard`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from maskdpo.server.errors import ServiceError, to_service_error

log = logging.getLogger("maskdpo.server")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Ctx: TypeAlias = Any
"""grpc.aio.ServicerContext (grpcio ships no type information)."""


async def abort_with(context: Ctx, error: ServiceError) -> None:
    await context.abort(error.code, error.message, trailing_metadata=error.trailing_metadata())


def unary(
    method: Callable[[Any, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Any, Req, Ctx], Awaitable[Resp]]:
    """Map errors of a unary servicer method."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort_with(context, to_service_error(exc))
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def streaming(
    method: Callable[[Any, Req, Ctx], AsyncIterator[Resp]],
) -> Callable[[Any, Req, Ctx], AsyncIterator[Resp]]:
    """Map errors of a server-streaming servicer method."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Ctx) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort_with(context, to_service_error(exc))

    return wrapper
