"""WaitOperation's timeout: a non-negative Duration of any size limits the wait; a negative one is refused."""

from __future__ import annotations

import pytest
from google.longrunning import operations_proto_pb2
from google.protobuf import duration_pb2

from maskdpo.server.errors import InvalidArgument
from maskdpo.server.services.longrunning import MAX_WAIT_S, wait_limit


def request(seconds: int, nanos: int = 0) -> operations_proto_pb2.WaitOperationRequest:
    return operations_proto_pb2.WaitOperationRequest(
        name="operations/x", timeout=duration_pb2.Duration(seconds=seconds, nanos=nanos)
    )


def test_limit_is_the_timeout_or_the_default() -> None:
    assert wait_limit(operations_proto_pb2.WaitOperationRequest(name="operations/x")) == MAX_WAIT_S
    assert wait_limit(request(0)) == 0.0
    assert wait_limit(request(2, 500_000_000)) == pytest.approx(2.5)


def test_huge_timeouts_do_not_overflow() -> None:
    assert wait_limit(request(2**63 - 1, 999_999_999)) == pytest.approx(9.223e18, rel=1e-3)


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(-1, 0), (-(2**63), 0), (0, -1), (1, 1_000_000_000), (0, 2**31 - 1)]
)
def test_negative_or_malformed_timeouts_are_invalid(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        wait_limit(request(seconds, nanos))
    assert info.value.field == "timeout"
