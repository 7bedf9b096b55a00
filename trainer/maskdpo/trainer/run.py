"""One training run, end to end: load data, build pairs, train (Mask-DPO or vanilla DPO), save.

Both the ``maskdpo train`` command and the service's Trainer actor call :func:`run_training`. A run writes
under ``out``: ``checkpoints/checkpoint-N`` (resumable, atomic), ``final/`` (the model or LoRA adapter in
Hugging Face layout with ``training_info.json``), ``pairs.jsonl`` (the exact training pairs) and
``metrics.jsonl`` (one line per logged step, plus evaluations on the training pairs when asked).
Progress goes to ``emit`` as plain dicts; ``should_cancel`` is checked after every optimizer step, and a
cancelled run saves no final model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maskdpo.trainer.checkpoint import STAGING_PREFIXES
from maskdpo.trainer.data import load_training_data, write_pairs
from maskdpo.trainer.durable import remove_leftovers
from maskdpo.trainer.pairs import Degenerate, PairConfig, PairRule
from maskdpo.trainer.token_masks import EndOfTurn, MaskConfig, MaskRule, MaskUnit

Event = dict[str, Any]


@dataclass
class TrainOptions:
    data: Path
    model: Path
    out: Path
    fmt: str = "auto"
    loss: str = "maskdpo"
    """``maskdpo`` or ``dpo`` (vanilla: all-ones masks)."""
    mask_rule: MaskRule = MaskRule.DEFAULT
    end_of_turn: EndOfTurn = EndOfTurn.KEEP
    mask_unit: MaskUnit = MaskUnit.SENTENCE
    """``claim``: a rejected sentence counts only with the tokens of its wrong values, where the judge gave them."""
    min_margin: float = 0.0
    degenerate: Degenerate = Degenerate.DROP_BOTH
    pair_rule: PairRule = PairRule.PRECISION
    """How the chosen sample is picked (judged data only; :class:`maskdpo.trainer.pairs.PairRule`)."""
    nll_alpha: float = 0.0
    """Weight of the NLL anchor on the chosen answers' kept tokens (0 = off; :func:`maskdpo.trainer.dpo.nll_anchor`)."""
    steps: int = 20
    learning_rate: float = 1e-6
    beta: float = 0.1
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int | None = 1024
    warmup_ratio: float = 0.0
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    precompute_ref: bool = False
    bf16: bool = False
    seed: int = 0
    save_steps: int = 0
    """Save a resumable checkpoint every N steps (0: only the final model)."""
    resume: bool = False
    eval_train: bool = False
    """Evaluate loss and reward accuracy on the training pairs before and after training."""
    progress_bar: bool = True
    limit_pairs: int | None = None

    @property
    def mask_config(self) -> MaskConfig:
        rule = MaskRule.ALL if self.loss == "dpo" else self.mask_rule
        return MaskConfig(rule=rule, end_of_turn=self.end_of_turn, unit=self.mask_unit)


@dataclass
class TrainResult:
    out: Path
    final_dir: Path | None
    steps: int
    cancelled: bool
    seconds: float
    pair_stats: dict[str, Any]
    mask_report: dict[str, Any]
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)
    last_log: dict[str, float] = field(default_factory=dict)


def _callback(emit: Callable[[Event], None], should_cancel: Callable[[], bool], metrics_file: Path) -> Any:
    from transformers import TrainerCallback

    class _Events(TrainerCallback):
        cancelled = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            emit({"kind": "train_begin", "step": state.global_step, "max_steps": state.max_steps})

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            emit({"kind": "step", "step": state.global_step, "max_steps": state.max_steps})
            if should_cancel():
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = False
                emit({"kind": "cancelled", "step": state.global_step})

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any
        ) -> None:
            row = {"step": state.global_step, **(logs or {})}
            with metrics_file.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            emit({"kind": "metrics", **row})

    return _Events()


def run_training(
    opts: TrainOptions,
    emit: Callable[[Event], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TrainResult:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.trainer.dpo_config import DPOConfig

    from maskdpo.trainer.dpo import MaskDPOTrainer, nll_anchor

    emit = emit or (lambda _e: None)
    should_cancel = should_cancel or (lambda: False)
    started = time.monotonic()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    mask_config = opts.mask_config
    pair_config = PairConfig(
        min_margin=opts.min_margin, degenerate=opts.degenerate, mask_rule=mask_config.rule, rule=opts.pair_rule
    )
    pairs, stats = load_training_data(Path(opts.data), opts.fmt, pair_config)
    if opts.limit_pairs is not None:
        stats.dropped["over_limit"] += max(0, len(pairs) - opts.limit_pairs)
        pairs = pairs[: opts.limit_pairs]
    emit({"kind": "pairs", "summary": stats.summary(), **stats.as_dict()})
    if not pairs:
        raise ValueError(f"no training pairs in {opts.data}: {stats.summary()}")
    write_pairs(out / "pairs.jsonl", pairs)
    records = [p.to_record() for p in pairs]
    dataset = Dataset.from_list(records)

    tokenizer = AutoTokenizer.from_pretrained(str(opts.model))
    peft_config = None
    if opts.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=opts.lora_r, lora_alpha=opts.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    args = DPOConfig(
        output_dir=str(out / "checkpoints"),
        max_steps=opts.steps,
        learning_rate=opts.learning_rate,
        beta=opts.beta,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        max_length=opts.max_length,
        warmup_steps=opts.warmup_ratio,  # a float < 1 is a fraction of the steps
        lr_scheduler_type="constant_with_warmup" if opts.warmup_ratio else "constant",
        precompute_ref_log_probs=opts.precompute_ref,
        bf16=opts.bf16,
        # Explicit both ways: transformers 5 loads a checkpoint in the dtype its config declares (bfloat16 for
        # SmolLM2 and Llama); TRL passes float32 when none is given today, but full precision must not
        # depend on a library default.
        model_init_kwargs={"dtype": torch.bfloat16 if opts.bf16 else torch.float32},
        seed=opts.seed,
        logging_steps=1,
        save_strategy="steps" if opts.save_steps else "no",
        save_steps=opts.save_steps or 500,
        report_to=[],
        disable_tqdm=not opts.progress_bar,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        **nll_anchor(opts.nll_alpha),
    )
    metrics_file = out / "metrics.jsonl"
    events = _callback(emit, should_cancel, metrics_file)
    run_info = {
        "data": {"path": str(opts.data), "format": opts.fmt, "pairs": stats.as_dict()},
        "options": {k: str(v) for k, v in asdict(opts).items()},
    }
    trainer = MaskDPOTrainer(
        str(opts.model),
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset if opts.eval_train else None,
        processing_class=tokenizer,
        mask_config=mask_config,
        peft_config=peft_config,
        callbacks=[events],
        run_info=run_info,
    )
    emit({"kind": "masks", **trainer.mask_report.as_dict()})
    result = TrainResult(out, None, 0, False, 0.0, stats.as_dict(), trainer.mask_report.as_dict())
    if opts.eval_train:
        result.eval_before = trainer.evaluate()
        with metrics_file.open("a") as fh:
            fh.write(json.dumps({"phase": "before", **result.eval_before}) + "\n")
    remove_leftovers(out / "checkpoints", STAGING_PREFIXES)  # half-written checkpoints of a killed run
    resume = opts.resume and any((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    result.steps = trainer.state.global_step
    result.cancelled = events.cancelled
    logs = [h for h in trainer.state.log_history if "loss" in h]
    result.last_log = logs[-1] if logs else {}
    if not result.cancelled:
        if opts.eval_train:
            result.eval_after = trainer.evaluate()
            with metrics_file.open("a") as fh:
                fh.write(json.dumps({"phase": "after", **result.eval_after}) + "\n")
        result.final_dir = trainer.save_final(out / "final")  # model/adapter + tokenizer + training_info
    result.seconds = time.monotonic() - started
    emit(
        {
            "kind": "done",
            "cancelled": result.cancelled,
            "steps": result.steps,
            "seconds": result.seconds,
            "final_dir": str(result.final_dir) if result.final_dir else None,
        }
    )
    return result
