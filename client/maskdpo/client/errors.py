"""Typed errors of the SDK: one exception class per ``maskdpo.v1.ErrorReason``.

Every failed call raises a :class:`MaskdpoError` subclass carrying the gRPC code, the server's message,
the ErrorInfo ``reason`` and its ``metadata`` (e.g. ``field`` for invalid arguments, ``retry_after_s`` for
a full queue), and any further status details (``error.detail(MemoryPlan)``: the plan of a round refused
for memory). Errors without ErrorInfo (e.g. a connection failure) map by gRPC code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
M = TypeVar("M", bound=Message)


class MaskdpoError(Exception):
    """Base of every error the SDK raises for a failed call."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "",
                 metadata: dict[str, str] | None = None, details: Sequence[any_pb2.Any] = ()) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}
        self.details = list(details)
        """The status details after the ErrorInfo, packed (e.g. the MemoryPlan of a refused round)."""

    def detail(self, message_type: type[M]) -> M | None:
        """The first detail of ``message_type``, unpacked; None when the error carries none."""
        for packed in self.details:
            message = message_type()
            if packed.Unpack(message):
                return message
        return None


class InvalidArgumentError(MaskdpoError):
    """The request is malformed; ``field`` names what to fix."""

    @property
    def field(self) -> str:
        return self.metadata.get("field", "")


class ResourceExhaustedError(MaskdpoError):
    """A batch is too large, or a queue is full (``retry_after_s`` says when to retry)."""

    @property
    def retry_after_s(self) -> float | None:
        value = self.metadata.get("retry_after_s")
        return float(value) if value else None


class UnauthenticatedError(MaskdpoError):
    """No token, or an unknown one."""


class PermissionDeniedError(MaskdpoError):
    """The token's role may not call this method."""


class NotFoundError(MaskdpoError):
    """A named resource does not exist."""


class AlreadyExistsError(MaskdpoError):
    """A resource with that id exists."""


class ConflictError(MaskdpoError):
    """A conflicting operation runs (ABORTED)."""


class FailedPreconditionError(MaskdpoError):
    """The resource's state does not allow the call (e.g. a rejected checkpoint)."""


class NotImplementedByServerError(MaskdpoError):
    """The server does not offer this method or option."""


class DeadlineExceededError(MaskdpoError):
    """The call's deadline passed; the server cancelled the work."""


class CancelledError(MaskdpoError):
    """The call was cancelled."""


class UnavailableError(MaskdpoError):
    """The server is unreachable, starting or shutting down; safe to retry."""


class InternalServerError(MaskdpoError):
    """A server bug; ``incident`` identifies it in the server log."""

    @property
    def incident(self) -> str:
        return self.metadata.get("incident", "")


_BY_CODE: dict[grpc.StatusCode, type[MaskdpoError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNIMPLEMENTED: NotImplementedByServerError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.INTERNAL: InternalServerError,
}


def from_rpc_error(error: grpc.RpcError) -> MaskdpoError:
    """The typed error for a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return from_status(status_pb2.Status.FromString(value), code, message)
    return _BY_CODE.get(code, MaskdpoError)(code, message)


def from_status(status: status_pb2.Status, code: grpc.StatusCode | None = None,
                message: str | None = None) -> MaskdpoError:
    """The typed error for a ``google.rpc.Status`` (e.g. a failed long-running operation's ``error``); ``code``
    and ``message`` default to the status's own."""
    if code is None:
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    reason, metadata, details = "", {}, []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if not reason and detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        else:
            details.append(detail)
    return _BY_CODE.get(code, MaskdpoError)(code, status.message if message is None else message, reason,
                                            metadata, details)
