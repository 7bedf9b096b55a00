"""Fuzzing every RPC of the service on a real server: well-typed messages at the edges, and malformed bytes.

Each maskdpo.v1 method and each google.longrunning.Operations method gets ``scale.fuzz_examples`` messages
built from its request descriptor (tests/reliability/proto_strategies.py) and as many malformed payloads
(tests/reliability/malformed_bytes.py), sent as raw bytes with an operator token (a quarter as a reader).
Every call must end with a status the error contract allows -- never INTERNAL or UNKNOWN, never
UNAVAILABLE (the server is neither shutting down nor missing a backend), PERMISSION_DENIED exactly when a
reader calls an operator method -- within its deadline, and the server must still be alive and SERVING.

Work a fuzzed message could start is kept small: a round on the served model is pointed at a start round
that does not exist (it fails validation in the round controller), any operation that still gets created
is cancelled at once, and generation lengths are bounded by the server (the model's context).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_proto_pb2
from google.protobuf import text_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from maskdpo.server.launcher import ServerProcess
from tests.reliability.conftest import OPERATOR, READER, Scale
from tests.reliability.fuzz_seeds import HINTS, MISSING_ROUND, SEEDS
from tests.reliability.malformed_bytes import malformed
from tests.reliability.proto_strategies import MessageStrategies, StringSizes
from tests.reliability.rpc_catalog import Rpc, all_rpcs, call_raw

MAX_TEXT_CHARS = 5000  # the toy server's MASKDPO_MAX_TEXT_CHARS
MAX_MESSAGE_BYTES = 1024 * 1024
CALL_TIMEOUT_S = 30.0
SERVED_MODEL = "toy"
# Every status the error contract (server/maskdpo/server/errors.py) lets a healthy server answer to a bad or odd request.
# Left out: INTERNAL and UNKNOWN (bugs), UNAVAILABLE (shutdown or a dead backend), UNAUTHENTICATED (the
# tokens are valid), CANCELLED (the client never cancels), and codes the contract does not use.
ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
    }
)
RPCS = all_rpcs()
STRATEGIES = MessageStrategies(HINTS, StringSizes(over_limit=MAX_TEXT_CHARS + 1))
TOKENS = st.sampled_from([OPERATOR, OPERATOR, OPERATOR, READER])


class Tally:
    """What the fuzzing sent and what came back, for the summary line."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.by_method: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.operations_cancelled = 0
        self.started = time.monotonic()

    def add(self, method: str, code: grpc.StatusCode) -> None:
        self.statuses[code.name] += 1
        self.by_method[method][code.name] += 1

    def summary(self) -> str:
        lines = [f"  {name}: {dict(counts.most_common())}" for name, counts in sorted(self.by_method.items())]
        return "\n".join(
            [
                f"fuzz: {sum(self.statuses.values())} requests over {len(self.by_method)} methods in "
                f"{time.monotonic() - self.started:.0f} s, statuses {dict(self.statuses.most_common())}, "
                f"operations created and cancelled: {self.operations_cancelled}",
                *lines,
            ]
        )


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    counts = Tally()
    yield counts
    print(f"\n{counts.summary()}")


@pytest.fixture(scope="module")
def channel(serving_toy_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(serving_toy_server.target) as opened:
        yield opened


class Brief:
    """A drawn request with a short repr: hypothesis prints a failing example, and some are a megabyte."""

    def __init__(self, payload: bytes, shown: str) -> None:
        self.payload = payload
        self.shown = shown

    def __repr__(self) -> str:
        shown = self.shown if len(self.shown) <= 2000 else f"{self.shown[:1200]} ... {self.shown[-600:]}"
        return f"<{len(self.payload)} bytes: {shown}>"


def fuzz_settings(scale: Scale) -> settings:
    return settings(
        max_examples=scale.fuzz_examples,
        deadline=None,
        derandomize=not scale.full,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )


def contained(rpc: Rpc, message: Message) -> Message:
    """The message, with a round on the served model pointed at a start round that does not exist."""
    if rpc.name == "CreateAlignmentRound" and message.config.model.removeprefix("models/") == SERVED_MODEL:
        message.config.start_from_round = MISSING_ROUND
    return message


def requests(rpc: Rpc) -> st.SearchStrategy[Message]:
    """Messages built from scratch, and the RPC's seed with a few fields changed."""
    built = st.one_of(STRATEGIES.message(rpc.request), STRATEGIES.mutants(SEEDS[rpc.name]))
    return built.map(lambda message: contained(rpc, message))


@st.composite
def encoded(draw: st.DrawFn, messages: st.SearchStrategy[Message]) -> Brief:
    """A drawn message as bytes (built here, not by .map, so that a failing example prints briefly)."""
    message = draw(messages)
    return Brief(message.SerializeToString(), text_format.MessageToString(message, as_one_line=True))


@st.composite
def raw(draw: st.DrawFn, payloads: st.SearchStrategy[bytes]) -> Brief:
    payload = draw(payloads)
    return Brief(payload, repr(payload))


def cancel_started(channel: grpc.Channel, rpc: Rpc, responses: list[bytes], tally: Tally) -> None:
    """Cancel at once any operation a fuzzed call started (a round or a deploy)."""
    if rpc.name not in ("CreateAlignmentRound", "DeployCheckpoint") or not responses:
        return
    name = operations_proto_pb2.Operation.FromString(responses[0]).name
    cancel = channel.unary_unary(
        "/google.longrunning.Operations/CancelOperation",
        request_serializer=operations_proto_pb2.CancelOperationRequest.SerializeToString,
    )
    cancel(
        operations_proto_pb2.CancelOperationRequest(name=name),
        metadata=(("authorization", f"Bearer {OPERATOR}"),),
        timeout=CALL_TIMEOUT_S,
    )
    tally.operations_cancelled += 1


def send(channel: grpc.Channel, rpc: Rpc, payload: bytes, token: str, tally: Tally) -> None:
    code, responses = call_raw(channel, rpc, payload, token, CALL_TIMEOUT_S)
    tally.add(rpc.name, code)
    what = f"{rpc.path} answered {code.name} to {len(payload)} bytes"
    if len(payload) > MAX_MESSAGE_BYTES:  # the transport refuses it before auth or parsing
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, what
    elif token == READER and rpc.operator_only:
        assert code is grpc.StatusCode.PERMISSION_DENIED, f"{what} from a reader"
    else:
        assert code in ALLOWED, what
    cancel_started(channel, rpc, responses, tally)


def assert_healthy(server: ServerProcess, channel: grpc.Channel) -> None:
    assert server.process.poll() is None, f"the server died:\n{server.log.read_text()[-4000:]}"
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "maskdpo.v1.FactualityService", "maskdpo.v1.GenerationService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


# What each seed gets when sent as it is (in this order); every other seed succeeds.
SEED_STATUSES = {
    "DeployCheckpoint": grpc.StatusCode.INVALID_ARGUMENT,  # no such folder
    "CreateAlignmentRound": grpc.StatusCode.INVALID_ARGUMENT,  # no such start round
    **dict.fromkeys(
        (
            "GetAlignmentRound",
            "WatchAlignmentRound",
            "CancelAlignmentRound",
            "GetOperation",
            "CancelOperation",
            "DeleteOperation",
            "WaitOperation",
        ),
        grpc.StatusCode.NOT_FOUND,
    ),
}


def test_seeds_reach_the_methods_logic(channel: grpc.Channel, tally: Tally) -> None:
    """Every RPC has a seed, and each seed passes validation: mutants of it test one field at a time."""
    assert set(SEEDS) == {rpc.name for rpc in RPCS}
    by_name = {rpc.name: rpc for rpc in RPCS}
    for name, seed in SEEDS.items():
        code, _ = call_raw(channel, by_name[name], seed.SerializeToString(), OPERATOR, CALL_TIMEOUT_S)
        tally.add(name, code)
        assert code is SEED_STATUSES.get(name, grpc.StatusCode.OK), f"{name}: {code.name}"


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.path.removeprefix("/"))
def test_well_typed_messages(
    rpc: Rpc, channel: grpc.Channel, serving_toy_server: ServerProcess, scale: Scale, tally: Tally
) -> None:
    @fuzz_settings(scale)
    @given(request=encoded(requests(rpc)), token=TOKENS)
    def fuzz(request: Brief, token: str) -> None:
        send(channel, rpc, request.payload, token, tally)

    fuzz()
    assert_healthy(serving_toy_server, channel)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.path.removeprefix("/"))
def test_malformed_bytes(
    rpc: Rpc, channel: grpc.Channel, serving_toy_server: ServerProcess, scale: Scale, tally: Tally
) -> None:
    @fuzz_settings(scale)
    @given(request=raw(malformed(rpc.request, requests(rpc), MAX_MESSAGE_BYTES)), token=TOKENS)
    def fuzz(request: Brief, token: str) -> None:
        send(channel, rpc, request.payload, token, tally)

    fuzz()
    assert_healthy(serving_toy_server, channel)


PROBE_PAYLOADS = (b"\xff\xff\xff\x0f\x00", b"\x0a\x02\xff\xfe", b"\x0f", b"\x0a\x05ab")


def test_probes_refuse_malformed_bytes(channel: grpc.Channel, tally: Tally) -> None:
    """Health checks and reflection (not the service's own servicers) answer INVALID_ARGUMENT too."""
    methods = {
        "/grpc.health.v1.Health/Check": channel.unary_unary("/grpc.health.v1.Health/Check"),
        "/grpc.health.v1.Health/Watch": lambda payload, **kw: list(
            channel.unary_stream("/grpc.health.v1.Health/Watch")(payload, **kw)
        ),
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": lambda payload, **kw: list(
            channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(
                iter([payload]), **kw
            )
        ),
    }
    for path, method in methods.items():
        for payload in PROBE_PAYLOADS:
            with pytest.raises(grpc.RpcError) as info:
                method(payload, timeout=CALL_TIMEOUT_S)
            tally.add(path.rsplit("/", 1)[1], info.value.code())
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (path, payload)
            assert "does not parse" in info.value.details()
