"""``maskdpo train``: Mask-DPO (or vanilla DPO) training from the command line, without the server.

    maskdpo train --data pairs.jsonl --model MODEL_DIR --out RUN_DIR [--format auto|maskdpo|factscore|judged|pairs]
                  [--loss maskdpo|dpo] [--mask-rule default|released] [--end-of-turn keep|drop]
                  [--mask-unit sentence|claim] [--pair-rule precision|no_fewer_correct|net_correct]
                  [--nll-alpha A]
                  [--steps N] [--lr LR] [--beta B] [--batch-size N] [--max-length N] [--lora] [--precompute-ref]
                  [--bf16] [--save-steps N] [--keep-checkpoints N] [--serving-dtype D] [--resume] [--eval-train]

Also runnable as ``python -m maskdpo.trainer.cli train ...``. Prints the pair counts (pairs, dropped and
why), the mask report, a progress bar, and where the model went. Exit code 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskdpo.trainer.data import FORMATS, DataError
from maskdpo.trainer.pairs import Degenerate, PairRule
from maskdpo.trainer.run import Event, TrainOptions, run_training
from maskdpo.trainer.serving_weights import SERVING_DTYPES
from maskdpo.trainer.token_masks import EndOfTurn, MaskRule, MaskUnit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskdpo train", description="Train a model with Mask-DPO or vanilla DPO."
    )
    add = parser.add_argument
    add("--data", type=Path, required=True, help="training data file (or FActScore folder)")
    add(
        "--model", type=Path, required=True, help="model folder in Hugging Face layout (policy and reference)"
    )
    add(
        "--out", type=Path, required=True, help="run folder: checkpoints/, final/, pairs.jsonl, metrics.jsonl"
    )
    add("--format", dest="fmt", default="auto", choices=["auto", *FORMATS])
    add("--loss", default="maskdpo", choices=["maskdpo", "dpo"], help="dpo = vanilla DPO (all-ones masks)")
    add("--mask-rule", default="default", choices=[MaskRule.DEFAULT.value, MaskRule.RELEASED.value])
    add("--end-of-turn", default="keep", choices=[e.value for e in EndOfTurn])
    add("--mask-unit", default=MaskUnit.SENTENCE.value, choices=[u.value for u in MaskUnit],
        help="claim: a rejected sentence counts only with the tokens of its wrong values (judged spans)")
    add("--min-margin", type=float, default=0.0)
    add("--pair-rule", default=PairRule.PRECISION.value, choices=[r.value for r in PairRule],
        help="how the chosen sample is picked (judged data)")
    add("--nll-alpha", type=float, default=0.0,
        help="NLL anchor: DPO loss + A x mean NLL of the chosen answers' kept tokens (0 = off)")
    add("--degenerate", default=Degenerate.DROP_BOTH.value, choices=[d.value for d in Degenerate])
    add("--steps", type=int, default=20)
    add("--lr", type=float, default=1e-6)
    add("--beta", type=float, default=0.1)
    add("--batch-size", type=int, default=2)
    add("--grad-accum", type=int, default=1)
    add("--max-length", type=int, default=1024)
    add("--warmup-ratio", type=float, default=0.0)
    add("--lora", action="store_true", help="train a LoRA adapter (the reference is the adapter-free model)")
    add("--lora-r", type=int, default=8)
    add("--precompute-ref", action="store_true", help="compute reference log-probs once, before training")
    add("--bf16", action="store_true", help="bfloat16 mixed precision (float32 master weights)")
    add("--seed", type=int, default=0)
    add("--save-steps", type=int, default=0, help="resumable checkpoint every N steps (0: final model only)")
    add("--keep-checkpoints", type=int, default=None, help="keep only the last N checkpoints")
    add("--serving-dtype", default="auto", choices=SERVING_DTYPES,
        help="dtype of the final model (auto: the one the model declares)")
    add("--resume", action="store_true", help="continue from the last checkpoint in OUT/checkpoints")
    add("--eval-train", action="store_true", help="evaluate on the training pairs before and after")
    add("--limit-pairs", type=int, default=None)
    add("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        argv = argv[1:]
    ns = build_parser().parse_args(argv)
    opts = TrainOptions(
        data=ns.data,
        model=ns.model,
        out=ns.out,
        fmt=ns.fmt,
        loss=ns.loss,
        mask_rule=MaskRule(ns.mask_rule),
        end_of_turn=EndOfTurn(ns.end_of_turn),
        mask_unit=MaskUnit(ns.mask_unit),
        min_margin=ns.min_margin,
        degenerate=Degenerate(ns.degenerate),
        pair_rule=PairRule(ns.pair_rule),
        nll_alpha=ns.nll_alpha,
        steps=ns.steps,
        learning_rate=ns.lr,
        beta=ns.beta,
        batch_size=ns.batch_size,
        grad_accum=ns.grad_accum,
        max_length=ns.max_length,
        warmup_ratio=ns.warmup_ratio,
        lora=ns.lora,
        lora_r=ns.lora_r,
        lora_alpha=2 * ns.lora_r,
        precompute_ref=ns.precompute_ref,
        bf16=ns.bf16,
        seed=ns.seed,
        save_steps=ns.save_steps,
        keep_checkpoints=ns.keep_checkpoints,
        serving_dtype=ns.serving_dtype,
        resume=ns.resume,
        eval_train=ns.eval_train,
        limit_pairs=ns.limit_pairs,
        progress_bar=not ns.no_progress,
    )

    def show(event: Event) -> None:
        if event["kind"] == "pairs":
            print(f"pairs: {event['summary']}", flush=True)
        elif event["kind"] == "masks":
            frac = event["kept_fraction"]
            print(
                f"masks: {event['pairs']} pairs, kept token fraction chosen {frac['chosen']:.3f} rejected "
                f"{frac['rejected']:.3f}, empty sides {event['empty_sides']}, truncated pairs {event['truncated_pairs']}",
                flush=True,
            )

    try:
        result = run_training(opts, emit=show)
    except (DataError, FileNotFoundError) as exc:
        print(f"maskdpo train: {exc}", file=sys.stderr)
        return 2
    summary = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "cancelled": result.cancelled,
        "final": str(result.final_dir),
        "last": {k: result.last_log.get(k) for k in ("loss", "rewards/accuracies")},
    }
    if result.eval_before:
        summary["eval_before"] = {
            k: result.eval_before.get(k) for k in ("eval_loss", "eval_rewards/accuracies")
        }
        summary["eval_after"] = {
            k: result.eval_after.get(k) for k in ("eval_loss", "eval_rewards/accuracies")
        }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
