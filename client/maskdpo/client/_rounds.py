"""Alignment-round helpers of the SDK: configs, and reading a round operation's metadata.

from maskdpo.client import Client, toy_round_config

with Client(token="...") as client:
    op = client.create_round(toy_round_config("models/toy"), request_id="demo-1")
    name = round_of(op)
    for event in client.watch_round(name):          # resumes by itself after a dropped stream
        print(event.sequence, event.kind, event.message)
    print(client.get_round(name).after.anah_score)
"""

from __future__ import annotations

import grpc
from google.longrunning import operations_proto_pb2

from maskdpo.client.errors import from_rpc_error
from maskdpo.v1 import alignment_pb2


def toy_round_config(
    model: str = "models/toy",
    *,
    prompts: int = 48,
    eval_prompts: int = 0,
    samples_per_prompt: int = 8,
    steps: int = 24,
    learning_rate: float = 1e-4,
    beta: float = 0.5,
    nll_alpha: float = 0.2,
    batch_size: int = 8,
    max_tokens: int = 96,
    seed: int = 0,
    loss: int = alignment_pb2.MASK_DPO,
    start_from_round: str = "",
) -> alignment_pb2.RoundConfig:
    """A small round on the toy world (alignment people -> validation people), sized for a 2-core CPU.

    The training settings are the toy-world experiment's (beta 0.5, lr 1e-4, the NLL anchor at 0.2, chosen
    on validation people: docs/toyworld.md); ``eval_prompts=0`` evaluates on the server's
    ``rounds_eval_prompts`` (all 90 validation people by default).
    """
    config = alignment_pb2.RoundConfig(
        model=model if model.startswith("models/") else f"models/{model}",
        samples_per_prompt=samples_per_prompt,
        seed=seed,
        loss=loss,  # type: ignore[arg-type]
        start_from_round=start_from_round,
    )
    config.prompts.dataset, config.prompts.limit = "toyworld/alignment", prompts
    config.eval_prompts.dataset, config.eval_prompts.limit = "toyworld/validation", eval_prompts
    config.sampling.temperature = 1.0
    config.sampling.max_tokens = max_tokens
    config.training.max_steps = steps
    config.training.learning_rate = learning_rate
    config.training.beta = beta
    config.training.nll_alpha = nll_alpha
    config.training.batch_size = batch_size
    config.training.epochs = 100  # max_steps is the real bound
    return config


def round_of(op: operations_proto_pb2.Operation) -> str:
    """The round name ("rounds/...") an operation tracks."""
    meta = alignment_pb2.AlignmentRoundMetadata()
    if not op.metadata.Unpack(meta):
        raise ValueError(f"{op.name} is not an alignment-round operation")
    return meta.round


def planned_round(op: operations_proto_pb2.Operation) -> alignment_pb2.AlignmentRound:
    """The round a ``validate_only`` create answered with: its config and ``memory_plan``."""
    planned = alignment_pb2.AlignmentRound()
    if not op.done or not op.response.Unpack(planned):
        raise ValueError("not the answer to a validate_only CreateAlignmentRound")
    return planned


def round_metadata(op: operations_proto_pb2.Operation) -> alignment_pb2.AlignmentRoundMetadata:
    meta = alignment_pb2.AlignmentRoundMetadata()
    op.metadata.Unpack(meta)
    return meta


def reconnect_delay(error: grpc.RpcError, failures: int, reconnect: int) -> float:
    """Seconds to wait before reopening a watch stream dropped ``failures`` times in a row; raises the
    call's typed error instead when the stream is not to be reopened (another status, or more than
    ``reconnect`` drops in a row)."""
    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL) or failures > reconnect:
        raise from_rpc_error(error) from None
    return min(2.0 ** failures, 10.0)
