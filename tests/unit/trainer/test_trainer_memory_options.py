"""The options that make full-parameter training fit, end to end through ``run_training`` on the tiny model:
gradient accumulation equals the larger batch, precomputed reference log-probs hold no reference model and
train alike, bf16 mixed precision keeps float32 master weights that alignment-sized updates move, and the
final model is saved in the dtype the starting model declares."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from trl import DPOConfig

from maskdpo.trainer.data import load_training_data
from maskdpo.trainer.dpo import MaskDPOTrainer
from maskdpo.trainer.pairs import PairConfig
from maskdpo.trainer.run import TrainOptions, TrainResult, run_training
from tests.helpers.training import write_judged


def _run(model: Path, tmp: Path, name: str, **kw: Any) -> tuple[TrainResult, list[dict[str, Any]]]:
    data = tmp / "judged.jsonl"
    if not data.exists():
        write_judged(data)
    options = {"steps": 3, "learning_rate": 1e-3, "batch_size": 4, "progress_bar": False, **kw}
    result = run_training(TrainOptions(data=data, model=model, out=tmp / name, **options))
    rows = [json.loads(x) for x in (tmp / name / "metrics.jsonl").read_text().splitlines()]
    return result, [r for r in rows if "loss" in r and "step" in r]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_accumulated_micro_batches_equal_one_batch_of_twice_the_size(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    _, whole = _run(tiny_model_dir, tmp_path, "b4", batch_size=4)
    _, accumulated = _run(tiny_model_dir, tmp_path, "b2x2", batch_size=2, grad_accum=2)
    assert [r["step"] for r in accumulated] == [1, 2, 3]
    for a, b in zip(whole, accumulated, strict=True):
        # the same pairs per step: the loss (mean over pairs) and the gradient's norm agree to float rounding
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    assert _max_diff(_weights(tmp_path / "b4" / "final"), _weights(tmp_path / "b2x2" / "final")) < 1e-5


def test_precomputed_reference_holds_no_reference_model_and_trains_the_same(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    pairs, _ = load_training_data(write_judged(tmp_path / "judged.jsonl"), "auto", PairConfig())
    dataset = Dataset.from_list([p.to_record() for p in pairs])

    def trainer(precompute: bool) -> MaskDPOTrainer:
        args = DPOConfig(output_dir=str(tmp_path / f"t{precompute}"), report_to=[], use_cpu=True,
                         precompute_ref_log_probs=precompute)
        return MaskDPOTrainer(str(tiny_model_dir), args=args, train_dataset=dataset,
                              processing_class=tiny_tokenizer)

    assert trainer(False).ref_model is not None
    precomputed = trainer(True)
    assert precomputed.ref_model is None
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(precomputed.train_dataset.column_names)

    _, resident = _run(tiny_model_dir, tmp_path, "resident")
    _, computed_once = _run(tiny_model_dir, tmp_path, "precomputed", precompute_ref=True)
    # the reference is the starting policy either way: the same losses
    assert [r["loss"] for r in resident] == pytest.approx([r["loss"] for r in computed_once], abs=1e-5)


def test_bf16_trains_float32_master_weights_that_small_updates_move(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = _weights(tiny_model_dir)
    result, rows = _run(tiny_model_dir, tmp_path, "bf16", steps=2, learning_rate=1e-6, bf16=True)
    after = _weights(tmp_path / "bf16" / "final")  # the model declares float32: saved as such
    assert result.final_dir is not None and len(rows) == 2 and rows[-1]["loss"] < rows[0]["loss"]
    moves = torch.cat([(after[k] - before[k]).abs().flatten() for k in before])
    moved = moves[moves > 0]
    # Adam moves every weight with a gradient by ~1e-6 a step (the embeddings of unseen tokens have none) and
    # float32 keeps that; weights held in bfloat16 (~0.4 % resolution) would stay put or jump by ~1e-4
    assert len(moved) > 0.5 * len(moves)
    assert moved.median() < 4e-6 and moved.max() < 1e-5, (moved.median(), moved.max())


def _declaring(source: Path, target: Path, dtype: str) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = dtype
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_final_model_is_saved_in_the_dtype_the_model_declares(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = _declaring(tiny_model_dir, tmp_path / "bf16-model", "bfloat16")
    result, _ = _run(model, tmp_path, "auto", save_steps=3)
    final, checkpoint = _weights(tmp_path / "auto" / "final"), _weights(tmp_path / "auto" / "checkpoints" / "checkpoint-3")
    assert result.final_dir is not None
    assert all(t.dtype == torch.bfloat16 for t in final.values())
    assert all(t.dtype == torch.float32 for t in checkpoint.values())  # resumable checkpoints stay float32
    assert all(torch.equal(final[k], checkpoint[k].to(torch.bfloat16)) for k in final)
    assert json.loads((tmp_path / "auto" / "final" / "config.json").read_text())["dtype"] == "bfloat16"

    _run(model, tmp_path, "named", serving_dtype="float32")
    assert all(t.dtype == torch.float32 for t in _weights(tmp_path / "named" / "final").values())
    _run(tiny_model_dir, tmp_path, "declares-float32")  # never narrowed
    assert all(t.dtype == torch.float32 for t in _weights(tmp_path / "declares-float32" / "final").values())

