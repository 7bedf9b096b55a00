"""The toy model: tokenizer and a short training run are deterministic; the committed checkpoint works."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from maskdpo.toyworld.corpus import CorpusConfig, build_corpus
from maskdpo.toyworld.tokenizer import corpus_texts, train_tokenizer
from maskdpo.toyworld.train_model import DEFAULT_OUT, ModelConfig, TrainConfig, train, with_overrides
from maskdpo.toyworld.world import World, WorldConfig

SMALL_WORLD = WorldConfig(
    seed=7,
    families=120,
    alignment_per_bucket=10,
    validation_per_bucket=4,
    heldout_per_bucket=4,
    max_docs=6,
    rare_max_docs=1,
    frequent_min_docs=4,
)


def _tokenizer_digest(seed: int) -> str:
    world = World.generate(WorldConfig(seed=seed))
    tokenizer = train_tokenizer(corpus_texts(build_corpus(world, CorpusConfig(seed=seed))), 600)
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def test_same_seed_same_tokenizer() -> None:
    assert _tokenizer_digest(2) == _tokenizer_digest(2)


def test_chat_template_and_offsets() -> None:
    world = World.generate(SMALL_WORLD)
    examples = build_corpus(world)
    tokenizer = train_tokenizer(corpus_texts(examples), 600)
    text = tokenizer.apply_chat_template(examples[0]["messages"], tokenize=False)
    user = examples[0]["messages"][0]["content"]
    assert text.startswith(f"<|user|>{user}<|end|><|assistant|>")
    assert text.endswith("<|end|>") and "<|assistant|>" in text
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert tokenizer.decode(enc["input_ids"]) == text
    pieces = "".join(text[a:b] for a, b in enc["offset_mapping"])
    assert pieces == text  # offsets cover every character exactly once


def _short_run() -> tuple[list[float], str]:
    config = TrainConfig(
        seed=3,
        steps=6,
        batch_size=8,
        log_every=2,
        warmup=2,
        world=SMALL_WORLD,
        model=ModelConfig(hidden_size=64, layers=1, heads=2, intermediate_size=128, vocab_size=600),
    )
    model, _, info = train(config, None, log=False)
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    return list(info["losses"]), digest


def test_short_training_run_is_deterministic() -> None:
    first, again = _short_run(), _short_run()
    assert first == again
    assert len(first[0]) == 3 and first[0][-1] < first[0][0]


def test_head_size_below_32_is_refused() -> None:
    with pytest.raises(ValueError, match="head size"):
        ModelConfig(hidden_size=128, heads=8)


@pytest.mark.skipif(not (DEFAULT_OUT / "model.safetensors").exists(), reason="no committed toy checkpoint")
def test_committed_checkpoint_loads_and_generates() -> None:
    from maskdpo.toyworld.evaluate import generate, load

    model, tokenizer, world = load(DEFAULT_OUT)
    assert model.config.hidden_size // model.config.num_attention_heads >= 32
    size = sum(f.stat().st_size for f in Path(DEFAULT_OUT).iterdir())
    assert size < 16 * 2**20
    info = json.loads((DEFAULT_OUT / "training_info.json").read_text())
    assert info["losses"][-1] < info["losses"][0]
    person = world.split("heldout")[0]
    torch.set_num_threads(1)
    (answer,) = generate(model, tokenizer, [person.name], max_new_tokens=40)[0]
    assert person.name.split()[-1] in answer  # it writes about the person asked for


@pytest.mark.skipif(not (DEFAULT_OUT / "model.safetensors").exists(), reason="no committed toy checkpoint")
def test_evaluation_report_by_bucket() -> None:
    from maskdpo.toyworld.evaluate import evaluate, load

    torch.set_num_threads(1)
    report = evaluate(DEFAULT_OUT, split="validation", k=2, limit=4)
    overall = report["all"]
    assert overall["answers"] == 4
    for key in ("anah_greedy", "greedy_mean_score", "best_of_k_score", "sample_mean_score"):
        assert 0.0 <= overall[key] <= 1.0
    assert overall["ok_per_answer"] + overall["incorrect_per_answer"] > 0
    people = load(DEFAULT_OUT)[2].split("validation")[:4]
    for bucket in {p.bucket for p in people}:
        assert report[bucket]["answers"] == sum(p.bucket == bucket for p in people)


def test_overrides_reach_nested_configs_and_unknown_fields_are_refused() -> None:
    config = with_overrides(TrainConfig(), {"steps": 5, "world.family_fame": 0.8, "model.layers": 4})
    assert (config.steps, config.world.family_fame, config.model.layers) == (5, 0.8, 4)
    assert config.world.seed == TrainConfig().world.seed and config.corpus == TrainConfig().corpus
    with pytest.raises(TypeError):
        with_overrides(TrainConfig(), {"world.no_such_field": 1})
    with pytest.raises(ValueError, match="family_fame"):  # the nested config still validates
        with_overrides(TrainConfig(), {"world.family_fame": 2.0})
