"""One training run, end to end: load data, build pairs, train (Mask-DPO or vanilla DPO), save.

Both the ``maskdpo train`` command and the service's Trainer actor call :func:`run_training`. A run writes
under ``out``: ``checkpoints/checkpoint-N`` (resumable, atomic), ``final/`` (the model or LoRA adapter in
Hugging Face layout with ``training_info.json``), ``pairs.jsonl`` (the exact training pairs) and
``metrics.jsonl`` (one line per logged step, plus evaluations on the training pairs when asked).
Progress goes to ``emit`` as plain dicts; ``should_cancel`` is checked after every optimizer step, and a
cancelled run saves no final model.

In a ``torch.distributed`` process group set up before it is called (Ray Train workers do that: see
``maskdpo.server.workers.ray_train``), every process runs this function on the same options and the same run
folder: the main process writes the files and emits the events, the main process's ``should_cancel`` stops
every process after the same step, and ``batch_size`` is per process (the global batch is
``batch_size x processes x grad_accum``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maskdpo.trainer import distributed
from maskdpo.trainer.checkpoint import STAGING_PREFIXES
from maskdpo.trainer.data import load_training_data, write_pairs
from maskdpo.trainer.durable import remove_leftovers
from maskdpo.trainer.pairs import Degenerate, PairConfig, PairRule
from maskdpo.trainer.probe import write_probe
from maskdpo.trainer.serving_weights import serving_dtype
from maskdpo.trainer.token_masks import EndOfTurn, MaskConfig, MaskRule, MaskUnit

Event = dict[str, Any]
Push = Callable[[Any, str | None], dict[str, Any]]
"""After the final full weights are saved: (the trained model, the dtype they were saved in) -> a report."""


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
    probe_text: str = ""
    """A text whose log-probs under the final model are saved beside it (:mod:`maskdpo.trainer.probe`), for
    the server's deploy verification; "" = none."""
    adapter: Path | None = None
    """A LoRA adapter (folder) of ``model`` to go on training (``lora`` implied): a chained round's start.
    Its reference is ``model`` with the adapter disabled, as for a new adapter."""
    precompute_ref: bool = False
    """Reference log-probs computed once before training; no reference model is held while training."""
    bf16: bool = False
    """Mixed precision: bfloat16 compute on float32 master weights and optimizer state (a LoRA base is loaded
    in bfloat16: it does not train)."""
    fsdp: bool = False
    """Shard weights, gradients and optimizer state over the processes (FSDP2 through transformers/accelerate,
    which shards GPU processes only: refused elsewhere)."""
    keep_checkpoints: int | None = None
    """Keep only the last N checkpoints (None: all)."""
    serving_dtype: str = "auto"
    """dtype of the final full model: ``auto`` = the one the starting model declares (see serving_weights)."""
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
    processes: int = 1
    """Training processes (``torch.distributed`` world size)."""
    sharded: bool = False
    """The model was sharded over them (FSDP)."""
    pushed: dict[str, Any] = field(default_factory=dict)
    """What ``run_training``'s ``push`` returned: bytes and seconds, or the error that stopped it."""


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
            if state.is_world_process_zero:
                with metrics_file.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            emit({"kind": "metrics", **row})

    return _Events()


def _policy(opts: TrainOptions, args: Any) -> Any:
    """The model TRL trains: a path (TRL loads it, and the reference beside it), or, to go on training an
    adapter, the base with that adapter loaded trainable (TRL's reference is then the adapter disabled)."""
    if opts.adapter is None:
        return str(opts.model)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(opts.model), **(args.model_init_kwargs or {}))
    args.model_init_kwargs = None  # used here; TRL refuses them beside an instance
    model = PeftModel.from_pretrained(base, str(opts.adapter), is_trainable=True)
    return model.to(torch.bfloat16 if opts.bf16 else torch.float32)


def run_training(
    opts: TrainOptions,
    emit: Callable[[Event], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    push: Push | None = None,
) -> TrainResult:
    """Train as ``opts`` says; ``push(model, dtype)``, if given, is called by every process once the final
    full weights are saved (e.g. to send them into a running engine, :mod:`maskdpo.trainer.weight_push`)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.trainer.dpo_config import DPOConfig

    from maskdpo.trainer.dpo import MaskDPOTrainer, nll_anchor

    main = distributed.is_main()
    emit = emit if emit is not None and main else (lambda _e: None)
    should_cancel = distributed.agreed(should_cancel or (lambda: False))
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
    if main:
        write_pairs(out / "pairs.jsonl", pairs)
    records = [p.to_record() for p in pairs]
    dataset = distributed.on_shared_files(Dataset.from_list(records), out / "dataset")

    tokenizer = AutoTokenizer.from_pretrained(str(opts.model))
    peft_config = None
    if opts.lora and opts.adapter is None:
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
        # depend on a library default. Trained weights stay float32 under bf16 too: Adam's updates at
        # alignment learning rates (1e-6 of a weight) are far below bfloat16's resolution (~0.4 %).
        model_init_kwargs={"dtype": torch.bfloat16 if opts.bf16 and opts.lora else torch.float32},
        fsdp=opts.fsdp or None,  # type: ignore[arg-type]  # transformers 5.19 takes True; its annotation lags
        fsdp_config={"version": 2, "state_dict_type": "FULL_STATE_DICT"} if opts.fsdp else None,
        save_total_limit=opts.keep_checkpoints,
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
        _policy(opts, args),
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset if opts.eval_train else None,
        processing_class=tokenizer,
        mask_config=mask_config,
        peft_config=peft_config,
        callbacks=[events],
        run_info=run_info,
    )
    if opts.fsdp and not trainer.is_fsdp_enabled:  # accelerate would silently run plain data parallelism
        raise ValueError(
            f"fsdp needs GPU processes: accelerate shards only those, and runs these {distributed.world_size()} "
            f"as {trainer.accelerator.distributed_type.value}"
        )
    emit({"kind": "masks", **trainer.mask_report.as_dict()})
    result = TrainResult(out, None, 0, False, 0.0, stats.as_dict(), trainer.mask_report.as_dict())
    if opts.eval_train:
        result.eval_before = trainer.evaluate()
        if main:
            with metrics_file.open("a") as fh:
                fh.write(json.dumps({"phase": "before", **result.eval_before}) + "\n")
    if main:
        remove_leftovers(out / "checkpoints", STAGING_PREFIXES)  # half-written checkpoints of a killed run
    resume = opts.resume and any((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    result.steps = trainer.state.global_step
    result.processes, result.sharded = distributed.world_size(), distributed.is_sharded(trainer.model)
    result.cancelled = events.cancelled
    logs = [h for h in trainer.state.log_history if "loss" in h]
    result.last_log = logs[-1] if logs else {}
    if not result.cancelled:
        if opts.eval_train:
            result.eval_after = trainer.evaluate()
            if main:
                with metrics_file.open("a") as fh:
                    fh.write(json.dumps({"phase": "after", **result.eval_after}) + "\n")
        dtype = None if opts.lora else serving_dtype(opts.serving_dtype, opts.model)
        result.final_dir = trainer.save_final(out / "final", dtype)  # model/adapter + tokenizer + training_info
        assert trainer.model is not None
        trained_dtype = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
        if opts.probe_text and main and not opts.fsdp and dtype in (None, trained_dtype):
            # what was saved is what was trained: the probe's reference holds for it (a sharded model has no
            # whole copy on one process; narrowed weights are scored from their folder by the server)
            write_probe(trainer.model, tokenizer, opts.probe_text, result.final_dir)
        if push is not None and not opts.lora:
            result.pushed = push(trainer.model, dtype)
    result.seconds = time.monotonic() - started
    emit(
        {
            "kind": "done",
            "cancelled": result.cancelled,
            "steps": result.steps,
            "seconds": result.seconds,
            "processes": result.processes,
            "sharded": result.sharded,
            "final_dir": str(result.final_dir) if result.final_dir else None,
        }
    )
    return result
