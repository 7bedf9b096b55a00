"""Auth and TLS end to end: every method of the contract against every kind of caller, token lookup in
constant time, TLS and mutual TLS with certificates made here, through the SDK and the CLI.

The auth matrix enumerates the methods and their roles from the contract (``maskdpo.v1.policies``: every
``maskdpo.v1`` service and ``google.longrunning.Operations``) and checks that the server exposes exactly
those (plus health and reflection, which need no token). Requests are empty messages: an allowed caller
may get any status except UNAUTHENTICATED, PERMISSION_DENIED, INTERNAL or UNKNOWN; an empty create or
deploy must start nothing.
"""

from __future__ import annotations

import base64
import hmac
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_proto_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from maskdpo.client import Client, Knowledge
from maskdpo.client.errors import MaskdpoError
from maskdpo.server.edge import auth
from maskdpo.server.edge.auth import TokenTable
from maskdpo.server.launcher import ServerProcess
from maskdpo.server.settings import Role
from tests.helpers.certs import CertificateAuthority
from tests.reliability.conftest import OPERATOR, READER, TOKENS_ENV
from tests.reliability.rpc_catalog import Rpc, all_rpcs

OPEN_SERVICES = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
CALL_TIMEOUT_S = 60.0
Metadata = tuple[tuple[str, str], ...]


def _bearer(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


REJECTED_CALLERS: dict[str, Metadata] = {
    "no token": (),
    "wrong token": (_bearer("not-a-configured-token"),),
    "Bearer without token": (("authorization", "Bearer"),),
    "Bearer and spaces": (("authorization", "Bearer   "),),
    "Basic scheme": (("authorization", "Basic " + base64.b64encode(f"x:{OPERATOR}".encode()).decode()),),
    "token without scheme": (("authorization", OPERATOR),),
    "two headers: reader, operator": (_bearer(READER), _bearer(OPERATOR)),
    "two headers: wrong, operator": (_bearer("not-a-configured-token"), _bearer(OPERATOR)),
}
NEVER_FOR_ALLOWED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                     grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


RPCS = all_rpcs()


def call_status(channel: grpc.Channel, rpc: Rpc, metadata: Metadata) -> grpc.StatusCode:
    """The status of calling ``rpc`` with an empty request (responses are read to the end and dropped)."""
    request_class = rpc.request_class()
    serializer = request_class.SerializeToString
    request = request_class()
    try:
        if rpc.client_streaming:
            factory = channel.stream_stream if rpc.server_streaming else channel.stream_unary
            result: Any = factory(rpc.path, request_serializer=serializer)(
                iter([request]), timeout=CALL_TIMEOUT_S, metadata=metadata)
        else:
            factory = channel.unary_stream if rpc.server_streaming else channel.unary_unary
            result = factory(rpc.path, request_serializer=serializer)(
                request, timeout=CALL_TIMEOUT_S, metadata=metadata)
        if rpc.server_streaming:
            for _ in result:
                pass
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _operation_names(channel: grpc.Channel) -> dict[str, bool]:
    """Every operation the server has: name -> done."""
    stub = channel.unary_unary("/google.longrunning.Operations/ListOperations",
                               request_serializer=operations_proto_pb2.ListOperationsRequest.SerializeToString,
                               response_deserializer=operations_proto_pb2.ListOperationsResponse.FromString)
    names: dict[str, bool] = {}
    token = ""
    while True:
        page = stub(operations_proto_pb2.ListOperationsRequest(page_size=100, page_token=token),
                    metadata=(_bearer(READER),), timeout=CALL_TIMEOUT_S)
        names.update({op.name: op.done for op in page.operations})
        token = page.next_page_token
        if not token:
            return names


@pytest.fixture(scope="module")
def channel(toy_server: ServerProcess) -> Iterator[grpc.Channel]:
    """A plain channel to the shared server; fails the module if an empty request started any work
    (and cancels what it started)."""
    with grpc.insecure_channel(toy_server.target) as chan:
        before = _operation_names(chan)
        yield chan
        started = {n: done for n, done in _operation_names(chan).items() if n not in before}
        cancel = chan.unary_unary("/google.longrunning.Operations/CancelOperation",
                                  request_serializer=operations_proto_pb2.CancelOperationRequest.SerializeToString)
        for name, done in started.items():
            if not done:
                cancel(operations_proto_pb2.CancelOperationRequest(name=name), metadata=(_bearer(OPERATOR),),
                       timeout=CALL_TIMEOUT_S)
        assert not started, f"empty requests started operations: {sorted(started)}"


def test_the_server_exposes_exactly_the_contract_and_open_probes(channel: grpc.Channel) -> None:
    exposed = set(ProtoReflectionDescriptorDatabase(channel).get_services())  # reflection: no token
    assert exposed == {r.service for r in RPCS} | OPEN_SERVICES
    health = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert health(b"", timeout=CALL_TIMEOUT_S) == b"\x08\x01"  # status: SERVING, without a token


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.path.removeprefix("/"))
def test_auth_matrix(channel: grpc.Channel, rpc: Rpc) -> None:
    wrong: dict[str, grpc.StatusCode] = {}
    for caller, metadata in REJECTED_CALLERS.items():
        status = call_status(channel, rpc, metadata)
        if status is not grpc.StatusCode.UNAUTHENTICATED:
            wrong[caller] = status
    reader = call_status(channel, rpc, (_bearer(READER),))
    if rpc.operator_only:
        if reader is not grpc.StatusCode.PERMISSION_DENIED:
            wrong["reader"] = reader
    elif reader in NEVER_FOR_ALLOWED:
        wrong["reader"] = reader
    operator = call_status(channel, rpc, (_bearer(OPERATOR),))
    if operator in NEVER_FOR_ALLOWED:
        wrong["operator"] = operator
    assert not wrong, f"{rpc.path}: unexpected statuses {wrong}"
    if rpc.path.endswith(("/CreateAlignmentRound", "/DeployCheckpoint")):
        assert operator is grpc.StatusCode.INVALID_ARGUMENT  # an empty request is refused, nothing starts


# --- constant-time token lookup ----------------------------------------------------------------------

TOKEN_LENGTH = 48


def _tokens(count: int) -> dict[str, Role]:
    return {f"{i:08d}".rjust(TOKEN_LENGTH, "k"): Role.READER if i % 2 else Role.OPERATOR for i in range(count)}


def test_token_lookup_compares_every_token_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = _tokens(5)
    known = [t.encode() for t in tokens]
    first, last = known[0].decode(), known[-1].decode()
    table = TokenTable(tokens)
    compared: list[bytes] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    for given, role in ((first, Role.OPERATOR), (last, tokens[last]), (first[:-1] + "x", None),
                        ("", None), ("z" * TOKEN_LENGTH, None)):
        compared.clear()
        assert table.role_of(given) is role
        assert compared == known, f"lookup of {given!r} did not compare against every token exactly once"


def _seconds_per_lookup(lookup: Any, given: str, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        lookup(given)
    return (time.perf_counter() - start) / repeats


def _spread(lookup: Any, candidates: list[str], rounds: int = 300, repeats: int = 10) -> float:
    """max / min over candidates of the median time of a lookup. Short batches in a shuffled order, so the
    machine's noise (other processes on a shared box) falls on every candidate alike."""
    order = random.Random(0)
    samples: dict[str, list[float]] = {c: [] for c in candidates}
    for _ in range(rounds):
        for candidate in order.sample(candidates, len(candidates)):
            samples[candidate].append(_seconds_per_lookup(lookup, candidate, repeats))
    medians = [statistics.median(s) for s in samples.values()]
    return max(medians) / min(medians)


def test_token_lookup_time_does_not_depend_on_which_token_matches() -> None:
    """A timing check with a built-in control: the same harness must see the leak of a lookup that stops at
    the first match (so the measurement has the power to fail), and must not see one in the real lookup.

    The prefix of a wrong token cannot be timed from Python (memcmp of 48 bytes is far below the
    interpreter's noise); that property is the structural test above (hmac.compare_digest everywhere)."""
    tokens = _tokens(256)
    names = list(tokens)
    candidates = [names[0], names[-1], names[0][:-1] + "x", "z" * TOKEN_LENGTH]
    entries = [(t.encode(), r) for t, r in tokens.items()]

    def early_exit(given: str) -> Role | None:
        encoded = given.encode()
        for known, role in entries:
            if hmac.compare_digest(known, encoded):
                return role
        return None

    control = _spread(early_exit, candidates)
    assert control > 5.0, f"the harness cannot see an early exit on this machine (spread {control:.2f})"
    spread = _spread(TokenTable(tokens).role_of, candidates)
    assert spread < 1.5, f"lookup time depends on the token: slowest / fastest = {spread:.2f}"


# --- TLS and mutual TLS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path              # the CA the servers' and the good client's certificates come from
    other_ca: Path        # an unrelated CA
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # a client certificate from the unrelated CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = CertificateAuthority.create("maskdpo test CA"), CertificateAuthority.create("unrelated CA")
    return Pki(ca=ca.write(folder / "ca")[0], other_ca=other.write(folder / "other-ca")[0],
               server=ca.issue("maskdpo server", hosts=["127.0.0.1", "localhost"]).write(folder / "server"),
               client=ca.issue("maskdpo client", client=True).write(folder / "client"),
               stranger=other.issue("stranger", client=True).write(folder / "stranger"))


@dataclass(frozen=True)
class TlsServers:
    tls: ServerProcess
    mutual: ServerProcess


@pytest.fixture(scope="module")
def tls_servers(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServers]:
    """Two cheap servers (kb judge, no model): TLS only, and TLS requiring client certificates."""
    args = ["--judge", "kb", "--default-judge", "kb"]
    tls_env = {**TOKENS_ENV, "MASKDPO_TLS_CERT": str(pki.server[0]), "MASKDPO_TLS_KEY": str(pki.server[1])}
    mutual_env = {**tls_env, "MASKDPO_TLS_CLIENT_CA": str(pki.ca)}
    with ThreadPoolExecutor(2) as pool:
        starts = [pool.submit(ServerProcess.start, tmp_path_factory.mktemp(name), args, env)
                  for name, env in (("tls", tls_env), ("mtls", mutual_env))]
        servers = [s.result() for s in starts]
    try:
        yield TlsServers(*servers)
    finally:
        for server in servers:
            server.stop()


TEXT = "Maren Holt was born in 1961."
FACT = ("Maren Holt", "born_in", "1961")
KNOWLEDGE = Knowledge(facts=[FACT])


def _score_code(server: ServerProcess, host: str = "127.0.0.1", **connection: Any) -> grpc.StatusCode:
    """OK when a Score call through the SDK succeeds (and judged the sentence), else the error's code."""
    try:
        with Client(f"{host}:{server.port}", token=READER, timeout=120, **connection) as client:
            result = client.score(TEXT, knowledge=KNOWLEDGE, topic="Maren Holt")
    except MaskdpoError as error:
        return error.code
    assert len(result.answer.sentences) == 1
    return grpc.StatusCode.OK


def test_tls(tls_servers: TlsServers, pki: Pki) -> None:
    server = tls_servers.tls
    assert _score_code(server, root_ca=pki.ca) is grpc.StatusCode.OK
    assert _score_code(server, host="localhost", root_ca=pki.ca) is grpc.StatusCode.OK
    with Client(server.target, root_ca=pki.ca, timeout=20) as client:
        assert client.health() == "SERVING"  # over TLS, without a token
    assert _score_code(server) is grpc.StatusCode.UNAVAILABLE  # plain text to a TLS port
    assert _score_code(server, root_ca=pki.other_ca) is grpc.StatusCode.UNAVAILABLE  # untrusted server
    assert _score_code(server, tls=True) is grpc.StatusCode.UNAVAILABLE  # system CAs do not know this one


def test_mutual_tls(tls_servers: TlsServers, pki: Pki) -> None:
    server = tls_servers.mutual
    client_cert, client_key = pki.client
    stranger_cert, stranger_key = pki.stranger
    assert _score_code(server, root_ca=pki.ca) is grpc.StatusCode.UNAVAILABLE  # no client certificate
    assert _score_code(server, root_ca=pki.ca, client_cert=stranger_cert,
                       client_key=stranger_key) is grpc.StatusCode.UNAVAILABLE
    assert _score_code(server, root_ca=pki.ca, client_cert=client_cert,
                       client_key=client_key) is grpc.StatusCode.OK
    with Client(server.target, root_ca=pki.ca, client_cert=client_cert, client_key=client_key,
                timeout=20) as client:
        assert client.health() == "SERVING"
    with pytest.raises(ValueError, match="go together"):
        Client(server.target, root_ca=pki.ca, client_cert=client_cert)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maskdpo.client.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_over_tls_and_mutual_tls(tls_servers: TlsServers, pki: Pki) -> None:
    health = _cli("health", "--target", tls_servers.tls.target, "--root-ca", pki.ca)
    assert (health.returncode, health.stdout.strip()) == (0, "SERVING"), health.stderr
    mutual = ["--target", tls_servers.mutual.target, "--root-ca", pki.ca, "--token", READER, "--timeout", "30"]
    scored = _cli("score", TEXT, "--fact", "|".join(FACT), "--topic", "Maren Holt", "--json", *mutual,
                  "--client-cert", pki.client[0], "--client-key", pki.client[1])
    assert scored.returncode == 0, scored.stderr
    assert '"sentences"' in scored.stdout
    refused = _cli("judges", *mutual)
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr, (refused.returncode, refused.stderr)
