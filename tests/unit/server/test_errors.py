"""The exception tree maps one-to-one onto the contract's ErrorReason values and gRPC codes."""

from __future__ import annotations

import pickle

import grpc
from google.rpc import error_details_pb2, status_pb2

from maskdpo.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    ResourceExhaustedError,
    from_rpc_error,
)
from maskdpo.server import errors
from maskdpo.v1 import common_pb2, memory_plan_pb2


def test_every_reason_is_in_the_contract_and_used_once() -> None:
    declared = set(common_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    used = [cls.reason for cls in errors.ALL_ERRORS]
    assert len(used) == len(set(used)), "two exception classes share a reason"
    assert set(used) == declared


def test_each_reason_has_one_code() -> None:
    table = errors.reasons()
    assert table["TEXT_TOO_LONG"] is grpc.StatusCode.INVALID_ARGUMENT
    assert table["QUEUE_FULL"] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert table["CONFLICT"] is grpc.StatusCode.ABORTED
    assert table["INTERNAL_ERROR"] is grpc.StatusCode.INTERNAL


def test_status_details_carry_reason_and_metadata() -> None:
    error = errors.TextTooLong("answer.response", 30_000, 20_000)
    [(key, blob)] = error.trailing_metadata()
    assert key == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(blob)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("TEXT_TOO_LONG", "maskdpo.v1")
    assert info.metadata["field"] == "answer.response" and info.metadata["limit"] == "20000"


class _FakeRpcError(grpc.RpcError):
    def __init__(self, error: errors.ServiceError) -> None:
        self._error = error

    def code(self) -> grpc.StatusCode:
        return self._error.code

    def details(self) -> str:
        return self._error.message

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._error.trailing_metadata()


def test_sdk_rebuilds_typed_errors() -> None:
    typed = from_rpc_error(_FakeRpcError(errors.InvalidArgument("answer", "required")))
    assert isinstance(typed, InvalidArgumentError) and typed.field == "answer" and typed.reason == "INVALID_FIELD"
    full = from_rpc_error(_FakeRpcError(errors.QueueFull("judge", retry_after_s=2.5)))
    assert isinstance(full, ResourceExhaustedError) and full.retry_after_s == 2.5


def test_internal_error_hides_details() -> None:
    error = errors.InternalError("abc123")
    assert "abc123" in error.message and "Traceback" not in error.message


def test_every_error_survives_pickling() -> None:
    """Errors raised in Ray actors cross the process boundary pickled (QueueFull from a judge did not)."""
    samples = [errors.InvalidArgument("judge", "unknown"), errors.TextTooLong("answer.response", 9, 5),
               errors.PromptTooLong("prompt", 300, 255), errors.BatchTooLarge("items", 17, 16),
               errors.QueueFull("judge", 0.5), errors.Unauthenticated("no token"),
               errors.PermissionDenied("reader", required_role="operator"), errors.NotFound("rounds/x"),
               errors.AlreadyExists("knowledgeSources/x"), errors.Conflict("a deploy runs"),
               errors.FailedPrecondition("not done"), errors.CheckpointRejected("bad weights"),
               errors.NotImplementedYet("later"), errors.DeadlineExceeded("too slow"), errors.Cancelled("gone"),
               errors.Unavailable("stopping"), errors.InternalError("abc123")]
    assert {type(e) for e in samples} == set(errors.ALL_ERRORS)
    for error in samples:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.trailing_metadata() == error.trailing_metadata() and copy.__dict__ == error.__dict__


def test_details_follow_the_error_info_and_reach_the_sdk() -> None:
    plan = memory_plan_pb2.MemoryPlan(total_bytes=123, verdict="does not fit: ...")
    error = errors.FailedPrecondition("too big", needed="123").with_details(plan)
    assert pickle.loads(pickle.dumps(error)).details == (plan,)  # crosses Ray with its details
    status = status_pb2.Status.FromString(error.trailing_metadata()[0][1])
    assert status.details[0].Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and len(status.details) == 2
    typed = from_rpc_error(_FakeRpcError(error))
    assert isinstance(typed, FailedPreconditionError) and typed.metadata == {"needed": "123"}
    assert typed.detail(memory_plan_pb2.MemoryPlan) == plan
    assert from_rpc_error(_FakeRpcError(errors.NotFound("rounds/x"))).detail(memory_plan_pb2.MemoryPlan) is None
