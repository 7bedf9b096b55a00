"""Registered prompt sets for rounds: ``toyworld/alignment``, ``toyworld/validation``, ``toyworld/heldout``.

A dataset is a list of :class:`PromptItem` (prompt, topic, the knowledge facts of that topic) and, where
the domain has one, the judge that labels its answers exactly (the toy world's ``kb`` judge with its claim
extractor and the whole world as knowledge). Other modules add datasets with :func:`register`; the module
names listed in the ``round_dataset_modules`` setting are imported when the round controller starts.

The toy world is built from ``toyworld/maskdpo/toyworld/model/training_info.json`` when the toy model exists (so prompts
match the world the model learnt), else from the default world config. It is imported lazily: nothing of
``maskdpo.toyworld`` loads unless a ``toyworld/*`` dataset is used.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskdpo.server.judge.types import Fact, JudgeBackend
from maskdpo.server.rounds.config import PromptItem, PromptSource


@dataclass(frozen=True)
class Dataset:
    name: str
    items: tuple[PromptItem, ...]
    judge: Callable[[], JudgeBackend] | None = None
    """The domain's own judge (used when the round's judge is ``kb`` or unset); None = the named backend."""
    description: str = ""


_FACTORIES: dict[str, Callable[[], Dataset]] = {}


def register(name: str, factory: Callable[[], Dataset]) -> None:
    """Make ``name`` resolvable; the factory runs (once) when a round first uses it."""
    _FACTORIES[name] = functools.cache(factory)


def names() -> frozenset[str]:
    return frozenset(_FACTORIES)


def load_modules(modules: Sequence[str]) -> None:
    """Import modules that call :func:`register` (ImportError names the module)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"round dataset module {module!r} could not be imported: {exc}") from exc


def get(name: str) -> Dataset:
    if name not in _FACTORIES:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name]()


def resolve(source: PromptSource) -> tuple[list[PromptItem], Dataset | None]:
    """The prompts of a source (limit applied) and its dataset (None for inline prompts)."""
    dataset = get(source.dataset) if source.dataset else None
    items = list(dataset.items if dataset else source.inline)
    if source.limit:
        items = items[: source.limit]
    return items, dataset


@functools.cache
def _toy_world() -> Any:
    from maskdpo.toyworld.train_model import DEFAULT_OUT
    from maskdpo.toyworld.world import World, WorldConfig

    info_file = Path(DEFAULT_OUT) / "training_info.json"
    config = WorldConfig()
    if info_file.is_file():
        config = WorldConfig(**json.loads(info_file.read_text())["config"]["world"])
    return World.generate(config)


def toy_world_items(split: str) -> tuple[PromptItem, ...]:
    """One "Tell me a bio of <name>." prompt per person of ``split``, with that person's facts."""
    from maskdpo.toyworld.corpus import question
    from maskdpo.toyworld.world import ATTRIBUTES

    world = _toy_world()
    people = world.split(split)
    # interleave popularity buckets so a small limit still covers frequent, medium and rare people
    by_bucket: dict[str, list[Any]] = {}
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


def _toy_judge() -> JudgeBackend:
    from maskdpo.toyworld.world_judge import world_judge

    judge: JudgeBackend = world_judge(_toy_world())
    return judge


def _toy_dataset(split: str) -> Callable[[], Dataset]:
    def build() -> Dataset:
        return Dataset(
            f"toyworld/{split}",
            toy_world_items(split),
            _toy_judge,
            f"toy-world biographies of the {split} people",
        )

    return build


for _split in ("alignment", "validation", "heldout"):
    register(f"toyworld/{_split}", _toy_dataset(_split))
