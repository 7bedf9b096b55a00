"""flush_tree: every file and folder of a tree reaches the disk, each folder after what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdpo.trainer import durable


def test_flush_tree_flushes_everything_children_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record durable.flush and os.rename/os.replace calls, in order, by the name they act on."""
    import os

    steps: list[str] = []
    flush, rename, replace = durable.flush, os.rename, os.replace
    monkeypatch.setattr(
        durable, "flush", lambda path: (steps.append(f"flush {Path(path).name}"), flush(path))
    )
    monkeypatch.setattr(os, "rename", lambda a, b: (steps.append(f"rename {Path(b).name}"), rename(a, b)))
    monkeypatch.setattr(os, "replace", lambda a, b: (steps.append(f"rename {Path(b).name}"), replace(a, b)))
    return steps


def test_replace_file_flushes_contents_before_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "report.md").write_text("old")
    (tmp_path / "report.md.tmp").write_text("new")
    steps = _spy(monkeypatch)
    durable.replace_file(tmp_path / "report.md.tmp", tmp_path / "report.md")
    assert steps == ["flush report.md.tmp", "rename report.md", f"flush {tmp_path.name}"]
    assert (tmp_path / "report.md").read_text() == "new" and not (tmp_path / "report.md.tmp").exists()


def test_checkpoint_publish_is_on_disk_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maskdpo.trainer.checkpoint import publish, staging_dir_for

    final = tmp_path / "checkpoint-4"
    staging = staging_dir_for(final)
    staging.mkdir()
    (staging / "model.safetensors").write_text("weights")
    steps = _spy(monkeypatch)
    publish(staging, final)
    assert steps == [
        "flush model.safetensors",
        f"flush {staging.name}",
        "rename checkpoint-4",
        f"flush {tmp_path.name}",
    ]
    assert (final / "model.safetensors").read_text() == "weights"


def test_remove_leftovers_takes_only_the_named_prefixes(tmp_path: Path) -> None:
    for name in (".staging-checkpoint-8-123", ".old-checkpoint-4-9"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_text("half")
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / ".hidden-file").write_text("x")
    removed = durable.remove_leftovers(tmp_path, (".staging-", ".old-"))
    assert sorted(p.name for p in removed) == [".old-checkpoint-4-9", ".staging-checkpoint-8-123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-file", "checkpoint-4"]
    assert durable.remove_leftovers(tmp_path / "missing", (".",)) == []
