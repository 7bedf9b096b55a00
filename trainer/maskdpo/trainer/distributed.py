"""A training run's view of ``torch.distributed``: which process is the main one, a barrier, decisions every
process takes together, and a dataset every process reads from the same files.

Without a process group a run is rank 0 of 1 and every function here is trivial, so
:func:`maskdpo.trainer.run.run_training` runs the same code alone and on Ray Train workers, which set the
process group up before the training function starts (a launcher that leaves it to accelerate, such as a
bare ``torchrun``, would set it up too late for these functions). The run folder must be one folder for
every process (a shared filesystem across nodes).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _group_ready() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def rank() -> int:
    import torch.distributed as dist

    return int(dist.get_rank()) if _group_ready() else 0


def world_size() -> int:
    import torch.distributed as dist

    return int(dist.get_world_size()) if _group_ready() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for alone)."""
    import torch.distributed as dist

    if world_size() > 1:
        dist.barrier()


def from_main(value: T) -> T:
    """The main process's ``value``, on every process (a collective: every process must call it)."""
    import torch.distributed as dist

    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agreed(decide: Callable[[], bool]) -> Callable[[], bool]:
    """A decision every process takes together: the main process calls ``decide``, the others get its answer.

    Call the result at the same point on every process (it is a collective), e.g. after each optimizer step:
    if each process asked on its own, one could stop while the others wait for it in the next step."""
    return lambda: bool(from_main(decide() if is_main() else False))


def is_sharded(model: Any) -> bool:
    """Whether ``model`` is sharded over the processes by FSDP2 (``fully_shard``)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def run_token() -> str:
    """A name every process of the run shares (the main process's pid), e.g. for a staging folder they all
    write into."""
    return str(from_main(os.getpid()))


def on_shared_files(dataset: Any, folder: Path) -> Any:
    """``dataset`` backed by Arrow files in ``folder``, written once by the main process.

    An in-memory dataset caches derived columns (TRL's precomputed reference log-probs) under a random
    temporary name per process, which the other processes cannot find; a dataset on files caches next to
    them, under names every process derives alike. Alone, the dataset is returned as it is."""
    from datasets import load_from_disk

    if world_size() == 1:
        return dataset
    if is_main():
        shutil.rmtree(folder, ignore_errors=True)  # a dataset (and caches) of an earlier attempt
        dataset.save_to_disk(str(folder))
    barrier()
    return load_from_disk(str(folder))
