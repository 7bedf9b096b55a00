"""The asyncio SDK client: the same methods as :class:`maskdpo.client.Client`, awaitable.

    async with AsyncClient("127.0.0.1:50051") as client:
        result = await client.score("...", knowledge=Knowledge(passages=[...]))
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_proto_pb2
from google.protobuf import duration_pb2

from maskdpo.client._channel import DEFAULT_TARGET, Connection, channel_options, credentials
from maskdpo.client._client import DEFAULT_TIMEOUT_S
from maskdpo.client._generation import (
    PromptLike,
    Sampling,
    deploy_request,
    generate_request,
    model_name,
    sampling_of,
)
from maskdpo.client._health import health_check_request
from maskdpo.client._requests import Item, Knowledge, ScoreOptions, batch_score_request, score_request
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

    # --- generation and models (see the synchronous Client for details) ---------------------------------

    async def generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                       timeout: float | None = None, **options: Any) -> generation_pb2.GenerateResponse:
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options))
        return await self._call(self.generation.Generate, request, timeout)

    async def batch_generate(self, prompts: Sequence[PromptLike], *, model: str = "",
                             sampling: Sampling | None = None, timeout: float | None = None,
                             **options: Any) -> generation_pb2.BatchGenerateResponse:
        shared = sampling_of(sampling, options)
        request = generation_pb2.BatchGenerateRequest(
            requests=[generate_request(p, model=model, sampling=shared) for p in prompts])
        return await self._call(self.generation.BatchGenerate, request, timeout)

    async def stream_generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                              timeout: float | None = None,
                              **options: Any) -> AsyncIterator[generation_pb2.GenerateChunk]:
        """Chunks as they are sampled; leaving the loop early (or cancelling the task) cancels the call,
        which aborts the request in the server's engine."""
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options))
        call = self.generation.StreamGenerate(request, timeout=timeout or self.timeout, metadata=self._metadata)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def list_models(self, timeout: float | None = None) -> list[models_pb2.Model]:
        models: list[models_pb2.Model] = []
        token = ""
        while True:
            page = await self._call(self.models.ListModels, models_pb2.ListModelsRequest(page_token=token), timeout)
            models.extend(page.models)
            token = page.next_page_token
            if not token:
                return models

    async def get_model(self, model: str, timeout: float | None = None) -> models_pb2.Model:
        return await self._call(self.models.GetModel, models_pb2.GetModelRequest(name=model_name(model)), timeout)

    async def list_checkpoints(self, model: str, timeout: float | None = None) -> list[models_pb2.Checkpoint]:
        checkpoints: list[models_pb2.Checkpoint] = []
        token = ""
        while True:
            request = models_pb2.ListCheckpointsRequest(parent=model_name(model), page_token=token)
            page = await self._call(self.models.ListCheckpoints, request, timeout)
            checkpoints.extend(page.checkpoints)
            token = page.next_page_token
            if not token:
                return checkpoints

    async def deploy_checkpoint(self, model: str, checkpoint: str, *, verify_tolerance: float = 0.0,
                                request_id: str = "",
                                timeout: float | None = None) -> operations_proto_pb2.Operation:
        request = deploy_request(model, checkpoint, verify_tolerance=verify_tolerance, request_id=request_id)
        return await self._call(self.models.DeployCheckpoint, request, timeout)

    async def get_operation(self, name: str, timeout: float | None = None) -> operations_proto_pb2.Operation:
        return await self._call(self.operations.GetOperation, operations_proto_pb2.GetOperationRequest(name=name),
                                timeout)

    async def wait_operation(self, name: str, timeout: float = 600.0) -> operations_proto_pb2.Operation:
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            wait = duration_pb2.Duration()
            wait.FromNanoseconds(int(min(remaining, 30.0) * 1e9))
            op = await self._call(self.operations.WaitOperation,
                                  operations_proto_pb2.WaitOperationRequest(name=name, timeout=wait),
                                  min(remaining, 30.0) + 10.0)
            if op.done or time.monotonic() >= deadline:
                return op

    # -- alignment rounds (see Client for the semantics) ---------------------------------------------------
    async def create_round(self, config: alignment_pb2.RoundConfig, *, request_id: str = "",
                           timeout: float | None = None) -> operations_proto_pb2.Operation:
        request = alignment_pb2.CreateAlignmentRoundRequest(config=config, request_id=request_id)
        result: operations_proto_pb2.Operation = await self._call(self.alignment.CreateAlignmentRound, request,
                                                                  timeout)
        return result

    async def get_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        result: alignment_pb2.AlignmentRound = await self._call(
            self.alignment.GetAlignmentRound, alignment_pb2.GetAlignmentRoundRequest(name=name), timeout)
        return result

    async def list_rounds(self, *, state: alignment_pb2.AlignmentRound.State.ValueType = alignment_pb2.AlignmentRound.STATE_UNSPECIFIED, model: str = "", page_size: int = 0,
                          timeout: float | None = None) -> list[alignment_pb2.AlignmentRound]:
        rounds: list[alignment_pb2.AlignmentRound] = []
        token = ""
        while True:
            page: alignment_pb2.ListAlignmentRoundsResponse = await self._call(
                self.alignment.ListAlignmentRounds,
                alignment_pb2.ListAlignmentRoundsRequest(page_size=page_size, page_token=token, state=state,
                                                         model=model), timeout)
            rounds.extend(page.rounds)
            token = page.next_page_token
            if not token:
                return rounds

    async def watch_round(self, name: str, *, after_sequence: int = 0,
                          reconnect: int = 5) -> AsyncIterator[alignment_pb2.RoundEvent]:
        import asyncio

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
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL) \
                        or failures >= reconnect:
                    raise from_rpc_error(error) from None
                failures += 1
                await asyncio.sleep(min(2.0 ** failures, 10.0))

    async def cancel_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        result: alignment_pb2.AlignmentRound = await self._call(
            self.alignment.CancelAlignmentRound, alignment_pb2.CancelAlignmentRoundRequest(name=name), timeout)
        return result
