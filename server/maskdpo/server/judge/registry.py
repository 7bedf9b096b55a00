"""Build a judge backend by name: ``kb``, ``heuristic`` or ``llm``.

    judge = build_backend("kb", knowledge=KnowledgeBase.from_jsonl("facts.jsonl"))
    judge = build_backend("heuristic")

Options are passed to the backend's constructor unchanged. The heuristic and llm backends are imported
only when asked for, so using ``kb`` never loads embedding models or an inference engine.
"""

from __future__ import annotations

import importlib
from typing import Any

from maskdpo.server.judge.types import JudgeBackend

BACKENDS: dict[str, tuple[str, str]] = {
    "kb": ("maskdpo.server.judge.kb", "KbJudge"),
    "heuristic": ("maskdpo.server.judge.heuristic", "HeuristicJudge"),
    "llm": ("maskdpo.server.judge.llm", "LlmJudge"),
}
"""Backend name -> (module, class)."""


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def build_backend(name: str, **options: Any) -> JudgeBackend:
    """A new backend instance; ValueError naming the known backends for an unknown ``name``."""
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown judge backend {name!r}; expected one of: {', '.join(backend_names())}")
    module_name, class_name = BACKENDS[key]
    module = importlib.import_module(module_name)
    backend = getattr(module, class_name)(**options)
    if not isinstance(backend, JudgeBackend):
        raise TypeError(f"{module_name}.{class_name} does not implement JudgeBackend")
    return backend
