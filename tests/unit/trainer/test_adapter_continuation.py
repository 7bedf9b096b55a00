"""A chained LoRA round goes on training the adapter it starts from (TrainOptions.adapter)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from maskdpo.trainer.run import TrainOptions, run_training
from tests.helpers.training import write_judged


def _train(tiny_model_dir: Path, data: Path, out: Path, adapter: Path | None) -> dict[str, torch.Tensor]:
    options = TrainOptions(data=data, model=tiny_model_dir, out=out, loss="dpo", steps=2, learning_rate=1e-3,
                           lora=True, lora_r=4, lora_alpha=8, adapter=adapter, progress_bar=False)
    result = run_training(options)
    assert result.final_dir is not None and (result.final_dir / "adapter_config.json").is_file()
    return load_file(str(result.final_dir / "adapter_model.safetensors"))


def test_training_goes_on_from_the_given_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_judged(tmp_path / "judged.jsonl")
    first = _train(tiny_model_dir, data, tmp_path / "first", None)
    second = _train(tiny_model_dir, data, tmp_path / "second", tmp_path / "first" / "final")
    assert first.keys() == second.keys()
    # LoRA's B matrices start at zero. Same data, same seed: a new adapter would come out identical to the
    # first; one that went on from it holds the first's B plus two more steps in much the same direction.
    b = sorted(k for k in first if "lora_B" in k)
    first_size = sum(float(first[k].abs().sum()) for k in b)
    second_size = sum(float(second[k].abs().sum()) for k in b)
    assert first_size > 0 and second_size > 1.5 * first_size
