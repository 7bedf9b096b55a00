"""The masked preference collator against a per-token reference, and the kept-token metrics it feeds."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from trl.trainer.dpo_trainer import DataCollatorForPreference

from maskdpo.trainer.collator import (
    MASK_ROW_COLUMNS,
    TOKEN_COUNTS_KEY,
    DataCollatorForMaskedPreference,
    mask_row,
)
from maskdpo.trainer.mask_metrics import KeptTokenMetrics
from maskdpo.trainer.token_masks import Role


def _examples(n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, list[int]]]]:
    """Random examples with mask rows, and their token masks as plain lists (for the reference)."""
    rng = random.Random(seed)
    examples, masks = [], []
    for _ in range(n):
        prompt = [rng.randrange(5, 100) for _ in range(rng.randint(1, 9))]
        ex: dict[str, Any] = {"prompt_ids": prompt}
        side_masks = {}
        for role in Role:
            ids = [rng.randrange(5, 100) for _ in range(rng.randint(1, 14))]
            mask = [rng.randint(0, 1) for _ in ids]
            ex[f"{role.value}_ids"] = ids
            ex[MASK_ROW_COLUMNS[role]] = mask_row(len(prompt), mask, len(ids))
            side_masks[role.value] = mask
        examples.append(ex)
        masks.append(side_masks)
    return examples, masks


def _reference(
    masks: list[dict[str, list[int]]], examples: list[dict[str, Any]], width: int, **kw: Any
) -> Any:
    """Per-token: prompt zeros + mask, truncated like TRL, right-padded with zeros to ``width``."""
    rows = []
    for role in ("chosen", "rejected"):
        for ex, m in zip(examples, masks, strict=True):
            row = [0] * len(ex["prompt_ids"]) + m[role]
            if kw.get("max_length") is not None:
                if kw.get("truncation_mode", "keep_start") == "keep_start":
                    row = row[: kw["max_length"]]
                else:
                    row = row[-kw["max_length"] :]
            rows.append(row + [0] * (width - len(row)))
    return torch.tensor(rows)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_length": 11, "truncation_mode": "keep_start"},
        {"max_length": 11, "truncation_mode": "keep_end"},
        {"pad_to_multiple_of": 8},
    ],
)
def test_collator_folds_masks_exactly_like_the_per_token_reference(options: dict[str, Any]) -> None:
    examples, masks = _examples(6, seed=len(options))
    trl = DataCollatorForPreference(pad_token_id=0, **options)(examples)
    ours = DataCollatorForMaskedPreference(pad_token_id=0, **options)(examples)
    assert torch.equal(ours["input_ids"], trl["input_ids"])
    assert torch.equal(ours["attention_mask"], trl["attention_mask"])
    expected = trl["completion_mask"] * _reference(
        masks, examples, trl["completion_mask"].shape[1], **options
    )
    assert ours["completion_mask"].dtype == trl["completion_mask"].dtype
    assert torch.equal(ours["completion_mask"], expected)
    assert 0 < expected.sum() < trl["completion_mask"].sum()  # the masks really remove some tokens
    counts = ours[TOKEN_COUNTS_KEY]
    assert torch.equal(counts[:, 0], trl["completion_mask"].sum(dim=1))
    assert torch.equal(counts[:, 1], expected.sum(dim=1))


def test_collator_without_mask_rows_is_trls() -> None:
    examples, _ = _examples(3, seed=7)
    plain = [{k: v for k, v in ex.items() if k not in MASK_ROW_COLUMNS.values()} for ex in examples]
    ours = DataCollatorForMaskedPreference(pad_token_id=0)(plain)
    trl = DataCollatorForPreference(pad_token_id=0)(plain)
    assert ours.keys() == trl.keys() and TOKEN_COUNTS_KEY not in ours
    assert torch.equal(ours["completion_mask"], trl["completion_mask"])


def test_misaligned_mask_rows_are_refused() -> None:
    examples, _ = _examples(2, seed=3)
    examples[1][MASK_ROW_COLUMNS[Role.REJECTED]] += b"\x01" * 40  # longer than any row of the batch
    with pytest.raises(ValueError, match="do not line up"):
        DataCollatorForMaskedPreference(pad_token_id=0)(examples)
    with pytest.raises(ValueError, match="3 entries for 4 completion ids"):
        mask_row(2, [1, 0, 1], 4)
    with pytest.raises(ValueError, match="other than 0 and 1"):
        mask_row(2, [1, 2], 2)
    assert mask_row(2, [1, 0, 1], 3) == b"\x00\x00\x01\x00\x01"


def test_kept_fractions_are_materialised_per_step_and_mode_when_drained() -> None:
    metrics = KeptTokenMetrics()
    # rows: chosen, chosen, rejected, rejected; columns: completion tokens, kept tokens
    metrics.record("train", torch.tensor([[10, 4], [6, 2], [8, 8], [0, 0]]))
    metrics.record("train", torch.tensor([[5, 0], [5, 5], [0, 0], [0, 0]]))
    metrics.record("eval", torch.tensor([[4, 1], [4, 1]]))  # one pair
    assert metrics.drain("train") == {
        "mask/kept_fraction_chosen": [6 / 16, 5 / 10],
        "mask/kept_fraction_rejected": [1.0, 0.0],  # no completion token: 0, not a division by zero
    }
    assert metrics.drain("train") == {}
    assert metrics.drain("eval") == {
        "mask/kept_fraction_chosen": [0.25],
        "mask/kept_fraction_rejected": [0.25],
    }
