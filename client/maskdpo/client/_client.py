"""The synchronous SDK client.

    from maskdpo.client import Client, Knowledge

    with Client("127.0.0.1:50051", token="...") as client:
        result = client.score("Marie Curie was born in Warsaw in 1867.",
                              knowledge=Knowledge(passages=["Marie Curie (born 7 November 1867 in Warsaw) ..."]))
        for s in result.answer.sentences:
            print(s.label, s.text)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from google.longrunning import operations_proto_pb2

from maskdpo.client._channel import DEFAULT_TARGET, Connection, channel_options, credentials
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

DEFAULT_TIMEOUT_S = 60.0
RoundState: TypeAlias = alignment_pb2.AlignmentRound.State.ValueType


class Client(Connection):
    """A connection to a maskdpo server. Thread-safe; close it (or use ``with``) when done."""

    def __init__(self, target: str = DEFAULT_TARGET, *, token: str | None = None, tls: bool = False,
                 root_ca: Path | None = None, client_cert: Path | None = None, client_key: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        creds = credentials(tls, root_ca, client_cert, client_key)
        options = channel_options()
        channel = grpc.secure_channel(target, creds, options) if creds else grpc.insecure_channel(target, options)
        super().__init__(channel, token, timeout)

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

    def _list(self, method: Callable[..., Any], request: Any, field: str, timeout: float | None) -> list[Any]:
        """Every item of a List call, following its pages (``request.page_token`` is advanced in place)."""
        items: list[Any] = []
        while True:
            page = self._call(method, request, timeout)
            items.extend(getattr(page, field))
            if not page.next_page_token:
                return items
            request.page_token = page.next_page_token

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

    def create_knowledge_source(self, source_id: str, *, passages: Sequence[PassageLike] = (),
                                facts: Sequence[FactLike] = (), description: str = "",
                                timeout: float | None = None) -> factuality_pb2.KnowledgeSource:
        """Register passages and/or facts under an id (operator role)."""
        request = create_knowledge_source_request(source_id, passages=passages, facts=facts,
                                                  description=description)
        result: factuality_pb2.KnowledgeSource = self._call(self.factuality.CreateKnowledgeSource, request,
                                                              timeout)
        return result

    def get_knowledge_source(self, source: str, timeout: float | None = None) -> factuality_pb2.KnowledgeSource:
        """A knowledge source's description; ``source`` is its id or ``knowledgeSources/{id}``."""
        request = factuality_pb2.GetKnowledgeSourceRequest(name=knowledge_source_name(source))
        result: factuality_pb2.KnowledgeSource = self._call(self.factuality.GetKnowledgeSource, request, timeout)
        return result

    def list_knowledge_sources(self, timeout: float | None = None) -> list[factuality_pb2.KnowledgeSource]:
        """Every registered knowledge source, following the pages."""
        return self._list(self.factuality.ListKnowledgeSources, factuality_pb2.ListKnowledgeSourcesRequest(),
                          "knowledge_sources", timeout)

    def delete_knowledge_source(self, source: str, timeout: float | None = None) -> None:
        """Delete a knowledge source (operator role); ``source`` is its id or ``knowledgeSources/{id}``."""
        request = factuality_pb2.DeleteKnowledgeSourceRequest(name=knowledge_source_name(source))
        self._call(self.factuality.DeleteKnowledgeSource, request, timeout)

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The server's health status for ``service`` ("" = the whole server): "SERVING", ..."""
        stub, request, name = health_check_request(self._channel, service)
        return name(self._call(stub.Check, request, timeout).status)

    # --- generation and models -----------------------------------------------------------------------

    def generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                 best_of: int = 0, judging: Judging | None = None, timeout: float | None = None,
                 **options: Any) -> generation_pb2.GenerateResponse:
        """Sample ``n`` answers; ``prompt`` is text or (role, content) chat messages. Keyword options
        (``n=4, temperature=0.7, max_tokens=64, logprobs=True, seed=1``) override ``sampling``.
        ``best_of=N`` samples N answers instead, judges each as ``judging`` says and returns them ranked
        by factuality, the best first, each with its judged sentences (``sample.judged``)."""
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options),
                                   best_of=best_of, judging=judging)
        result: generation_pb2.GenerateResponse = self._call(self.generation.Generate, request, timeout)
        return result

    def batch_generate(self, prompts: Sequence[PromptLike], *, model: str = "", sampling: Sampling | None = None,
                       best_of: int = 0, judging: Judging | None = None, timeout: float | None = None,
                       **options: Any) -> generation_pb2.BatchGenerateResponse:
        """Sample answers for many prompts in one call (same model, sampling, ``best_of`` and ``judging``
        for all, as ``generate`` takes them)."""
        request = batch_generate_request(prompts, model=model, sampling=sampling_of(sampling, options),
                                         best_of=best_of, judging=judging)
        result: generation_pb2.BatchGenerateResponse = self._call(self.generation.BatchGenerate, request, timeout)
        return result

    def stream_generate(self, prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None,
                        judging: Judging | None = None, timeout: float | None = None,
                        **options: Any) -> GenerationStream:
        """Stream chunks as they are sampled. Iterate it; ``cancel()`` (or leaving a ``with`` block)
        aborts the request in the server's engine. With ``judging``, chunks also carry each sentence's
        verdict (``chunk.verdicts``) soon after the sentence is complete, and a sample's last chunk its
        metrics."""
        request = generate_request(prompt, model=model, sampling=sampling_of(sampling, options),
                                   judging=judging)
        call = self.generation.StreamGenerate(request, timeout=timeout or self.timeout, metadata=self._metadata)
        return GenerationStream(call)

    def list_models(self, timeout: float | None = None) -> list[models_pb2.Model]:
        return self._list(self.models.ListModels, models_pb2.ListModelsRequest(), "models", timeout)

    def get_model(self, model: str, timeout: float | None = None) -> models_pb2.Model:
        result: models_pb2.Model = self._call(self.models.GetModel,
                                              models_pb2.GetModelRequest(name=model_name(model)), timeout)
        return result

    def list_checkpoints(self, model: str, timeout: float | None = None) -> list[models_pb2.Checkpoint]:
        return self._list(self.models.ListCheckpoints, models_pb2.ListCheckpointsRequest(parent=model_name(model)),
                          "checkpoints", timeout)

    def deploy_checkpoint(self, model: str, checkpoint: str, *, verify_tolerance: float = 0.0,
                          request_id: str = "", timeout: float | None = None) -> operations_proto_pb2.Operation:
        """Start a verified hot-swap (operator role); returns the long-running operation at once.
        ``checkpoint``: a folder path on the server or ``models/{m}/checkpoints/{id}``. Follow it with
        :meth:`wait_operation`, then ``maskdpo.client.deploy_result(op)``."""
        request = deploy_request(model, checkpoint, verify_tolerance=verify_tolerance, request_id=request_id)
        result: operations_proto_pb2.Operation = self._call(self.models.DeployCheckpoint, request, timeout)
        return result

    # --- long-running operations -------------------------------------------------------------------------

    def get_operation(self, name: str, timeout: float | None = None) -> operations_proto_pb2.Operation:
        result: operations_proto_pb2.Operation = self._call(
            self.operations.GetOperation, operations_proto_pb2.GetOperationRequest(name=name), timeout)
        return result

    def list_operations(self, *, filter: str = "", timeout: float | None = None
                        ) -> list[operations_proto_pb2.Operation]:
        """Every operation (deploys and rounds), following the pages; ``filter``: ``kind=deploy`` or
        ``kind=round``."""
        return self._list(self.operations.ListOperations, operations_proto_pb2.ListOperationsRequest(filter=filter),
                          "operations", timeout)

    def wait_operation(self, name: str, timeout: float = 600.0) -> operations_proto_pb2.Operation:
        """Wait until the operation is done or ``timeout`` seconds pass; returns it either way."""
        deadline = time.monotonic() + timeout
        while True:
            request, call_timeout = wait_request(name, deadline)
            op: operations_proto_pb2.Operation = self._call(self.operations.WaitOperation, request, call_timeout)
            if op.done or time.monotonic() >= deadline:
                return op

    def cancel_operation(self, name: str, timeout: float | None = None) -> None:
        """Ask an operation to stop (operator role); a round stops, a started deploy runs to its end."""
        self._call(self.operations.CancelOperation, operations_proto_pb2.CancelOperationRequest(name=name), timeout)

    def delete_operation(self, name: str, timeout: float | None = None) -> None:
        """Forget a finished operation's record (operator role); a running one is refused (cancel it first)."""
        self._call(self.operations.DeleteOperation, operations_proto_pb2.DeleteOperationRequest(name=name), timeout)

    # --- alignment rounds --------------------------------------------------------------------------------

    def create_round(self, config: alignment_pb2.RoundConfig, *, request_id: str = "", validate_only: bool = False,
                     timeout: float | None = None) -> operations_proto_pb2.Operation:
        """Start a round (operator role); returns its operation at once (``round_of(op)`` names the round).
        A retry with the same ``request_id`` returns the same operation. ``validate_only`` creates nothing and
        returns a done operation whose response (``planned_round(op)``) holds the round's memory plan."""
        request = alignment_pb2.CreateAlignmentRoundRequest(config=config, request_id=request_id,
                                                            validate_only=validate_only)
        result: operations_proto_pb2.Operation = self._call(self.alignment.CreateAlignmentRound, request, timeout)
        return result

    def get_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        result: alignment_pb2.AlignmentRound = self._call(
            self.alignment.GetAlignmentRound, alignment_pb2.GetAlignmentRoundRequest(name=name), timeout)
        return result

    def list_rounds(self, *, state: RoundState = alignment_pb2.AlignmentRound.STATE_UNSPECIFIED, model: str = "",
                    page_size: int = 0, timeout: float | None = None) -> list[alignment_pb2.AlignmentRound]:
        """Every round (newest first), following the pages; ``state`` / ``model`` filter."""
        request = alignment_pb2.ListAlignmentRoundsRequest(page_size=page_size, state=state, model=model)
        return self._list(self.alignment.ListAlignmentRounds, request, "rounds", timeout)

    def watch_round(self, name: str, *, after_sequence: int = 0, reconnect: int = 5,
                    ) -> Iterator[alignment_pb2.RoundEvent]:
        """The round's events in order, after ``after_sequence``, until ROUND_ENDED. A dropped stream is
        reopened after the last event received (up to ``reconnect`` times in a row), so none is missed."""
        last, failures = after_sequence, 0
        while True:
            request = alignment_pb2.WatchAlignmentRoundRequest(name=name, after_sequence=last)
            try:
                for event in self.alignment.WatchAlignmentRound(request, metadata=self._metadata):
                    failures = 0
                    last = event.sequence
                    yield event
                    if event.kind == "ROUND_ENDED":
                        return
                return
            except grpc.RpcError as error:
                failures += 1
                time.sleep(reconnect_delay(error, failures, reconnect))

    def cancel_round(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        """Ask the round to stop (operator role): within one training step; nothing is promoted."""
        result: alignment_pb2.AlignmentRound = self._call(
            self.alignment.CancelAlignmentRound, alignment_pb2.CancelAlignmentRoundRequest(name=name), timeout)
        return result


class GenerationStream:
    """An iterator over a StreamGenerate call's chunks; failed calls raise typed errors."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[generation_pb2.GenerateChunk]:
        try:
            yield from self._call
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def cancel(self) -> None:
        """Cancel the call: the server aborts the request in its engine."""
        self._call.cancel()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
