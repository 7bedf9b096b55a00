"""A round's memory plan: what its TRAIN phase needs on each device, from the model's ``config.json`` and
the round's training recipe, checked against the devices the cluster offers the trainer before any work.

CreateAlignmentRound plans every round (``validate_only`` returns the plan) and refuses one whose plan does
not fit, before SAMPLE. The arithmetic is :mod:`maskdpo.trainer.memory_plan`'s.
"""

from __future__ import annotations

from pathlib import Path

from maskdpo.server.errors import FailedPrecondition
from maskdpo.server.rounds.config import RoundSpec, Training
from maskdpo.trainer.memory_plan import Devices, MemoryPlan, Recipe, plan_memory
from maskdpo.trainer.model_shape import ModelShape


def recipe_of(training: Training) -> Recipe:
    """The recipe a round's training settings describe."""
    return Recipe(
        precision=training.precision,
        lora=training.lora,
        lora_r=training.lora_r,
        precompute_ref=training.precompute_ref,
        gradient_checkpointing=training.gradient_checkpointing,
        gpus=training.gpus,
        fsdp=training.fsdp,
        pairs_per_step=training.batch_size,
        grad_accum=training.grad_accum,
        max_length=training.max_length,
    )


def plan_round(spec: RoundSpec, model_folder: Path, devices: Devices, headroom: float) -> MemoryPlan:
    """The plan of ``spec``'s training on the model in ``model_folder`` (reads its config.json only).

    FailedPrecondition when the model's config cannot be read or describes no causal LM transformers knows
    (TRAIN could not load it either)."""
    try:
        shape = ModelShape.from_folder(model_folder)
    except (ValueError, OSError, KeyError) as exc:
        raise FailedPrecondition(f"cannot plan the round's memory from {model_folder}/config.json: {exc}") from None
    return plan_memory(shape, recipe_of(spec.training), devices, headroom)
