"""The toy corpus: deterministic, true to the world, with fact-free sentences and a long tail."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from maskdpo.toyworld.corpus import CorpusConfig, build_corpus, fact_records
from maskdpo.toyworld.world import World, WorldConfig


def _digest(rows: list) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def test_same_seed_same_corpus() -> None:
    world = World.generate(WorldConfig(seed=1))
    first = build_corpus(world, CorpusConfig(seed=1))
    again = build_corpus(World.generate(WorldConfig(seed=1)), CorpusConfig(seed=1))
    assert _digest(first) == _digest(again)
    assert _digest(first) != _digest(build_corpus(world, CorpusConfig(seed=2)))


def test_popularity_decides_how_often_a_person_appears() -> None:
    world = World.generate()
    corpus = build_corpus(world)
    per_topic = Counter(row["topic"] for row in corpus)
    assert all(per_topic[p.name] == p.docs for p in world.people)
    assert len(corpus) == sum(p.docs for p in world.people)


def test_examples_are_chat_turns_about_their_topic() -> None:
    world = World.generate()
    for row in build_corpus(world)[:200]:
        user, assistant = row["messages"]
        assert user["role"] == "user" and row["topic"] in user["content"]
        assert assistant["role"] == "assistant" and assistant["content"].startswith(row["topic"])


def test_fact_export_matches_the_world() -> None:
    world = World.generate()
    records = list(fact_records(world))
    assert len(records) == sum(len(v) for p in world.people for v in p.attributes.values())
    assert {"subject", "attribute", "value"} == set(records[0])
