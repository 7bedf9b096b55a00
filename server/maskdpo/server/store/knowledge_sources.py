"""Registered knowledge sources: named sets of reference passages and/or structured facts.

Stored as files under ``<data_dir>/knowledge/<id>/`` (``meta.json``, ``passages.jsonl``, ``facts.jsonl``,
and, when a judge embedded the passages at registration, ``chunks.jsonl`` -- each passage's sentence
chunks -- and ``vectors.npy`` -- one float32 row per chunk; ``meta.json`` names the embedding model), written to a temporary folder, flushed to disk (files, then the folder) and renamed into place, and the
rename itself is flushed before the call returns: a crash or a power cut never leaves half a source, and a
source whose creation was acknowledged survives one. Leftover temporary folders (names starting with a dot)
are never listed or resolved. A request names a source by ``knowledgeSources/<id>``;
:meth:`KnowledgeStore.resolve` picks what concerns the request's topic (passages titled with it, facts
about it) and falls back to the whole source; :meth:`KnowledgeStore.chunk_vectors` gives the stored
chunks and vectors of the same passages, so a restarted server judges against them without embedding
them again.
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

import numpy as np

from maskdpo.server.errors import AlreadyExists, InvalidArgument, NotFound
from maskdpo.server.judge.types import ChunkVectors, Fact, Passage
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
    embedding_model: str = ""
    """The model whose chunk vectors are stored with the passages ("" when none are)."""

    @property
    def name(self) -> str:
        return PREFIX + self.id


@dataclass(frozen=True)
class _Loaded:
    passages: tuple[Passage, ...]
    facts: tuple[Fact, ...]
    passages_by_title: dict[str, tuple[int, ...]]
    facts_by_subject: dict[str, tuple[Fact, ...]]
    index: ChunkVectors | None

    def passage_indices(self, topic: str) -> tuple[int, ...]:
        key = topic.strip().lower()
        everything = tuple(range(len(self.passages)))
        return self.passages_by_title.get(key, everything) if key else everything


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
               facts: list[Fact], index: ChunkVectors | None = None) -> KnowledgeSourceInfo:
        """Write a new source; ``index`` (the passages' chunks and vectors) is stored with it."""
        self.check_new(source_id)
        if not passages and not facts:
            raise InvalidArgument("passages", "a knowledge source needs passages or facts")
        final = self.root / source_id
        if index is not None and len(index.chunks) != len(passages):
            raise ValueError(f"chunk vectors for {len(index.chunks)} passages, not {len(passages)}")
        info = KnowledgeSourceInfo(source_id, description, len(passages), len(facts), time.time(),
                                   index.model if index is not None else "")
        tmp = Path(tempfile.mkdtemp(prefix=f".{source_id}-", dir=self.root))
        try:
            (tmp / "meta.json").write_text(json.dumps(asdict(info)))
            with open(tmp / "passages.jsonl", "w") as fh:
                fh.writelines(json.dumps({"title": p.title, "text": p.text}) + "\n" for p in passages)
            with open(tmp / "facts.jsonl", "w") as fh:
                fh.writelines(json.dumps(asdict(f)) + "\n" for f in facts)
            if index is not None:
                with open(tmp / "chunks.jsonl", "w") as fh:
                    fh.writelines(json.dumps(list(c)) + "\n" for c in index.chunks)
                np.save(tmp / "vectors.npy", np.asarray(index.vectors, dtype=np.float32))
            durable.flush_tree(tmp)
            os.rename(tmp, final)
            durable.flush(self.root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():
                raise AlreadyExists(PREFIX + source_id) from None
            raise
        return info

    def check_new(self, source_id: str) -> None:
        """InvalidArgument for a malformed id, AlreadyExists for a taken one."""
        if not _ID.match(source_id):
            raise InvalidArgument("knowledge_source_id", "1-63 characters of [a-z0-9-], starting with a letter")
        if (self.root / source_id).exists():
            raise AlreadyExists(PREFIX + source_id)

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
        passages = tuple(loaded.passages[i] for i in loaded.passage_indices(topic))
        facts = loaded.facts_by_subject.get(key, loaded.facts) if key else loaded.facts
        return passages, facts

    def chunk_vectors(self, source_id: str, topic: str) -> ChunkVectors | None:
        """The stored chunks and vectors of the passages :meth:`resolve` gives for ``topic`` (None when the
        source was registered without them)."""
        loaded = self._load(source_id)
        return None if loaded.index is None else loaded.index.select(loaded.passage_indices(topic))

    def _load(self, source_id: str) -> _Loaded:
        with self._lock:
            if source_id in self._cache:
                return self._cache[source_id]
        folder = self.root / source_id
        if not (folder / "meta.json").exists():
            raise NotFound(PREFIX + source_id)
        passages = tuple(Passage(**json.loads(line)) for line in open(folder / "passages.jsonl"))
        facts = tuple(Fact(**json.loads(line)) for line in open(folder / "facts.jsonl"))
        by_title: dict[str, list[int]] = {}
        for i, p in enumerate(passages):
            by_title.setdefault(p.title.strip().lower(), []).append(i)
        by_subject: dict[str, list[Fact]] = {}
        for f in facts:
            by_subject.setdefault(f.subject.strip().lower(), []).append(f)
        info = self.get(source_id)
        index = None
        if info.embedding_model:
            chunks = tuple(tuple(json.loads(line)) for line in open(folder / "chunks.jsonl"))
            index = ChunkVectors(info.embedding_model, chunks, np.load(folder / "vectors.npy"))
        loaded = _Loaded(passages, facts, {k: tuple(v) for k, v in by_title.items()},
                         {k: tuple(v) for k, v in by_subject.items()}, index)
        with self._lock:
            self._cache[source_id] = loaded
        return loaded
