"""Both SDK clients cover the whole contract, with the same methods and parameters.

Every RPC the server offers (``maskdpo.v1.policies.SERVICES``) has a method in ``Client`` and in
``AsyncClient``, named by one rule: the RPC's name in snake_case, with ``AlignmentRound`` shortened to
``round`` (``CreateAlignmentRound`` -> ``create_round``, ``ListAlignmentRounds`` -> ``list_rounds``).
"""

from __future__ import annotations

import inspect
import re

import pytest

from maskdpo.client import AsyncClient, Client
from maskdpo.v1 import policies

SHORTER = {"AlignmentRound": "Round"}
"""Parts of RPC names the SDK shortens in its method names."""


def sdk_name(rpc: str) -> str:
    for long, short in SHORTER.items():
        rpc = rpc.replace(long, short)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


RPCS = [policies.path_of(m) for m in policies.methods()]


def test_the_naming_rule() -> None:
    assert sdk_name("CreateAlignmentRound") == "create_round"
    assert sdk_name("ListAlignmentRounds") == "list_rounds"
    assert sdk_name("BatchScore") == "batch_score"


@pytest.mark.parametrize("path", RPCS)
def test_every_rpc_has_a_method_in_both_clients(path: str) -> None:
    name = sdk_name(path.rsplit("/", 1)[1])
    assert name in public_methods(Client), f"Client has no {name}() for {path}"
    assert name in public_methods(AsyncClient), f"AsyncClient has no {name}() for {path}"


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) == set(asynchronous)
    for name, signature in sync.items():
        assert list(signature.parameters.values()) == list(asynchronous[name].parameters.values()), name


def test_async_methods_are_awaitable_or_async_iterators() -> None:
    for name in public_methods(AsyncClient):
        member = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name
