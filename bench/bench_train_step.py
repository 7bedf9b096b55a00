"""A Mask-DPO training step against TRL's vanilla DPO step, same model and batch, in one run.

    python bench/bench_train_step.py [--model DIR] [--hidden 256] [--layers 4] [--batch 4] [--iters 20]
                                     [--device cpu|cuda] [--bf16]

Both trainers are built on the same model folder (a seeded Llama built here unless ``--model`` is given)
and fed the same pairs. One timed step = collate the batch (Mask-DPO folds the sentence masks in here) +
forward/backward of policy and reference (``Trainer.training_step``). Steps alternate between the two
trainers (and which goes first) to share machine noise; medians and minima are printed with their ratios
(target: at most 1.03), the collator's extra time per batch measured on its own (the only work Mask-DPO
adds before the loss), and on CUDA the peak GPU memory of each. On a busy shared CPU the step medians
are noisy; the minima and the collator figure are the stable numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers when run as a script

import torch


def make_rows(n: int) -> list[dict[str, Any]]:
    """Biography-style pairs with sentence labels (about half of each response kept by the default rule)."""
    rows = []
    for i in range(n):
        good = [
            f"Marie Curie was a physicist born in Paris in 18{60 + i % 9}.",
            "I think she is great 😀!",
            "She lived in Zürich and wrote a book.",
            "Alan Turing was a mathematician born in London.",
        ]
        bad = [
            f"Marie Curie was a coach born in 東京 in 19{10 + i % 9}.",
            "Some say she was a painter.",
            "She lived in Zürich and wrote a book.",
            "I think she is great 😀!",
        ]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Tell me a bio of Marie Curie ({i})."}],
                "chosen": [{"role": "assistant", "content": " ".join(good)}],
                "rejected": [{"role": "assistant", "content": " ".join(bad)}],
                "chosen_sentences": _spans(good, ["ok", "nofact", "ok", "contradictory"]),
                "rejected_sentences": _spans(bad, ["contradictory", "unverifiable", "ok", "nofact"]),
            }
        )
    return rows


def _spans(sentences: list[str], labels: list[str]) -> list[dict[str, Any]]:
    out, at = [], 0
    for sentence, label in zip(sentences, labels, strict=True):
        out.append({"start": at, "end": at + len(sentence), "label": label})
        at += len(sentence) + 1
    return out


def build_trainers(
    model_dir: Path, rows: list[dict[str, Any]], batch: int, bf16: bool, out: Path
) -> tuple[Any, Any]:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from maskdpo.trainer.dpo import MaskDPOTrainer
    from maskdpo.trainer.token_masks import MaskConfig

    def args(name: str) -> Any:
        return DPOConfig(
            output_dir=str(out / name),
            per_device_train_batch_size=batch,
            report_to=[],
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            model_init_kwargs={"dtype": torch.bfloat16} if bf16 else None,
        )

    plain = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    vanilla = DPOTrainer(
        str(model_dir),
        args=args("dpo"),
        train_dataset=plain,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    masked = MaskDPOTrainer(
        str(model_dir),
        args=args("maskdpo"),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        mask_config=MaskConfig(),
    )
    return vanilla, masked


def _loader_view(trainer: Any) -> Any:
    """The dataset as the training dataloader reads it (only the columns the collator uses)."""
    if not hasattr(trainer, "_bench_view"):
        trainer._bench_view = trainer._remove_unused_columns(trainer.train_dataset, description="bench")
    return trainer._bench_view


def timed_step(trainer: Any, batch: int) -> float:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    rows = _loader_view(trainer)
    inputs = trainer._prepare_inputs(trainer.data_collator([rows[i] for i in range(batch)]))
    trainer.training_step(trainer.model, inputs)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    trainer.model.zero_grad(set_to_none=True)
    return elapsed


def collate_seconds(trainer: Any, batch: int, number: int = 200) -> float:
    """Best-of-5 time of building one batch (the only place Mask-DPO adds work before the loss)."""
    examples = [_loader_view(trainer)[i] for i in range(batch)]
    return min(timeit.repeat(lambda: trainer.data_collator(examples), number=number, repeat=5)) / number


def compare(model_dir: Path, batch: int, iters: int, bf16: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        vanilla, masked = build_trainers(model_dir, make_rows(batch), batch, bf16, Path(tmp))
        times: dict[str, list[float]] = {"dpo": [], "maskdpo": []}
        peak: dict[str, float] = {}
        for name, trainer in (("dpo", vanilla), ("maskdpo", masked)):
            trainer.current_gradient_accumulation_steps = (
                1  # set by Trainer.train(); we call training_step directly
            )
            for _ in range(3):
                timed_step(trainer, batch)  # warm-up
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
                timed_step(trainer, batch)
                peak[name] = torch.cuda.max_memory_allocated() / 2**20
        for i in range(iters):  # alternate, and alternate who goes first, to share the machine's noise
            pair = (("dpo", vanilla), ("maskdpo", masked))
            for name, trainer in pair if i % 2 == 0 else pair[::-1]:
                times[name].append(timed_step(trainer, batch))
        collate = {name: collate_seconds(t, batch) for name, t in (("dpo", vanilla), ("maskdpo", masked))}
    result = {f"{k}_median_s": statistics.median(v) for k, v in times.items()}
    result.update({f"{k}_min_s": min(v) for k, v in times.items()})
    result["ratio"] = result["maskdpo_median_s"] / result["dpo_median_s"]
    result["ratio_min"] = result["maskdpo_min_s"] / result["dpo_min_s"]
    result["collate_overhead_ms"] = (collate["maskdpo"] - collate["dpo"]) * 1000
    for name, mib in peak.items():
        result[f"{name}_peak_mib"] = mib
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    ns = parser.parse_args(argv)
    torch.set_num_threads(ns.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = ns.model
        if model_dir is None:
            from tests.helpers.tiny_model import build_tiny_model

            model_dir = build_tiny_model(
                Path(tmp) / "model",
                seed=0,
                hidden_size=ns.hidden,
                num_layers=ns.layers,
                num_heads=max(1, ns.hidden // 64),
            )
        result = compare(model_dir, ns.batch, ns.iters, ns.bf16)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {device}; model: {model_dir if ns.model else f'llama hidden={ns.hidden} layers={ns.layers}'}; "
        f"batch {ns.batch} pairs; {ns.iters} steps each; dtype {'bf16' if ns.bf16 else 'fp32'}"
    )
    print(
        f"TRL DPO step      median {result['dpo_median_s'] * 1000:8.1f} ms"
        + (f"   peak GPU memory {result['dpo_peak_mib']:.0f} MiB" if "dpo_peak_mib" in result else "")
    )
    print(
        f"Mask-DPO step     median {result['maskdpo_median_s'] * 1000:8.1f} ms"
        + (f"   peak GPU memory {result['maskdpo_peak_mib']:.0f} MiB" if "maskdpo_peak_mib" in result else "")
    )
    print(
        f"ratio Mask-DPO / DPO: {result['ratio']:.3f} of medians, {result['ratio_min']:.3f} of minima (target <= 1.03)"
    )
    share = result["collate_overhead_ms"] / (result["dpo_min_s"] * 1000)
    print(
        f"mask folding in the collator: {result['collate_overhead_ms']:+.3f} ms per batch ({share:.3%} of a step)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
