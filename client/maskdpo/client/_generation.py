"""Generation and model requests from plain Python arguments, and operation results (shared by both clients).

Sampling(n=4, temperature=0.7, max_tokens=128, logprobs=True)
generate_request("Tell me about Ada Lind.", model="toy", sampling=...)
generate_request([("user", "Tell me about Ada Lind.")])         # chat messages
generate_request(prompt, best_of=8, judging=Judging(judge="kb", topic="Ada Lind", knowledge=...))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from google.longrunning import operations_proto_pb2

from maskdpo.client._requests import Knowledge, ScoreOptions
from maskdpo.client.errors import from_status
from maskdpo.v1 import common_pb2, generation_pb2, models_pb2

PromptLike = str | Sequence[tuple[str, str]]
"""Raw prompt text, or chat messages as (role, content) pairs."""


@dataclass
class Sampling:
    """Sampling settings; see ``maskdpo.v1.SamplingParams``. None / 0 mean the server default."""

    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int = 0
    stop: Sequence[str] = ()
    seed: int | None = None
    logprobs: bool = False
    ignore_eos: bool = False

    def to_proto(self) -> common_pb2.SamplingParams:
        out = common_pb2.SamplingParams(
            n=self.n,
            max_tokens=self.max_tokens,
            stop=list(self.stop),
            logprobs=self.logprobs,
            ignore_eos=self.ignore_eos,
        )
        for name in ("temperature", "top_p", "top_k", "seed"):
            value = getattr(self, name)
            if value is not None:
                setattr(out, name, value)
        return out


SAMPLING_FIELDS = frozenset(f.name for f in fields(Sampling))


def sampling_of(sampling: Sampling | None, options: dict[str, Any]) -> Sampling:
    """``sampling`` with keyword overrides (``n=4, logprobs=True``); unknown keywords raise TypeError."""
    unknown = sorted(set(options) - SAMPLING_FIELDS)
    if unknown:
        raise TypeError(f"unknown sampling options {unknown}; known: {sorted(SAMPLING_FIELDS)}")
    base = sampling or Sampling()
    return Sampling(**{**{f: getattr(base, f) for f in SAMPLING_FIELDS}, **options})


@dataclass
class Judging:
    """How generated answers are judged (best-of-N, or verdicts streamed per sentence); see
    ``maskdpo.v1.Judging``. An empty judge is the server's default."""

    judge: str = ""
    knowledge: Knowledge | None = None
    topic: str = ""
    options: ScoreOptions | None = None
    rank_by: str = ""
    """What best_of ranks the answers by: "anah_score" (the server's default) or "f1_at_k"."""

    def to_proto(self) -> generation_pb2.Judging:
        return generation_pb2.Judging(judge=self.judge, knowledge=(self.knowledge or Knowledge()).to_proto(),
                                      topic=self.topic, options=(self.options or ScoreOptions()).to_proto(),
                                      rank_by=self.rank_by)


def model_name(model: str) -> str:
    """``models/{model}`` for a bare id; "" stays "" (the server's default model)."""
    return model if not model or model.startswith("models/") else f"models/{model}"


def generate_request(
    prompt: PromptLike, *, model: str = "", sampling: Sampling | None = None, best_of: int = 0,
    judging: Judging | None = None,
) -> generation_pb2.GenerateRequest:
    """A GenerateRequest; ``best_of`` (Generate) samples that many answers instead of ``sampling.n`` and
    returns them judged and ranked; ``judging`` says how answers are judged."""
    request = generation_pb2.GenerateRequest(
        model=model_name(model), sampling=(sampling or Sampling()).to_proto(), best_of=best_of
    )
    if judging is not None:
        request.judging.CopyFrom(judging.to_proto())
    if isinstance(prompt, str):
        request.prompt = prompt
    else:
        request.messages.SetInParent()
        for role, content in prompt:
            request.messages.messages.add(role=role, content=content)
    return request


def batch_generate_request(
    prompts: Sequence[PromptLike], *, model: str = "", sampling: Sampling | None = None, best_of: int = 0,
    judging: Judging | None = None,
) -> generation_pb2.BatchGenerateRequest:
    """One BatchGenerateRequest asking the same of every prompt (model, sampling, best-of and judging)."""
    return generation_pb2.BatchGenerateRequest(requests=[
        generate_request(p, model=model, sampling=sampling, best_of=best_of, judging=judging) for p in prompts])


def deploy_request(
    model: str, checkpoint: str, *, verify_tolerance: float = 0.0, request_id: str = ""
) -> models_pb2.DeployCheckpointRequest:
    return models_pb2.DeployCheckpointRequest(
        model=model_name(model),
        checkpoint=checkpoint,
        verify_tolerance=verify_tolerance,
        request_id=request_id,
    )


def deploy_metadata(operation: operations_proto_pb2.Operation) -> models_pb2.DeployCheckpointMetadata:
    metadata = models_pb2.DeployCheckpointMetadata()
    operation.metadata.Unpack(metadata)
    return metadata


def deploy_result(operation: operations_proto_pb2.Operation) -> models_pb2.DeployCheckpointResponse:
    """The response of a finished deploy; raises the typed error (e.g. FailedPreconditionError with reason
    CHECKPOINT_REJECTED) when it failed, ValueError while it still runs."""
    if not operation.done:
        raise ValueError(f"{operation.name} is still running")
    if operation.HasField("error"):
        raise from_status(operation.error)
    response = models_pb2.DeployCheckpointResponse()
    operation.response.Unpack(response)
    return response
