"""A Mask-DPO training step on a GPU in bf16 (skipped without CUDA).

On a GPU machine without the package installed, ``scripts/gpu_trainer_check.sh`` runs this and the step
benchmark (it maps ``maskdpo.trainer`` onto ``trainer/`` and installs a carried TRL wheel if needed).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_bf16_maskdpo_steps_on_gpu(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig

    from bench.bench_train_step import make_rows
    from maskdpo.trainer.dpo import MaskDPOTrainer
    from tests.helpers.tiny_model import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", seed=0, hidden_size=256, num_layers=4, num_heads=4)
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-4,
        bf16=True,
        model_init_kwargs={"dtype": torch.bfloat16},
        logging_steps=1,
        report_to=[],
        save_strategy="no",
    )
    trainer = MaskDPOTrainer(
        str(model_dir),
        args=args,
        train_dataset=Dataset.from_list(make_rows(8)),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    assert trainer.model.device.type == "cuda" and trainer.model.dtype == torch.bfloat16
    before = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(math.isfinite(h["loss"]) for h in logs)
    assert all(
        0 < h["mask/kept_fraction_chosen"] < 1 and 0 < h["mask/kept_fraction_rejected"] < 1 for h in logs
    )
    assert logs[-1]["rewards/margins"] > 0
    changed = [k for k, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[k])]
    assert changed
