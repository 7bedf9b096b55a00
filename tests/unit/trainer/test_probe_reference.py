"""The trainer saves the probe's log-probs beside the final model, and they are the reference a deploy's
verification would compute by loading the folder again (full weights and LoRA adapters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.server.generation.verify import PROBE_TEXT, reference_logprobs, trained_reference
from maskdpo.trainer.probe import PROBE_FILE
from maskdpo.trainer.run import TrainOptions, run_training
from tests.helpers.training import write_judged


@pytest.mark.parametrize(("lora", "bf16"), [(False, False), (True, False), (False, True)])
def test_saved_probe_equals_the_reference_computed_from_the_folder(
    tiny_model_dir: Path, tmp_path: Path, lora: bool, bf16: bool
) -> None:
    """bf16: mixed precision computes in bfloat16 while training, but the float32 weights it saves are what
    the reference describes (computed under the trainer's autocast it missed by 1.5e-3)."""
    options = TrainOptions(data=write_judged(tmp_path / "judged.jsonl"), model=tiny_model_dir, out=tmp_path / "out",
                           loss="dpo", steps=2, learning_rate=1e-3, lora=lora, lora_r=4, lora_alpha=8,
                           probe_text=PROBE_TEXT, progress_bar=False, bf16=bf16)
    final = run_training(options).final_dir
    assert final is not None
    record = json.loads((final / PROBE_FILE).read_text())
    ids = record["token_ids"]
    saved = trained_reference(final, ids, full_precision=True)
    assert saved is not None and record["dtype"] == "float32"
    base, adapter = (tiny_model_dir, final) if lora else (final, None)
    assert saved == pytest.approx(reference_logprobs(base, ids, adapter), abs=1e-5)
    assert trained_reference(final, ids[:10], full_precision=True) == saved[:9]  # a shorter probe: its prefix
    assert trained_reference(final, [*ids[:3], ids[3] + 1], full_precision=True) is None  # other tokens


def test_a_16_bit_reference_serves_only_16_bit_engines(tmp_path: Path) -> None:
    (tmp_path / PROBE_FILE).write_text(json.dumps({"token_ids": [1, 2, 3], "logprobs": [-1.0, -2.0],
                                                   "dtype": "bfloat16"}))
    assert trained_reference(tmp_path, [1, 2, 3], full_precision=True) is None
    assert trained_reference(tmp_path, [1, 2, 3], full_precision=False) == [-1.0, -2.0]
    assert trained_reference(tmp_path / "absent", [1, 2, 3], full_precision=False) is None
