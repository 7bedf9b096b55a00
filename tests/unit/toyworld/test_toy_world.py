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


def _within_family_share(world: World) -> float:
    """Share of the variance of log(docs) that lies between families (1 = members equally popular)."""
    import math
    import statistics

    logs = [math.log(p.docs) for p in world.people]
    by_family: dict[int, list[float]] = {}
    for person, value in zip(world.people, logs, strict=True):
        by_family.setdefault(person.family, []).append(value)
    family_means = {f: statistics.fmean(v) for f, v in by_family.items()}
    between = statistics.fmean([family_means[p.family] for p in world.people])
    between_var = statistics.fmean([(family_means[p.family] - between) ** 2 for p in world.people])
    return between_var / statistics.pvariance(logs)


def test_family_fame_makes_relatives_equally_popular_and_keeps_the_splits() -> None:
    independent = World.generate(WorldConfig())
    famous = World.generate(WorldConfig(family_fame=0.85))
    # families are small, so even independent draws put part of the variance between families
    assert _within_family_share(independent) < 0.6
    assert _within_family_share(famous) > 0.9
    counts = Counter((p.split, p.bucket) for p in famous.people)
    assert all(counts[("heldout", b)] == famous.config.heldout_per_bucket for b in BUCKETS)


def test_bad_config_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="family_fame"):
        WorldConfig(family_fame=1.5)
    with pytest.raises(ValueError, match="p_home_city"):
        WorldConfig(p_home_city=1.5)
    with pytest.raises(ValueError, match="families"):
        World.generate(WorldConfig(families=40))
