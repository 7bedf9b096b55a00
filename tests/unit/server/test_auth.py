"""Roles per method: every RPC of the contract needs a role; operators may do what readers may."""

from __future__ import annotations

import pytest
from google.longrunning import operations_proto_pb2

from maskdpo.server.edge.auth import TokenTable, authorize, required_role
from maskdpo.server.errors import PermissionDenied, Unauthenticated
from maskdpo.server.settings import Role
from maskdpo.v1 import alignment_pb2, factuality_pb2, generation_pb2, models_pb2


def _methods() -> list[str]:
    out = []
    for module in (alignment_pb2, factuality_pb2, generation_pb2, models_pb2, operations_proto_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            out += [f"/{service.full_name}/{m.name}" for m in service.methods]
    return out


OPERATOR_ONLY = {
    "/maskdpo.v1.AlignmentService/CreateAlignmentRound",
    "/maskdpo.v1.AlignmentService/CancelAlignmentRound",
    "/maskdpo.v1.ModelService/DeployCheckpoint",
    "/maskdpo.v1.FactualityService/CreateKnowledgeSource",
    "/maskdpo.v1.FactualityService/DeleteKnowledgeSource",
    "/google.longrunning.Operations/CancelOperation",
    "/google.longrunning.Operations/DeleteOperation",
}


@pytest.mark.parametrize("method", _methods())
def test_every_method_against_every_role(method: str) -> None:
    table = TokenTable({"r": Role.READER, "o": Role.OPERATOR})
    assert required_role(method) is (Role.OPERATOR if method in OPERATOR_ONLY else Role.READER)
    with pytest.raises(Unauthenticated):
        authorize(table, method, {})
    with pytest.raises(Unauthenticated):
        authorize(table, method, {"authorization": "Bearer nope"})
    authorize(table, method, {"authorization": "Bearer o"})
    if method in OPERATOR_ONLY:
        with pytest.raises(PermissionDenied):
            authorize(table, method, {"authorization": "Bearer r"})
    else:
        authorize(table, method, {"authorization": "Bearer r"})


def test_health_and_reflection_are_open() -> None:
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert required_role("/some.Unknown/Method") is Role.OPERATOR


def test_malformed_headers() -> None:
    table = TokenTable({"tok": Role.READER})
    method = "/maskdpo.v1.FactualityService/Score"
    for header in ("tok", "Basic tok", "Bearer ", "Bearer  "):
        with pytest.raises(Unauthenticated):
            authorize(table, method, {"authorization": header})
    authorize(table, method, {"authorization": "bearer tok"})
