"""Every RPC the server offers to clients, read from the service descriptors, and a raw-bytes caller.

The caller sends bytes exactly as given (no client-side serializer) and returns the call's status code,
so fuzzed and malformed payloads reach the server untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.longrunning import operations_proto_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from maskdpo.server.edge.auth import required_role
from maskdpo.server.settings import Role
from maskdpo.v1 import alignment_pb2, factuality_pb2, generation_pb2, models_pb2

SERVICES = (
    factuality_pb2.DESCRIPTOR.services_by_name["FactualityService"],
    generation_pb2.DESCRIPTOR.services_by_name["GenerationService"],
    models_pb2.DESCRIPTOR.services_by_name["ModelService"],
    alignment_pb2.DESCRIPTOR.services_by_name["AlignmentService"],
    operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"],
)


@dataclass(frozen=True)
class Rpc:
    """One method: its full path, request type and shape, and the role it needs."""

    path: str
    request: Descriptor
    streaming: bool
    operator_only: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.request)


def all_rpcs() -> list[Rpc]:
    rpcs = []
    for service in SERVICES:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            rpcs.append(
                Rpc(path, method.input_type, method.server_streaming, required_role(path) is Role.OPERATOR)
            )
    return rpcs


def call_raw(
    channel: grpc.Channel, rpc: Rpc, payload: bytes, token: str, timeout: float
) -> tuple[grpc.StatusCode, list[bytes]]:
    """(status, response messages as bytes) of one call with ``payload`` as the request's bytes."""
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if rpc.streaming:
            return grpc.StatusCode.OK, list(
                channel.unary_stream(rpc.path)(payload, metadata=metadata, timeout=timeout)
            )
        return grpc.StatusCode.OK, [
            channel.unary_unary(rpc.path)(payload, metadata=metadata, timeout=timeout)
        ]
    except grpc.RpcError as error:
        return error.code(), []
