"""Without a process group a run is rank 0 of 1: every collective helper is trivial (the same code runs on
Ray Train workers: tests/integration/trainer/test_ray_train.py)."""

from __future__ import annotations

import os
from pathlib import Path

from datasets import Dataset

from maskdpo.trainer import distributed


def test_one_process_is_the_main_one_and_decides_alone(tmp_path: Path) -> None:
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    distributed.barrier()
    answers = iter([False, True])
    decide = distributed.agreed(lambda: next(answers))
    assert [decide(), decide()] == [False, True]
    assert distributed.from_main({"a": 1}) == {"a": 1} and distributed.run_token() == str(os.getpid())
    dataset = Dataset.from_list([{"x": 1}])
    assert distributed.on_shared_files(dataset, tmp_path / "d") is dataset and not (tmp_path / "d").exists()
