"""The generation and model services' edge: protobuf <-> generation types, request validation, error mapping.

Requests are validated here (InvalidArgument names the field by its request path, e.g.
``requests[2].sampling.top_p``) before anything reaches an engine; what an engine still refuses comes back
from the Generator actor as the service's own exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from maskdpo.server.errors import (
    InvalidArgument,
    TextTooLong,
)
from maskdpo.server.generation.types import MAX_N, GenerationResult, Prompt, SamplingOptions, StreamDelta
from maskdpo.server.judge.ranking import RANKINGS
from maskdpo.server.services.factuality_convert import check_text
from maskdpo.server.store.checkpoints import CheckpointRecord
from maskdpo.server.wire import timestamp
from maskdpo.v1 import common_pb2, factuality_pb2, generation_pb2, models_pb2

MAX_TEMPERATURE = 10.0
MAX_STOP = 16
MAX_STOP_CHARS = 200
ROLES = frozenset({"system", "user", "assistant"})
Decoder = Callable[[Sequence[int]], list[str]]
"""Token ids -> the text of each token (for TokenLogprob.token)."""


def model_id(name: str, field: str) -> str:
    """The model id of ``models/{model}`` (a bare id is accepted too); "" stays "" (the default model)."""
    ident = name[len("models/") :] if name.startswith("models/") else name
    if "/" in ident or (name and not ident):
        raise InvalidArgument(field, f"expected 'models/<model>', got {name[:80]!r}")
    return ident


def prompt(request: generation_pb2.GenerateRequest, field: str, max_chars: int) -> Prompt:
    """The Prompt of a GenerateRequest (text, or chat messages)."""
    kind = request.WhichOneof("input")
    if kind is None:
        raise InvalidArgument(f"{field}prompt", "give a prompt or chat messages")
    if kind == "prompt":
        if not request.prompt.strip():
            raise InvalidArgument(f"{field}prompt", "empty prompt")
        check_text(f"{field}prompt", request.prompt, max_chars)
        return Prompt(text=request.prompt)
    messages = request.messages.messages
    if not messages:
        raise InvalidArgument(f"{field}messages.messages", "at least one message is required")
    total = 0
    for i, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidArgument(
                f"{field}messages.messages[{i}].role",
                f"{message.role[:40]!r}; expected one of {sorted(ROLES)}",
            )
        total += len(message.content)
    if total > max_chars:
        raise TextTooLong(f"{field}messages", total, max_chars)
    return Prompt.chat([(m.role, m.content) for m in messages])


def sampling(params: common_pb2.SamplingParams, field: str, default_max_tokens: int) -> SamplingOptions:
    """Validated SamplingOptions; unset fields take the documented defaults."""
    n = params.n or 1
    if not 1 <= n <= MAX_N:
        raise InvalidArgument(f"{field}n", f"{params.n}; must be between 1 and {MAX_N} (0 means 1)")
    temperature = params.temperature if params.HasField("temperature") else 1.0
    if not (math.isfinite(temperature) and 0.0 <= temperature <= MAX_TEMPERATURE):
        raise InvalidArgument(
            f"{field}temperature", f"{temperature}; must be between 0 and {MAX_TEMPERATURE}"
        )
    top_p = params.top_p if params.HasField("top_p") else 1.0
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgument(f"{field}top_p", f"{top_p}; must be in (0, 1]")
    if params.top_k < 0:
        raise InvalidArgument(f"{field}top_k", f"{params.top_k}; must be >= 0 (0: no cut-off)")
    if params.max_tokens < 0:
        raise InvalidArgument(f"{field}max_tokens", f"{params.max_tokens}; must be >= 0 (0: server default)")
    if len(params.stop) > MAX_STOP:
        raise InvalidArgument(f"{field}stop", f"{len(params.stop)} strings; at most {MAX_STOP}")
    for i, stop in enumerate(params.stop):
        if not stop or len(stop) > MAX_STOP_CHARS:
            raise InvalidArgument(f"{field}stop[{i}]", f"must have 1 to {MAX_STOP_CHARS} characters")
    return SamplingOptions(
        n=n,
        temperature=temperature,
        top_p=top_p,
        top_k=params.top_k,
        max_tokens=params.max_tokens or default_max_tokens,
        stop=tuple(params.stop),
        seed=params.seed if params.HasField("seed") else None,
        logprobs=params.logprobs,
        ignore_eos=params.ignore_eos,
    )


def best_of(request: generation_pb2.GenerateRequest, field: str, limit: int, streaming: bool = False) -> int:
    """The request's best_of (0 = off), checked against the server's ``limit`` and the rest of the request."""
    value = request.best_of
    if streaming:
        if value:
            raise InvalidArgument(f"{field}best_of", "StreamGenerate does not rank answers: use Generate for "
                                  "best-of-N (judging alone streams each sentence's verdict)")
        return 0
    if not value:
        if request.HasField("judging"):
            raise InvalidArgument(f"{field}judging", "Generate judges the answers of best_of: set best_of "
                                  "(StreamGenerate takes judging alone)")
        return 0
    if not 1 <= value <= limit:
        raise InvalidArgument(f"{field}best_of", f"{value}; must be between 1 and {limit} (0: off)")
    if request.sampling.n > 1:
        raise InvalidArgument(f"{field}sampling.n", f"{request.sampling.n}; leave it unset with best_of, "
                              "which sets how many answers are sampled")
    if value > 1 and request.sampling.HasField("temperature") and request.sampling.temperature == 0:
        raise InvalidArgument(f"{field}sampling.temperature", "best_of > 1 needs temperature > 0: greedy "
                              "decoding gives one answer")
    return value


def rank_by(request: generation_pb2.GenerateRequest, field: str, best_of: int) -> str:
    """The metric best_of ranks its answers by (``RANKINGS``; "" = the first)."""
    value = request.judging.rank_by
    if not value:
        return RANKINGS[0]
    if not best_of:
        raise InvalidArgument(f"{field}judging.rank_by", "orders the answers of best_of on Generate: set best_of")
    if value not in RANKINGS:
        raise InvalidArgument(f"{field}judging.rank_by", f"{value[:40]!r}; one of {', '.join(RANKINGS)}")
    return value


def question(request: generation_pb2.GenerateRequest) -> str:
    """What the answers reply to, for a judge: the raw prompt, or the last user message."""
    if request.WhichOneof("input") == "prompt":
        return request.prompt
    users = [m.content for m in request.messages.messages if m.role == "user"]
    return users[-1] if users else ""


def _tokens(
    ids: Sequence[int], logprobs: Sequence[float], decode: Decoder
) -> list[generation_pb2.TokenLogprob]:
    if not logprobs:
        return []
    texts = decode(ids)
    return [
        generation_pb2.TokenLogprob(token_id=t, token=s, logprob=lp)
        for t, s, lp in zip(ids, texts, logprobs, strict=True)
    ]


def generate_response(
    model: str, result: GenerationResult, want_logprobs: bool, decode: Decoder
) -> generation_pb2.GenerateResponse:
    out = generation_pb2.GenerateResponse(model=f"models/{model}")
    for s in result.samples:
        out.samples.add(
            index=s.index,
            text=s.text,
            finish_reason=s.finish_reason,
            weight_version=s.weight_version,
            tokens=_tokens(s.token_ids, s.logprobs, decode) if want_logprobs else [],
        )
    out.usage.prompt_tokens = result.prompt_tokens
    out.usage.completion_tokens = sum(len(s.token_ids) for s in result.samples)
    return out


def ranked(response: generation_pb2.GenerateResponse, judged: Sequence[factuality_pb2.ScoredAnswer],
           order: Sequence[int], judge: common_pb2.JudgeIdentity) -> None:
    """Attach each sample's judged answer (``judged`` in draw order) and put the samples in ``order``."""
    ordered = []
    for i in order:
        sample = generation_pb2.Sample()
        sample.CopyFrom(response.samples[i])
        sample.judged.CopyFrom(judged[i])
        ordered.append(sample)
    response.ClearField("samples")
    response.samples.extend(ordered)
    response.judge.CopyFrom(judge)


def chunk(delta: StreamDelta, want_logprobs: bool, decode: Decoder) -> generation_pb2.GenerateChunk:
    return generation_pb2.GenerateChunk(
        index=delta.index,
        delta=delta.text,
        finish_reason=delta.finish_reason if delta.finished else "",
        weight_version=delta.weight_version,
        tokens=_tokens(delta.token_ids, delta.logprobs, decode) if want_logprobs else [],
    )


def checkpoint(record: CheckpointRecord) -> models_pb2.Checkpoint:
    return models_pb2.Checkpoint(
        name=record.name,
        path=str(record.path),
        weight_version=record.weight_version,
        round=record.round,
        create_time=timestamp(record.create_time),
    )
