"""The contract's method policies (maskdpo.v1.policies): every offered method has a role, the roles and
retry safety follow what the methods do, and the offered services are all the contract's services."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from google.longrunning import operations_proto_pb2
from google.protobuf.descriptor import MethodDescriptor

import maskdpo.v1
from maskdpo.v1 import policies, policy_pb2
from tests.helpers.descriptors import service_without_roles

# Verbs of the methods that create, change or delete something. A method needs the operator role exactly
# when its name starts with one; a new mutating verb belongs here (this test then says so).
MUTATING_VERBS = ("Create", "Delete", "Cancel", "Deploy")
# Verbs of plain reads: a client may always resend them.
READ_VERBS = ("Get", "List", "Wait")


def _policy(method: MethodDescriptor) -> policy_pb2.MethodPolicy:
    found = policies.declared(method)
    assert found is not None
    return found


def test_the_offered_services_are_every_service_of_the_contract_and_operations() -> None:
    modules = [importlib.import_module(f"maskdpo.v1.{m.name}")
               for m in pkgutil.iter_modules(maskdpo.v1.__path__) if m.name.endswith("_pb2")]
    contract = {s.full_name for module in [*modules, operations_proto_pb2]
                for s in module.DESCRIPTOR.services_by_name.values()}
    assert len(policies.SERVICES) == len(contract)
    assert {s.full_name for s in policies.SERVICES} == contract


def test_every_offered_method_declares_a_role() -> None:
    assert policies.undeclared() == []
    assert len(list(policies.methods())) == 24


def test_operator_methods_are_exactly_the_mutating_ones() -> None:
    for method in policies.methods():
        mutating = method.name.startswith(MUTATING_VERBS)
        expected = policy_pb2.ROLE_OPERATOR if mutating else policy_pb2.ROLE_READER
        assert _policy(method).role == expected, policies.path_of(method)


def test_only_side_effect_free_methods_are_retry_safe() -> None:
    safe = policies.retry_safe_methods()
    assert all(_policy(m).role == policy_pb2.ROLE_READER for m in safe)
    reads = [m for m in policies.methods() if m.name.startswith(READ_VERBS)]
    assert set(map(policies.path_of, reads)) <= set(map(policies.path_of, safe))
    assert {m.name for m in safe} - {m.name for m in reads} == {"Score", "BatchScore"}


def test_operations_policies_cover_exactly_the_operations_methods() -> None:
    operations = operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"]
    assert set(policies.OPERATIONS_POLICIES) == {m.name for m in operations.methods}


def test_policy_of_by_path() -> None:
    assert policies.policy_of("/maskdpo.v1.ModelService/DeployCheckpoint").role == policy_pb2.ROLE_OPERATOR
    assert policies.policy_of("/google.longrunning.Operations/WaitOperation").retry_safe
    for unknown in ("/maskdpo.v1.ModelService/Nope", "/some.Unknown/Method", "/grpc.health.v1.Health/Check"):
        with pytest.raises(policies.UndeclaredPolicy, match="declared role"):
            policies.policy_of(unknown)


def test_methods_without_a_role_are_found() -> None:
    service = service_without_roles()
    assert policies.undeclared([service]) == ["/maskdpo.test.Unannotated/Forgotten",
                                              "/maskdpo.test.Unannotated/Unspecified"]
    assert policies.undeclared([*policies.SERVICES, service]) == policies.undeclared([service])
