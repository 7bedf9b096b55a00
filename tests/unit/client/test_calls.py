"""What the SDK clients send and return, against stand-in stubs (no server): paged lists are followed to
the end, resource names are completed from bare ids, and both clients send the same requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from google.longrunning import operations_proto_pb2
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from maskdpo.client import AsyncClient, Client, Judging, Knowledge
from maskdpo.v1 import factuality_pb2, generation_pb2


class Stub:
    """Answers every method with the next of its canned responses and records the requests."""

    def __init__(self, replies: dict[str, list[Message]], asynchronous: bool) -> None:
        self.replies, self.asynchronous = replies, asynchronous
        self.sent: list[tuple[str, Message]] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Message, **_: Any) -> Any:
            copy = type(request)()
            copy.CopyFrom(request)  # as sent: the client may reuse the request for the next page
            self.sent.append((method, copy))
            reply = self.replies[method].pop(0)
            if not self.asynchronous:
                return reply

            async def later() -> Message:
                return reply
            return later()
        return call


def sources(*names: str, next_page: str = "") -> factuality_pb2.ListKnowledgeSourcesResponse:
    return factuality_pb2.ListKnowledgeSourcesResponse(
        knowledge_sources=[factuality_pb2.KnowledgeSource(name=n) for n in names], next_page_token=next_page)


async def run(client: Client | AsyncClient, method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(client, method)(*args, **kwargs)
    return await result if isinstance(client, AsyncClient) else result


@pytest.fixture(params=[Client, AsyncClient])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client | AsyncClient]:
    """A client of each kind, on a channel it never uses (its stubs are replaced)."""
    made: Client | AsyncClient = request.param("127.0.0.1:1")
    yield made
    if isinstance(made, AsyncClient):
        await made.close()
    else:
        made.close()


def stub(client: Client | AsyncClient, service: str, replies: dict[str, list[Message]]) -> Stub:
    """Replace the client's stub of ``service`` ("factuality", "operations", ...) by a stand-in."""
    fake = Stub(replies, asynchronous=isinstance(client, AsyncClient))
    setattr(client, service, fake)
    return fake


async def test_lists_follow_every_page(client: Client | AsyncClient) -> None:
    fake = stub(client, "factuality", {"ListKnowledgeSources": [sources("knowledgeSources/a", next_page="1"),
                                                                sources("knowledgeSources/b")]})
    listed = await run(client, "list_knowledge_sources")
    assert [s.name for s in listed] == ["knowledgeSources/a", "knowledgeSources/b"]
    assert [request.page_token for _, request in fake.sent] == ["", "1"]  # type: ignore[attr-defined]


async def test_knowledge_sources_by_id_or_name(client: Client | AsyncClient) -> None:
    source = factuality_pb2.KnowledgeSource(name="knowledgeSources/bios")
    fake = stub(client, "factuality", {"GetKnowledgeSource": [source, source], "CreateKnowledgeSource": [source],
                                       "DeleteKnowledgeSource": [factuality_pb2.DeleteKnowledgeSourceResponse()]})
    assert await run(client, "get_knowledge_source", "bios") == source
    assert await run(client, "get_knowledge_source", "knowledgeSources/bios") == source
    assert await run(client, "delete_knowledge_source", "bios") is None
    assert await run(client, "create_knowledge_source", "bios", facts=[("Ada", "born", "1901")],
                     passages=[("Ada", "Ada was born in 1901.")]) == source
    assert [(m, getattr(r, "name", "")) for m, r in fake.sent[:3]] == [
        ("GetKnowledgeSource", "knowledgeSources/bios"), ("GetKnowledgeSource", "knowledgeSources/bios"),
        ("DeleteKnowledgeSource", "knowledgeSources/bios")]
    created = fake.sent[3][1]
    assert isinstance(created, factuality_pb2.CreateKnowledgeSourceRequest)
    assert created.knowledge_source_id == "bios" and created.facts[0].value == "1901"
    assert created.passages[0].title == "Ada"


async def test_operations(client: Client | AsyncClient) -> None:
    done = operations_proto_pb2.Operation(name="operations/1", done=True)
    page = operations_proto_pb2.ListOperationsResponse(operations=[done])
    empty = empty_pb2.Empty()
    fake = stub(client, "operations", {"ListOperations": [page], "WaitOperation": [done],
                                       "CancelOperation": [empty], "DeleteOperation": [empty]})
    assert await run(client, "list_operations", filter="kind=round") == [done]
    assert await run(client, "wait_operation", "operations/1", timeout=5) == done
    assert await run(client, "cancel_operation", "operations/1") is None
    assert await run(client, "delete_operation", "operations/1") is None
    assert [m for m, _ in fake.sent] == ["ListOperations", "WaitOperation", "CancelOperation", "DeleteOperation"]
    assert fake.sent[0][1].filter == "kind=round"  # type: ignore[attr-defined]
    assert 0 < fake.sent[1][1].timeout.seconds <= 5  # type: ignore[attr-defined]


async def test_best_of_sends_the_count_and_how_to_judge(client: Client | AsyncClient) -> None:
    reply = generation_pb2.GenerateResponse(model="models/toy")
    fake = stub(client, "generation", {"Generate": [reply, reply]})
    judging = Judging(judge="toyworld", topic="Taia Zandal", knowledge=Knowledge(source="bios"))
    assert await run(client, "generate", "Tell me a bio of Taia Zandal.", best_of=4, judging=judging,
                     temperature=0.8) == reply
    assert await run(client, "generate", "Hi", n=2) == reply
    sent = [request for _, request in fake.sent]
    assert isinstance(sent[0], generation_pb2.GenerateRequest) and isinstance(sent[1], generation_pb2.GenerateRequest)
    assert sent[0].best_of == 4 and sent[0].sampling.temperature == pytest.approx(0.8)
    assert (sent[0].judging.judge, sent[0].judging.topic) == ("toyworld", "Taia Zandal")
    assert sent[0].judging.knowledge.knowledge_source == "knowledgeSources/bios"
    assert sent[1].best_of == 0 and not sent[1].HasField("judging") and sent[1].sampling.n == 2


def test_cli_generate_refuses_knowledge_without_a_judge(capsys: pytest.CaptureFixture[str]) -> None:
    from maskdpo.client.cli import main

    assert main(["generate", "Hi", "--topic", "Ada", "--target", "127.0.0.1:1"]) == 2
    assert "add --judge NAME (or --best-of N)" in capsys.readouterr().err


def test_cli_generate_refuses_rank_by_without_best_of(capsys: pytest.CaptureFixture[str]) -> None:
    from maskdpo.client.cli import main

    assert main(["generate", "Hi", "--judge", "kb", "--rank-by", "f1_at_k", "--target", "127.0.0.1:1"]) == 2
    assert "--rank-by orders the answers of --best-of N" in capsys.readouterr().err
