"""flush_tree: every file and folder of a tree reaches the disk, each folder after what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdpo.server.store import durable


def test_flush_tree_flushes_everything_children_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "phase"
    (root / "checkpoint" / "shard").mkdir(parents=True)
    for rel in ("pairs.jsonl", "checkpoint/config.json", "checkpoint/shard/model.safetensors"):
        (root / rel).write_text(rel)
    (root / "link").symlink_to(root / "pairs.jsonl")
    flushed: list[Path] = []
    flush = durable.flush
    monkeypatch.setattr(durable, "flush", lambda path: (flushed.append(path), flush(path)))
    durable.flush_tree(root)
    assert sorted(flushed) == sorted(p for p in [*root.rglob("*"), root] if not p.is_symlink())
    for path in flushed:  # a folder comes after everything in it
        assert all(flushed.index(inner) < flushed.index(path) for inner in flushed if path in inner.parents)
