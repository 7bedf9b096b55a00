"""The NLL anchor: DPO loss + alpha x mean NLL of the chosen answers' kept tokens, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset

from maskdpo.trainer.collator import TOKEN_COUNTS_KEY
from maskdpo.trainer.dpo import MaskDPOTrainer, nll_anchor
from tests.unit.trainer.test_trainer_dpo import _args, _loss_and_grads, _rows, lm_head_input_grad

ALPHA = 0.7


def _trainer(model: Path, tok: Any, out: Path, alpha: float | None) -> MaskDPOTrainer:
    rows = _rows(["ok", "nofact", "contradictory"], ["contradictory", "ok", "unverifiable"])
    extra = {} if alpha is None else nll_anchor(alpha)
    return MaskDPOTrainer(str(model), args=_args(out, **extra), train_dataset=Dataset.from_list(rows),
                          processing_class=tok)


def test_alpha_zero_is_todays_loss(tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path) -> None:
    today, grads_today, _ = _loss_and_grads(_trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "a", None))
    zero, grads_zero, _ = _loss_and_grads(_trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "b", 0.0))
    assert abs(today.item() - zero.item()) <= 1e-6
    for name, g in grads_today.items():
        assert torch.allclose(g, grads_zero[name], atol=1e-6, rtol=0), name


def test_the_anchor_adds_alpha_times_the_kept_chosen_nll(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    plain = _trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "a", 0.0)
    anchored = _trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "b", ALPHA)
    loss0, _, batch = _loss_and_grads(plain)
    loss1, _, _ = _loss_and_grads(anchored)
    # the NLL computed here from plain logits, over the kept tokens of the chosen rows only
    inputs = plain._prepare_inputs(batch)
    with torch.no_grad():
        logits = plain.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, inputs["input_ids"][:, 1:, None])[..., 0]
    kept = inputs["completion_mask"][:, 1:].bool()
    chosen = kept.clone()
    chosen[kept.size(0) // 2 :] = False
    completion_tokens = batch[TOKEN_COUNTS_KEY][: kept.size(0) // 2, 0].sum()
    assert 0 < chosen.sum() < completion_tokens  # a real mask: neutral tokens inside the chosen answers
    nll = -logps[chosen].mean()
    assert abs((loss1 - loss0).item() - ALPHA * nll.item()) <= 1e-5


def test_the_anchor_gradient_is_exactly_zero_at_masked_positions(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    _, g0, batch = lm_head_input_grad(_trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "a", 0.0))
    _, g1, _ = lm_head_input_grad(_trainer(tiny_model_dir, tiny_tokenizer, tmp_path / "b", ALPHA))
    anchor = (g1 - g0)[:, :-1].abs().sum(dim=-1)  # the anchor's share; position t predicts token t+1
    kept = batch["completion_mask"][:, 1:].bool()
    half = kept.size(0) // 2
    assert torch.equal(anchor[~kept], torch.zeros_like(anchor[~kept]))  # prompt, padding, neutral: exactly 0
    assert torch.equal(anchor[half:], torch.zeros_like(anchor[half:]))  # rejected answers: exactly 0
    assert (anchor[:half][kept[:half]] > 0).all()  # every kept token of a chosen answer is pulled up


def test_a_negative_weight_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        nll_anchor(-0.1)
