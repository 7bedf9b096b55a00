"""FSDP without a GPU: PyTorch's FSDP2 (``fully_shard``) over gloo processes on CPU, with the Mask-DPO loss
of the trainer, gives the loss and gradients of the unsharded model.

The trainer itself refuses ``fsdp`` on CPU processes, because accelerate shards GPU process groups only and
would otherwise run them unsharded (tests/integration/trainer/test_ray_train.py checks that refusal;
tests/gpu/test_ray_train_gpu.py runs FSDP through the trainer on GPUs). This test shows that what the GPU
path relies on -- FSDP2 sharding of this model under this loss -- holds where it can be run here: at world
size 1 the sharded step equals the plain one exactly; at world size 2 each process takes half the batch and
the reduce-scattered gradients equal the whole batch's gradients up to the order of float32 sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from maskdpo.trainer import distributed
from tests.unit.trainer.test_trainer_dpo import _args, _loss_and_grads, _rows

LABELS = (["ok", "nofact", "contradictory"], ["contradictory", "ok", "unverifiable"])
PAIRS = 4
TOLERANCE = 1e-5  # float32 sums in another order (measured: 0.0 at world size 1, below 1e-7 at 2)


def _trainer(model_dir: Path, out: Path, rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from maskdpo.trainer.dpo import MaskDPOTrainer

    return MaskDPOTrainer(str(model_dir), args=_args(out), train_dataset=Dataset.from_list(rows),
                          processing_class=AutoTokenizer.from_pretrained(model_dir))


def _sharded_step(rank: int, world: int, model_dir: Path, out: Path) -> None:
    """One process of the group: shard the policy, take its slice of the batch, save loss and full grads."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    dist.init_process_group("gloo", init_method=f"file://{out / 'store'}", rank=rank, world_size=world)
    try:
        share = PAIRS // world
        trainer = _trainer(model_dir, out / f"rank{rank}", _rows(*LABELS, n=PAIRS)[rank * share:(rank + 1) * share])
        mesh = init_device_mesh("cpu", (world,))
        for layer in trainer.model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(trainer.model, mesh=mesh)
        loss, grads, _ = _loss_and_grads(trainer, n=share)
        full = {name: g.full_tensor() for name, g in grads.items()}  # a collective: every rank, same order
        torch.save({"loss": loss, "grads": full, "sharded": distributed.is_sharded(trainer.model),
                    "world": distributed.world_size()}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [1, 2])
def test_fsdp2_on_gloo_gives_the_unsharded_loss_and_gradients(
    world: int, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch.multiprocessing as mp

    plain_loss, plain_grads, _ = _loss_and_grads(_trainer(tiny_model_dir, tmp_path / "plain", _rows(*LABELS, n=PAIRS)),
                                                 n=PAIRS)
    mp.spawn(_sharded_step, args=(world, tiny_model_dir, tmp_path), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    assert all(r["sharded"] and r["world"] == world for r in ranks)
    mean_loss = sum(float(r["loss"]) for r in ranks) / world
    assert abs(mean_loss - float(plain_loss)) <= TOLERANCE
    grads = ranks[0]["grads"]
    assert grads.keys() == plain_grads.keys() and len(grads) > 0
    worst = max((grads[name] - g).abs().max().item() for name, g in plain_grads.items())
    assert worst <= TOLERANCE, worst
    assert any(g.abs().max().item() > 100 * TOLERANCE for g in plain_grads.values())  # the step moves weights
