"""Typed errors survive pickling (Ray) and sampling options name the bad field."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from maskdpo.server.generation import errors
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import SamplingOptions


@pytest.mark.parametrize(
    "error",
    [
        errors.QueueFullError(2.5, 8),
        errors.PromptTooLongError(300, 256),
        errors.CheckpointError("ckpt /x: no config.json"),
        errors.VerificationError("rolled back"),
        errors.DeployConflictError("busy"),
        errors.EngineDeadError("dead"),
        errors.InvalidRequestError("sampling.top_p", "must be in (0, 1]"),
    ],
)
def test_errors_pickle_with_their_fields(error: errors.GenerationError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_queue_full_carries_retry_after() -> None:
    error = errors.QueueFullError(3.0, 16)
    assert error.retry_after_s == 3.0
    assert "retry in 3.0 s" in str(error)


def test_prompt_too_long_is_an_invalid_request() -> None:
    assert isinstance(errors.PromptTooLongError(10, 8), errors.InvalidRequestError)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (SamplingOptions(n=0), "n"),
        (SamplingOptions(n=2, temperature=0.0), "n"),  # greedy samples would all be the same
        (SamplingOptions(temperature=-1), "temperature"),
        (SamplingOptions(top_p=0), "top_p"),
        (SamplingOptions(top_k=-1), "top_k"),
        (SamplingOptions(max_tokens=0), "max_tokens"),
        (SamplingOptions(stop=("",)), "stop"),
    ],
)
def test_bad_options_name_the_field(options: SamplingOptions, field: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match=f"^sampling.{field}: ") as info:
        options.validate()
    assert info.value.field == f"sampling.{field}"


def test_an_engine_not_started_for_pushes_refuses_one(tmp_path: Path) -> None:
    import asyncio

    from maskdpo.server.generation.engine import GenerationEngine

    engine = GenerationEngine(EngineSettings(model=tmp_path), llm=None, tokenizer=None, max_model_len=8)
    with pytest.raises(errors.CheckpointError, match="not started to accept pushed weights"):
        asyncio.run(engine.push_step("open", {"host": "127.0.0.1", "port": 1, "world_size": 2}))
