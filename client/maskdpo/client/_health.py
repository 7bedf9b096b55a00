"""A minimal client for the standard ``grpc.health.v1.Health/Check`` method.

The SDK depends only on grpcio and protobuf, not on grpcio-health-checking, so the two messages it needs
are declared here with the protobuf runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_FILE = "maskdpo_client_health_check.proto"


def _messages() -> tuple[type[Any], type[Any]]:
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name=_FILE, package="grpc.health.v1", syntax="proto3")
    req = proto.message_type.add(name="HealthCheckRequest")
    req.field.add(name="service", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    resp = proto.message_type.add(name="HealthCheckResponse")
    resp.field.add(name="status", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
                   label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool.Add(proto)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")))


HealthCheckRequest, HealthCheckResponse = _messages()
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class _Stub:
    def __init__(self, channel: Any) -> None:
        self.Check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=HealthCheckRequest.SerializeToString,
            response_deserializer=HealthCheckResponse.FromString,
        )


def health_check_request(channel: grpc.Channel | Any, service: str
                         ) -> tuple[_Stub, Any, Callable[[int], str]]:
    """(stub, request, status-name function) for a health check on ``channel``."""
    return _Stub(channel), HealthCheckRequest(service=service), lambda s: STATUS_NAMES.get(s, str(s))
