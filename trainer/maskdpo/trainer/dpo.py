"""``MaskDPOTrainer``: TRL's DPOTrainer (trl==1.16.0, pinned) with sentence masks folded into its batches.

TRL sums per-token log-probs over ``completion_mask`` for the policy, the reference and the precomputed
reference alike, so Mask-DPO needs no loss code: the dataset carries ``chosen_sentences`` /
``rejected_sentences`` (``[{start, end, label}]`` over the response text), ``_prepare_dataset`` turns them
into ``chosen_token_mask`` / ``rejected_token_mask`` aligned with TRL's own ``chosen_ids`` /
``rejected_ids`` (by offsets of the joint encoding, verified id for id), plus byte rows aligned with
prompt+completion that the collator (:mod:`maskdpo.trainer.collator`) multiplies ``completion_mask`` by.
With ``MaskConfig(rule="all")`` every mask is all ones: vanilla DPO, exactly.

The NLL anchor (:func:`nll_anchor`, RPO-style) adds ``alpha`` times the mean negative log-likelihood of the
chosen answers' kept tokens to the DPO loss -- TRL's ``sft`` loss term, which reads the same masked
``completion_mask``, so under Mask-DPO masks it pulls up exactly the correct sentences.

Also here: configuration checks (options that break under sparse masks are rejected), per-step kept-token
fractions in the logged metrics (counted on the host, materialised only when the trainer logs), a per-pair
mask report (truncation into kept spans, empty sides), and atomic checkpoints carrying
``training_info.json`` -- written by every process into one staging folder, published by the main one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer

from maskdpo.trainer import distributed
from maskdpo.trainer.checkpoint import (
    data_fingerprint,
    library_versions,
    publish,
    staging_dir_for,
    write_training_info,
)
from maskdpo.trainer.collator import (
    MASK_ROW_COLUMNS,
    TOKEN_COUNTS_KEY,
    DataCollatorForMaskedPreference,
    mask_row,
)
from maskdpo.trainer.joint import completion_mask
from maskdpo.trainer.mask_metrics import KeptTokenMetrics
from maskdpo.trainer.pairs import sentences_from_rows
from maskdpo.trainer.serving_weights import convert_saved_model
from maskdpo.trainer.token_masks import MaskConfig, Role

logger = logging.getLogger(__name__)

SENTENCE_COLUMNS = {Role.CHOSEN: "chosen_sentences", Role.REJECTED: "rejected_sentences"}
MASK_COLUMNS = {Role.CHOSEN: "chosen_token_mask", Role.REJECTED: "rejected_token_mask"}
NORMALISED_LOSSES = {"ipo", "sigmoid_norm"}


def nll_anchor(alpha: float) -> dict[str, Any]:
    """``DPOConfig`` arguments for DPO plus ``alpha`` x the mean NLL of the chosen answers' kept tokens.

    ``alpha = 0`` gives plain sigmoid DPO (no second term at all, so the loss is exactly the unanchored one).
    The mean runs over the kept chosen tokens of the whole batch (TRL's ``sft`` term).
    """
    if not alpha >= 0.0:
        raise ValueError(f"the NLL anchor's weight must be >= 0, got {alpha}")
    if alpha == 0.0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, alpha]}


def validate_config(args: DPOConfig, mask: MaskConfig) -> None:
    """Reject DPO options whose meaning breaks when completion masks are sparse."""
    if mask.is_vanilla:
        return
    problems = []
    if args.ld_alpha is not None:
        problems.append("ld_alpha (length desensitisation splits completions by position, not by kept token)")
    if args.use_weighting:
        problems.append("use_weighting (WPO weights average over kept tokens only)")
    if problems:
        raise ValueError("options not supported with Mask-DPO masks: " + "; ".join(problems))
    normalised = NORMALISED_LOSSES.intersection(args.loss_type)
    if normalised:
        logger.warning(
            "loss types %s normalise by the number of KEPT tokens under Mask-DPO masks", sorted(normalised)
        )


@dataclass
class MaskReport:
    """What mask building found, over a prepared dataset."""

    pairs: int = 0
    kept_tokens: dict[str, int] = field(default_factory=lambda: {"chosen": 0, "rejected": 0})
    completion_tokens: dict[str, int] = field(default_factory=lambda: {"chosen": 0, "rejected": 0})
    empty: dict[str, int] = field(default_factory=lambda: {"chosen": 0, "rejected": 0})
    truncated_pairs: int = 0
    warnings: list[str] = field(default_factory=list)

    def kept_fraction(self, role: str) -> float:
        total = self.completion_tokens[role]
        return self.kept_tokens[role] / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "kept_fraction": {r: self.kept_fraction(r) for r in ("chosen", "rejected")},
            "empty_sides": dict(self.empty),
            "truncated_pairs": self.truncated_pairs,
            "warnings": list(self.warnings),
        }


class MaskDPOTrainer(DPOTrainer):
    """DPO whose log-ratios sum only over the tokens of kept sentences (see the module docstring).

    ``processing_class`` is required (the masks need the tokenizer). ``run_info`` is merged into every
    checkpoint's ``training_info.json`` (e.g. the data source and the pair statistics).
    """

    def __init__(
        self,
        model: Any,
        *,
        args: DPOConfig,
        train_dataset: Any,
        processing_class: Any,
        mask_config: MaskConfig | None = None,
        run_info: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.mask_config = mask_config or MaskConfig()
        validate_config(args, self.mask_config)
        self.mask_report = MaskReport()
        self.kept_token_metrics = KeptTokenMetrics()
        self.run_info = dict(run_info or {})
        self.data_fingerprint = data_fingerprint(train_dataset)
        self._staging_dir: Path | None = None
        self._run_token = distributed.run_token()  # one staging folder name for every process
        tok = getattr(processing_class, "tokenizer", processing_class)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if "data_collator" not in kwargs or kwargs["data_collator"] is None:
            kwargs["data_collator"] = DataCollatorForMaskedPreference(
                pad_token_id=tok.convert_tokens_to_ids(args.pad_token or tok.pad_token),
                max_length=args.max_length,
                truncation_mode=args.truncation_mode,
                pad_to_multiple_of=args.pad_to_multiple_of
                if isinstance(args.pad_to_multiple_of, int)
                else None,
            )
        super().__init__(
            model, args=args, train_dataset=train_dataset, processing_class=processing_class, **kwargs
        )
        if "sft" in args.loss_type and self.mask_report.empty["chosen"]:
            logger.warning(
                "%d training pairs keep no chosen token: a batch made only of such pairs has no NLL anchor term",
                self.mask_report.empty["chosen"],
            )

    # -- data -----------------------------------------------------------------------------------------------
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()  # type: ignore[no-untyped-call]
        assert self._signature_columns is not None
        self._signature_columns = [*self._signature_columns, *MASK_ROW_COLUMNS.values()]

    def _prepare_dataset(
        self, dataset: Any, processing_class: Any, args: DPOConfig, dataset_name: str
    ) -> Any:
        prepared = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if MASK_ROW_COLUMNS[Role.CHOSEN] in prepared.column_names:
            return prepared
        if MASK_COLUMNS[Role.CHOSEN] not in prepared.column_names:
            prepared = self._add_token_masks(prepared, processing_class, args, dataset_name)
        return prepared.map(
            _mask_rows_for_example,
            fn_kwargs={"name": dataset_name},
            with_indices=True,
            desc=f"Mask rows for {dataset_name}",
        )

    def _add_token_masks(
        self, prepared: Any, processing_class: Any, args: DPOConfig, dataset_name: str
    ) -> Any:
        if self.mask_config.is_vanilla:
            return prepared.map(
                lambda ex: {MASK_COLUMNS[r]: [1] * len(ex[f"{r.value}_ids"]) for r in MASK_COLUMNS},
                desc=f"All-ones masks for {dataset_name}",
            )
        missing = [c for c in SENTENCE_COLUMNS.values() if c not in prepared.column_names]
        if missing:
            raise ValueError(f"{dataset_name} dataset lacks {missing}: Mask-DPO needs the judged sentences")
        report = self.mask_report if dataset_name == "train" else MaskReport()
        return prepared.map(
            self._masks_for_example,
            fn_kwargs={
                "tokenizer": getattr(processing_class, "tokenizer", processing_class),
                "name": dataset_name,
                "report": report,
                "args": args,
            },
            with_indices=True,
            load_from_cache_file=False,
            desc=f"Sentence masks for {dataset_name}",
        )

    def _masks_for_example(
        self, ex: dict[str, Any], idx: int, tokenizer: Any, name: str, report: MaskReport, args: DPOConfig
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kwargs = dict(ex.get("chat_template_kwargs") or {})
        if ex.get("tools"):
            kwargs["tools"] = ex["tools"]
        truncated = False
        for role in (Role.CHOSEN, Role.REJECTED):
            completion = ex[role.value]
            eos = tokenizer.eos_token or ""
            if isinstance(completion, list):
                response, completion_text = completion[-1]["content"], None
            else:
                response = completion[: -len(eos)] if eos and completion.endswith(eos) else completion
                completion_text = completion
            where = f"{name} record {idx} ({role.value})"
            try:
                sentences = sentences_from_rows(ex[SENTENCE_COLUMNS[role]] or [])
                _, result = completion_mask(
                    tokenizer,
                    ex["prompt"],
                    response,
                    sentences,
                    role,
                    self.mask_config,
                    completion_text=completion_text,
                    expected_ids=list(ex["prompt_ids"]) + list(ex[f"{role.value}_ids"]),
                    prompt_len=len(ex["prompt_ids"]),
                    max_length=args.max_length,
                    truncation_mode=args.truncation_mode,
                    template_kwargs=kwargs,
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{where}: {exc}") from exc
            out[MASK_COLUMNS[role]] = result.mask
            report.kept_tokens[role.value] += result.kept_tokens
            report.completion_tokens[role.value] += len(result.mask)
            report.empty[role.value] += result.is_empty
            truncated |= result.truncated_kept_tokens > 0
            for warning in result.warnings:
                report.warnings.append(f"{where}: {warning}")
                logger.warning("%s: %s", where, warning)
        report.pairs += 1
        report.truncated_pairs += truncated
        return out

    # -- loss and metrics -----------------------------------------------------------------------------------
    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        inputs = dict(inputs)
        token_counts = inputs.pop(TOKEN_COUNTS_KEY, None)
        if token_counts is not None:
            mode = "train" if self.model is not None and self.model.training else "eval"
            self.kept_token_metrics.record(mode, token_counts)
        return super().compute_loss(  # type: ignore[no-untyped-call]
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def compute_ref_log_probs(self, model: Any, inputs: Any) -> Any:
        return super().compute_ref_log_probs(  # type: ignore[no-untyped-call]
            model, {k: v for k, v in inputs.items() if k != TOKEN_COUNTS_KEY}
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model is not None and self.model.training else "eval"
        for name, values in self.kept_token_metrics.drain(mode).items():
            self._metrics[mode][name].extend(values)
        super().log(logs, start_time)

    # -- checkpoints ----------------------------------------------------------------------------------------
    def training_info(self) -> dict[str, Any]:
        return {
            "method": "dpo" if self.mask_config.is_vanilla else "maskdpo",
            "mask_config": {
                "rule": self.mask_config.rule.value,
                "end_of_turn": self.mask_config.end_of_turn.value,
                "unit": self.mask_config.unit.value,
                "identity": self.mask_config.identity,
            },
            "dpo_config": self.args.to_dict(),  # type: ignore[no-untyped-call]
            "seeds": {"seed": self.args.seed, "data_seed": self.args.data_seed},
            "libraries": library_versions(),
            "data_fingerprint": self.data_fingerprint,
            "mask_report": self.mask_report.as_dict(),
            "global_step": self.state.global_step,
            **self.run_info,
        }

    def _get_output_dir(self, trial: Any) -> str:
        return str(self._staging_dir) if self._staging_dir is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        final = run_dir / f"checkpoint-{self.state.global_step}"
        staging = staging_dir_for(final, self._run_token)
        self._staging_dir = staging
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[no-untyped-call]
        finally:
            self._staging_dir = None
        distributed.barrier()  # every process's part (its RNG state, an optimizer shard) is in staging
        if self.args.should_save:
            staged = staging / final.name
            write_training_info(staged, self.training_info())
            publish(staged, final)
            staging.rmdir()
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=str(run_dir), save_total_limit=self.args.save_total_limit, use_mtime=True
            )
        distributed.barrier()

    def save_final(self, folder: str | Path, dtype: str | None = None) -> Path:
        """Save the trained model (or adapter), tokenizer and training_info.json atomically to ``folder``;
        a full model's weights in ``dtype`` when given (see :mod:`maskdpo.trainer.serving_weights`)."""
        final = Path(folder)
        staging = staging_dir_for(final, self._run_token)
        self.save_model(str(staging))  # every process: FSDP gathers the full weights to the main one
        distributed.barrier()
        if self.args.should_save:
            if dtype is not None:
                convert_saved_model(staging, dtype)
            write_training_info(staging, self.training_info())
            publish(staging, final)
        distributed.barrier()
        return final


def _mask_rows_for_example(ex: dict[str, Any], idx: int, name: str) -> dict[str, bytes]:
    """The collator's byte rows for one prepared example (see :mod:`maskdpo.trainer.collator`)."""
    rows = {}
    for role in (Role.CHOSEN, Role.REJECTED):
        try:
            rows[MASK_ROW_COLUMNS[role]] = mask_row(
                len(ex["prompt_ids"]), ex[MASK_COLUMNS[role]], len(ex[f"{role.value}_ids"])
            )
        except ValueError as exc:
            raise ValueError(f"{name} record {idx} ({role.value}), {MASK_COLUMNS[role]}: {exc}") from exc
    return rows
