"""RoundConfig validation: every malformed field is refused with INVALID_ARGUMENT naming it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from maskdpo.server.errors import InvalidArgument
from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import Promotion, validate_config
from maskdpo.trainer.memory_plan import Precision
from maskdpo.v1 import alignment_pb2, memory_plan_pb2
from tests.unit.rounds.conftest import tiny_config

Cfg = alignment_pb2.RoundConfig


def _set(path: str, value: object) -> Callable[[Cfg], None]:
    def apply(cfg: Cfg) -> None:
        *parents, last = path.split(".")
        target = cfg
        for p in parents:
            target = getattr(target, p)
        setattr(target, last, value)

    return apply


CASES = [
    (_set("model", "tiny"), "config.model"),
    (lambda c: c.ClearField("prompts"), "config.prompts"),
    (lambda c: c.ClearField("eval_prompts"), "config.eval_prompts"),
    (_set("prompts.dataset", "no/such"), "config.prompts.dataset"),
    (_set("eval_prompts.limit", -1), "config.eval_prompts.limit"),
    (_set("samples_per_prompt", 1), "config.samples_per_prompt"),
    (_set("samples_per_prompt", 65), "config.samples_per_prompt"),
    (_set("sampling.temperature", 0.0), "config.sampling.temperature"),
    (_set("sampling.top_p", 1.5), "config.sampling.top_p"),
    (_set("training.learning_rate", -1.0), "config.training.learning_rate"),
    (_set("training.learning_rate", float("nan")), "config.training.learning_rate"),
    (_set("training.beta", -0.1), "config.training.beta"),
    (_set("training.max_steps", -3), "config.training.max_steps"),
    (_set("training.precision", 9), "config.training.precision"),
    (_set("training.lora_r", -1), "config.training.lora_r"),
    (_set("training.gpus", -2), "config.training.gpus"),
    (_set("training.grad_accum", 2000), "config.training.grad_accum"),
    (_set("training.fsdp", True), "config.training.fsdp"),
    (_set("pairs.min_margin", 2.0), "config.pairs.min_margin"),
    (_set("promotion.metric", "bleu"), "config.promotion.metric"),
    (_set("promotion.max_correct_drop", 1.5), "config.promotion.max_correct_drop"),
    (_set("promotion.min_improvement", 3.0), "config.promotion.min_improvement"),
    (_set("start_from_round", "round-1"), "config.start_from_round"),
    (_set("loss", 7), "config.loss"),
    (_set("training.precision", 9), "config.training.precision"),
    (_set("training.nll_alpha", -0.5), "config.training.nll_alpha"),
    (_set("training.nll_alpha", float("inf")), "config.training.nll_alpha"),
    (_set("mask_unit", 9), "config.mask_unit"),
    (_set("pairs.rule", 9), "config.pairs.rule"),
    (_set("promotion.f1_k", 0.0), "config.promotion.f1_k"),
]


@pytest.mark.parametrize(("mutate", "field"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_malformed_field_is_named(mutate: Callable[[Cfg], None], field: str) -> None:
    cfg = tiny_config()
    mutate(cfg)
    with pytest.raises(InvalidArgument) as info:
        validate_config(cfg, datasets.names())
    assert info.value.field == field
    assert info.value.metadata["field"] == field


def test_empty_inline_prompt_is_named() -> None:
    cfg = tiny_config()
    cfg.prompts.prompts.prompts.add(prompt="Tell me a bio of Ada Lovelace.")
    cfg.prompts.prompts.prompts.add(prompt="   ")
    with pytest.raises(InvalidArgument) as info:
        validate_config(cfg, datasets.names())
    assert info.value.field == "config.prompts.prompts.prompts[1].prompt"


def test_defaults_are_filled_in() -> None:
    cfg = alignment_pb2.RoundConfig(model="models/tiny")
    cfg.prompts.dataset = "tiny/train"
    cfg.eval_prompts.prompts.prompts.add(prompt="Who is Ada?", topic="Ada Lovelace")
    spec = validate_config(cfg, datasets.names(), defaults=Promotion("factscore", 0.05, 0.2, eval_prompts=90))
    assert spec.samples_per_prompt == 4 and spec.loss == "maskdpo" and spec.mask_rule == "default"
    assert spec.training.beta == 0.1 and spec.training.batch_size == 8 and spec.min_margin == 0.1
    assert spec.training.nll_alpha == 0.0 and spec.mask_unit == "sentence" and spec.pair_rule == "precision"
    assert spec.promotion == Promotion("factscore", 0.05, 0.2, eval_prompts=90)
    assert spec.eval_prompts.limit == 90  # the evaluation set size is the server's setting unless given
    assert spec.eval_prompts.inline[0].topic == "Ada Lovelace"
    cfg.promotion.min_improvement = 0.0  # explicitly zero is honoured, not replaced by the default
    assert validate_config(cfg, datasets.names()).promotion.min_improvement == 0.0
    t = spec.training
    assert (t.precision, t.precompute_ref, t.lora_r, t.gradient_checkpointing, t.gpus, t.fsdp, t.grad_accum) == (
        Precision.FLOAT32, False, 8, True, 1, False, 1)


def test_training_recipe_is_resolved() -> None:
    cfg = tiny_config()
    t = cfg.training
    t.precision, t.precompute_ref, t.gpus, t.fsdp, t.grad_accum = memory_plan_pb2.PRECISION_BF16_MIXED, True, 8, True, 2
    t.gradient_checkpointing = False  # explicitly off: not replaced by the default (on)
    resolved = validate_config(cfg, datasets.names()).training
    assert (resolved.precision, resolved.precompute_ref, resolved.gpus, resolved.fsdp, resolved.grad_accum,
            resolved.gradient_checkpointing) == (Precision.BF16_MIXED, True, 8, True, 2, False)


def test_registered_knowledge_source_in_round_prompts_is_refused_not_ignored() -> None:
    cfg = tiny_config()
    item = cfg.eval_prompts.prompts.prompts.add(prompt="Tell me a bio of Ada Lovelace.")
    item.knowledge.knowledge_source = "knowledgeSources/bios"
    with pytest.raises(InvalidArgument) as info:
        validate_config(cfg, datasets.names())
    assert info.value.field == "config.eval_prompts.prompts.prompts[0].knowledge.knowledge_source"


def test_levers_are_resolved_by_the_trainer_names() -> None:
    """Every MaskUnit and PairRule of the contract is a value of the trainer's enum of that name, and back."""
    from maskdpo.trainer.pairs import PairRule
    from maskdpo.trainer.token_masks import MaskUnit

    for proto, trainer, name in ((alignment_pb2.MaskUnit, MaskUnit, "mask_unit"),
                                 (alignment_pb2.PairRule, PairRule, "pair_rule")):
        seen = set()
        for number in proto.values():
            cfg = tiny_config()
            if name == "mask_unit":
                cfg.mask_unit = number  # type: ignore[assignment]
            else:
                cfg.pairs.rule = number  # type: ignore[assignment]
            seen.add(trainer(getattr(validate_config(cfg, datasets.names()), name)))
        assert seen == set(trainer)
    cfg = tiny_config()
    cfg.training.nll_alpha, cfg.mask_unit, cfg.pairs.rule = 0.5, alignment_pb2.MASK_UNIT_CLAIM, alignment_pb2.PAIR_RULE_NET_CORRECT
    cfg.promotion.f1_k, cfg.eval_prompts.limit = 4.0, 3
    spec = validate_config(cfg, datasets.names())
    assert (spec.training.nll_alpha, spec.mask_unit, spec.pair_rule) == (0.5, "claim", "net_correct")
    assert spec.promotion.f1_k == 4.0 and spec.eval_prompts.limit == 3  # a given size is honoured
