"""Checkpoint retention: a run keeps its last K checkpoints, and dropping the resume state deletes the
optimizer, scheduler and RNG states of every checkpoint while their weights stay loadable."""

from __future__ import annotations

from pathlib import Path

from maskdpo.trainer.retention import drop_resume_state
from maskdpo.trainer.run import TrainOptions, run_training
from tests.helpers.training import write_judged

RESUME_FILES = {"optimizer.pt", "scheduler.pt", "rng_state.pth"}


def test_keep_the_last_checkpoints_then_drop_their_resume_state(tiny_model_dir: Path, tmp_path: Path) -> None:
    options = TrainOptions(data=write_judged(tmp_path / "judged.jsonl"), model=tiny_model_dir, out=tmp_path / "run",
                           steps=4, learning_rate=1e-3, save_steps=1, keep_checkpoints=2, progress_bar=False)
    run_training(options)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    before = {p.name for p in (checkpoints / "checkpoint-4").iterdir()}
    assert RESUME_FILES <= before

    freed = drop_resume_state(checkpoints)
    for checkpoint in ("checkpoint-3", "checkpoint-4"):
        left = {p.name for p in (checkpoints / checkpoint).iterdir()}
        assert not left & RESUME_FILES and {"model.safetensors", "config.json", "training_info.json"} <= left
    assert freed > 0 and drop_resume_state(checkpoints) == 0


def test_sharded_optimizer_folders_are_resume_state(tmp_path: Path) -> None:
    shard = tmp_path / "checkpoint-2" / "optimizer_0"
    shard.mkdir(parents=True)
    (shard / "__0_0.distcp").write_bytes(b"x" * 10)
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(b"w")
    assert drop_resume_state(tmp_path) == 10
    assert [p.name for p in (tmp_path / "checkpoint-2").iterdir()] == ["model.safetensors"]
