"""What a run keeps of its checkpoints: the last K while it trains, and no resume state once it is over.

A checkpoint (``checkpoints/checkpoint-N``) holds the weights, tokenizer and ``training_info.json``, plus
the state only resuming needs: the optimizer's (Adam: twice the weights, in float32 -- 64 GB for an 8B
model), the scheduler's, the gradient scaler's and the RNG states. While training, ``keep_checkpoints``
(transformers' ``save_total_limit``) deletes all but the last K after each save. When nothing will resume
the run any more (an alignment round's TRAIN phase finished or its round ended),
:func:`drop_resume_state` deletes the resume state of every checkpoint and keeps their weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RESUME_STATE = ("optimizer*", "scheduler.pt", "scaler.pt", "rng_state*")
"""Entries of a checkpoint folder only resuming reads (``optimizer_0/`` is FSDP's sharded optimizer)."""


def drop_resume_state(checkpoints: Path) -> int:
    """Delete :data:`RESUME_STATE` from every ``checkpoint-*`` folder under ``checkpoints``; the bytes freed."""
    freed = 0
    for checkpoint in sorted(checkpoints.glob("checkpoint-*")):
        for pattern in RESUME_STATE:
            for entry in checkpoint.glob(pattern):
                if entry.is_dir() and not entry.is_symlink():
                    freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                    shutil.rmtree(entry)
                else:
                    freed += entry.stat().st_size
                    entry.unlink()
    return freed
