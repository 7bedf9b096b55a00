"""Knowledge sources on disk: atomic create, lookup by topic, pagination-friendly listing, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdpo.server.errors import AlreadyExists, InvalidArgument, NotFound
from maskdpo.server.judge.types import Fact, Passage
from maskdpo.server.store.knowledge_sources import KnowledgeStore, parse_name


def test_roundtrip(tmp_path: Path) -> None:
    store = KnowledgeStore(tmp_path)
    info = store.create("bios", "two people", [Passage("A was born in 1900.", "A"), Passage("B is a poet.", "B")],
                        [Fact("A", "birth_year", "1900")])
    assert info.name == "knowledgeSources/bios" and info.passage_count == 2 and info.fact_count == 1
    passages, facts = store.resolve("bios", "a")
    assert [p.title for p in passages] == ["A"] and facts == (Fact("A", "birth_year", "1900"),)
    passages, _ = store.resolve("bios", "somebody else")
    assert len(passages) == 2
    assert [i.id for i in KnowledgeStore(tmp_path).list()] == ["bios"]
    with pytest.raises(AlreadyExists):
        store.create("bios", "", [Passage("x")], [])
    store.delete("bios")
    with pytest.raises(NotFound):
        store.resolve("bios", "")
    assert not list((tmp_path / "knowledge").iterdir())


def test_validation(tmp_path: Path) -> None:
    store = KnowledgeStore(tmp_path)
    with pytest.raises(InvalidArgument):
        store.create("Bad_Id", "", [Passage("x")], [])
    with pytest.raises(InvalidArgument):
        store.create("empty", "", [], [])
    with pytest.raises(InvalidArgument):
        parse_name("bios")
    with pytest.raises(InvalidArgument):
        parse_name("knowledgeSources/../etc")
    assert parse_name("knowledgeSources/bios-2") == "bios-2"


def test_leftovers_of_interrupted_writes_are_cleared_at_start(tmp_path: Path) -> None:
    KnowledgeStore(tmp_path).create("kept", "", [Passage("x")], [])
    root = tmp_path / "knowledge"
    (root / ".half-written-ab12").mkdir()  # a create killed before its rename
    (root / ".half-written-ab12" / "meta.json").write_text("{")
    (root / ".deleted-old-123").mkdir()  # a delete killed before its rmtree
    store = KnowledgeStore(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["kept"]
    assert [i.id for i in store.list()] == ["kept"]
