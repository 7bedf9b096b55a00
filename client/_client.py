"""The synchronous SDK client.

    from maskdpo.client import Client, Knowledge

    with Client("127.0.0.1:50051", token="...") as client:
        result = client.score("Marie Curie was born in Warsaw in 1867.",
                              knowledge=Knowledge(passages=["Marie Curie (born 7 November 1867 in Warsaw) ..."]))
        for s in result.answer.sentences:
            print(s.label, s.text)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from maskdpo.client._channel import DEFAULT_TARGET, auth_metadata, channel_options, credentials
from maskdpo.client._health import health_check_request
from maskdpo.client._requests import Item, Knowledge, ScoreOptions, batch_score_request, score_request
from maskdpo.client.errors import from_rpc_error
from maskdpo.v1 import factuality_pb2, factuality_pb2_grpc

DEFAULT_TIMEOUT_S = 60.0


class Client:
    """A connection to a maskdpo server. Thread-safe; close it (or use ``with``) when done."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 root_ca: Path | None = None, client_cert: Path | None = None, client_key: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        creds = credentials(tls, root_ca, client_cert, client_key)
        options = channel_options()
        self._channel = (grpc.secure_channel(target, creds, options) if creds
                         else grpc.insecure_channel(target, options))
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.factuality = factuality_pb2_grpc.FactualityServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def score(self, response: str, *, knowledge: Knowledge | None = None, prompt: str = "", topic: str = "",
              judge: str = "", options: ScoreOptions | None = None,
              timeout: float | None = None) -> factuality_pb2.ScoreResponse:
        """Judge one answer: sentences with spans, labels, masks and per-answer metrics."""
        request = score_request(response, knowledge=knowledge, prompt=prompt, topic=topic, judge=judge,
                                options=options)
        result: factuality_pb2.ScoreResponse = self._call(self.factuality.Score, request, timeout)
        return result

    def batch_score(self, items: Sequence[Item | str], *, knowledge: Knowledge | None = None, judge: str = "",
                    options: ScoreOptions | None = None,
                    timeout: float | None = None) -> factuality_pb2.BatchScoreResponse:
        """Judge many answers and aggregate FactScore-style metrics (with bootstrap intervals)."""
        entries = [Item(i) if isinstance(i, str) else i for i in items]
        request = batch_score_request(entries, knowledge=knowledge, judge=judge, options=options)
        result: factuality_pb2.BatchScoreResponse = self._call(self.factuality.BatchScore, request, timeout)
        return result

    def list_judges(self, timeout: float | None = None) -> factuality_pb2.ListJudgesResponse:
        result: factuality_pb2.ListJudgesResponse = self._call(
            self.factuality.ListJudges, factuality_pb2.ListJudgesRequest(), timeout)
        return result

    def create_knowledge_source(self, source_id: str, *, passages: Sequence[Any] = (), facts: Sequence[Any] = (),
                                description: str = "", timeout: float | None = None
                                ) -> factuality_pb2.KnowledgeSource:
        """Register passages and/or facts under an id (operator role)."""
        from maskdpo.client._requests import fact, passage

        request = factuality_pb2.CreateKnowledgeSourceRequest(
            knowledge_source_id=source_id, description=description,
            passages=[passage(p) for p in passages], facts=[fact(f) for f in facts])
        result: factuality_pb2.KnowledgeSource = self._call(self.factuality.CreateKnowledgeSource, request,
                                                              timeout)
        return result

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The server's health status for ``service`` ("" = the whole server): "SERVING", ..."""
        stub, request, name = health_check_request(self._channel, service)
        return name(self._call(stub.Check, request, timeout).status)
