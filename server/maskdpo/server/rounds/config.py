"""A RoundConfig, validated and resolved into plain Python (:class:`RoundSpec`) before any work starts.

:func:`validate_config` raises :class:`~maskdpo.server.errors.InvalidArgument` naming the first bad field
(``config.training.learning_rate``, ``config.prompts.dataset``, ...). Zero / unset fields take the
defaults documented in alignment.proto; the resolved values are what the round records and runs with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from maskdpo.server.edge.names import MODEL_ID_RULE, MODEL_NAME, ROUND_NAME
from maskdpo.server.errors import InvalidArgument
from maskdpo.server.judge.types import Fact, Passage
from maskdpo.trainer.memory_plan import Precision
from maskdpo.v1 import alignment_pb2, common_pb2, memory_plan_pb2

METRICS = ("anah_score", "factscore", "f1_at_k")
"""Promotion metrics: Evaluation fields (and :mod:`maskdpo.server.judge.metrics` names)."""
DEFAULT_EVAL_PROMPTS = 200
MAX_PROMPTS = 10_000


@dataclass(frozen=True)
class PromptItem:
    """One prompt with the knowledge its answers are judged against."""

    prompt: str
    topic: str = ""
    facts: tuple[Fact, ...] = ()
    passages: tuple[Passage, ...] = ()
    knowledge_source: str = ""


@dataclass(frozen=True)
class PromptSource:
    dataset: str = ""
    inline: tuple[PromptItem, ...] = ()
    limit: int = 0


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 96


@dataclass(frozen=True)
class Training:
    beta: float = 0.1
    learning_rate: float = 1e-6
    epochs: int = 1
    batch_size: int = 8
    max_steps: int = 0
    max_length: int = 1024
    lora: bool = False
    precision: Precision = Precision.FLOAT32
    precompute_ref: bool = False
    lora_r: int = 8
    gradient_checkpointing: bool = True
    gpus: int = 1
    fsdp: bool = False
    grad_accum: int = 1
    nll_alpha: float = 0.0


@dataclass(frozen=True)
class Promotion:
    """The promotion rule (alignment.proto PromotionRule) and the evaluation set it decides on."""

    metric: str = "anah_score"
    min_improvement: float = 0.01
    max_correct_drop: float = 0.0
    f1_k: float | None = None
    """K of F1@K; None = the median facts per answer of the chain start's evaluation answers."""
    eval_prompts: int = DEFAULT_EVAL_PROMPTS
    """Evaluation prompts when a round's eval_prompts.limit is 0 (0 = all)."""


@dataclass(frozen=True)
class RoundSpec:
    """Everything a round runs with, defaults filled in."""

    model: str
    prompts: PromptSource
    eval_prompts: PromptSource
    samples_per_prompt: int = 4
    sampling: Sampling = field(default_factory=Sampling)
    judge: str = ""
    loss: str = "maskdpo"
    mask_rule: str = "default"
    mask_unit: str = "sentence"
    min_margin: float = 0.1
    keep_degenerate: bool = False
    pair_rule: str = "precision"
    training: Training = field(default_factory=Training)
    promotion: Promotion = field(default_factory=Promotion)
    start_from_round: str = ""
    seed: int = 0

    @property
    def model_id(self) -> str:
        return self.model.removeprefix("models/")


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise InvalidArgument(field_name, message)


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _prompt_source(msg: alignment_pb2.PromptSet, name: str, known: frozenset[str]) -> PromptSource:
    kind = msg.WhichOneof("source")
    _check(kind is not None, name, "required: inline prompts or a registered dataset")
    _check(msg.limit >= 0, f"{name}.limit", "must be >= 0 (0 = all)")
    if kind == "dataset":
        _check(
            msg.dataset in known,
            f"{name}.dataset",
            f"unknown dataset {msg.dataset[:80]!r}; registered: {', '.join(sorted(known)) or 'none'}",
        )
        return PromptSource(dataset=msg.dataset, limit=msg.limit)
    items = msg.prompts.prompts
    _check(0 < len(items) <= MAX_PROMPTS, f"{name}.prompts.prompts", f"needs 1 to {MAX_PROMPTS} prompts")
    out = []
    for i, p in enumerate(items):
        where = f"{name}.prompts.prompts[{i}]"
        _check(bool(p.prompt.strip()), f"{where}.prompt", "must not be empty")
        src = p.knowledge.WhichOneof("source") if p.HasField("knowledge") else None
        facts = (
            tuple(Fact(f.subject, f.attribute, f.value) for f in p.knowledge.facts.facts)
            if src == "facts"
            else ()
        )
        passages = (
            tuple(Passage(q.text, q.title) for q in p.knowledge.passages.passages)
            if src == "passages"
            else ()
        )
        _check(
            src != "knowledge_source",
            f"{where}.knowledge.knowledge_source",
            "registered knowledge sources are not supported in round prompts yet; pass facts or passages",
        )
        source = ""
        out.append(PromptItem(p.prompt, p.topic, facts, passages, source.removeprefix("knowledgeSources/")))
    return PromptSource(inline=tuple(out), limit=msg.limit)


def validate_config(
    config: alignment_pb2.RoundConfig,
    datasets: frozenset[str],
    judges: frozenset[str] | None = None,
    defaults: Promotion | None = None,
) -> RoundSpec:
    """Resolve ``config`` or raise InvalidArgument naming the field (prefix ``config.``)."""
    c = "config"
    _check(bool(MODEL_NAME.fullmatch(config.model)), f"{c}.model",
           f"expected 'models/{{model}}' with a model id of {MODEL_ID_RULE}")
    _check(config.HasField("prompts"), f"{c}.prompts", "required")
    _check(config.HasField("eval_prompts"), f"{c}.eval_prompts", "required")
    prompts = _prompt_source(config.prompts, f"{c}.prompts", datasets)
    eval_prompts = _prompt_source(config.eval_prompts, f"{c}.eval_prompts", datasets)
    _check(0 <= config.samples_per_prompt <= 64, f"{c}.samples_per_prompt", "must be between 0 and 64")
    samples = config.samples_per_prompt or 4
    _check(samples >= 2, f"{c}.samples_per_prompt", "pairs need at least 2 samples per prompt")
    s = config.sampling
    _check(s.n in (0, 1), f"{c}.sampling.n", "set samples_per_prompt instead (n must be 0 or 1)")
    temperature = s.temperature if s.HasField("temperature") else 1.0
    _check(
        _finite(temperature) and 0.0 < temperature <= 10.0,
        f"{c}.sampling.temperature",
        "must be in (0, 10]: on-policy samples must differ",
    )
    top_p = s.top_p if s.HasField("top_p") else 1.0
    _check(_finite(top_p) and 0.0 < top_p <= 1.0, f"{c}.sampling.top_p", "must be in (0, 1]")
    top_k = s.top_k if s.HasField("top_k") else 0
    _check(top_k >= 0, f"{c}.sampling.top_k", "must be >= 0")
    _check(0 <= s.max_tokens <= 8192, f"{c}.sampling.max_tokens", "must be between 0 and 8192")
    if judges is not None and config.judge:
        _check(
            config.judge in judges, f"{c}.judge", f"unknown judge {config.judge!r}; known: {sorted(judges)}"
        )
    loss = {
        alignment_pb2.LOSS_UNSPECIFIED: "maskdpo",
        alignment_pb2.MASK_DPO: "maskdpo",
        alignment_pb2.DPO: "dpo",
    }.get(config.loss)
    _check(loss is not None, f"{c}.loss", f"unknown value {config.loss}")
    rule = {
        common_pb2.MASK_RULE_UNSPECIFIED: "default",
        common_pb2.MASK_RULE_DEFAULT: "default",
        common_pb2.MASK_RULE_RELEASED: "released",
    }.get(config.mask_rule)
    _check(rule is not None, f"{c}.mask_rule", f"unknown value {config.mask_rule}")
    margin = config.pairs.min_margin or 0.1
    _check(_finite(margin) and 0.0 <= margin <= 1.0, f"{c}.pairs.min_margin", "must be in [0, 1]")
    t = config.training
    beta = t.beta or 0.1
    _check(_finite(beta) and 0.0 < beta <= 100.0, f"{c}.training.beta", "must be in (0, 100]")
    lr = t.learning_rate or 1e-6
    _check(_finite(lr) and 0.0 < lr <= 1.0, f"{c}.training.learning_rate", "must be in (0, 1]")
    _check(0 <= t.epochs <= 100, f"{c}.training.epochs", "must be between 0 and 100")
    _check(0 <= t.batch_size <= 1024, f"{c}.training.batch_size", "must be between 0 and 1024")
    _check(t.max_steps >= 0, f"{c}.training.max_steps", "must be >= 0 (0 = no cap)")
    _check(0 <= t.max_length <= 131072, f"{c}.training.max_length", "must be between 0 and 131072")
    _check(_finite(t.nll_alpha) and 0.0 <= t.nll_alpha <= 100.0, f"{c}.training.nll_alpha", "must be in [0, 100]")
    unit = _enum_value(alignment_pb2.MaskUnit, config.mask_unit, "MASK_UNIT_", f"{c}.mask_unit")
    pair_rule = _enum_value(alignment_pb2.PairRule, config.pairs.rule, "PAIR_RULE_", f"{c}.pairs.rule")
    defaults = defaults or Promotion()
    promotion = _promotion(config.promotion, defaults)
    if not config.eval_prompts.limit:
        eval_prompts = replace(eval_prompts, limit=defaults.eval_prompts)
    if config.start_from_round:
        _check(
            bool(ROUND_NAME.fullmatch(config.start_from_round)),
            f"{c}.start_from_round",
            "expected 'rounds/{round}'",
        )
    return RoundSpec(
        model=config.model,
        prompts=prompts,
        eval_prompts=eval_prompts,
        samples_per_prompt=samples,
        sampling=Sampling(temperature, top_p, top_k, s.max_tokens or 96),
        judge=config.judge,
        loss=loss or "",
        mask_rule=rule or "",
        mask_unit=unit,
        min_margin=margin,
        keep_degenerate=config.pairs.keep_degenerate,
        pair_rule=pair_rule,
        training=_recipe(
            t,
            Training(
                beta, lr, t.epochs or 1, t.batch_size or 8, t.max_steps, t.max_length or 1024, t.lora,
                nll_alpha=t.nll_alpha,
            ),
        ),
        promotion=promotion,
        start_from_round=config.start_from_round,
        seed=config.seed,
    )


PRECISIONS = {
    memory_plan_pb2.PRECISION_UNSPECIFIED: Precision.FLOAT32,
    memory_plan_pb2.PRECISION_FLOAT32: Precision.FLOAT32,
    memory_plan_pb2.PRECISION_BF16: Precision.BF16,
    memory_plan_pb2.PRECISION_BF16_MIXED: Precision.BF16_MIXED,
}


def _recipe(t: alignment_pb2.TrainingConfig, base: Training) -> Training:
    """``base`` with the training recipe's fields of ``t`` (what the memory plan reads)."""
    name = "config.training"
    precision = PRECISIONS.get(t.precision)
    _check(precision is not None, f"{name}.precision", f"unknown value {t.precision}")
    _check(0 <= t.lora_r <= 1024, f"{name}.lora_r", "must be between 0 and 1024 (0 = 8)")
    _check(0 <= t.gpus <= 4096, f"{name}.gpus", "must be between 0 and 4096 (0 = 1)")
    _check(0 <= t.grad_accum <= 1024, f"{name}.grad_accum", "must be between 0 and 1024 (0 = 1)")
    _check(not t.fsdp or t.gpus >= 2, f"{name}.fsdp", "shards over several GPUs: set gpus >= 2")
    checkpointing = t.gradient_checkpointing if t.HasField("gradient_checkpointing") else True
    return replace(base, precision=precision or Precision.FLOAT32, precompute_ref=t.precompute_ref,
                   lora_r=t.lora_r or 8, gradient_checkpointing=checkpointing, gpus=t.gpus or 1, fsdp=t.fsdp,
                   grad_accum=t.grad_accum or 1)


def _promotion(p: alignment_pb2.PromotionRule, defaults: Promotion) -> Promotion:
    name = "config.promotion"
    metric = p.metric or defaults.metric
    _check(metric in METRICS, f"{name}.metric", f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    gain = p.min_improvement if p.HasField("min_improvement") else defaults.min_improvement
    _check(_finite(gain) and -1.0 <= gain <= 1.0, f"{name}.min_improvement", "must be in [-1, 1]")
    drop = p.max_correct_drop if p.HasField("max_correct_drop") else defaults.max_correct_drop
    _check(_finite(drop) and 0.0 <= drop <= 1.0, f"{name}.max_correct_drop", "must be in [0, 1]")
    k = p.f1_k if p.HasField("f1_k") else defaults.f1_k
    _check(k is None or (_finite(k) and 0.0 < k <= 1000.0), f"{name}.f1_k", "must be in (0, 1000]")
    return Promotion(metric, gain, drop, k, defaults.eval_prompts)


def _enum_value(enum: Any, number: int, prefix: str, field_name: str) -> str:
    """The lower-case name of a proto enum value without its prefix (``MASK_UNIT_CLAIM`` -> ``claim``);
    unspecified -> the first named value."""
    names = [n for n in enum.keys() if not n.endswith("_UNSPECIFIED")]
    name = enum.Name(number) if number in enum.values() else None
    _check(name is not None, field_name, f"unknown value {number}")
    chosen: str = names[0] if name is None or name.endswith("_UNSPECIFIED") else name
    return chosen.removeprefix(prefix).lower()
