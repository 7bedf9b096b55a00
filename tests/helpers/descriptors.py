"""Service descriptors built in a test, for checks that need a method the contract does not have."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from maskdpo.v1 import policy_pb2


def service_without_roles() -> ServiceDescriptor:
    """``maskdpo.test.Unannotated``: ``Forgotten`` declares no policy, ``Unspecified`` declares one with
    ROLE_UNSPECIFIED, ``Declared`` declares the reader role."""
    proto = descriptor_pb2.FileDescriptorProto(name="maskdpo_test_unannotated.proto", package="maskdpo.test",
                                               syntax="proto3")
    proto.message_type.add(name="Empty")
    service = proto.service.add(name="Unannotated")
    for name in ("Forgotten", "Unspecified", "Declared"):
        service.method.add(name=name, input_type=".maskdpo.test.Empty", output_type=".maskdpo.test.Empty")
    service.method[1].options.Extensions[policy_pb2.policy].retry_safe = True
    service.method[2].options.Extensions[policy_pb2.policy].role = policy_pb2.ROLE_READER
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool.FindServiceByName("maskdpo.test.Unannotated")
