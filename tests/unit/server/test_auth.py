"""Roles per method, read from the contract: every offered method needs a role; operators may do what
readers may; what the contract does not declare needs the strictest role, and the server will not start
while an offered method declares none."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdpo.server import app
from maskdpo.server.edge.auth import STRICTEST, TokenTable, authorize, required_role
from maskdpo.server.errors import PermissionDenied, Unauthenticated
from maskdpo.server.ownership import StartupError
from maskdpo.server.settings import Role, ServerSettings
from maskdpo.v1 import policies, policy_pb2
from tests.helpers.descriptors import service_without_roles

METHODS = [policies.path_of(m) for m in policies.methods()]
OPERATOR_ONLY = {p for p in METHODS if policies.policy_of(p).role == policy_pb2.ROLE_OPERATOR}
"""The contract's operator-only methods (tests/unit/test_policies.py checks they are the mutating ones)."""


def test_the_contract_has_readers_and_operators() -> None:
    assert OPERATOR_ONLY and set(METHODS) - OPERATOR_ONLY
    assert "/google.longrunning.Operations/CancelOperation" in OPERATOR_ONLY
    assert "/maskdpo.v1.FactualityService/CreateKnowledgeSource" in OPERATOR_ONLY


@pytest.mark.parametrize("method", METHODS)
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


def test_health_and_reflection_are_open_and_unknown_methods_need_the_strictest_role() -> None:
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert STRICTEST is Role.OPERATOR
    for unknown in ("/some.Unknown/Method", "/maskdpo.v1.FactualityService/Nope",
                    "/maskdpo.test.Unannotated/Forgotten"):
        assert required_role(unknown) is STRICTEST
        with pytest.raises(PermissionDenied):
            authorize(TokenTable({"r": Role.READER}), unknown, {"authorization": "Bearer r"})


def test_proto_roles_map_onto_token_roles() -> None:
    assert Role.from_proto(policy_pb2.ROLE_READER) is Role.READER
    assert Role.from_proto(policy_pb2.ROLE_OPERATOR) is Role.OPERATOR
    assert {Role.from_proto(v) for v in policy_pb2.Role.values() if v != policy_pb2.ROLE_UNSPECIFIED} == set(Role)
    for undefined in (policy_pb2.ROLE_UNSPECIFIED, 99):
        with pytest.raises(ValueError, match="names no role"):
            Role.from_proto(undefined)  # type: ignore[arg-type]


async def test_a_method_without_a_role_stops_the_server_from_starting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "SERVICES", (*policies.SERVICES, service_without_roles()))
    with pytest.raises(StartupError, match=r"declare no role: /maskdpo\.test\.Unannotated/Forgotten, "
                                           r"/maskdpo\.test\.Unannotated/Unspecified \("):
        await app.start_server(ServerSettings(data_dir=tmp_path / "var", port=0))
    assert not (tmp_path / "var").exists()  # refused before claiming the data folder or starting Ray


def test_malformed_headers() -> None:
    table = TokenTable({"tok": Role.READER})
    method = "/maskdpo.v1.FactualityService/Score"
    for header in ("tok", "Basic tok", "Bearer ", "Bearer  "):
        with pytest.raises(Unauthenticated):
            authorize(table, method, {"authorization": header})
    authorize(table, method, {"authorization": "bearer tok"})
