"""Every RPC the server offers to clients (``maskdpo.v1.policies``: the contract's services and
google.longrunning.Operations), with the role the contract declares for it, and a raw-bytes caller.

The caller sends bytes exactly as given (no client-side serializer) and returns the call's status code,
so fuzzed and malformed payloads reach the server untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from maskdpo.v1 import policies, policy_pb2


@dataclass(frozen=True)
class Rpc:
    """One method: its full path, request type and shape, and the role it needs."""

    path: str
    request: Descriptor
    client_streaming: bool
    server_streaming: bool
    operator_only: bool

    @property
    def service(self) -> str:
        return self.path.split("/")[1]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.request)


def all_rpcs() -> list[Rpc]:
    rpcs = []
    for method in policies.methods():
        path = policies.path_of(method)
        operator_only = policies.policy_of(path).role == policy_pb2.ROLE_OPERATOR
        rpcs.append(Rpc(path, method.input_type, method.client_streaming, method.server_streaming, operator_only))
    return rpcs


def call_raw(
    channel: grpc.Channel, rpc: Rpc, payload: bytes, token: str, timeout: float
) -> tuple[grpc.StatusCode, list[bytes]]:
    """(status, response messages as bytes) of one call with ``payload`` as the request's bytes."""
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if rpc.server_streaming:
            return grpc.StatusCode.OK, list(
                channel.unary_stream(rpc.path)(payload, metadata=metadata, timeout=timeout)
            )
        return grpc.StatusCode.OK, [
            channel.unary_unary(rpc.path)(payload, metadata=metadata, timeout=timeout)
        ]
    except grpc.RpcError as error:
        return error.code(), []
