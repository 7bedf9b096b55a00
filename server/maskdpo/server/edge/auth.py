"""Bearer-token authentication with two roles, as a grpc.aio server interceptor.

Clients send one ``authorization: Bearer <token>`` header (a call with two is refused: which one a proxy
or the server would read is ambiguous). Tokens map to roles in the settings; each method's role is
declared in the contract (``option (maskdpo.v1.policy)``, read through ``maskdpo.v1.policies``). Readers
may score, generate and read; operators may also start rounds, deploy checkpoints, cancel operations and
manage knowledge sources. A method the contract gives no role needs the strictest one (and the server
refuses to start while an offered method lacks one). Health checks and reflection need no token (probes
must work). Token comparison is constant-time. With no tokens configured, auth is off.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from maskdpo.server.errors import PermissionDenied, ServiceError, Unauthenticated
from maskdpo.v1 import policies, policy_pb2


class Role(enum.StrEnum):
    """What a bearer token may do (the token table's words for the contract's ``maskdpo.v1.Role``). An
    operator may do everything a reader may."""

    READER = "reader"
    OPERATOR = "operator"

    @classmethod
    def from_proto(cls, role: policy_pb2.Role.ValueType) -> Role:
        """The role a method's declared ``maskdpo.v1.Role`` names (``ROLE_READER`` -> READER); ValueError
        for ROLE_UNSPECIFIED or a number the contract does not define."""
        name = policy_pb2.Role.Name(role) if role in policy_pb2.Role.values() else ""
        try:
            return cls[name.removeprefix("ROLE_")]
        except KeyError:
            raise ValueError(f"maskdpo.v1.Role {name or role} names no role") from None


_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
STRICTEST = Role.OPERATOR


def required_role(method: str) -> Role | None:
    """The role a full method name needs, or None when it is open (health, reflection). Roles come from
    the contract (``maskdpo.v1.policies``); a method it does not declare needs the strictest role."""
    if method.startswith(_OPEN_PREFIXES):
        return None
    try:
        return Role.from_proto(policies.policy_of(method).role)
    except policies.UndeclaredPolicy:
        return STRICTEST


def _grants(role: Role, needed: Role) -> bool:
    return role is Role.OPERATOR or needed is Role.READER


class TokenTable:
    """Looks tokens up in constant time per entry (no early exit on the first match)."""

    def __init__(self, tokens: Mapping[str, Role]) -> None:
        self._entries = [(token.encode(), role) for token, role in tokens.items()]

    def role_of(self, token: str) -> Role | None:
        given = token.encode()
        found: Role | None = None
        for known, role in self._entries:
            if hmac.compare_digest(known, given):
                found = role
        return found


def authorize(table: TokenTable, method: str, metadata: Mapping[str, str]) -> None:
    """Raise Unauthenticated / PermissionDenied unless the call's token may call ``method``."""
    needed = required_role(method)
    if needed is None:
        return
    header = metadata.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token: send 'authorization: Bearer <token>'")
    role = table.role_of(token.strip())
    if role is None:
        raise Unauthenticated("unknown bearer token")
    if not _grants(role, needed):
        raise PermissionDenied(f"{method} needs the {needed.value} role; this token is a {role.value}",
                               required_role=needed.value)


def _rejecting_handler(handler: grpc.RpcMethodHandler, error: ServiceError) -> grpc.RpcMethodHandler:
    async def reject(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(error.code, error.message, trailing_metadata=error.trailing_metadata())

    async def reject_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(error.code, error.message, trailing_metadata=error.trailing_metadata())
        yield  # pragma: no cover - makes this an async generator

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(reject, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(reject_stream, **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(reject, **kwargs)
    return grpc.stream_stream_rpc_method_handler(reject_stream, **kwargs)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose token is missing, unknown or lacks the method's role."""

    def __init__(self, tokens: Mapping[str, Role]) -> None:
        self._table = TokenTable(tokens)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        pairs = [(k, v) for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)]
        metadata = dict(pairs)
        try:
            repeated = sum(k == "authorization" for k, _ in pairs) > 1
            if repeated and required_role(handler_call_details.method) is not None:
                raise Unauthenticated("more than one authorization header: send exactly one")
            authorize(self._table, handler_call_details.method, metadata)
        except ServiceError as error:
            return _rejecting_handler(handler, error)
        return handler
