"""Shared fixtures for round tests: the tiny model (built once) and a round config on the tiny world."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tests.helpers.round_world  # noqa: F401  (registers tiny/train and tiny/eval)
from maskdpo.v1 import alignment_pb2
from tests.helpers.tiny_model import build_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def tiny_config(*, promote: bool | None = None, epochs: int = 0, seed: int = 1) -> alignment_pb2.RoundConfig:
    """A small round: 4 prompts x 4 samples, 32 tokens; ``promote`` forces the decision (None = default rule)."""
    cfg = alignment_pb2.RoundConfig(model="models/tiny", seed=seed, samples_per_prompt=4)
    cfg.prompts.dataset = "tiny/train"
    cfg.eval_prompts.dataset = "tiny/eval"
    cfg.sampling.max_tokens = 32
    cfg.training.batch_size = 2
    cfg.training.learning_rate = 1e-5
    if epochs:
        cfg.training.epochs = epochs
    if promote is True:
        cfg.promotion.min_improvement = -1.0
        cfg.promotion.max_correct_drop = 1.0
    elif promote is False:
        cfg.promotion.min_improvement = 1.0
        cfg.promotion.max_correct_drop = 0.0
    return cfg
