"""Who may call each method the server offers, and whether a client may resend it: one owner for both.

Every rpc of a maskdpo.v1 service declares ``option (maskdpo.v1.policy) = {role: ..., retry_safe: ...}``
(policy.proto); this module reads those options from the descriptors. ``google.longrunning.Operations`` is
not our proto, so its methods' policies are declared here, in :data:`OPERATIONS_POLICIES`. The server's
auth, its service list, the SDK's retry configuration and the tests all read this module; it depends on
protobuf and googleapis-common-protos only, so the SDK may import it.

    from maskdpo.v1 import policies

    policies.policy_of("/maskdpo.v1.FactualityService/Score")      # MethodPolicy(role=ROLE_READER, ...)
    [policies.path_of(m) for m in policies.retry_safe_methods()]
    policies.undeclared()                                            # methods without a role: []
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache

from google.longrunning import operations_proto_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from maskdpo.v1 import alignment_pb2, factuality_pb2, generation_pb2, models_pb2, policy_pb2

MethodPolicy = policy_pb2.MethodPolicy

SERVICES: tuple[ServiceDescriptor, ...] = (
    factuality_pb2.DESCRIPTOR.services_by_name["FactualityService"],
    generation_pb2.DESCRIPTOR.services_by_name["GenerationService"],
    models_pb2.DESCRIPTOR.services_by_name["ModelService"],
    alignment_pb2.DESCRIPTOR.services_by_name["AlignmentService"],
    operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"],
)
"""Every service the server offers to authenticated callers (health and reflection are open and apart)."""

OPERATIONS_POLICIES: dict[str, MethodPolicy] = {
    "GetOperation": MethodPolicy(role=policy_pb2.ROLE_READER, retry_safe=True),
    "ListOperations": MethodPolicy(role=policy_pb2.ROLE_READER, retry_safe=True),
    "WaitOperation": MethodPolicy(role=policy_pb2.ROLE_READER, retry_safe=True),
    "CancelOperation": MethodPolicy(role=policy_pb2.ROLE_OPERATOR, retry_safe=False),
    "DeleteOperation": MethodPolicy(role=policy_pb2.ROLE_OPERATOR, retry_safe=False),
}
"""The policies of ``google.longrunning.Operations``, keyed by method name (its proto is not ours)."""

_OPERATIONS = operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"].full_name


class UndeclaredPolicy(LookupError):
    """A method with no declared role, or one the server does not offer."""


def path_of(method: MethodDescriptor) -> str:
    """The method's full path as gRPC names it: ``/maskdpo.v1.FactualityService/Score``."""
    return f"/{method.containing_service.full_name}/{method.name}"


def declared(method: MethodDescriptor) -> MethodPolicy | None:
    """The method's declared policy, or None when it declares no role."""
    if method.containing_service.full_name == _OPERATIONS:
        found = OPERATIONS_POLICIES.get(method.name)
    elif method.GetOptions().HasExtension(policy_pb2.policy):
        found = method.GetOptions().Extensions[policy_pb2.policy]
    else:
        found = None
    return found if found is not None and found.role != policy_pb2.ROLE_UNSPECIFIED else None


def methods(services: Iterable[ServiceDescriptor] = SERVICES) -> Iterator[MethodDescriptor]:
    """Every method of ``services``, in declaration order."""
    for service in services:
        yield from service.methods


def undeclared(services: Iterable[ServiceDescriptor] = SERVICES) -> list[str]:
    """The paths of the methods of ``services`` that declare no role (the server refuses to start)."""
    return [path_of(m) for m in methods(services) if declared(m) is None]


@cache
def _by_path() -> dict[str, MethodPolicy]:
    return {path_of(m): policy for m in methods() if (policy := declared(m)) is not None}


def policy_of(path: str) -> MethodPolicy:
    """The policy of an offered method by full path; raises :class:`UndeclaredPolicy` for a method the
    server does not offer or one without a declared role."""
    try:
        return _by_path()[path]
    except KeyError:
        raise UndeclaredPolicy(f"{path} is not an offered method with a declared role") from None


def retry_safe_methods() -> list[MethodDescriptor]:
    """The offered methods a client may resend after UNAVAILABLE."""
    return [m for m in methods() if (policy := declared(m)) is not None and policy.retry_safe]
