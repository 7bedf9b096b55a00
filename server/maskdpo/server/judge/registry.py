"""Build a judge backend by name: ``kb``, ``heuristic``, ``llm``, or one a package registers.

    judge = build_backend("kb", knowledge=KnowledgeBase.from_jsonl("facts.jsonl"))
    judge = build_backend("heuristic")

Options are passed to the backend's factory unchanged. The built-in backends are imported only when asked
for, so using ``kb`` never loads embedding models or an inference engine.

Other packages add backends (a domain's exact judge, e.g. the toy world's) in one of two ways: an entry
point in the group ``maskdpo.judge_backends`` (``name = "package.module:factory"``; every process that
builds judges finds it, Ray actors included), or :func:`register` (this process only: tests, scripts).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from maskdpo.server.judge.types import JudgeBackend

ENTRY_POINTS = "maskdpo.judge_backends"
BUILTIN: dict[str, str] = {
    "kb": "maskdpo.server.judge.kb:KbJudge",
    "heuristic": "maskdpo.server.judge.heuristic:HeuristicJudge",
    "llm": "maskdpo.server.judge.llm:LlmJudge",
}
"""Backend name -> ``module:factory`` of the backends this package ships."""
READS_FACTS_ONLY = frozenset({"kb"})
"""Backends that judge against structured facts only (passages alone give them nothing to check)."""
_REGISTERED: dict[str, Callable[..., JudgeBackend]] = {}


@functools.cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}


def register(name: str, factory: Callable[..., JudgeBackend]) -> None:
    """Make ``name`` buildable in this process (entry points reach every process; this does not)."""
    if name in BUILTIN:
        raise ValueError(f"judge backend {name!r} is built in")
    _REGISTERED[name] = factory


def backend_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_plugins()) | set(_REGISTERED))


def _factory(name: str) -> Callable[..., Any]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        raise ValueError(f"unknown judge backend {name!r}; expected one of: {', '.join(backend_names())}")
    module_name, _, attribute = target.partition(":")
    factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return factory


def build_backend(name: str, **options: Any) -> JudgeBackend:
    """A new backend instance; ValueError naming the known backends for an unknown ``name``."""
    key = name.strip().lower()
    backend = _factory(key)(**options)
    if not isinstance(backend, JudgeBackend):
        raise TypeError(f"judge backend {key!r} does not implement JudgeBackend")
    return backend
