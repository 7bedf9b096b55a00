"""The asyncio SDK client: the same methods as :class:`maskdpo.client.Client`, awaitable.

    async with AsyncClient("127.0.0.1:50051") as client:
        result = await client.score("...", knowledge=Knowledge(passages=[...]))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from maskdpo.client._channel import DEFAULT_TARGET, auth_metadata, channel_options, credentials
from maskdpo.client._client import DEFAULT_TIMEOUT_S
from maskdpo.client._health import health_check_request
from maskdpo.client._requests import Item, Knowledge, ScoreOptions, batch_score_request, score_request
from maskdpo.client.errors import from_rpc_error
from maskdpo.v1 import factuality_pb2, factuality_pb2_grpc

T = TypeVar("T")


class AsyncClient:
    """An asyncio connection to a maskdpo server; ``await client.close()`` (or ``async with``) when done."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 root_ca: Path | None = None, client_cert: Path | None = None, client_key: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        creds = credentials(tls, root_ca, client_cert, client_key)
        options = channel_options()
        self._channel = (grpc.aio.secure_channel(target, creds, options) if creds
                         else grpc.aio.insecure_channel(target, options))
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.factuality = factuality_pb2_grpc.FactualityServiceStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None) -> T:
        try:
            return await method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    async def score(self, response: str, *, knowledge: Knowledge | None = None, prompt: str = "",
                    topic: str = "", judge: str = "", options: ScoreOptions | None = None,
                    timeout: float | None = None) -> factuality_pb2.ScoreResponse:
        """Judge one answer (see :meth:`maskdpo.client.Client.score`)."""
        request = score_request(response, knowledge=knowledge, prompt=prompt, topic=topic, judge=judge,
                                options=options)
        return await self._call(self.factuality.Score, request, timeout)

    async def batch_score(self, items: Sequence[Item | str], *, knowledge: Knowledge | None = None,
                          judge: str = "", options: ScoreOptions | None = None,
                          timeout: float | None = None) -> factuality_pb2.BatchScoreResponse:
        """Judge many answers and aggregate metrics (see :meth:`maskdpo.client.Client.batch_score`)."""
        entries = [Item(i) if isinstance(i, str) else i for i in items]
        request = batch_score_request(entries, knowledge=knowledge, judge=judge, options=options)
        return await self._call(self.factuality.BatchScore, request, timeout)

    async def list_judges(self, timeout: float | None = None) -> factuality_pb2.ListJudgesResponse:
        return await self._call(self.factuality.ListJudges, factuality_pb2.ListJudgesRequest(), timeout)

    async def health(self, service: str = "", timeout: float | None = None) -> str:
        stub, request, name = health_check_request(self._channel, service)
        return name((await self._call(stub.Check, request, timeout)).status)
