"""The asyncio SDK client: the same methods as :class:`maskdpo.client.Client`, awaitable.

    async with AsyncClient("127.0.0.1:50051") as client:
        result = await client.score("...", knowledge=Knowledge(passages=[...]))

Each method builds its request with the same helpers as the synchronous client and documents itself
there; ``tests/unit/client/test_parity.py`` checks that both have a method for every RPC of the contract,
with the same parameters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_proto_pb2

from maskdpo.client._channel import DEFAULT_TARGET, Connection, channel_options, credentials
from maskdpo.client._client import DEFAULT_TIMEOUT_S, RoundState
from maskdpo.client._generation import (
    Judging,
    PromptLike,
    Sampling,
    batch_generate_request,
    deploy_request,
    generate_request,
    model_name,
    sampling_of,
)
from maskdpo.client._health import health_check_request
from maskdpo.client._requests import (
    FactLike,
    Item,
    Knowledge,
    PassageLike,
    ScoreOptions,
    batch_score_request,
    create_knowledge_source_request,
    knowledge_source_name,
    score_request,
    wait_request,
)
from maskdpo.client._rounds import reconnect_delay
from maskdpo.client.errors import from_rpc_error
from maskdpo.v1 import (
    alignment_pb2,
    factuality_pb2,
    generation_pb2,
    models_pb2,
)

T = TypeVar("T")


class AsyncClient(Connection):
    """An asyncio connection to a maskdpo server; ``await client.close()`` (or ``async with``) when done."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 root_ca: Path | None = None, client_cert: Path | None = None, client_key: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        creds = credentials(tls, root_ca, client_cert, client_key)
        options = channel_options()
        channel = (grpc.aio.secure_channel(target, creds, options) if creds
                   else grpc.aio.insecure_channel(target, options))
        super().__init__(channel, token, timeout)

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

    async def _list(self, method: Callable[..., Awaitable[Any]], request: Any, field: str,
                    timeout: float | None) -> list[Any]:
        items: list[Any] = []
        while True:
            page = await self._call(method, request, timeout)
            items.extend(getattr(page, field))
            if not page.next_page_token:
                return items
            request.page_token = page.next_page_token

    async def score(self, response: str, *, knowledge: Knowledge | None = None, prompt: str = "",
                    topic: str = "", judge: str = "", options: ScoreOptions | None = None,
                    timeout: float | None = None) -> factuality_pb2.ScoreResponse:
        request = score_request(response, knowledge=knowledge, prompt=prompt, topic=topic, judge=judge,
                                options=options)
        return await self._call(self.factuality.Score, request, timeout)

    async def batch_score(self, items: Sequence[Item | str], *, knowledge: Knowledge | None = None,
                          judge: str = "", options: ScoreOptions | None = None,
                          timeout: float | None = None) -> factuality_pb2.BatchScoreResponse:
        entries = [Item(i) if isinstance(i, str) else i for i in items]
        request = batch_score_request(entries, knowledge=knowledge, judge=judge, options=options)
        return await self._call(self.factuality.BatchScore, request, timeout)

    async def list_judges(self, timeout: float | None = None) -> factuality_pb2.ListJudgesResponse:
        return await self._call(self.factuality.ListJudges, factuality_pb2.ListJudgesRequest(), timeout)

    async def create_knowledge_source(self, source_id: str, *, passages: Sequence[PassageLike] = (),
                                      facts: Sequence[FactLike] = (), description: str = "",
                                      timeout: float | None = None) -> factuality_pb2.KnowledgeSource:
        request = create_knowledge_source_request(source_id, passages=passages, facts=facts,
                                                  description=description)
        return await self._call(self.factuality.CreateKnowledgeSource, request, timeout)

    async def get_knowledge_source(self, source: str,
                                   timeout: float | None = None) -> factuality_pb2.KnowledgeSource:
        request = factuality_pb2.GetKnowledgeSourceRequest(name=knowledge_source_name(source))
        return await self._call(self.factuality.GetKnowledgeSource, request, timeout)

    async def list_knowledge_sources(self, timeout: float | None = None) -> list[factuality_pb2.KnowledgeSource]:
        return await self._list(self.factuality.ListKnowledgeSources,
                                factuality_pb2.ListKnowledgeSourcesRequest(), "knowledge_sources", timeout)

    async def delete_knowledge_source(self, source: str, timeout: float | None = None) -> None:
        request = factuality_pb2.DeleteKnowledgeSourceRequest(name=knowledge_source_name(source))
        await self._call(self.factuality.DeleteKnowledgeSource, request, timeout)

    async def health(self, service: str = "", timeout: float | None = None) -> str:
        stub, request, name = health_check_request(self._channel, service)
        return name((await self._call(stub.Check, request, timeout)).status)

    # --- generation and models ---------------------------------------------------------------------------

    async def generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                       best_of: int = 0, judging: Judging | None = None, timeout: float | None = None,
                       **options: Any) -> generation_pb2.GenerateResponse:
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options),
                                   best_of=best_of, judging=judging)
        return await self._call(self.generation.Generate, request, timeout)

    async def batch_generate(self, prompts: Sequence[PromptLike], *, model: str = "",
                             sampling: Sampling | None = None, best_of: int = 0, judging: Judging | None = None,
                             timeout: float | None = None,
                             **options: Any) -> generation_pb2.BatchGenerateResponse:
        request = batch_generate_request(prompts, model=model, sampling=sampling_of(sampling, options),
                                         best_of=best_of, judging=judging)
        return await self._call(self.generation.BatchGenerate, request, timeout)

    async def stream_generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                              judging: Judging | None = None, timeout: float | None = None,
                              **options: Any) -> AsyncIterator[generation_pb2.GenerateChunk]:
        """Chunks as they are sampled (with ``judging``, also each sentence's verdict); leaving the loop
        early (or cancelling the task) cancels the call, which aborts the request in the server's engine."""
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options),
                                   judging=judging)
        call = self.generation.StreamGenerate(request, timeout=timeout or self.timeout, metadata=self._metadata)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def list_models(self, timeout: float | None = None) -> list[models_pb2.Model]:
        return await self._list(self.models.ListModels, models_pb2.ListModelsRequest(), "models", timeout)

    async def get_model(self, model: str, timeout: float | None = None) -> models_pb2.Model:
        return await self._call(self.models.GetModel, models_pb2.GetModelRequest(name=model_name(model)), timeout)

    async def list_checkpoints(self, model: str, timeout: float | None = None) -> list[models_pb2.Checkpoint]:
        return await self._list(self.models.ListCheckpoints,
                                models_pb2.ListCheckpointsRequest(parent=model_name(model)), "checkpoints", timeout)

    async def deploy_checkpoint(self, model: str, checkpoint: str, *, verify_tolerance: float = 0.0,
                                request_id: str = "",
                                timeout: float | None = None) -> operations_proto_pb2.Operation:
        request = deploy_request(model, checkpoint, verify_tolerance=verify_tolerance, request_id=request_id)
        return await self._call(self.models.DeployCheckpoint, request, timeout)

    # --- long-running operations -------------------------------------------------------------------------

    async def get_operation(self, name: str, timeout: float | None = None) -> operations_proto_pb2.Operation:
        return await self._call(self.operations.GetOperation, operations_proto_pb2.GetOperationRequest(name=name),
                                timeout)

    async def list_operations(self, *, filter: str = "", timeout: float | None = None
                              ) -> list[operations_proto_pb2.Operation]:
        return await self._list(self.operations.ListOperations,
                                operations_proto_pb2.ListOperationsRequest(filter=filter), "operations", timeout)

    async def wait_operation(self, name: str, timeout: float = 600.0) -> operations_proto_pb2.Operation:
        deadline = time.monotonic() + timeout
        while True:
            request, call_timeout = wait_request(name, deadline)
            op: operations_proto_pb2.Operation = await self._call(self.operations.WaitOperation, request,
                                                                  call_timeout)
            if op.done or time.monotonic() >= deadline:
                return op

    async def cancel_operation(self, name: str, timeout: float | None = None) -> None:
        await self._call(self.operations.CancelOperation, operations_proto_pb2.CancelOperationRequest(name=name),
                         timeout)

    async def delete_operation(self, name: str, timeout: float | None = None) -> None:
        await self._call(self.operations.DeleteOperation, operations_proto_pb2.DeleteOperationRequest(name=name),
                         timeout)

    # --- alignment rounds --------------------------------------------------------------------------------

    async def create_round(self, config: alignment_pb2.RoundConfig, *, request_id: str = "",
                           validate_only: bool = False,
                           timeout: float | None = None) -> operations_proto_pb2.Operation:
        request = alignment_pb2.CreateAlignmentRoundRequest(config=config, request_id=request_id,
                                                            validate_only=validate_only)
        return await self._call(self.alignment.CreateAlignmentRound, request, timeout)

    async def get_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        return await self._call(self.alignment.GetAlignmentRound, alignment_pb2.GetAlignmentRoundRequest(name=name),
                                timeout)

    async def list_rounds(self, *, state: RoundState = alignment_pb2.AlignmentRound.STATE_UNSPECIFIED,
                          model: str = "", page_size: int = 0,
                          timeout: float | None = None) -> list[alignment_pb2.AlignmentRound]:
        request = alignment_pb2.ListAlignmentRoundsRequest(page_size=page_size, state=state, model=model)
        return await self._list(self.alignment.ListAlignmentRounds, request, "rounds", timeout)

    async def watch_round(self, name: str, *, after_sequence: int = 0,
                          reconnect: int = 5) -> AsyncIterator[alignment_pb2.RoundEvent]:
        last, failures = after_sequence, 0
        while True:
            request = alignment_pb2.WatchAlignmentRoundRequest(name=name, after_sequence=last)
            try:
                async for event in self.alignment.WatchAlignmentRound(request, metadata=self._metadata):
                    failures = 0
                    last = event.sequence
                    yield event
                    if event.kind == "ROUND_ENDED":
                        return
                return
            except grpc.RpcError as error:
                failures += 1
                await asyncio.sleep(reconnect_delay(error, failures, reconnect))

    async def cancel_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        return await self._call(self.alignment.CancelAlignmentRound,
                                alignment_pb2.CancelAlignmentRoundRequest(name=name), timeout)
