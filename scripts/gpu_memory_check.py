"""The memory plan checked against real training steps: peak memory and step time of Mask-DPO and of TRL's
DPO on a Llama-3.1-8B-shaped model, for two recipes, next to what the plan predicts.

    python scripts/gpu_memory_check.py [--tiny] [--length 1024] [--pairs 2] [--steps 4] [--out FILE.md]

The model is built directly on the device with random bf16 weights from ``tests/data/llama-3.1-8b/
config.json`` (no download, no weights on disk; the tokenizer is the tests' tiny byte-level one, whose ids
all fall inside the model's vocabulary). Recipes, each run once with MaskDPOTrainer and once with TRL's
DPOTrainer on the same rows:

- LoRA r=8 on the bf16 base (``maskdpo train --lora --bf16``): reference = the base without the adapter;
- all parameters in bf16 with the reference's log-probs precomputed (``--bf16 --precompute-ref``).

Rows are biography-like pairs whose prompt + response fill ``--length`` tokens; a step is ``--pairs`` pairs
(chosen and rejected rows: 2 x pairs sequences). Each run trains ``1 + --steps`` optimizer steps with
``Trainer.train`` (gradient checkpointing on, TRL's default; fused AdamW): the first is a warm-up (it
allocates the optimizer state), the others are timed. Recorded per run: the median step, the peak memory
allocated and reserved during training (``torch.cuda.max_memory_*``, reset after the trainer is built, so
the reference pass is not in it), the resident state measured after training (parameters + optimizer state
tensors), and the plan for the same recipe, tokens and device: its states (weights + optimizer, which the
measured resident state must equal) and its total (an upper bound of the peak). A run that runs out of
memory is recorded as such. TRL keys its reference log-prob cache by a hash of every weight, copied through
the host (a minute for 8 B parameters); here it is keyed by the model's seed instead (trainer build only).

``--tiny`` runs the same code on a small model of the same shape family on the CPU (peak memory is then not
measured, the resident state and the plan are): ``tests/integration/trainer/test_gpu_memory_check.py``.
Output: a Markdown section for docs/gpu-checks.md (``--out`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.helpers and bench, when run as a script

import torch  # noqa: E402

from bench.bench_train_step import _spans  # noqa: E402
from maskdpo.trainer.memory_plan import Devices, MemoryPlan, Precision, Recipe, gib, plan_memory  # noqa: E402
from maskdpo.trainer.model_shape import ModelShape  # noqa: E402

CONFIG = REPO / "tests" / "data" / "llama-3.1-8b" / "config.json"
TINY = {"hidden_size": 256, "intermediate_size": 896, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 512}
"""--tiny: Llama-3.1-8B's config with these sizes (same MLP and grouped-query ratios)."""
RECIPES = {"LoRA r=8, bf16 base": Recipe(Precision.BF16, lora=True, lora_r=8),
           "full bf16, precomputed reference": Recipe(Precision.BF16, precompute_ref=True)}
SEED = 0


@dataclass
class Run:
    recipe: str
    trainer: str
    plan: MemoryPlan
    steps_s: list[float] = field(default_factory=list)
    peak_allocated: int = 0
    peak_reserved: int = 0
    resident: int = 0
    error: str = ""


def model_config(tiny: bool) -> dict[str, Any]:
    config = json.loads(CONFIG.read_text())
    return {**config, **TINY} if tiny else config


def make_rows(tokenizer: Any, n: int, length: int) -> list[dict[str, Any]]:
    """``n`` pairs whose chat-formatted prompt + response stay just under ``length`` tokens, with sentence
    labels (about half of each response kept by the default mask rule)."""
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"Tell me a bio of Marie Curie ({i})."}]
        budget = length - len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True)) - 8
        good: list[str] = []
        bad: list[str] = []
        k = 0
        while True:
            g = f"Marie Curie was a physicist born in Paris in 18{60 + (i + k) % 9}."
            b = f"Marie Curie was a coach born in Zürich in 19{10 + (i + k) % 9}."
            if len(tokenizer(" ".join([*good, g]))["input_ids"]) > budget or \
                    len(tokenizer(" ".join([*bad, b]))["input_ids"]) > budget:
                break
            good.append(g)
            bad.append(b)
            k += 1
        labels_good = ["ok" if j % 2 == 0 else "nofact" for j in range(len(good))]
        labels_bad = ["contradictory" if j % 2 == 0 else "ok" for j in range(len(bad))]
        rows.append({
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": " ".join(good)}],
            "rejected": [{"role": "assistant", "content": " ".join(bad)}],
            "chosen_sentences": _spans(good, labels_good),
            "rejected_sentences": _spans(bad, labels_bad),
        })
    return rows


def build_model(config: dict[str, Any], device: torch.device) -> Any:
    """The model with random bf16 weights, built on ``device`` (no float32 copy, no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(config)
    hf_config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(SEED)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)


def build_trainer(kind: str, recipe: Recipe, model: Any, tokenizer: Any, rows: list[dict[str, Any]],
                  args: argparse.Namespace, out: Path, cpu: bool) -> Any:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from maskdpo.trainer.dpo import MaskDPOTrainer

    config = DPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.pairs, max_steps=1 + args.steps,
        learning_rate=1e-6, max_length=args.length, bf16=True, precompute_ref_log_probs=recipe.precompute_ref,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=cpu, dataloader_num_workers=0,
        disable_tqdm=True, seed=SEED,
    )
    peft = LoraConfig(r=recipe.lora_r, lora_alpha=2 * recipe.lora_r, target_modules="all-linear",
                      task_type="CAUSAL_LM") if recipe.lora else None
    if kind == "Mask-DPO":
        return MaskDPOTrainer(model, args=config, train_dataset=Dataset.from_list(rows),
                              processing_class=tokenizer, peft_config=peft)
    plain = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    return DPOTrainer(model, args=config, train_dataset=plain, processing_class=tokenizer, peft_config=peft)


def tokens_per_row(trainer: Any) -> int:
    """The longest prompt + response of the prepared rows: what a batch is padded to."""
    data = trainer.train_dataset
    return max(len(p) + max(len(c), len(r))
               for p, c, r in zip(data["prompt_ids"], data["chosen_ids"], data["rejected_ids"], strict=True))


def resident_bytes(trainer: Any) -> int:
    """Parameters and optimizer state tensors held after training (gradients are freed after each step)."""
    tensors = {id(p): p for p in trainer.model.parameters()}
    for state in trainer.optimizer.state.values():
        tensors.update({id(t): t for t in state.values() if torch.is_tensor(t) and t.dim() > 0})
    return sum(t.numel() * t.element_size() for t in tensors.values())


def timer() -> Any:
    from transformers import TrainerCallback

    class Steps(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, *a: Any, **kw: Any) -> None:
            _sync()
            self._start = time.perf_counter()

        def on_step_end(self, *a: Any, **kw: Any) -> None:
            _sync()
            self.seconds.append(time.perf_counter() - self._start)

    return Steps()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_one(kind: str, name: str, recipe: Recipe, shape: ModelShape, config: dict[str, Any], tokenizer: Any,
            rows: list[dict[str, Any]], args: argparse.Namespace, devices: Devices) -> Run:
    cuda = devices.kind == "gpu"
    device = torch.device("cuda" if cuda else "cpu")
    result = Run(name, kind, plan_memory(shape, recipe, devices))
    model = trainer = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model = build_model(config, device)
            trainer = build_trainer(kind, recipe, model, tokenizer, rows, args, Path(tmp), not cuda)
            recipe = dataclasses.replace(recipe, pairs_per_step=args.pairs, max_length=tokens_per_row(trainer))
            result.plan = plan_memory(shape, recipe, devices)
            steps = timer()
            trainer.add_callback(steps)
            _free()
            trainer.train()
            result.steps_s = steps.seconds[1:]
            result.resident = resident_bytes(trainer)
        except torch.OutOfMemoryError as exc:
            result.error = f"out of memory: {str(exc).splitlines()[0][:120]}"
        finally:
            if cuda:
                result.peak_allocated = torch.cuda.max_memory_allocated()
                result.peak_reserved = torch.cuda.max_memory_reserved()
            model = trainer = None
            _free()
    return result


def cheap_reference_cache_key() -> None:
    """Key TRL's precomputed-reference cache by the seed instead of hashing every weight through the host."""
    import trl.trainer.dpo_trainer as dpo_trainer

    dpo_trainer.hash_module = lambda module: f"seed-{SEED}-{sum(p.numel() for p in module.parameters())}"


def markdown(runs: list[Run], shape: ModelShape, args: argparse.Namespace, devices: Devices) -> str:
    import peft
    import transformers
    import trl

    device = torch.cuda.get_device_name() if devices.kind == "gpu" else "CPU (--tiny)"
    tokens = runs[0].plan.recipe.tokens if runs else 0
    lines = [
        f"## {datetime.date.today()}, {device} (Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__})",
        "",
        f"`scripts/gpu_memory_check.sh{' --tiny' if args.tiny else ''}`: {shape.architecture}, "
        f"{shape.parameters:,} parameters, random bf16 weights on the device; {args.pairs} pairs per step, "
        f"{tokens:,} tokens per forward; median of {args.steps} steps after a warm-up step; device memory "
        f"{gib(devices.memory_bytes) if devices.memory_bytes else 'not measured'}.",
        "",
        "| recipe | trainer | step (median) | peak allocated | peak reserved | resident state: measured / plan | "
        "plan: total | plan total / peak | plan verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        step = f"{statistics.median(r.steps_s) * 1000:.0f} ms" if r.steps_s else r.error or "-"
        ratio = f"{r.plan.total_bytes / r.peak_allocated:.2f}" if r.peak_allocated and not r.error else "-"
        states = f"{_mem(r.resident)} / {_mem(planned_resident(r.plan))}" + (
            " (equal)" if r.resident == planned_resident(r.plan) else "")
        lines.append(
            f"| {r.recipe} | {r.trainer} | {step} | {_mem(r.peak_allocated)} | {_mem(r.peak_reserved)} | "
            f"{states} | {_mem(r.plan.total_bytes)} | {ratio} | {r.plan.verdict} |")
    lines += ["", "Plan components per recipe (bytes per device):", ""]
    for name in dict.fromkeys(r.recipe for r in runs):
        plan = next(r.plan for r in runs if r.recipe == name)
        parts = ", ".join(f"{c.name} {_mem(c.bytes) if c.bytes else '0'} ({c.formula})" for c in plan.components)
        lines.append(f"- {name}: {parts}.")
    return "\n".join(lines) + "\n"


def planned_resident(plan: MemoryPlan) -> int:
    """What the plan says stays allocated between steps: weights and optimizer state."""
    return plan.component("weights") + plan.component("optimizer")


def _mem(n: int) -> str:
    return "-" if not n else gib(n) if n >= 2**30 else f"{n / 2**20:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small model on the CPU (tests)")
    parser.add_argument("--length", type=int, help="tokens of prompt + response (default 1024; 128 with --tiny)")
    parser.add_argument("--pairs", type=int, default=2, help="pairs per step")
    parser.add_argument("--steps", type=int, default=4, help="timed steps after one warm-up step")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    args.length = args.length or (128 if args.tiny else 1024)
    if not args.tiny and not torch.cuda.is_available():
        print("needs a CUDA GPU (or --tiny for the small model on the CPU)", file=sys.stderr)
        return 2
    from tests.helpers.tiny_model import build_tokenizer

    cheap_reference_cache_key()
    config = model_config(args.tiny)
    tokenizer = build_tokenizer()
    config.update(bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    shape = ModelShape.from_config(config)
    devices = (Devices("gpu", 1, torch.cuda.get_device_properties(0).total_memory, "torch.cuda")
               if torch.cuda.is_available() and not args.tiny else Devices("cpu", 1, 0, "not measured"))
    rows = make_rows(tokenizer, args.pairs * (1 + args.steps), args.length)
    runs = [run_one(kind, name, recipe, shape, config, tokenizer, rows, args, devices)
            for name, recipe in RECIPES.items() for kind in ("Mask-DPO", "TRL DPO")]
    text = markdown(runs, shape, args, devices)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(r.steps_s or r.error.startswith("out of memory") for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
