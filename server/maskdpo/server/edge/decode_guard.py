"""A server interceptor that answers INVALID_ARGUMENT to request bytes that do not parse, for every method.

Without it grpc answers UNKNOWN ("Unexpected DecodeError"). The guard swaps each handler's request
deserializer for one that returns a :class:`MalformedRequest` instead of raising, and wraps the method so
that a malformed request is answered INVALID_ARGUMENT before the servicer sees it -- the service's own
methods, health checks and reflection alike (their servicers do not know the placeholder).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc

from maskdpo.server.edge.rpc import Ctx, abort_with
from maskdpo.server.errors import InvalidArgument

Behavior = Callable[[Any, Ctx], Any]


class MalformedRequest:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def _refuse_malformed(request: object, context: Ctx) -> None:
    if isinstance(request, MalformedRequest):
        error = InvalidArgument("request", f"the message does not parse as protobuf ({request.error})")
        await abort_with(context, error)


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return MalformedRequest(exc)

    return parse


def _guard_unary_request(behavior: Behavior) -> Behavior:
    """A unary-request method (unary or server-streaming, coroutine or async generator) that refuses first."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Ctx) -> AsyncIterator[Any]:
            await _refuse_malformed(request, context)
            async with aclosing(behavior(request, context)) as items:
                async for item in items:
                    yield item

        return stream

    async def call(request: Any, context: Ctx) -> Any:
        await _refuse_malformed(request, context)
        return await behavior(request, context)

    return call


def _guard_request_stream(behavior: Behavior) -> Behavior:
    """A client-streaming method whose request iterator refuses a malformed message when it reaches it."""

    async def checked(requests: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
        async for request in requests:
            await _refuse_malformed(request, context)
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def stream(requests: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
            async with aclosing(behavior(checked(requests, context), context)) as items:
                async for item in items:
                    yield item

        return stream

    async def call(requests: AsyncIterator[Any], context: Ctx) -> Any:
        return await behavior(checked(requests, context), context)

    return call


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Turns undecodable request bytes into INVALID_ARGUMENT instead of grpc's UNKNOWN."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        kwargs = {
            "request_deserializer": _safe(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_guard_unary_request(handler.unary_unary), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_guard_unary_request(handler.unary_stream), **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(_guard_request_stream(handler.stream_unary), **kwargs)
        return grpc.stream_stream_rpc_method_handler(_guard_request_stream(handler.stream_stream), **kwargs)
