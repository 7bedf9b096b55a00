"""MaskDPOTrainer against TRL's DPOTrainer: exact parity with all-ones masks, exact zeros where masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from maskdpo.trainer.collator import TOKEN_COUNTS_KEY
from maskdpo.trainer.dpo import MaskDPOTrainer, validate_config
from maskdpo.trainer.sentences import split_sentences
from maskdpo.trainer.token_masks import MaskConfig, MaskRule

CHOSEN = "Marie Curie was a physicist born in Paris in 1867. I think she is great 😀! She lived in Zürich."
REJECTED = "Marie Curie was a painter born in 東京 in 1912. She lived in Zürich. Some say she was a coach."


def _rows(labels_c: list[str], labels_r: list[str], n: int = 4) -> list[dict[str, Any]]:
    def sents(text: str, labels: list[str]) -> list[dict[str, Any]]:
        spans = split_sentences(text)
        assert len(spans) == len(labels)
        return [{"start": s.start, "end": s.end, "label": lab} for s, lab in zip(spans, labels, strict=True)]

    return [
        {
            "prompt": [{"role": "user", "content": f"Tell me a bio of Marie Curie ({i})."}],
            "chosen": [{"role": "assistant", "content": CHOSEN[: len(CHOSEN) - i]}],
            "rejected": [{"role": "assistant", "content": REJECTED}],
            "chosen_sentences": sents(CHOSEN[: len(CHOSEN) - i], labels_c),
            "rejected_sentences": sents(REJECTED, labels_r),
        }
        for i in range(n)
    ]


def _args(tmp: Path, **kw: Any) -> DPOConfig:
    return DPOConfig(output_dir=str(tmp), per_device_train_batch_size=4, report_to=[], use_cpu=True, **kw)


def _loss_and_grads(trainer: Any, n: int = 4) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(n)])
    inputs = trainer._prepare_inputs(batch)
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, batch


def lm_head_input_grad(trainer: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The loss, d loss / d h_t of the LM head's input at every position (the final norm's output), and the
    batch of one step."""
    captured: dict[str, torch.Tensor] = {}

    def keep_grad(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        captured["h"] = output

    handle = trainer.model.model.norm.register_forward_hook(keep_grad)
    try:
        loss, _, batch = _loss_and_grads(trainer)
    finally:
        handle.remove()
    grad = captured["h"].grad
    assert grad is not None
    return loss, grad, batch


def test_all_ones_masks_match_trl_dpo_exactly(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    rows = _rows(["ok", "nofact", "ok"], ["contradictory", "ok", "unverifiable"])
    plain = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trl = DPOTrainer(
        str(tiny_model_dir), args=_args(tmp_path / "a"), train_dataset=plain, processing_class=tiny_tokenizer
    )
    ours = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path / "b"),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
        mask_config=MaskConfig(rule=MaskRule.ALL),
    )
    loss_a, grads_a, batch_a = _loss_and_grads(trl)
    loss_b, grads_b, batch_b = _loss_and_grads(ours)
    assert torch.equal(batch_a["completion_mask"], batch_b["completion_mask"])
    assert abs(loss_a.item() - loss_b.item()) <= 1e-6
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name, g in grads_a.items():
        assert torch.allclose(g, grads_b[name], atol=1e-6, rtol=0), name
    assert any(g.abs().sum() > 0 for g in grads_a.values())


def test_gradient_is_exactly_zero_at_neutral_positions(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    """d loss / d logits_t = 0 wherever token t+1 is not kept.

    The fused LM head never materialises the logits, so the test reads the gradient of the LM head's input
    h_t (logits_t = W h_t): it is exactly zero iff the logits' gradient at t is zero (W^T 0 = 0), and h_t
    feeds nothing but logits_t.
    """
    rows = _rows(["ok", "nofact", "contradictory"], ["contradictory", "ok", "unverifiable"])
    trainer = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    _, grad, batch = lm_head_input_grad(trainer)  # (2B, L, H); position t predicts token t+1
    kept = batch["completion_mask"][:, 1:].bool()
    completion_len, kept_len = batch[TOKEN_COUNTS_KEY].unbind(dim=1)
    per_position = grad[:, :-1].abs().sum(dim=-1)
    assert (per_position[~kept] == 0).all()  # prompt, padding, neutral sentences: exactly zero
    assert (per_position[kept] > 0).all()
    # there really are neutral completion positions (masked out but inside the completion)
    assert (kept.sum(dim=1) < completion_len).all()
    assert torch.equal(kept_len, batch["completion_mask"].sum(dim=1))


def test_config_rejects_options_that_break_under_masks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ld_alpha"):
        validate_config(_args(tmp_path, ld_alpha=0.5), MaskConfig())
    with pytest.raises(ValueError, match="use_weighting"):
        validate_config(_args(tmp_path, use_weighting=True), MaskConfig())
    validate_config(_args(tmp_path, ld_alpha=0.5), MaskConfig(rule=MaskRule.ALL))  # vanilla: TRL's own rules


def test_missing_sentences_and_misaligned_records_are_named(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    rows = _rows(["ok", "nofact", "ok"], ["contradictory", "ok", "unverifiable"], n=2)
    no_sents = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    with pytest.raises(ValueError, match="lacks"):
        MaskDPOTrainer(
            str(tiny_model_dir), args=_args(tmp_path), train_dataset=no_sents, processing_class=tiny_tokenizer
        )
    rows[1]["rejected_sentences"][0]["end"] = 10_000
    with pytest.raises(ValueError, match=r"train record 1 \(rejected\).*runs past"):
        MaskDPOTrainer(
            str(tiny_model_dir),
            args=_args(tmp_path),
            train_dataset=Dataset.from_list(rows),
            processing_class=tiny_tokenizer,
        )


def test_supplied_token_masks_are_checked_against_the_ids(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    rows = _rows(["ok", "nofact", "ok"], ["contradictory", "ok", "unverifiable"], n=2)
    for row in rows:
        row["chosen_token_mask"], row["rejected_token_mask"] = [1], [1]  # far shorter than the completions
    with pytest.raises(
        ValueError, match=r"train record 0 \(chosen\), chosen_token_mask: token mask has 1 entr"
    ):
        MaskDPOTrainer(
            str(tiny_model_dir),
            args=_args(tmp_path),
            train_dataset=Dataset.from_list(rows),
            processing_class=tiny_tokenizer,
        )


def test_precomputed_reference_uses_the_masks(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    rows = _rows(["ok", "nofact", "contradictory"], ["contradictory", "ok", "unverifiable"])
    live = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path / "a"),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    pre = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path / "b", precompute_ref_log_probs=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    batch = live._prepare_inputs(live.data_collator([live.train_dataset[i] for i in range(4)]))
    ref_chosen, ref_rejected = live.compute_ref_log_probs(live.ref_model, batch)
    assert torch.allclose(torch.tensor(pre.train_dataset["ref_chosen_logps"][:4]), ref_chosen, atol=1e-5)
    assert torch.allclose(torch.tensor(pre.train_dataset["ref_rejected_logps"][:4]), ref_rejected, atol=1e-5)
    # the masked sums differ from the unmasked ones: the masks really reached the precompute
    vanilla = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path / "c", precompute_ref_log_probs=True),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
        mask_config=MaskConfig(rule=MaskRule.ALL),
    )
    assert all(
        abs(a - b) > 1e-3
        for a, b in zip(
            vanilla.train_dataset["ref_chosen_logps"], pre.train_dataset["ref_chosen_logps"], strict=True
        )
    )


def test_kept_fractions_are_logged_per_step_when_the_trainer_logs(
    tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    rows = _rows(["ok", "nofact", "contradictory"], ["contradictory", "ok", "unverifiable"])
    trainer = MaskDPOTrainer(
        str(tiny_model_dir),
        args=_args(tmp_path),
        train_dataset=Dataset.from_list(rows),
        processing_class=tiny_tokenizer,
    )
    trainer.model.train()
    data = trainer.train_dataset
    expected: dict[str, list[float]] = {"chosen": [], "rejected": []}
    for n in (4, 2):  # two steps of different sizes
        _loss_and_grads(trainer, n)
        for role in expected:
            kept = sum(sum(m) for m in data[f"{role}_token_mask"][:n])
            total = sum(len(ids) for ids in data[f"{role}_ids"][:n])
            expected[role].append(kept / total)
    assert not any(k.startswith("mask/") for k in trainer._metrics["train"])  # nothing read during the steps
    trainer.log({"loss": 0.0})
    logged = trainer.state.log_history[-1]
    assert expected["chosen"][0] != expected["chosen"][1]  # the two steps really differ
    for role, fractions in expected.items():
        assert all(0 < f < 1 for f in fractions)
        assert logged[f"mask/kept_fraction_{role}"] == pytest.approx(sum(fractions) / 2, abs=1e-12)
    trainer.log({"loss": 0.0})
    assert "mask/kept_fraction_chosen" not in trainer.state.log_history[-1]  # drained at the first log
