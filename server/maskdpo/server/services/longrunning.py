"""The standard google.longrunning.Operations service over the operation store.

Get / List (newest first; ``filter`` may be ``kind=deploy`` or ``kind=round``) / Cancel (a request the
worker honours at its next check) / Delete (finished ones only) / Wait (until done, the request's timeout
or the call's deadline, whichever comes first).
"""

from __future__ import annotations

import asyncio
import time

from google.longrunning import operations_pb2_grpc, operations_proto_pb2
from google.protobuf import empty_pb2

from maskdpo.server.edge.paging import page
from maskdpo.server.edge.rpc import Ctx, unary
from maskdpo.server.errors import InvalidArgument
from maskdpo.server.store.operations import OperationStore

WAIT_POLL_S = 0.2
MAX_WAIT_S = 3600.0


def wait_limit(request: operations_proto_pb2.WaitOperationRequest) -> float:
    """Seconds WaitOperation may wait: the request's timeout, or MAX_WAIT_S when it gives none.

    Read as a float: any int64 ``seconds`` is accepted (Duration.ToTimedelta overflows beyond about 2.7e5
    years), a negative duration or ``nanos`` out of range is an invalid argument.
    """
    if not request.HasField("timeout"):
        return MAX_WAIT_S
    seconds, nanos = int(request.timeout.seconds), int(request.timeout.nanos)
    if seconds < 0 or not 0 <= nanos <= 999_999_999:
        raise InvalidArgument("timeout", "must be >= 0 (nanos 0 to 999999999)")
    return seconds + nanos / 1e9


class OperationsServicer(operations_pb2_grpc.OperationsServicer):
    def __init__(self, store: OperationStore) -> None:
        self.store = store

    @unary
    async def GetOperation(self, request: operations_proto_pb2.GetOperationRequest,
                           context: Ctx) -> operations_proto_pb2.Operation:
        return await asyncio.to_thread(self.store.get, request.name)

    @unary
    async def ListOperations(self, request: operations_proto_pb2.ListOperationsRequest,
                             context: Ctx) -> operations_proto_pb2.ListOperationsResponse:
        kind = None
        if request.filter:
            key, _, value = request.filter.partition("=")
            if key.strip() != "kind" or not value.strip():
                raise InvalidArgument("filter", "supported: 'kind=<deploy|round>'")
            kind = value.strip()
        size, offset = page(request.page_size, request.page_token)
        ops, more = await asyncio.to_thread(self.store.page, kind, offset, size)
        return operations_proto_pb2.ListOperationsResponse(
            operations=ops, next_page_token=str(offset + size) if more else "")

    @unary
    async def CancelOperation(self, request: operations_proto_pb2.CancelOperationRequest,
                              context: Ctx) -> empty_pb2.Empty:
        await asyncio.to_thread(self.store.request_cancel, request.name)
        return empty_pb2.Empty()

    @unary
    async def DeleteOperation(self, request: operations_proto_pb2.DeleteOperationRequest,
                              context: Ctx) -> empty_pb2.Empty:
        await asyncio.to_thread(self.store.delete, request.name)
        return empty_pb2.Empty()

    @unary
    async def WaitOperation(self, request: operations_proto_pb2.WaitOperationRequest,
                            context: Ctx) -> operations_proto_pb2.Operation:
        limit = wait_limit(request)
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit, max(remaining - 0.05, 0.0))
        deadline = time.monotonic() + limit
        while True:
            op = await asyncio.to_thread(self.store.get, request.name)
            if op.done or time.monotonic() >= deadline:
                return op
            await asyncio.sleep(min(WAIT_POLL_S, max(deadline - time.monotonic(), 0.0)))
