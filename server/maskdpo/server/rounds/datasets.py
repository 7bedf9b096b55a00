"""Prompt sets for rounds, registered by name: the API other packages use to add theirs.

A dataset is a list of :class:`PromptItem` (prompt, topic, the knowledge its answers are judged against)
and, where the domain has one, the name of the judge backend that labels its answers exactly (a backend of
:mod:`maskdpo.server.judge.registry`; a round asking for ``kb`` or for no judge uses it). The server hosts
the judges of the registered datasets next to its configured ones, and rounds judge on those same workers.

Packages register datasets through an entry point in the group ``maskdpo.round_datasets`` whose value is
a module that calls :func:`register` when imported (the toy world registers ``toyworld/alignment``,
``toyworld/validation`` and ``toyworld/heldout`` this way); tests and scripts may call :func:`register`
directly. Factories run once, when a round first uses the dataset.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from maskdpo.server.rounds.config import PromptItem, PromptSource

ENTRY_POINTS = "maskdpo.round_datasets"


@dataclass(frozen=True)
class Dataset:
    name: str
    items: tuple[PromptItem, ...]
    judge: str = ""
    """The judge backend that labels this domain exactly ("" = the round's named backend)."""
    description: str = ""


@dataclass(frozen=True)
class _Entry:
    build: Callable[[], tuple[PromptItem, ...]]
    judge: str
    description: str


_REGISTERED: dict[str, _Entry] = {}


def register(name: str, items: Callable[[], tuple[PromptItem, ...]], *, judge: str = "",
             description: str = "") -> None:
    """Make ``name`` resolvable; ``items`` runs (once) when a round first uses it."""
    _REGISTERED[name] = _Entry(functools.cache(items), judge, description)


@functools.cache
def _load_plugins() -> None:
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            importlib.import_module(ep.value)
        except ImportError as exc:
            raise ImportError(f"round dataset module {ep.value!r} (entry point {ep.name!r}) could not be "
                              f"imported: {exc}") from exc


def names() -> frozenset[str]:
    _load_plugins()
    return frozenset(_REGISTERED)


def judges() -> frozenset[str]:
    """The judge backends the registered datasets label with (the server hosts them for rounds)."""
    _load_plugins()
    return frozenset(entry.judge for entry in _REGISTERED.values() if entry.judge)


def get(name: str) -> Dataset:
    _load_plugins()
    if name not in _REGISTERED:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(sorted(_REGISTERED))}")
    entry = _REGISTERED[name]
    return Dataset(name, entry.build(), entry.judge, entry.description)


def resolve(source: PromptSource) -> tuple[list[PromptItem], Dataset | None]:
    """The prompts of a source (limit applied) and its dataset (None for inline prompts)."""
    dataset = get(source.dataset) if source.dataset else None
    items = list(dataset.items if dataset else source.inline)
    if source.limit:
        items = items[: source.limit]
    return items, dataset
