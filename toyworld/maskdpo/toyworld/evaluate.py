"""Evaluate a toy model: generate biographies, label them exactly, report ANAH scores by popularity bucket.

Run ``python -m maskdpo.toyworld.evaluate [--model toyworld/maskdpo/toyworld/model] [--split heldout] [--k 6]``. It asks
"Tell me a bio of <name>." for every person of the split, decodes greedily and samples ``k`` answers,
labels every sentence against the world, and prints per bucket (frequent / medium / rare) and proximity
(near / far): the ANAH score (correct / (correct + incorrect) sentences, micro), the mean per-answer score
of greedy answers, of samples, and of the best of ``k`` samples, and ok / incorrect / fact-free sentences
per answer. Generation uses transformers (the experiment runner uses vLLM).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from maskdpo.toyworld.corpus import question
from maskdpo.toyworld.train_model import DEFAULT_OUT, world_of
from maskdpo.toyworld.world import BUCKETS, Person, World
from maskdpo.toyworld.world_judge import WorldLabeler
from maskdpo.trainer.labels import LabelCounts, LabeledSentence, preference_score


def load(path: Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase, World]:
    """The model, its tokenizer and the world it was trained on (from ``training_info.json``)."""
    world = world_of(path)
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    return model, tokenizer, world


@torch.no_grad()
def generate(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    names: Sequence[str],
    samples: int = 0,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    seed: int = 0,
    batch_size: int = 64,
) -> list[list[str]]:
    """Per name: one greedy answer when ``samples`` is 0, else ``samples`` sampled answers."""
    torch.manual_seed(seed)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question(n)}], tokenize=False, add_generation_prompt=True
        )
        for n in names
    ]
    per_prompt = max(samples, 1)
    outputs: list[list[str]] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        # transformers types generate's self as a protocol its own model classes do not meet
        generated = model.generate(  # type: ignore[misc]
            **batch,
            do_sample=samples > 0,
            temperature=temperature if samples > 0 else None,
            top_k=0 if samples > 0 else None,
            num_return_sequences=per_prompt,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i in range(0, len(texts), per_prompt):
            outputs.append([t.strip() for t in texts[i : i + per_prompt]])
    return outputs


@dataclass
class GroupStats:
    answers: int = 0
    counts: LabelCounts = field(default_factory=LabelCounts)
    greedy_scores: list[float] = field(default_factory=list)
    sample_scores: list[float] = field(default_factory=list)
    best_scores: list[float] = field(default_factory=list)

    def add(self, counts: LabelCounts) -> None:
        self.answers += 1
        self.counts = self.counts + counts


def _score(labels: list[LabeledSentence]) -> float:
    value = preference_score(labels)
    return 0.0 if value is None else value


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def evaluate(
    model_dir: Path, split: str = "heldout", k: int = 6, temperature: float = 1.0, limit: int | None = None
) -> dict[str, Any]:
    model, tokenizer, world = load(model_dir)
    report = evaluate_model(model, tokenizer, world, split, k, temperature, limit)
    return {"model": str(model_dir), **report}


def evaluate_model(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    split: str = "heldout",
    k: int = 6,
    temperature: float = 1.0,
    limit: int | None = None,
) -> dict[str, Any]:
    """The report for a model in memory (see the module docstring)."""
    tokenizer.padding_side = "left"
    labeler = WorldLabeler(world)
    people: list[Person] = world.split(split)[:limit]
    names = [p.name for p in people]
    greedy = generate(model, tokenizer, names)
    sampled = (
        generate(model, tokenizer, names, samples=k, temperature=temperature) if k else [[] for _ in names]
    )
    groups: dict[str, GroupStats] = {}
    examples: list[dict[str, object]] = []
    for person, (greedy_answer,), samples in zip(people, greedy, sampled, strict=True):
        labels = labeler.label_response(greedy_answer, person.name)
        sample_labels = [labeler.label_response(s, person.name) for s in samples]
        for key in ("all", person.bucket, person.proximity or "-"):
            stats = groups.setdefault(key, GroupStats())
            stats.add(LabelCounts.of(s.label for s in labels))
            stats.greedy_scores.append(_score(labels))
            if sample_labels:
                stats.sample_scores += [_score(x) for x in sample_labels]
                stats.best_scores.append(max(_score(x) for x in sample_labels))
        if len(examples) < 6:
            examples.append(
                {
                    "name": person.name,
                    "bucket": person.bucket,
                    "greedy": greedy_answer,
                    "labels": [s.label.value for s in labels],
                }
            )
    report: dict[str, Any] = {"split": split, "k": k, "temperature": temperature, "examples": examples}
    for key in ("all", *BUCKETS, "near", "far"):
        group = groups.get(key)
        if group is None:
            continue
        c = group.counts
        report[key] = {
            "answers": group.answers,
            "anah_greedy": round(c.ok / (c.ok + c.incorrect), 4) if c.ok + c.incorrect else None,
            "anah_all_sentences": round(1 - c.incorrect / c.total, 4) if c.total else None,
            "greedy_mean_score": _mean(group.greedy_scores),
            "sample_mean_score": _mean(group.sample_scores),
            "best_of_k_score": _mean(group.best_scores),
            "ok_per_answer": round(c.ok / group.answers, 3),
            "incorrect_per_answer": round(c.incorrect / group.answers, 3),
            "nofact_per_answer": round(c.nofact / group.answers, 3),
        }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = evaluate(args.model, args.split, args.k, args.temperature, args.limit)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
