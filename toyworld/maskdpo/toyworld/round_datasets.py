"""The toy world's prompt sets for alignment rounds: ``toyworld/alignment``, ``toyworld/validation``,
``toyworld/heldout`` (one "Tell me a bio of <name>." prompt per person of the split, with that person's
facts), labelled by the exact ``toyworld`` judge.

Registered with the server's rounds through the entry point ``maskdpo.round_datasets`` (importing this
module registers them). The world is the one the committed toy model was trained on, so prompts match what
the model learnt.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from maskdpo.server.judge.types import Fact
from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import PromptItem
from maskdpo.toyworld.corpus import question
from maskdpo.toyworld.train_model import world_of
from maskdpo.toyworld.world import ATTRIBUTES, Person, World

JUDGE = "toyworld"
"""The judge backend of these sets (entry point ``maskdpo.judge_backends``)."""
SPLITS = ("alignment", "validation", "heldout")


@functools.cache
def _world() -> World:
    return world_of()


def split_items(split: str) -> tuple[PromptItem, ...]:
    """The prompts of one split, popularity buckets interleaved so that a small limit still covers
    frequent, medium and rare people."""
    people = _world().split(split)
    by_bucket: dict[str, list[Person]] = {}
    for person in people:
        by_bucket.setdefault(person.bucket, []).append(person)
    ordered = [p for group in zip(*by_bucket.values(), strict=False) for p in group]
    ordered += [p for p in people if p not in ordered]
    return tuple(
        PromptItem(
            prompt=question(p.name),
            topic=p.name,
            facts=tuple(Fact(p.name, a, v) for a in ATTRIBUTES for v in p.attributes.get(a, [])),
        )
        for p in ordered
    )


def _items(split: str) -> Callable[[], tuple[PromptItem, ...]]:
    return lambda: split_items(split)


for _split in SPLITS:
    datasets.register(f"toyworld/{_split}", _items(_split), judge=JUDGE,
                      description=f"toy-world biographies of the {_split} people")
