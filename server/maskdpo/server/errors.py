"""The service's exception tree, mapped one-to-one onto gRPC status codes and ErrorInfo reasons.

Every error a client can see is a :class:`ServiceError` subclass. Each class has exactly one ``reason``
(the ``maskdpo.v1.ErrorReason`` name sent in ``google.rpc.ErrorInfo``) and one gRPC code. Anything else
raised inside a handler is a bug: it is logged with an incident id and reaches the client as
``INTERNAL_ERROR`` carrying only that id, never a stack trace.

    ServiceError
    ├── InvalidArgument        INVALID_ARGUMENT   INVALID_FIELD
    │   ├── TextTooLong        INVALID_ARGUMENT   TEXT_TOO_LONG
    │   └── PromptTooLong      INVALID_ARGUMENT   PROMPT_TOO_LONG
    ├── BatchTooLarge          RESOURCE_EXHAUSTED BATCH_TOO_LARGE
    ├── QueueFull              RESOURCE_EXHAUSTED QUEUE_FULL
    ├── Unauthenticated        UNAUTHENTICATED    UNAUTHENTICATED
    ├── PermissionDenied       PERMISSION_DENIED  PERMISSION_DENIED
    ├── NotFound               NOT_FOUND          NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS     ALREADY_EXISTS
    ├── Conflict               ABORTED            CONFLICT
    ├── FailedPrecondition     FAILED_PRECONDITION FAILED_PRECONDITION
    │   └── CheckpointRejected FAILED_PRECONDITION CHECKPOINT_REJECTED
    ├── NotImplementedYet      UNIMPLEMENTED      NOT_IMPLEMENTED
    ├── DeadlineExceeded       DEADLINE_EXCEEDED  DEADLINE_EXCEEDED
    ├── Cancelled              CANCELLED          CANCELLED
    ├── Unavailable            UNAVAILABLE        UNAVAILABLE
    └── InternalError          INTERNAL           INTERNAL_ERROR
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger("maskdpo.server")
DOMAIN = "maskdpo.v1"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ServiceError(Exception):
    """Base of every error the service reports to clients."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    reason: ClassVar[str] = "ERROR_REASON_UNSPECIFIED"

    details: tuple[Message, ...] = ()
    """Messages sent in the status details after the ErrorInfo (e.g. the MemoryPlan of a refused round)."""

    def __init__(self, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = {k: str(v) for k, v in metadata.items()}

    def with_details(self, *details: Message) -> Self:
        """This error, sending ``details`` after its ErrorInfo."""
        self.details = details
        return self

    def to_status(self) -> status_pb2.Status:
        """The google.rpc.Status carried in the call's trailing metadata: the ErrorInfo, then ``details``."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        status.details.add().Pack(info)
        for detail in self.details:
            status.details.add().Pack(detail)
        return status

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((STATUS_DETAILS_KEY, self.to_status().SerializeToString()),)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling (e.g. raised in a Ray actor) must not call a subclass's __init__ with the message alone.
        return (_restore, (type(self), self.args, self.__dict__))


def raised_by_actor(exc: BaseException) -> BaseException:
    """The exception an actor raised, for one that Ray re-raised on this side (Ray keeps it as ``cause``);
    ``exc`` itself otherwise. This is how every ServiceError crosses Ray: raised in the actor, pickled,
    re-raised here unchanged."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def to_service_error(exc: BaseException) -> ServiceError:
    """The ServiceError to report for ``exc`` (raised here or in an actor). Anything else is a bug: it is
    logged with an incident id and reported as INTERNAL_ERROR carrying only that id."""
    original = raised_by_actor(exc)
    if isinstance(original, ServiceError):
        return original
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s: unexpected %s", incident, type(exc).__name__, exc_info=exc)
    return InternalError(incident)


def _restore(cls: type[ServiceError], args: tuple[Any, ...], state: dict[str, Any]) -> ServiceError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidArgument(ServiceError):
    """A request field is missing or malformed; ``field`` names it."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_FIELD"

    def __init__(self, field: str, message: str, **metadata: object) -> None:
        super().__init__(f"{field}: {message}", field=field, **metadata)
        self.field = field

    def within(self, prefix: str) -> InvalidArgument:
        """The same error for a request nested at ``prefix`` (``requests[2].``): the field gets the prefix."""
        if not prefix:
            return self
        error = _restore(type(self), self.args, dict(self.__dict__))
        assert isinstance(error, InvalidArgument)
        error.field = prefix + self.field
        error.message = prefix + self.message
        error.args = (error.message,)
        error.metadata = {**self.metadata, "field": error.field}
        return error


class TextTooLong(InvalidArgument):
    """A text field exceeds the server's length limit."""

    reason = "TEXT_TOO_LONG"

    def __init__(self, field: str, length: int, limit: int) -> None:
        super().__init__(field, f"{length} characters, the limit is {limit}", limit=limit, length=length)


class PromptTooLong(InvalidArgument):
    """A prompt does not fit the model's context."""

    reason = "PROMPT_TOO_LONG"

    def __init__(self, field: str, tokens: int, limit: int) -> None:
        super().__init__(field, f"{tokens} tokens, the model takes at most {limit}", limit=limit, tokens=tokens)


class BatchTooLarge(ServiceError):
    """A batch holds more items than the server accepts in one call."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "BATCH_TOO_LARGE"

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field}: {size} items, the limit is {limit}", field=field, limit=limit, size=size)


class QueueFull(ServiceError):
    """The work queue is full; retry after ``retry_after_s`` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "QUEUE_FULL"

    def __init__(self, what: str, retry_after_s: float) -> None:
        super().__init__(f"{what} queue is full; retry in {retry_after_s:.1f} s", retry_after_s=retry_after_s)


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(self, resource: str, message: str | None = None) -> None:
        super().__init__(message or f"{resource} not found", resource=resource)


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"

    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} already exists", resource=resource)


class Conflict(ServiceError):
    """A conflicting operation is running (a second round or deploy on one model)."""

    code = grpc.StatusCode.ABORTED
    reason = "CONFLICT"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class CheckpointRejected(FailedPrecondition):
    """A checkpoint failed validation or verification and is not served."""

    reason = "CHECKPOINT_REJECTED"


class NotImplementedYet(ServiceError):
    """The method or option is not available in this server build or configuration."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "NOT_IMPLEMENTED"


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Cancelled(ServiceError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class Unavailable(ServiceError):
    """Shutting down, or a backend is not ready; safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class InternalError(ServiceError):
    """A bug. The message holds only an incident id; the server log holds the details."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL_ERROR"

    def __init__(self, incident: str) -> None:
        super().__init__(f"internal error (incident {incident}); the server log has the details",
                         incident=incident)


ALL_ERRORS: tuple[type[ServiceError], ...] = (
    InvalidArgument, TextTooLong, PromptTooLong, BatchTooLarge, QueueFull, Unauthenticated,
    PermissionDenied, NotFound, AlreadyExists, Conflict, FailedPrecondition, CheckpointRejected,
    NotImplementedYet, DeadlineExceeded, Cancelled, Unavailable, InternalError,
)


def reasons() -> Mapping[str, grpc.StatusCode]:
    """reason -> gRPC code, for documentation and the one-to-one test."""
    return {cls.reason: cls.code for cls in ALL_ERRORS}
