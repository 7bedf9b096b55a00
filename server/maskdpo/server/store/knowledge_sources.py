"""Registered knowledge sources: named sets of reference passages and/or structured facts.

Stored as files under ``<data_dir>/knowledge/<id>/`` (``meta.json``, ``passages.jsonl``, ``facts.jsonl``),
written to a temporary folder, flushed to disk (files, then the folder) and renamed into place, and the
rename itself is flushed before the call returns: a crash or a power cut never leaves half a source, and a
source whose creation was acknowledged survives one. Leftover temporary folders (names starting with a dot)
are never listed or resolved. A request names a source by ``knowledgeSources/<id>``;
:meth:`KnowledgeStore.resolve` picks what concerns the request's topic (passages titled with it, facts
about it) and falls back to the whole source.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from maskdpo.server.errors import AlreadyExists, InvalidArgument, NotFound
from maskdpo.server.judge.types import Fact, Passage
from maskdpo.server.store.layout import DataDir
from maskdpo.trainer import durable

_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
PREFIX = "knowledgeSources/"


@dataclass(frozen=True)
class KnowledgeSourceInfo:
    id: str
    description: str
    passage_count: int
    fact_count: int
    create_time: float

    @property
    def name(self) -> str:
        return PREFIX + self.id


@dataclass(frozen=True)
class _Loaded:
    passages: tuple[Passage, ...]
    facts: tuple[Fact, ...]
    passages_by_title: dict[str, tuple[Passage, ...]]
    facts_by_subject: dict[str, tuple[Fact, ...]]


def parse_name(name: str, field: str = "name") -> str:
    """``knowledgeSources/<id>`` -> ``<id>``; InvalidArgument naming ``field`` otherwise."""
    if not name.startswith(PREFIX) or not _ID.match(name[len(PREFIX) :]):
        raise InvalidArgument(field, f"expected 'knowledgeSources/<id>', got {name[:80]!r}")
    return name[len(PREFIX) :]


class KnowledgeStore:
    """Create, read, list and delete knowledge sources on disk; loaded sources are cached."""

    def __init__(self, root: Path) -> None:
        self.root = DataDir(root).knowledge
        self.root.mkdir(parents=True, exist_ok=True)
        # a write or delete interrupted by a crash leaves a hidden staging or trash folder; no source is
        # ever visible under a hidden name, so they can go
        durable.remove_leftovers(self.root, (".",))
        self._cache: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def create(self, source_id: str, description: str, passages: list[Passage],
               facts: list[Fact]) -> KnowledgeSourceInfo:
        if not _ID.match(source_id):
            raise InvalidArgument("knowledge_source_id", "1-63 characters of [a-z0-9-], starting with a letter")
        if not passages and not facts:
            raise InvalidArgument("passages", "a knowledge source needs passages or facts")
        final = self.root / source_id
        if final.exists():
            raise AlreadyExists(PREFIX + source_id)
        info = KnowledgeSourceInfo(source_id, description, len(passages), len(facts), time.time())
        tmp = Path(tempfile.mkdtemp(prefix=f".{source_id}-", dir=self.root))
        try:
            (tmp / "meta.json").write_text(json.dumps(asdict(info)))
            with open(tmp / "passages.jsonl", "w") as fh:
                fh.writelines(json.dumps({"title": p.title, "text": p.text}) + "\n" for p in passages)
            with open(tmp / "facts.jsonl", "w") as fh:
                fh.writelines(json.dumps(asdict(f)) + "\n" for f in facts)
            durable.flush_tree(tmp)
            os.rename(tmp, final)
            durable.flush(self.root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():
                raise AlreadyExists(PREFIX + source_id) from None
            raise
        return info

    def get(self, source_id: str) -> KnowledgeSourceInfo:
        meta = self.root / source_id / "meta.json"
        if not meta.exists():
            raise NotFound(PREFIX + source_id)
        return KnowledgeSourceInfo(**json.loads(meta.read_text()))

    def list(self) -> list[KnowledgeSourceInfo]:
        return [self.get(p.name) for p in sorted(self.root.iterdir())
                if not p.name.startswith(".") and (p / "meta.json").exists()]

    def delete(self, source_id: str) -> None:
        self.get(source_id)
        trash = self.root / f".deleted-{source_id}-{time.time_ns()}"
        os.rename(self.root / source_id, trash)
        durable.flush(self.root)
        shutil.rmtree(trash, ignore_errors=True)
        with self._lock:
            self._cache.pop(source_id, None)

    def resolve(self, source_id: str, topic: str) -> tuple[tuple[Passage, ...], tuple[Fact, ...]]:
        """The passages and facts of a source that concern ``topic`` (all of them without a match)."""
        loaded = self._load(source_id)
        key = topic.strip().lower()
        passages = loaded.passages_by_title.get(key, loaded.passages) if key else loaded.passages
        facts = loaded.facts_by_subject.get(key, loaded.facts) if key else loaded.facts
        return passages, facts

    def _load(self, source_id: str) -> _Loaded:
        with self._lock:
            if source_id in self._cache:
                return self._cache[source_id]
        folder = self.root / source_id
        if not (folder / "meta.json").exists():
            raise NotFound(PREFIX + source_id)
        passages = tuple(Passage(**json.loads(line)) for line in open(folder / "passages.jsonl"))
        facts = tuple(Fact(**json.loads(line)) for line in open(folder / "facts.jsonl"))
        by_title: dict[str, list[Passage]] = {}
        for p in passages:
            by_title.setdefault(p.title.strip().lower(), []).append(p)
        by_subject: dict[str, list[Fact]] = {}
        for f in facts:
            by_subject.setdefault(f.subject.strip().lower(), []).append(f)
        loaded = _Loaded(passages, facts, {k: tuple(v) for k, v in by_title.items()},
                         {k: tuple(v) for k, v in by_subject.items()})
        with self._lock:
            self._cache[source_id] = loaded
        return loaded
