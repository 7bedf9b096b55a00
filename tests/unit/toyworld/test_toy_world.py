"""The toy world: deterministic from its seed, structured, split as promised."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from maskdpo.toyworld.world import ATTRIBUTES, BUCKETS, World, WorldConfig


def _digest(world: World) -> str:
    return hashlib.sha256(json.dumps(world.to_json(), sort_keys=True).encode()).hexdigest()


def test_same_seed_same_world_and_other_seed_differs() -> None:
    assert _digest(World.generate(WorldConfig(seed=3))) == _digest(World.generate(WorldConfig(seed=3)))
    assert _digest(World.generate(WorldConfig(seed=3))) != _digest(World.generate(WorldConfig(seed=4)))


def test_names_unique_and_attributes_from_the_closed_set() -> None:
    world = World.generate()
    names = [p.name for p in world.people]
    assert len(names) == len(set(names))
    assert 300 <= len(names) <= 2000
    for person in world.people:
        assert set(person.attributes) <= set(ATTRIBUTES)
        assert {"birth_year", "birthplace", "occupation"} <= set(person.attributes)
        sibling = person.value("sibling")
        if sibling is not None:
            other = world.by_name()[sibling]
            assert other.family == person.family and other.value("sibling") == person.name


def test_families_share_attributes_more_than_strangers() -> None:
    world = World.generate()
    by_family: dict[int, list] = {}
    for person in world.people:
        by_family.setdefault(person.family, []).append(person)
    same_city = pairs = 0
    for members in by_family.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pairs += 1
                same_city += a.value("birthplace") == b.value("birthplace")
    assert pairs > 100
    assert same_city / pairs > 0.6  # strangers: 1 / len(cities) ~ 0.05


def test_long_tail_and_balanced_splits() -> None:
    config = WorldConfig()
    world = World.generate(config)
    docs = sorted((p.docs for p in world.people), reverse=True)
    top_tenth = sum(docs[: len(docs) // 10])
    assert top_tenth > 0.25 * sum(docs)  # a long tail: a tenth of the people hold over a quarter of docs
    counts = Counter((p.split, p.bucket) for p in world.people)
    for bucket in BUCKETS:
        assert counts[("alignment", bucket)] == config.alignment_per_bucket
        assert counts[("validation", bucket)] == config.validation_per_bucket
        assert counts[("heldout", bucket)] == config.heldout_per_bucket


def test_near_and_far_mean_what_they_say() -> None:
    world = World.generate()
    aligned = world.split("alignment")
    families = {p.family for p in aligned}
    employers = {p.value("employer") for p in aligned} - {None}
    cities = {p.value("birthplace") for p in aligned}
    for person in world.split("heldout") + world.split("validation"):
        if person.proximity == "near":
            assert person.family in families
        else:
            assert person.proximity == "far"
            assert person.family not in families
            assert person.value("employer") not in employers
            assert person.value("birthplace") not in cities


def test_bad_config_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="p_home_city"):
        WorldConfig(p_home_city=1.5)
    with pytest.raises(ValueError, match="families"):
        World.generate(WorldConfig(families=40))
