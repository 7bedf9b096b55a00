"""Train the toy model: a small LlamaForCausalLM on the toy corpus, fully seeded, with a plain torch loop.

Run ``python -m maskdpo.toyworld.train_model [--out toyworld/maskdpo/toyworld/model] [--steps N] [--seed S]``. It builds the
world and corpus from the seed, trains the byte-level BPE tokenizer, trains the model (loss on the
assistant turn only) and writes an HF folder: ``model.safetensors`` (fp32), ``config.json``,
``generation_config.json``, tokenizer files and ``training_info.json`` (config, time, losses).
On CPU with the same thread count the checkpoint bytes are identical run to run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from maskdpo.toyworld.corpus import ChatExample, CorpusConfig, build_corpus
from maskdpo.toyworld.tokenizer import ASSISTANT, corpus_texts, train_tokenizer
from maskdpo.toyworld.world import World, WorldConfig

DEFAULT_OUT = Path(__file__).resolve().parent / "model"


def world_of(model: Path = DEFAULT_OUT) -> World:
    """The world a toy model folder was trained on (read from its ``training_info.json``)."""
    info_file = Path(model) / "training_info.json"
    if not info_file.is_file():
        raise FileNotFoundError(f"{model} is not a toy model folder (no training_info.json); "
                                "build one with python -m maskdpo.toyworld.train_model")
    return World.generate(WorldConfig(**json.loads(info_file.read_text())["config"]["world"]))


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int = 128
    layers: int = 3
    heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 1536
    max_length: int = 160

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads or self.hidden_size // self.heads < 32:
            raise ValueError(
                f"ModelConfig: head size hidden_size/heads = {self.hidden_size}/{self.heads} must be an "
                "integer >= 32 (vLLM's CPU engine needs it)"
            )


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    threads: int = 1
    log_every: int = 50
    world: WorldConfig = field(default_factory=WorldConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)


class TrainingInfo(TypedDict):
    """What a training run records next to its checkpoint (``training_info.json``)."""

    config: dict[str, Any]
    parameters: int
    people: int
    documents: int
    tokens_per_epoch: int
    epochs: float
    loss_every: int
    losses: list[float]
    train_seconds: float
    cpu_seconds: float
    device: str
    torch: str
    threads: int
    machine: str


def encode_examples(
    tokenizer: PreTrainedTokenizerFast, examples: list[ChatExample], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example; labels are -100 up to and including the assistant marker."""
    assistant_id = tokenizer.convert_tokens_to_ids(ASSISTANT)
    out = []
    for i, example in enumerate(examples):
        text = tokenizer.apply_chat_template(example["messages"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_length:
            raise ValueError(f"example {i} ({example.get('topic')}) has {len(ids)} tokens > {max_length}")
        start = ids.index(assistant_id) + 1
        out.append((ids, [-100] * start + ids[start:]))
    return out


def build_model(config: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=max(256, config.max_length),
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)  # type: ignore[no-untyped-call]


def _batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (row_ids, row_labels) in enumerate(rows):
        ids[r, : len(row_ids)] = torch.tensor(row_ids)
        labels[r, : len(row_labels)] = torch.tensor(row_labels)
        mask[r, : len(row_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def train(
    config: TrainConfig, out: Path | None, log: bool = True, device: str = "cpu"
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, TrainingInfo]:
    """Train from scratch; write the checkpoint to ``out`` when given. Returns model, tokenizer, info.

    Only ``device="cpu"`` is bit-reproducible; other devices are for quick tuning sweeps.
    """
    started, cpu_started = time.time(), time.process_time()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)
    world = World.generate(config.world)
    examples = build_corpus(world, config.corpus)
    tokenizer = train_tokenizer(corpus_texts(examples), config.model.vocab_size)
    data = encode_examples(tokenizer, examples, config.model.max_length)
    # transformers wraps Module.to with functools.wraps, which mypy reads as a function taking the model first
    model = build_model(config.model, tokenizer).to(device)  # type: ignore[arg-type]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    order_rng = random.Random(config.seed)
    order: list[int] = []
    losses: list[float] = []
    running = 0.0
    model.train()
    for step in range(config.steps):
        lr = config.lr * min(1.0, (step + 1) / config.warmup)
        lr *= 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        if len(order) < config.batch_size:
            fresh = list(range(len(data)))
            order_rng.shuffle(fresh)
            order += fresh
        picked, order = order[: config.batch_size], order[config.batch_size :]
        batch = {
            k: v.to(device) for k, v in _batch([data[i] for i in picked], tokenizer.pad_token_id).items()
        }
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % config.log_every == 0:
            losses.append(round(running / config.log_every, 5))
            running = 0.0
            if log:
                print(
                    f"step {step + 1}/{config.steps} loss {losses[-1]:.4f} {time.time() - started:.0f}s",
                    flush=True,
                )
    model.eval()
    info: TrainingInfo = {
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "people": len(world.people),
        "documents": len(examples),
        "tokens_per_epoch": sum(len(ids) for ids, _ in data),
        "epochs": config.steps * config.batch_size / len(data),
        "loss_every": config.log_every,
        "losses": losses,
        "train_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "device": device,
        "torch": torch.__version__,
        "threads": config.threads,
        "machine": platform.machine(),
    }
    if out is not None:
        save(model.to("cpu"), tokenizer, info, out)
    return model, tokenizer, info


def save(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, info: TrainingInfo, out: Path
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=96
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "training_info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``config`` with ``overrides`` applied; a dotted key (``world.family_fame``) reaches a nested config."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if "." in key:
            part, name = key.split(".", 1)
            nested.setdefault(part, {})[name] = value
        else:
            flat[key] = value
    for part, values in nested.items():
        flat[part] = dataclasses.replace(getattr(config, part), **values)
    return dataclasses.replace(config, **flat)


def default_config(seed: int = 0, *, steps: int = TrainConfig.steps, threads: int = TrainConfig.threads) -> TrainConfig:
    """The committed recipe for the world, corpus and training seeded with ``seed`` (``--seed``)."""
    return TrainConfig(
        seed=seed, steps=steps, threads=threads, world=WorldConfig(seed=seed), corpus=CorpusConfig(seed=seed)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument(
        "--overrides",
        type=json.loads,
        default={},
        help="JSON object of TrainConfig overrides; dotted keys reach world./corpus./model. fields, "
        "e.g. '{\"world.family_fame\": 0.8}' (the model folder records them for the experiment)",
    )
    args = parser.parse_args(argv)
    config = default_config(args.seed, steps=args.steps, threads=args.threads)
    config = with_overrides(config, args.overrides)
    _, _, info = train(config, args.out)
    print(
        f"wrote {args.out} in {info['train_seconds']} s; final loss {info['losses'][-1] if info['losses'] else None}"
    )


if __name__ == "__main__":
    main()
