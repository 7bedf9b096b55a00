"""A Mask-DPO training step against TRL's vanilla DPO step, same model and batch, in one run.

    python bench/bench_train_step.py [--model DIR] [--hidden 256] [--layers 4] [--batch 4] [--iters 100]
                                     [--warmup 5] [--trim 0.2] [--control] [--bf16] [--threads N]

Both trainers are built on the same model folder (a seeded Llama built here unless ``--model`` is given)
and fed the same pairs. One timed step = read the batch's rows as the dataloader does + collate them
(Mask-DPO folds the sentence masks in here) + move them to the device + forward/backward of policy and
reference (``Trainer.training_step``). After ``--warmup`` untimed steps each, the trainers' steps are
interleaved (A B, B A, ...: every order in turn) so that they see the same machine load. Each step is
timed by the wall clock and by the process's CPU time; on CUDA the wall clock is the figure (GPU work is
not CPU time), on a CPU the CPU time is (it leaves out the time the process waits for a core on a shared
machine; ``--threads 1`` also keeps idle threads' spinning out of it).

Printed per clock: medians and trimmed means (``--trim`` of the steps cut at each end) with their ratios,
and the median of the per-pair ratios (each Mask-DPO step over the DPO step next to it); target: at most
1.03. Then the host data path per batch (row reads and collation, timed on their own, also interleaved)
for each trainer, and on CUDA the peak GPU memory of each. ``--control`` adds a second, identical TRL
trainer to the rotation: its ratio to the first is what the machine's noise alone gives.
"""

from __future__ import annotations

import argparse
import itertools
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
    model_dir: Path, rows: list[dict[str, Any]], batch: int, bf16: bool, out: Path, control: bool = False
) -> dict[str, Any]:
    """``dpo`` (TRL's DPOTrainer), ``maskdpo`` (MaskDPOTrainer, default masks) and, with ``control``,
    ``dpo_control`` (a second TRL trainer, built like the first)."""
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

    def vanilla(name: str) -> Any:
        plain = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
        return DPOTrainer(
            str(model_dir),
            args=args(name),
            train_dataset=plain,
            processing_class=AutoTokenizer.from_pretrained(model_dir),
        )

    trainers = {"dpo": vanilla("dpo")}
    trainers["maskdpo"] = MaskDPOTrainer(
        str(model_dir),
        args=args("maskdpo"),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        mask_config=MaskConfig(),
    )
    if control:
        trainers["dpo_control"] = vanilla("dpo_control")
    return trainers


def _loader_view(trainer: Any) -> Any:
    """The dataset as the training dataloader reads it (only the columns the collator uses)."""
    if not hasattr(trainer, "_bench_view"):
        trainer._bench_view = trainer._remove_unused_columns(trainer.train_dataset, description="bench")
    return trainer._bench_view


def timed_step(trainer: Any, batch: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one step, data path included."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    rows = _loader_view(trainer)
    inputs = trainer._prepare_inputs(trainer.data_collator([rows[i] for i in range(batch)]))
    trainer.training_step(trainer.model, inputs)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    trainer.model.zero_grad(set_to_none=True)
    return elapsed


def trimmed_mean(values: list[float], trim: float) -> float:
    """The mean of ``values`` without the ``trim`` share of them at each end."""
    ordered = sorted(values)
    cut = int(len(ordered) * trim)
    return statistics.fmean(ordered[cut : len(ordered) - cut] or ordered)


def data_path_seconds(
    trainers: dict[str, Any], batch: int, rounds: int = 15, number: int = 50
) -> dict[str, float]:
    """Best time per batch of reading the rows and of collating them, per trainer, interleaved."""
    calls = {}
    for name, trainer in trainers.items():
        view = _loader_view(trainer)
        examples = [view[i] for i in range(batch)]
        calls[f"{name}_read"] = lambda view=view: [view[i] for i in range(batch)]
        calls[f"{name}_collate"] = lambda trainer=trainer, examples=examples: trainer.data_collator(examples)
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for key, call in calls.items():
            best[key] = min(best[key], timeit.timeit(call, number=number) / number)
    return best


CLOCKS = ("wall", "cpu")


def compare(
    model_dir: Path, batch: int, iters: int, warmup: int, trim: float, bf16: bool, control: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        trainers = build_trainers(model_dir, make_rows(batch), batch, bf16, Path(tmp), control)
        steps: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
        peak: dict[str, float] = {}
        for trainer in trainers.values():
            trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); we call training_step
        for _ in range(warmup):  # untimed, interleaved like the timed steps
            for trainer in trainers.values():
                timed_step(trainer, batch)
        if torch.cuda.is_available():
            for name, trainer in trainers.items():
                torch.cuda.reset_peak_memory_stats()
                timed_step(trainer, batch)
                peak[name] = torch.cuda.max_memory_allocated() / 2**20
        orders = list(itertools.permutations(trainers.items()))
        for i in range(iters):  # interleave, every order in turn, so all share the machine's noise
            for name, trainer in orders[i % len(orders)]:
                steps[name].append(timed_step(trainer, batch))
        data_path = data_path_seconds({k: trainers[k] for k in ("dpo", "maskdpo")}, batch)
    result: dict[str, Any] = {"data_path": data_path, "peak_mib": peak, "clocks": {}}
    for c, clock in enumerate(CLOCKS):
        times = {name: [step[c] for step in values] for name, values in steps.items()}
        figures: dict[str, float] = {}
        for name, values in times.items():
            figures[f"{name}_median_s"] = statistics.median(values)
            figures[f"{name}_trimmed_s"] = trimmed_mean(values, trim)
        for name in times:
            if name == "dpo":
                continue
            figures[f"{name}_ratio_median"] = figures[f"{name}_median_s"] / figures["dpo_median_s"]
            figures[f"{name}_ratio_trimmed"] = figures[f"{name}_trimmed_s"] / figures["dpo_trimmed_s"]
            figures[f"{name}_ratio_paired"] = statistics.median(
                x / d for x, d in zip(times[name], times["dpo"], strict=True)
            )
        result["clocks"][clock] = figures
    return result


LABELS = {"dpo": "TRL DPO step   ", "maskdpo": "Mask-DPO step  ", "dpo_control": "TRL DPO again  "}


def report(result: dict[str, Any], trim: float) -> None:
    primary = "wall" if torch.cuda.is_available() else "cpu"
    peak = result["peak_mib"]
    for clock in sorted(CLOCKS, key=lambda c: c != primary):
        figures = result["clocks"][clock]
        title = "wall clock" if clock == "wall" else "process CPU time"
        print(f"-- {title}{' (the figure for this device)' if clock == primary else ''}")
        names = [n for n in LABELS if f"{n}_median_s" in figures]
        for name in names:
            print(
                f"{LABELS[name]} median {figures[f'{name}_median_s'] * 1000:8.2f} ms   "
                f"trimmed mean {figures[f'{name}_trimmed_s'] * 1000:8.2f} ms"
                + (f"   peak GPU memory {peak[name]:.0f} MiB" if name in peak and clock == "wall" else "")
            )
        for name in names[1:]:
            who = "Mask-DPO / DPO" if name == "maskdpo" else "DPO again / DPO (noise)"
            print(
                f"ratio {who}: {figures[f'{name}_ratio_median']:.3f} of medians, "
                f"{figures[f'{name}_ratio_trimmed']:.3f} of trimmed means ({trim:.0%} cut each end), "
                f"{figures[f'{name}_ratio_paired']:.3f} median of paired steps"
                + (" (target <= 1.03)" if name == "maskdpo" else "")
            )
    data = result["data_path"]
    for name, label in (("dpo", "TRL DPO "), ("maskdpo", "Mask-DPO")):
        read, collate = data[f"{name}_read"] * 1e3, data[f"{name}_collate"] * 1e3
        print(f"data path {label}: read rows {read:.3f} ms + collate {collate:.3f} ms per batch")
    extra = (data["maskdpo_read"] + data["maskdpo_collate"] - data["dpo_read"] - data["dpo_collate"]) * 1e3
    share = extra / (result["clocks"][primary]["dpo_median_s"] * 1e3)
    print(f"data path Mask-DPO extra: {extra:+.3f} ms per batch ({share:+.2%} of a DPO step)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=100, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per trainer first")
    parser.add_argument("--trim", type=float, default=0.2, help="share of steps cut at each end")
    parser.add_argument("--control", action="store_true", help="also time a second TRL trainer")
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
        result = compare(model_dir, ns.batch, ns.iters, ns.warmup, ns.trim, ns.bf16, ns.control)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    model = model_dir if ns.model else f"llama hidden={ns.hidden} layers={ns.layers}"
    print(
        f"device: {device}; model: {model}; batch {ns.batch} pairs; {ns.iters} interleaved steps each "
        f"after {ns.warmup} warm-up; dtype {'bf16' if ns.bf16 else 'fp32'}"
    )
    report(result, ns.trim)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
