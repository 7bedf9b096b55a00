"""The toy world's corpus: biographies as chat examples, and the world exported as a knowledge source.

Each person appears in ``person.docs`` documents (popularity); each document is a chat example whose user
turn asks about the person and whose assistant turn is a biography: an opening sentence with the full
name, then a random subset of the person's attributes in the canonical order, each through a randomly
chosen template and subject form (pronoun, given name or full name), with fact-free filler sentences
mixed in.

Run ``python -m maskdpo.toyworld.corpus OUT_DIR [--seed N]`` to write ``corpus.jsonl``, ``facts.jsonl``
and ``world.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from maskdpo.toyworld import bio_templates as T
from maskdpo.toyworld.world import ATTRIBUTES, Person, World, WorldConfig


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0
    p_keep: float = 0.6
    """Chance that a document states each attribute the person has."""
    p_combined_opening: float = 0.5
    p_pronoun: float = 0.6
    p_given_name: float = 0.2
    filler_rate: float = 0.35
    """Expected fact-free sentences per document."""

    def __post_init__(self) -> None:
        for name in ("p_keep", "p_combined_opening", "p_pronoun", "p_given_name"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CorpusConfig.{name} must lie in [0, 1], got {value}")


def pronouns(person: Person) -> tuple[str, str]:
    return ("She", "Her") if person.gender == "f" else ("He", "His")


def sibling_word(sibling: Person | None) -> str:
    return "sister" if sibling is not None and sibling.gender == "f" else "brother"


def person_values(person: Person, world_index: dict[str, Person]) -> dict[str, str]:
    values = {a: v[0] for a, v in person.attributes.items() if v}
    values["sibling_word"] = sibling_word(world_index.get(values.get("sibling", "")))
    return values


def biography(person: Person, rng: random.Random, config: CorpusConfig, index: dict[str, Person]) -> str:
    """One randomised biography of ``person`` (only true statements and fillers)."""
    values = person_values(person, index)
    kept = [a for a in ATTRIBUTES if a in person.attributes and rng.random() < config.p_keep]
    if not kept:
        kept = [rng.choice([a for a in ATTRIBUTES if a in person.attributes])]
    sentences: list[str] = []
    openers = [t for t in T.COMBINED_TEMPLATES if all(a in kept for a in t.attributes)]
    if openers and rng.random() < config.p_combined_opening:
        opener = rng.choice(openers)
    else:
        opener = rng.choice(T.FACT_TEMPLATES[kept[0]])
    sentences.append(T.render(opener, person.name, f"{person.name}'s", values))
    pronoun, possessive = pronouns(person)
    for attribute in kept:
        if attribute in opener.attributes:
            continue
        template = rng.choice(T.FACT_TEMPLATES[attribute])
        subject, poss = _subject_forms(person, pronoun, possessive, rng, config)
        sentences.append(T.render(template, subject, poss, values))
    fillers = _count(rng, config.filler_rate)
    for _ in range(fillers):
        template = rng.choice(T.FILLER_TEMPLATES)
        subject, poss = _subject_forms(person, pronoun, possessive, rng, config)
        sentences.insert(rng.randint(1, len(sentences)), T.render(template, subject, poss, values))
    return " ".join(sentences)


def _subject_forms(
    person: Person, pronoun: str, possessive: str, rng: random.Random, config: CorpusConfig
) -> tuple[str, str]:
    roll = rng.random()
    if roll < config.p_pronoun:
        return pronoun, possessive
    if roll < config.p_pronoun + config.p_given_name:
        return person.given, f"{person.given}'s"
    return person.name, f"{person.name}'s"


def _count(rng: random.Random, rate: float) -> int:
    count = int(rate)
    if rng.random() < rate - count:
        count += 1
    return count


class ChatExample(TypedDict):
    """One training document: a question about a person and the biography that answers it."""

    messages: list[dict[str, str]]
    topic: str


def question(name: str, variant: int = 0) -> str:
    return T.QUESTIONS[variant].format(name=name)


def chat_example(name: str, answer: str, variant: int = 0) -> ChatExample:
    return {
        "messages": [
            {"role": "user", "content": question(name, variant)},
            {"role": "assistant", "content": answer},
        ],
        "topic": name,
    }


def build_corpus(world: World, config: CorpusConfig | None = None) -> list[ChatExample]:
    """All training examples of the world, shuffled; deterministic in (world, config)."""
    config = config or CorpusConfig()
    rng = random.Random(config.seed * 1_000_003 + world.config.seed)
    index = world.by_name()
    examples = []
    for person in world.people:
        for _ in range(person.docs):
            variant = 0 if rng.random() < 0.6 else rng.randrange(1, len(T.QUESTIONS))
            examples.append(chat_example(person.name, biography(person, rng, config, index), variant))
    rng.shuffle(examples)
    return examples


def fact_records(world: World) -> Iterable[dict[str, str]]:
    for subject, attribute, value in world.facts():
        yield {"subject": subject, "attribute": attribute, "value": value}


def write_jsonl(path: Path, records: Iterable[Mapping[str, object]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    world = World.generate(WorldConfig(seed=args.seed))
    n_docs = write_jsonl(args.out_dir / "corpus.jsonl", build_corpus(world, CorpusConfig(seed=args.seed)))
    n_facts = write_jsonl(args.out_dir / "facts.jsonl", fact_records(world))
    (args.out_dir / "world.json").write_text(json.dumps(world.to_json(), indent=1, sort_keys=True))
    print(f"{len(world.people)} people, {n_docs} documents, {n_facts} facts -> {args.out_dir}")


if __name__ == "__main__":
    main()
